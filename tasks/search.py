"""The search's operations in the pipeline: the generator writes, the black box scores in the
background (a Prefect task), MLflow, the log and a terminal bar report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
from prefect.futures import PrefectFuture
from tqdm import tqdm

from components.blackbox import BlackBox, Scored
from components.data import Example
from components.generator import InstructionWriter
from components.search import Logger, Progress
from tasks.blackbox import score_instructions
from tasks.tracking import log_trials


@dataclass(frozen=True)
class PipelineOperations:
    """:class:`components.search.Operations` on the generator, the black box and MLflow."""

    writer: InstructionWriter
    blackbox: BlackBox
    validation: tuple[Example, ...]
    metric: str
    tracking_uri: str
    run_id: str
    goal: int  # bo.n_instructions, for the progress line
    logger: Logger
    bar: tqdm[Any]

    def write(self, trials: list[optuna.Trial], z: list[list[float]]) -> list[str]:
        return self.writer.write(trials, z)

    def write_pool(self, z: list[list[float]]) -> list[str]:
        return self.writer.write_pool(z)

    def score(self, instructions: list[str]) -> PrefectFuture[Scored]:
        return score_instructions.submit(self.blackbox, instructions, self.validation, self.metric)

    def report(self, progress: Progress) -> None:
        log_trials(self.tracking_uri, self.run_id, progress.trials)
        best = progress.best_text()
        self.bar.update(min(progress.n_instructions, self.goal) - self.bar.n)
        self.bar.set_postfix(best=best[:5])
        self.logger.info("instructions %d/%d (trials %d) | best %s | %d new | %d calls", progress.n_instructions,
                         self.goal, progress.n_trials, best, progress.new, progress.calls)
