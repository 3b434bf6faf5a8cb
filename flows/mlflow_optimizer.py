"""InstructZero as an optimiser of `mlflow.genai.optimize_prompts`: for an application whose prompts
live in the MLflow Prompt Registry and are scored with MLflow scorers.

    from flows.mlflow_optimizer import InstructZeroPromptOptimizer

    result = mlflow.genai.optimize_prompts(
        predict_fn=predict_fn, train_data=data, prompt_uris=[prompt.uri], scorers=[exact],
        optimizer=InstructZeroPromptOptimizer(bo={"n_instructions": 20}),
    )

The method is the pipeline's (:class:`components.search.Search`): exemplars and one fixed
validation subset drawn from ``train_data``, instructions written by the generator from soft
prompts, each candidate prompt (the instruction before the user's template, whose ``{{variables}}``
stay untouched) scored through MLflow's ``eval_fn`` (the user's own predict_fn, LLM, tracing and
scorers), the same sampler, budget and rules. The constructor's sections are params.yaml's, with
its defaults.
"""

from __future__ import annotations

import logging
import random
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import optuna
from mlflow.genai.optimize.optimizers import BasePromptOptimizer
from mlflow.genai.optimize.types import PromptOptimizerOutput

from components.blackbox import CallStats, Evaluation, Scored
from components.budget import Budget
from components.data import Example
from components.generator import InstructionWriter, build_prompt, load_generator, model_projection
from components.params import BOParams, GeneratorParams, ProjectionParams
from components.search import Progress, Search, search_rules
from components.study import best_evaluations, open_study
from flows.settings import EMBEDDED_MODEL
from tasks.generator import convert_embedded_model

LOG = logging.getLogger("instructzero")


def candidate(instruction: str, template: str) -> str:
    """The prompt a candidate instruction makes of the user's template: the instruction first."""
    return f"{instruction}\n\n{template}"


def as_example(record: dict[str, Any]) -> Example:
    """A train_data record as an exemplar the generator reads: its inputs (one value, or
    ``key: value`` pairs) and its expected output."""
    inputs = record["inputs"]
    text = str(next(iter(inputs.values()))) if len(inputs) == 1 else "; ".join(f"{k}: {v}" for k, v in inputs.items())
    expected = record.get("outputs")
    if expected is None:
        expectations = record.get("expectations") or {}
        expected = expectations.get("expected_response", expectations)
    return Example(text, (str(expected),))


class InstructZeroPromptOptimizer(BasePromptOptimizer):
    """InstructZero for ``mlflow.genai.optimize_prompts`` (one prompt at a time).

    Args:
        generator, projection, bo: params.yaml's sections (dicts or the schema's models); keys
            left out take params.yaml's defaults. ``bo.n_instructions`` distinct instructions are
            scored, each on the validation subset; repeats and empty instructions cost nothing.
        n_exemplars: records of ``train_data`` shown to the generator.
        n_validation: records every candidate is scored on (at most what is left).
        seed: the split of ``train_data``.
    """

    def __init__(self, *, generator: dict[str, Any] | GeneratorParams | None = None,
                 projection: dict[str, Any] | ProjectionParams | None = None,
                 bo: dict[str, Any] | BOParams | None = None, n_exemplars: int = 5, n_validation: int = 20,
                 seed: int = 0) -> None:
        self.generator = GeneratorParams.model_validate(generator or {})
        self.projection = ProjectionParams.model_validate(projection or {})
        self.bo = BOParams.model_validate(bo or {})
        self.n_exemplars, self.n_validation, self.seed = n_exemplars, n_validation, seed

    def optimize(self, eval_fn: Any, train_data: list[dict[str, Any]], target_prompts: dict[str, str],
                 enable_tracking: bool = True) -> PromptOptimizerOutput:
        if len(target_prompts) != 1:
            raise ValueError(f"InstructZero optimises one prompt at a time, got {sorted(target_prompts)}")
        if eval_fn is None:
            raise ValueError("InstructZero scores candidates: give optimize_prompts train_data and scorers")
        [(name, template)] = target_prompts.items()
        records = list(train_data)
        random.Random(self.seed).shuffle(records)
        exemplars, validation = records[:self.n_exemplars], records[self.n_exemplars:][:self.n_validation]
        if not validation:
            raise ValueError(f"train_data has {len(records)} records: InstructZero needs more than n_exemplars "
                             f"({self.n_exemplars}), the rest for validation")

        def evaluate(instruction: str) -> Evaluation:
            results = eval_fn({name: candidate(instruction, template) if instruction else template}, validation)
            return Evaluation(instruction, tuple(str(r.outputs) for r in results),
                              tuple(float(r.score or 0.0) for r in results))

        initial = evaluate("").mean
        study = self._search(evaluate, [as_example(r) for r in exemplars], len(validation), name)
        [best] = best_evaluations(study, 1)
        LOG.info("InstructZero: best %.3f on %d validation records (the prompt as it was: %.3f): %r", best.mean,
                 len(validation), initial, best.instruction)
        if best.mean <= initial:  # no candidate did better: the prompt stays as it was
            return PromptOptimizerOutput({name: template}, initial_eval_score=initial, final_eval_score=initial)
        return PromptOptimizerOutput({name: candidate(best.instruction, template)}, initial_eval_score=initial,
                                     final_eval_score=best.mean)

    def _search(self, evaluate: Any, exemplars: list[Example], n_validation: int, name: str) -> optuna.Study:
        """Run the search, scoring with ``evaluate``; returns its (in-memory) study."""
        model_ref = self.generator.model
        if Path(model_ref) == EMBEDDED_MODEL and not EMBEDDED_MODEL.exists():
            convert_embedded_model.fn(EMBEDDED_MODEL)
        model, tokenizer = load_generator(model_ref, self.generator.device, self.generator.dtype)
        projection = model_projection(self.projection, model)
        prompt = build_prompt(tokenizer, self.generator.prompt, exemplars, self.generator.response_prefix)
        writer = InstructionWriter(self.bo.sampler, model, tokenizer, prompt, projection, self.generator, self.bo.seed)
        rules = search_rules(self.bo, projection.intrinsic_dim, n_validation, exemplars)
        study = open_study("sqlite:///:memory:", name, self.bo.sampler, self.bo.n_startup_trials, self.bo.seed,
                           lengthscale=self.bo.lengthscale)
        Search(study, "mlflow", rules, Budget(), _Operations(writer, evaluate, self.bo.n_instructions), LOG).run()
        return study


class _Operations:
    """The search's operations inside MLflow: the generator writes, MLflow's eval_fn scores (at
    once, in this thread: it is not thread-safe), and progress goes to the log."""

    def __init__(self, writer: InstructionWriter, evaluate: Any, goal: int) -> None:
        self.writer, self.evaluate, self.goal = writer, evaluate, goal

    def write(self, trials: list[optuna.Trial], z: list[list[float]]) -> list[str]:
        return self.writer.write(trials, z)

    def write_pool(self, z: list[list[float]]) -> list[str]:
        return self.writer.write_pool(z)

    def score(self, instructions: list[str]) -> Future[Scored]:
        evaluations: list[Evaluation | None] = [self.evaluate(v) for v in instructions]
        done: Future[Scored] = Future()
        calls = sum(len(e.scores) for e in evaluations if e is not None)
        done.set_result(Scored(evaluations, CallStats(calls=calls)))
        return done

    def report(self, progress: Progress) -> None:
        LOG.info("InstructZero: instructions %d/%d (trials %d) | best %s", progress.n_instructions, self.goal,
                 progress.n_trials, progress.best_text())
