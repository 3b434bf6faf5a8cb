"""MLflow's own prompt optimisers (GEPA, MetaPrompt) as benchmark methods:
``mlflow.genai.optimize_prompts`` on a task's prepared split.

The prompt they start from is the black box's zero-shot prompt with an empty instruction
(``Instruction: \\n\\nInput: {{input}}\\nOutput:``), so their starting score is the empty
instruction's. ``predict_fn`` sends the formatted prompt to the same black box as the pipeline
(its response cache: a repeat costs no call), the scorer is the task's metric, and ``train_data``
is the validation split: every call an optimiser pays for is a call on a validation example.
The reflection/meta LLM is an OpenAI-compatible model (``openai:/<name>`` at ``OPENAI_BASE_URL``);
its calls are counted apart.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# (litellm's logging thread imports spend_tracking.savings lazily after each call: beside MLflow's
# import hooks, its evaluation patching openai, that import deadlocks; so it is imported up front)
import litellm.proxy.spend_tracking.savings  # noqa: F401  (binds litellm too)
import mlflow
from mlflow.entities.model_registry import PromptVersion
from mlflow.genai.optimize.optimizers import BasePromptOptimizer, GepaPromptOptimizer, MetaPromptOptimizer
from mlflow.genai.optimize.types import PromptOptimizationResult

from components.blackbox import BlackBox, ResponseCache, zero_shot_prompt
from components.data import Example
from components.metrics import score
from tasks.tracking import task_scorer

MLFLOW_METHODS = ("gepa", "metaprompt")
# Room for a rewritten prompt. Uncapped (MLflow asks for 8192 tokens), a small model writes to the
# cap at ~22 tokens/s on 2 cores: minutes per reflection.
REFLECTION_TOKENS = 256
SEED_TEMPLATE = zero_shot_prompt("", "{{input}}")


def records(examples: tuple[Example, ...]) -> list[dict[str, Any]]:
    """Examples as ``train_data``: the input, and the accepted answers as the expected response."""
    return [{"inputs": {"input": e.input},
             "expectations": {"expected_response": e.outputs[0] if len(e.outputs) == 1 else list(e.outputs)}}
            for e in examples]


def mlflow_optimizer(method: str, reflection_model: str, max_calls: int, seed: int) -> BasePromptOptimizer:
    """``method``'s optimiser at its documented defaults, its reflection answers capped at
    ``REFLECTION_TOKENS`` (through its documented options); GEPA's budget is ``max_calls`` metric
    calls (MetaPrompt makes one pass: two evaluations of ``train_data``)."""
    if method == "gepa":
        return GepaPromptOptimizer(reflection_model=reflection_model, max_metric_calls=max_calls, gepa_kwargs={
            "seed": seed, "reflection_lm_kwargs": {"max_tokens": REFLECTION_TOKENS}})
    if method == "metaprompt":
        return MetaPromptOptimizer(reflection_model=reflection_model,
                                   lm_kwargs={"max_completion_tokens": REFLECTION_TOKENS})
    raise ValueError(f"not an MLflow optimiser: {method}")


@dataclass
class Counting:
    """``predict_fn`` on the black box: each prompt answered (greedy, params.yaml's max_tokens),
    with the calls paid counted and the distinct templates seen kept in order (thread-safe:
    MLflow's eval_fn runs predict_fn in threads)."""

    blackbox: BlackBox
    uri: str
    calls: int = 0
    templates: dict[str, None] = field(default_factory=dict)  # (an ordered set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, input: str) -> str:  # noqa: A002  (the template's variable)
        prompt = mlflow.genai.load_prompt(self.uri)
        done = self.blackbox.complete([str(prompt.format(input=input))])
        with self._lock:
            self.calls += done.stats.calls
            self.templates.setdefault(str(prompt.template))
        return done.answers[0] or ""


@dataclass(eq=False)  # hashable: litellm keeps its callbacks in a set
class Reflections:
    """The reflection LLM's calls, completion tokens and first answers (a litellm success callback)."""

    calls: int = 0
    tokens: int = 0
    answers: list[str] = field(default_factory=list)

    def __call__(self, kwargs: dict, response: Any, start: Any, end: Any) -> None:
        self.calls += 1
        usage = getattr(response, "usage", None)
        self.tokens += getattr(usage, "completion_tokens", 0) or 0
        if len(self.answers) < 3:
            self.answers.append((response.choices[0].message.content or "")[:400])


def optimize_with_mlflow(workdir: Path, name: str, optimizer: BasePromptOptimizer, blackbox: BlackBox,
                         train_data: list[dict[str, Any]], metric: str, template: str = SEED_TEMPLATE,
                         ) -> tuple[PromptOptimizationResult, Counting, Reflections]:
    """Register ``template`` in a store in ``workdir`` and optimise it on ``train_data``
    (:func:`records`); returns MLflow's result (the optimised prompt registered as its next
    version), the predict_fn's counts and the reflection LLM's."""
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    # MLflow's trace exporter thread asks for IPython (not installed: not cached, tried again per
    # trace) through MLflow's import hooks while eval_fn, in this thread, imports under their lock:
    # the two deadlock. With the notebook display off the exporter imports nothing.
    mlflow.tracing.disable_notebook_display()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    prompt = mlflow.genai.register_prompt(name=name, template=template)
    predict = Counting(blackbox, prompt.uri)
    reflections = Reflections()
    litellm.success_callback = [reflections]
    try:
        result = mlflow.genai.optimize_prompts(predict_fn=predict, train_data=train_data,
                                               prompt_uris=[prompt.uri], optimizer=optimizer,
                                               scorers=[task_scorer(metric)])
    finally:
        litellm.success_callback = []
    return result, predict, reflections


def cold_blackbox(blackbox: BlackBox, cache: Path) -> BlackBox:
    """``blackbox``'s endpoint and model with a response cache of its own at ``cache`` (cold: a
    method's calls are paid, not found in another method's answers)."""
    return BlackBox(base_url=blackbox.base_url, model=blackbox.model, api_key="local", cache=ResponseCache(cache),
                    max_tokens=blackbox.max_tokens)


def score_prompt(blackbox: BlackBox, prompt: PromptVersion, examples: tuple[Example, ...], metric: str) -> float:
    """The mean score of ``prompt`` (formatted with each input) on ``examples``."""
    done = blackbox.complete([str(prompt.format(input=e.input)) for e in examples])
    scores = [score(a or "", e.outputs, metric, e.choices) for a, e in zip(done.answers, examples, strict=True)]
    return sum(scores) / len(examples)
