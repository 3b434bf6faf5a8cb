"""InstructZero inside `mlflow.genai.optimize_prompts`: a prompt registered in a real MLflow store,
a predict_fn calling an OpenAI-compatible server, a scorer, and the new version registered."""

from __future__ import annotations

import mlflow
import openai
import pytest
from mlflow.genai.scorers import scorer

from components.builtin_tasks import builtin_task
from flows.mlflow_optimizer import InstructZeroPromptOptimizer, as_example, candidate
from tests.openai_stub import last_input, stub_server

TEMPLATE = "Input: {{word}}\nOutput:"


def _answer(prompt: str) -> str:
    """The first letter under an instruction of odd length, else the whole word (no instruction: wrong)."""
    instruction = prompt.split("\n\nInput: ")[0] if "\n\nInput: " in prompt else ""
    word = last_input(prompt)
    return word[0] if len(instruction) % 2 else word


def test_records_become_exemplars_and_candidates_keep_the_template():
    assert as_example({"inputs": {"word": "apple"}, "outputs": "a"}).input == "apple"
    two = as_example({"inputs": {"a": 1, "b": 2}, "expectations": {"expected_response": "3"}})
    assert (two.input, two.outputs) == ("a: 1; b: 2", ("3",))
    assert candidate("Write its first letter.", TEMPLATE) == "Write its first letter.\n\n" + TEMPLATE


def test_one_prompt_at_a_time_and_scores_are_needed():
    optimizer = InstructZeroPromptOptimizer()
    with pytest.raises(ValueError, match="one prompt at a time"):
        optimizer.optimize(lambda prompts, data: [], [], {"a": "x", "b": "y"})
    with pytest.raises(ValueError, match="scorers"):
        optimizer.optimize(None, [], {"a": "x"})


@pytest.mark.slow
def test_optimize_prompts_with_instructzero_registers_a_better_version(tmp_path, embedded_model, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    mlflow.set_registry_uri(f"sqlite:///{tmp_path}/mlflow.db")
    prompt = mlflow.genai.register_prompt(name="first-letter", template=TEMPLATE)
    words = [e.input for e in builtin_task("first_letter").pool[:25]]
    data = [{"inputs": {"word": w}, "outputs": w[0]} for w in words]

    @scorer
    def exact(outputs: str, expectations: dict) -> float:
        return float(outputs.strip() == expectations["expected_response"])

    with stub_server(_answer) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test")

        def predict_fn(word: str) -> str:
            text = mlflow.genai.load_prompt(prompt.uri).format(word=word)
            reply = client.chat.completions.create(model="stub", messages=[{"role": "user", "content": text}])
            return reply.choices[0].message.content or ""

        result = mlflow.genai.optimize_prompts(
            predict_fn=predict_fn, train_data=data, prompt_uris=[prompt.uri], scorers=[exact],
            optimizer=InstructZeroPromptOptimizer(generator={"model": str(embedded_model), "max_new_tokens": 16},
                                                  bo={"n_instructions": 4, "n_startup_trials": 2, "batch_size": 2},
                                                  n_validation=10))
        asked = [r["messages"][-1]["content"] for r in server.requests]
    [optimized] = result.optimized_prompts
    assert optimized.name == "first-letter" and optimized.version == 2
    assert mlflow.genai.load_prompt("prompts:/first-letter/2").template == optimized.template
    assert optimized.template.endswith("\n\n" + TEMPLATE) and result.initial_eval_score == 0.0
    assert result.final_eval_score == 1.0  # an odd-length instruction: every first letter right
    instructions = {p.split("\n\nInput: ")[0] for p in asked if "\n\nInput: " in p}
    # each on the 10 validation records once, the prompt as it was too, and MLflow's own first try of predict_fn
    assert len(instructions) == 4 and len(asked) == 10 * (4 + 1) + 1
