"""components/search.py: the search's rules on a real (in-memory) study, with a fake generator and black box."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future

import optuna
import pytest

from components.blackbox import CallStats, Evaluation, Scored
from components.budget import Budget
from components.search import Progress, Rules, Search, new_instructions, wants_more
from components.study import RETRY_OF, known_evaluations, open_study, spent, stopped_by_budget

N_VAL = 5
LOG = logging.getLogger("test-search")


def by_z(trial: optuna.Trial | None, z: list[float]) -> str:
    """A distinct instruction per z (a retry's z writes its trial's instruction again)."""
    return f"Do {z[0]:.6f}."


class FakeOperations:
    """Writes instructions with ``writer``, scores each ``score(instruction)`` at once (``None``:
    its calls failed), and records what it was asked."""

    def __init__(self, writer: Callable[[optuna.Trial | None, list[float]], str] = by_z,
                 score: Callable[[str], float | None] = lambda v: len(v) % 7 / 7) -> None:
        self.writer, self.value = writer, score
        self.scored: list[list[str]] = []  # each call's instructions
        self.pools: list[list[list[float]]] = []
        self.reports: list[Progress] = []

    def write(self, trials: list[optuna.Trial], z: list[list[float]]) -> list[str]:
        return [self.writer(t, point) for t, point in zip(trials, z, strict=True)]

    def write_pool(self, z: list[list[float]]) -> list[str]:
        self.pools.append(z)
        return [self.writer(None, point) for point in z]

    def score(self, instructions: list[str]) -> Future[Scored]:
        self.scored.append(instructions)
        evaluations = []
        for v in instructions:
            value = self.value(v)
            evaluations.append(None if value is None else Evaluation(v, ("out",) * N_VAL, (value,) * N_VAL))
        done: Future[Scored] = Future()
        done.set_result(Scored(evaluations, CallStats(calls=N_VAL * len(instructions))))
        return done

    def report(self, progress: Progress) -> None:
        self.reports.append(progress)

    @property
    def paid(self) -> list[str]:
        return [v for batch in self.scored for v in batch]


def search(operations: FakeOperations, budget: Budget | None = None, **rules: object) -> optuna.Study:
    study = open_study("sqlite:///:memory:", "s", "random", 2, seed=0)
    settings = {"n_instructions": 6, "n_trials": 30, "batch_size": 2, "dim": 3, "n_validation": N_VAL, **rules}
    Search(study, "main", Rules(**settings), budget or Budget(), operations, LOG).run()  # type: ignore[arg-type]
    return study


def states(study: optuna.Study) -> list[optuna.trial.TrialState]:
    return [t.state for t in study.trials]


def test_the_search_stops_once_the_study_holds_n_instructions_and_pays_each_once():
    operations = FakeOperations()
    study = search(operations)
    assert len(known_evaluations(study)) == 6 and len(operations.paid) == len(set(operations.paid)) == 6
    assert spent(study, "main")[0].calls == 6 * N_VAL
    assert [p.n_instructions for p in operations.reports] == [2, 4, 6]
    assert operations.reports[-1].best == max(known_evaluations(study).values(), key=lambda e: e.mean)


def test_a_repeated_instruction_is_told_its_score_without_a_call_until_the_trial_cap():
    operations = FakeOperations(writer=lambda trial, z: "Always this.")
    study = search(operations, n_trials=7)
    assert operations.paid == ["Always this."]
    assert len(study.trials) == 7 and set(states(study)) == {optuna.trial.TrialState.COMPLETE}
    assert {t.value for t in study.trials} == {known_evaluations(study)["Always this."].mean}


def test_a_z_that_writes_no_instruction_is_told_0_without_a_call():
    def writer(trial: optuna.Trial | None, z: list[float]) -> str:  # odd trials write nothing
        return "" if trial is not None and trial.number % 2 else by_z(trial, z)

    operations = FakeOperations(writer=writer)
    study = search(operations, n_instructions=3)
    empty = [t for t in study.trials if "instruction" not in t.user_attrs]
    assert empty and all(t.number % 2 and t.value == 0.0 for t in empty)
    assert "" not in operations.paid and len(operations.paid) == 3


def test_a_batch_shrinks_to_the_budget_and_the_search_stops_there():
    operations = FakeOperations()
    study = search(operations, Budget(max_calls=3 * N_VAL), batch_size=2)
    assert [len(batch) for batch in operations.scored] == [2, 1]  # 2 + 1 fit in 15 calls; the rest unpaid
    assert stopped_by_budget(study) and spent(study, "main")[0].calls == 3 * N_VAL
    assert states(study).count(optuna.trial.TrialState.FAIL) >= 1  # the batch's trial left unpaid


def test_the_pools_new_instructions_naming_an_answer_take_the_batchs_first_trials():
    def writer(trial: optuna.Trial | None, z: list[float]) -> str:  # a third of the pool names an answer
        return f"Say yes {z[0]:.6f}." if trial is None and z[1] > 0.33 else by_z(trial, z)

    operations = FakeOperations(writer=writer)
    study = search(operations, pool=6, labels=("yes", "no"), batch_size=2, n_instructions=4)
    assert len(operations.pools) >= 1 and all(len(z) == 6 for z in operations.pools)
    first = study.trials[0]
    assert first.user_attrs["instruction"].startswith("Say yes")
    assert [first.params[f"z{i:02d}"] for i in range(3)] in operations.pools[0]  # the pool's z, as written


def test_without_labels_no_pool_is_drawn():
    operations = FakeOperations()
    search(operations, pool=6, labels=())
    assert operations.pools == []


def test_with_several_workers_a_workers_first_batch_is_one_trial():
    operations = FakeOperations()
    search(operations, workers=2, batch_size=4, n_instructions=5)
    assert len(operations.scored[0]) == 1 and max(map(len, operations.scored)) <= 4


def test_an_instruction_whose_calls_failed_is_asked_again_once_with_the_same_z():
    failed: set[str] = set()

    def flaky(v: str) -> float | None:  # the first instruction's calls fail the first time only
        if not failed:
            failed.add(v)
            return None
        return 0.5

    operations = FakeOperations(score=flaky)
    study = search(operations, n_instructions=3, batch_size=1)
    [lost] = failed
    retries = [t for t in study.trials if RETRY_OF in t.user_attrs]
    assert len(retries) == 1 and retries[0].user_attrs["instruction"] == lost
    assert retries[0].params == study.trials[retries[0].user_attrs[RETRY_OF]].params
    assert operations.paid.count(lost) == 2 and lost in known_evaluations(study)


def test_an_instruction_failing_every_time_is_asked_again_only_once():
    operations = FakeOperations(score=lambda v: None if v == by_z(None, [0.0]) or v.startswith("Do -") else 0.5)
    study = search(operations, n_instructions=4, batch_size=2)
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    per_origin = Counter(t.user_attrs.get(RETRY_OF, t.number) for t in failed)
    assert per_origin and set(per_origin.values()) == {2}  # the trial and its one retry
    assert len(known_evaluations(study)) == 4


@pytest.mark.parametrize(("known", "done", "stopped", "more"), [
    (5, 10, False, True), (6, 10, False, False), (5, 30, False, False), (5, 10, True, False)])
def test_the_stop_conditions(known, done, stopped, more):
    assert wants_more(known, done, stopped, n_instructions=6, n_trials=30) is more


def test_only_new_distinct_instructions_cost_calls():
    assert new_instructions(["a", "b", "a", "c", "b"], {"c"}) == ["a", "b"]


def test_the_pool_serves_samplers_over_z_only_with_the_exemplars_answers_as_labels():
    from components.data import Example
    from components.params import BOParams
    from components.search import search_rules

    exemplars = [Example(f"x{i}", (a,)) for i, a in enumerate(["yes", "no", "yes"])]
    assert search_rules(BOParams(), 10, 20, exemplars).labels == ("yes", "no")
    assert search_rules(BOParams(sampler="ape"), 10, 20, exemplars).labels == ()
    assert search_rules(BOParams(pool=0), 10, 20, exemplars).labels == ()


def test_two_workers_starting_together_draw_different_pools_and_pay_each_instruction_once(tmp_path):
    import threading

    def writer(trial: optuna.Trial | None, z: list[float]) -> str:  # every pool point names an answer
        return f"Say yes {z[0]:.6f}." if trial is None else by_z(trial, z)

    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    studies = [open_study(storage, "s", "random", 2, seed=0) for _ in range(2)]  # both open before either asks
    workers = [FakeOperations(writer=writer) for _ in studies]
    rules = Rules(n_instructions=6, n_trials=30, batch_size=2, dim=3, n_validation=N_VAL, workers=2, pool=4,
                  labels=("yes",), poll=0.05)
    threads = [threading.Thread(target=Search(study, f"w{i}", rules, Budget(), operations, LOG).run)
               for i, (study, operations) in enumerate(zip(studies, workers, strict=True))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    first, second = (operations.pools[0] for operations in workers)
    assert not {tuple(z) for z in first} & {tuple(z) for z in second}
    paid = workers[0].paid + workers[1].paid
    assert len(paid) == len(set(paid)) == len(known_evaluations(studies[0])) == 6


def test_a_stopped_search_fails_the_trials_in_hand_and_asks_their_z_again():
    class Stopped(FakeOperations):
        def score(self, instructions: list[str]) -> Future[Scored]:
            if self.scored:  # Ctrl-C while the second batch is scored
                raise KeyboardInterrupt
            return super().score(instructions)

    study = open_study("sqlite:///:memory:", "s", "random", 2, seed=0)
    rules = Rules(n_instructions=6, n_trials=30, batch_size=2, dim=3, n_validation=N_VAL)
    with pytest.raises(KeyboardInterrupt):
        Search(study, "main", rules, Budget(), Stopped(), LOG).run()
    by_state = Counter(t.state for t in study.trials)
    assert by_state[optuna.trial.TrialState.RUNNING] == 0 and by_state[optuna.trial.TrialState.FAIL] == 2
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    failed = {t.number: t.params for t in study.trials if t.state == optuna.trial.TrialState.FAIL}
    assert sorted(t.user_attrs[RETRY_OF] for t in waiting) == sorted(failed)


def test_a_search_stopped_and_resumed_scores_what_an_uninterrupted_one_scores(tmp_path):
    def run(operations: FakeOperations, storage: str) -> optuna.Study:
        study = open_study(storage, "s", "instructzero", 2, seed=3)  # (reopening fails what a stop left running)
        rules = Rules(n_instructions=6, n_trials=30, batch_size=2, dim=3, n_validation=N_VAL)
        Search(study, "main", rules, Budget(), operations, LOG).run()
        return study

    class StoppedOnce(FakeOperations):
        def score(self, instructions: list[str]) -> Future[Scored]:
            if len(self.scored) == 2:  # Ctrl-C while the third batch is being written
                self.scored.append([])
                raise KeyboardInterrupt
            return super().score(instructions)

    def scored(study: optuna.Study) -> list[tuple[str, float]]:
        complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        return [(t.user_attrs["instruction"], t.value) for t in complete]

    uninterrupted = scored(run(FakeOperations(), f"sqlite:///{tmp_path / 'a.db'}"))
    with pytest.raises(KeyboardInterrupt):
        run(StoppedOnce(), f"sqlite:///{tmp_path / 'b.db'}")
    resumed = run(FakeOperations(), f"sqlite:///{tmp_path / 'b.db'}")
    assert scored(resumed) == uninterrupted and len(known_evaluations(resumed)) == 6
    assert resumed.get_trials(states=(optuna.trial.TrialState.FAIL,))  # (the stop did happen)


def test_a_stop_the_moment_a_trial_is_opened_leaves_no_trial_running():
    """Ctrl-C landing just after the storage wrote the second trial's row, before ``ask`` returns."""
    study = open_study("sqlite:///:memory:", "s", "random", 2, seed=0)
    create, created = study._storage.create_new_trial, []

    def create_then_stop(*args: object, **kwargs: object) -> int:
        created.append(create(*args, **kwargs))
        if len(created) == 2:
            raise KeyboardInterrupt
        return created[-1]

    study._storage.create_new_trial = create_then_stop  # type: ignore[method-assign]
    rules = Rules(n_instructions=6, n_trials=30, batch_size=2, dim=3, n_validation=N_VAL)
    with pytest.raises(KeyboardInterrupt):
        Search(study, "main", rules, Budget(), FakeOperations(), LOG).run()
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL] * 2
