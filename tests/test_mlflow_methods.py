"""MLflow's optimisers as benchmark methods (benchmarks/mlflow_methods): a real MLflow store, and a
stub OpenAI-compatible server as both the black box and the reflection LLM."""

from __future__ import annotations

import json

import pytest

from benchmarks.mlflow_methods import SEED_TEMPLATE, mlflow_optimizer, optimize_with_mlflow, records, score_prompt
from components.blackbox import BlackBox, ResponseCache
from components.builtin_tasks import builtin_task
from tests.openai_stub import last_input, stub_server

BETTER = "Instruction: Write the first letter of the word.\n\nInput: {{input}}\nOutput:"


def _answer(reply: str):
    """A reflection request (it quotes the template) gets ``reply``; the black box writes the first
    letter under BETTER's instruction, else the whole word."""
    def answer(prompt: str) -> str:
        if "{{input}}" in prompt:
            return reply
        word = last_input(prompt)
        return word[0] if prompt.startswith(BETTER.split("\n")[0]) else word

    return answer


@pytest.mark.slow
@pytest.mark.parametrize("method, reply", [
    ("metaprompt", json.dumps({"first_letter": BETTER})),  # MetaPrompt parses a JSON object of prompts
    ("gepa", f"```\n{BETTER}\n```"),  # GEPA takes the text between fences
])
def test_an_mlflow_optimizer_rewrites_the_seed_prompt_counting_black_box_and_reflection_calls(
        tmp_path, monkeypatch, method, reply):
    examples = builtin_task("first_letter").pool[:15]
    validation, test = examples[:10], examples[10:]
    with stub_server(_answer(reply)) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        box = BlackBox(base_url=server.base_url, model="stub", api_key="sk-test",
                       cache=ResponseCache(tmp_path / "cache.db"), max_tokens=16)
        optimizer = mlflow_optimizer(method, "openai:/stub", max_calls=40, seed=0)
        result, predict, reflections = optimize_with_mlflow(tmp_path, "first_letter", optimizer, box,
                                                            records(validation), "exact_match")
        [prompt] = result.optimized_prompts
        assert (prompt.version, prompt.template) == (2, BETTER)
        assert score_prompt(box, prompt, test, "exact_match") == 1.0
        reflected = sum("{{input}}" in r["messages"][-1]["content"] for r in server.requests)
    assert result.initial_eval_score == 0.0 and result.final_eval_score == 1.0
    assert set(predict.templates) == {SEED_TEMPLATE, BETTER}
    assert predict.calls == 20  # each template once on each validation example: repeats are cached
    assert reflections.calls == reflected >= 1 and reflections.answers[0] == reply
