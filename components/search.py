"""The search: ask -> write -> score -> tell, batch after batch, on an Optuna study.

The loop and its rules live here; what touches the outside world is injected
(:class:`Operations`): writing instructions from z (the generator), scoring them on the
validation set in the background (the black box) and reporting a settled batch. As with Optuna's
``study.optimize``, the loop runs on the study it is given, so one process and many workers on a
shared study run the same code.

The rules, each a small function or one step of :class:`Search`:

- the study is done when it holds ``n_instructions`` scored distinct instructions (whoever
  scored them) or ``n_trials`` complete trials, or the budget is spent (:func:`wants_more`);
- a z that repeats a scored instruction is told its score without a call
  (:func:`new_instructions`), and one that writes none is told 0 without a call
  (:func:`components.study.close_unwritten`);
- a batch shrinks to what the budget still allows (:meth:`components.budget.Budget.affordable`);
- with a pool, each batch first generates ``pool`` random z more, and those writing a new
  instruction that names one of the exemplars' answers take the batch's first trials
  (:func:`components.pool.named_picks`);
- with several workers, a worker's batches grow from 1 trial and shrink at the end so that all
  finish together (:func:`components.budget.next_batch`);
- a trial whose calls failed is failed and asked again once (:func:`components.study.settle`).

While a batch is scored, the next one is asked (the scored one pending) and written; its scoring
starts as soon as the scored one is told, so the black box waits only for the tell.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import optuna

from components.blackbox import CallStats, Evaluation, Scored
from components.budget import Budget, next_batch
from components.data import Example
from components.params import BOParams
from components.pool import answer_labels, named_picks, random_points
from components.seeds import RETRY_OF, derive_seed, draw_number
from components.study import (
    abandon,
    best_evaluations,
    close_unwritten,
    heartbeats,
    known_evaluations,
    n_complete,
    n_running,
    record_spending,
    reserve,
    settle,
    spent,
    spent_by_all,
    stop_for_budget,
    stopped_by_budget,
    suggest,
    trial_records,
)
from components.timing import Stopwatch

T = TypeVar("T", covariant=True)
Logger = logging.Logger | logging.LoggerAdapter[Any]


class Pending(Protocol[T]):
    """A result that is being computed (a Prefect or concurrent.futures future)."""

    def result(self) -> T: ...


@dataclass(frozen=True)
class Progress:
    """A settled batch, as reported."""

    trials: list[dict[str, Any]]  # the batch's completed trials (components.study.trial_records)
    n_instructions: int  # scored distinct instructions in the study
    n_trials: int  # complete trials in the study
    best: Evaluation | None  # the study's best so far (None while every trial's calls failed)
    new: int  # instructions this batch paid for
    calls: int  # black-box calls spent on the study by every worker

    def best_text(self) -> str:
        """The best so far as a log shows it: its score and instruction."""
        return f"{self.best.mean:.3f} {self.best.instruction!r}" if self.best else "none yet"


class Operations(Protocol):
    """What the search does outside itself."""

    def write(self, trials: list[optuna.Trial], z: list[list[float]]) -> list[str]:
        """The instruction each asked trial writes from its z (``""``: none)."""
        ...

    def write_pool(self, z: list[list[float]]) -> list[str]:
        """The instruction each pool point writes (``""``: none)."""
        ...

    def score(self, instructions: list[str]) -> Pending[Scored]:
        """Start scoring ``instructions`` on the validation set."""
        ...

    def report(self, progress: Progress) -> None:
        """Show and record a settled batch."""
        ...


@dataclass(frozen=True)
class Rules:
    """The numbers the search runs by (params.yaml's ``bo`` section, the split and the scale)."""

    n_instructions: int  # scored distinct instructions: the goal
    n_trials: int  # complete trials, at most
    batch_size: int
    dim: int  # z's dimension
    n_validation: int  # calls per scored instruction
    workers: int = 1  # workers sharing the study
    pool: int = 0  # random z generated per batch for the pool
    labels: tuple[str, ...] = ()  # the answers a pool pick must name (none: no pool)
    seed: int = 0
    poll: float = 2.0  # seconds between looks at a shared study whose other workers hold the rest


@dataclass(frozen=True)
class Batch:
    """Trials whose new instructions are being scored."""

    trials: list[optuna.Trial]
    instructions: list[str]  # one per trial
    new: list[str]  # the distinct ones not scored before
    fits: int  # how many of ``new`` the budget allows (being scored); the rest go unpaid
    scoring: Pending[Scored] | None


def wants_more(n_known: int, n_done: int, stopped: bool, n_instructions: int, n_trials: int) -> bool:
    """Whether the study needs more trials: fewer than ``n_instructions`` scored instructions and
    ``n_trials`` complete trials, and the budget not spent."""
    return n_known < n_instructions and n_done < n_trials and not stopped


def study_wants_more(study: optuna.Study, n_instructions: int, n_trials: int, n_known: int | None = None) -> bool:
    """:func:`wants_more` for ``study`` as it stands (``n_known``: its scored instructions, if
    counted already)."""
    known = len(known_evaluations(study)) if n_known is None else n_known
    return wants_more(known, n_complete(study), stopped_by_budget(study), n_instructions, n_trials)


def search_rules(bo: BOParams, dim: int, n_validation: int, exemplars: Sequence[Example], workers: int = 1,
                 poll: float = 2.0) -> Rules:
    """The rules of params.yaml's ``bo`` section: the pool for samplers over z only (APE writes
    without one), its labels the exemplars' answers."""
    labels = answer_labels(exemplars) if bo.pool and bo.sampler != "ape" else ()
    return Rules(bo.n_instructions, bo.n_trials, bo.batch_size, dim, n_validation, workers, bo.pool, labels, bo.seed,
                 poll)


def new_instructions(instructions: Sequence[str], known: Collection[str]) -> list[str]:
    """The distinct ``instructions`` not scored before, in order: only these cost calls."""
    return list(dict.fromkeys(v for v in instructions if v not in known))


class Search:
    """One worker's search on ``study`` (``worker`` names what it spent, in the study)."""

    def __init__(self, study: optuna.Study, worker: str, rules: Rules, budget: Budget, operations: Operations,
                 logger: Logger) -> None:
        self.study, self.worker, self.rules, self.budget = study, worker, rules, budget
        self.operations, self.logger = operations, logger
        self.owner = uuid.uuid4().hex  # marks the trials this search opens (its stop fails them)
        self.usage, seconds = spent(study, worker)
        self.clock = Stopwatch(seconds)

    def run(self) -> None:
        """Search until the study is done (:func:`wants_more`), then return. Stopped on the way
        (an interrupt, an error), it fails the trials it opened and asks their z again."""
        with heartbeats(self.study) as beat:
            try:
                self._loop(beat)
            except BaseException:
                with suppress(Exception):  # (a database gone away: the trials go stale, others retry them)
                    abandon(self.study, self.owner)
                raise

    def _loop(self, hold: Callable[[list[optuna.Trial]], None]) -> None:
        batch: Batch | None = None
        while True:
            known = known_evaluations(self.study)
            n = self._batch_size(known, batch)
            if n == 0 and batch is None:
                if not self._wanted(known):
                    return
                optuna.storages.fail_stale_trials(self.study)  # other workers hold the rest: wait
                time.sleep(self.rules.poll)
                continue
            asked = self._ask(n, known, batch, hold) if n else None
            settled, batch = batch, None
            known = self._settle(settled) if settled is not None else known_evaluations(self.study)
            if asked is not None:  # the next batch's scoring starts before the settled one is reported
                batch = self._start_scoring(*asked, known)
            if settled is not None:
                self._report(settled, known)

    def _wanted(self, known: dict[str, Evaluation]) -> bool:
        return study_wants_more(self.study, self.rules.n_instructions, self.rules.n_trials, len(known))

    def _batch_size(self, known: dict[str, Evaluation], batch: Batch | None) -> int:
        """How many trials to ask now (0: none)."""
        if not self._wanted(known):
            return 0
        running = n_running(self.study)
        remaining = min(self.rules.n_instructions - len(known), self.rules.n_trials - n_complete(self.study))
        return next_batch(self.rules.batch_size, remaining - running, running, len(batch.trials) if batch else 0,
                          self.rules.workers)

    def _ask(self, n: int, known: dict[str, Evaluation], batch: Batch | None,
             hold: Callable[[list[optuna.Trial]], None]) -> tuple[list[optuna.Trial], list[str]] | None:
        """Ask ``n`` trials (the pool's picks first) and write their instructions; returns the
        trials that wrote one, or None."""
        with self.clock("bo"):
            trials = reserve(self.study, n, self.rules.n_trials, self.rules.n_instructions, owner=self.owner)
        hold([*(batch.trials if batch else []), *trials])  # alive (a shared study's heartbeat)
        pooled: dict[tuple[float, ...], str] = {}
        free = [t for t in trials if RETRY_OF not in t.user_attrs]  # (a retry keeps its dead trial's z)
        if self.rules.labels and free:
            with self.clock("generator"):
                pooled = self._draw_pool(draw_number(self.study, free[0].number), len(free),
                                         [*known, *(batch.instructions if batch else [])])
        with self.clock("bo"):
            trials, z = suggest(self.study, trials, self.rules.dim, [list(point) for point in pooled])
        if not trials:
            return None
        with self.clock("generator"):
            instructions = self._write(trials, z, pooled)
        kept = close_unwritten(self.study, trials, instructions)
        if unwritten := len(trials) - len(kept[0]):
            self.logger.info("%d of %d trials' z wrote no instruction: told 0, no call", unwritten, len(trials))
        return kept if kept[0] else None

    def _draw_pool(self, draw: int, n: int, exclude: list[str]) -> dict[tuple[float, ...], str]:
        """Up to ``n`` of ``pool`` random z whose new instruction names an answer, by their z; drawn
        from the seed of the first trial it serves (``draw``: workers never draw the same pool)."""
        points = random_points(derive_seed(self.rules.seed, draw), self.rules.pool, self.rules.dim)
        picks = named_picks(points, self.operations.write_pool(points), self.rules.labels, exclude, n)
        return {tuple(z): v for z, v in picks}

    def _write(self, trials: list[optuna.Trial], z: list[list[float]], pooled: dict[tuple[float, ...], str],
               ) -> list[str]:
        """The trials' instructions: a pooled z's as the pool wrote it, the others written now."""
        fresh = [i for i, point in enumerate(z) if tuple(point) not in pooled]
        written = iter(self.operations.write([trials[i] for i in fresh], [z[i] for i in fresh]) if fresh else [])
        return [pooled[tuple(point)] if tuple(point) in pooled else next(written) for point in z]

    def _spent_by_everyone(self) -> CallStats:
        """This worker's black-box usage (as it stands) and every other one's (as recorded)."""
        return spent_by_all(self.study, but=self.worker)[0] + self.usage

    def _start_scoring(self, trials: list[optuna.Trial], instructions: list[str],
                       known: dict[str, Evaluation]) -> Batch:
        """Start scoring the batch's new instructions, as many as the budget allows."""
        new = new_instructions(instructions, known)
        used = self._spent_by_everyone()
        fits = self.budget.affordable(used, self.rules.n_validation, len(new))
        if fits < len(new):  # score what fits, then stop
            stop_for_budget(self.study)
            self.logger.warning("budget reached after %d black-box calls: scoring %d of %d new instructions, then "
                                "stopping with the best so far", used.calls, fits, len(new))
        scoring = self.operations.score(new[:fits]) if fits else None
        return Batch(trials, instructions, new, fits, scoring)

    def _settle(self, batch: Batch) -> dict[str, Evaluation]:
        """Tell the batch's trials their scores (failed calls: failed and asked again once);
        returns every scored instruction's evaluation."""
        with self.clock("blackbox"):  # the wait for the black box that writing did not hide
            scored = batch.scoring.result() if batch.scoring is not None else Scored([], CallStats())
        self.usage = self.usage + scored.stats
        known = known_evaluations(self.study)
        known.update((e.instruction, e) for e in scored.evaluations if e is not None)
        record_spending(self.study, self.worker, self.usage, self.clock.seconds)
        settle(self.study, batch.trials, batch.instructions, known, unpaid=batch.new[batch.fits:])
        if failed := scored.evaluations.count(None):
            self.logger.warning("%d instructions had black-box calls that failed after every retry (%s): their "
                                "trials are failed and asked again once", failed, scored.last_error)
        return known

    def _report(self, batch: Batch, known: dict[str, Evaluation]) -> None:
        numbers = {t.number for t in batch.trials}
        ranked = best_evaluations(self.study, 1)
        self.operations.report(Progress(
            [r for r in trial_records(self.study) if r["number"] in numbers], len(known), n_complete(self.study),
            ranked[0] if ranked else None, batch.fits, self._spent_by_everyone().calls,
        ))
