"""components/study.py: seeds that follow the trial, not the process; a retry asks the same z."""

from __future__ import annotations

import optuna
import pytest

from components.blackbox import CallStats, Evaluation
from components.study import (
    RETRY_OF,
    abandon,
    close_unwritten,
    fail_and_retry,
    known_evaluations,
    n_running,
    open_study,
    record_spending,
    reserve,
    spent,
    spent_by_all,
    suggest,
    tell,
    trial_records,
    trial_seed,
)


def ask(study: optuna.Study, n: int, dim: int) -> tuple[list[optuna.Trial], list[list[float]]]:
    return suggest(study, reserve(study, n, cap=100, owner="w"), dim)


def test_a_retried_trial_gets_the_same_z_and_seed_as_the_one_it_retries():
    study = open_study("sqlite:///:memory:", "s", "random", 2, seed=7)
    (first, second), z = ask(study, 2, 3)
    assert trial_seed(first, 7) != trial_seed(second, 7)
    fail_and_retry(study, second)
    study.tell(first, 0.5)
    [retry], retried_z = ask(study, 1, 3)
    assert retried_z == [z[1]] and trial_seed(retry, 7) == trial_seed(second, 7)
    assert retry.number != second.number
    assert [t.state for t in study.trials[:2]] == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL]


def test_a_trial_whose_z_wrote_no_instruction_is_told_0_and_is_no_candidate():
    study = open_study("sqlite:///:memory:", "s", "random", 2, seed=0)
    trials, _ = ask(study, 3, 2)
    kept, instructions = close_unwritten(study, trials, ["Say yes.", "", "Say no."])
    assert [t.number for t in kept] == [trials[0].number, trials[2].number] and instructions == ["Say yes.", "Say no."]
    assert study.trials[1].state == optuna.trial.TrialState.COMPLETE and study.trials[1].value == 0.0
    assert n_running(study) == 2 and known_evaluations(study) == {}
    tell(study, kept[0], Evaluation("Say yes.", ("yes",), (1.0,)))
    assert list(known_evaluations(study)) == ["Say yes."]
    assert [(r["instruction"], r["val_score"]) for r in trial_records(study)] == [("Say yes.", 1.0), ("", 0.0)]


def test_a_shared_study_fails_only_trials_whose_worker_stopped_beating(tmp_path):
    import time

    from components.study import heartbeats

    storage = f"sqlite:///{tmp_path / 'shared.db'}"

    def worker() -> optuna.Study:
        return open_study(storage, "s", "random", 2, seed=0, shared=True, heartbeat=1, grace=2)

    alive, dead = worker(), worker()
    with heartbeats(alive) as hold:
        [kept], _ = ask(alive, 1, 3)
        hold([kept])
        with heartbeats(dead) as dead_hold:
            [lost], lost_z = ask(dead, 1, 3)
            dead_hold([lost])
        time.sleep(3.5)  # `dead` stopped beating 3.5 s ago, `alive` beats every second
        newcomer = worker()  # opening a shared study fails the stale trial only, and asks its z again
        states = {t.number: t.state for t in newcomer.trials}
        assert states[kept.number] == optuna.trial.TrialState.RUNNING
        assert states[lost.number] == optuna.trial.TrialState.FAIL
        [retry], retry_z = ask(newcomer, 1, 3)
        assert retry_z == lost_z and retry.user_attrs[RETRY_OF] == lost.number
        alive.tell(kept, 1.0)


def test_workers_asking_at_once_never_pass_the_trial_cap():
    study = open_study("sqlite:///:memory:", "s", "random", 2, seed=0)
    first = reserve(study, 3, cap=4, owner="w")  # two workers each asked 3 when 4 were left
    second = reserve(study, 3, cap=4, owner="w")
    assert len(first) == 3 and len(second) == 1
    assert n_running(study) == 4 and len(study.get_trials(states=(optuna.trial.TrialState.FAIL,))) == 2


def test_a_stop_while_trials_are_asked_fails_each_one_the_search_opened_and_asks_a_retrys_z_again():
    study = open_study("sqlite:///:memory:", "s", "random", 2, seed=0)
    [rival] = reserve(study, 1, cap=100, owner="rival")  # another worker's trial: alive
    [dead] = reserve(study, 1, cap=100, owner="dead")
    z = dead.suggest_float("z00", -1.0, 1.0)
    abandon(study, "dead")  # its worker stopped: its z is enqueued (trial 2)

    class StoppedWhileOpening(optuna.samplers.RandomSampler):
        def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            if trial.number == 3:  # Ctrl-C comes while the trial after the retry opens (its row written)
                raise KeyboardInterrupt

    study.sampler = StoppedWhileOpening()
    with pytest.raises(KeyboardInterrupt):
        reserve(study, 3, cap=100, owner="stopped")
    abandon(study, "stopped")  # (what the stopped search does)
    running, failed, waiting = (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.FAIL,
                                optuna.trial.TrialState.WAITING)
    assert [t.state for t in study.trials] == [running, failed, failed, failed, waiting]
    assert study.trials[4].system_attrs["fixed_params"] == {"z00": z}
    assert study.trials[4].user_attrs[RETRY_OF] == 1 and rival.number == 0


def test_workers_asking_at_once_never_run_more_trials_than_instructions_are_missing():
    study = open_study("sqlite:///:memory:", "s", "random", 2, seed=0)
    done, _ = ask(study, 2, 2)
    for k, trial in enumerate(done):
        tell(study, trial, Evaluation(f"v{k}", ("a",), (0.5,)))
    assert len(reserve(study, 3, cap=100, goal=4, owner="w")) == 2  # 2 of the 4 instructions are scored
    assert reserve(study, 3, cap=100, goal=4, owner="w") == [] and n_running(study) == 2


def test_given_points_fix_the_first_trials_z_but_never_a_retrys():
    study = open_study("sqlite:///:memory:", "s", "random", 2, seed=0)
    (lost,), (lost_z,) = ask(study, 1, 2)
    fail_and_retry(study, lost)
    trials, z = suggest(study, reserve(study, 3, cap=100, owner="w"), 2, [[0.5, -0.5], [0.25, 0.25]])
    assert trials[0].user_attrs[RETRY_OF] == lost.number and z[0] == lost_z
    assert z[1:] == [[0.5, -0.5], [0.25, 0.25]]
    assert [study.trials[t.number].params for t in trials[1:]] == [
        {"z00": 0.5, "z01": -0.5}, {"z00": 0.25, "z01": 0.25}]


def test_each_worker_keeps_its_own_spending_and_the_study_sums_them():
    study = open_study("sqlite:///:memory:", "s", "random", 2, seed=0)
    record_spending(study, "a", CallStats(calls=10, prompt_tokens=100), {"generator": 1.5})
    record_spending(study, "b", CallStats(calls=5, cache_hits=2), {"generator": 0.5, "bo": 2.0})
    record_spending(study, "a", CallStats(calls=12, prompt_tokens=130), {"generator": 2.0})  # a's new total
    assert spent(study, "a")[0].calls == 12 and spent(study, "nobody")[0] == CallStats()
    usage, seconds = spent_by_all(study)
    assert (usage.calls, usage.prompt_tokens, usage.cache_hits) == (17, 130, 2)
    assert seconds == {"generator": 2.5, "bo": 2.0}
    assert spent_by_all(study, but="a")[0].calls == 5


def test_told_evaluations_are_known_by_instruction_and_the_gp_waits_for_two_scores():
    def study_of(scores: list[float]) -> optuna.Study:
        study = open_study("sqlite:///:memory:", "s", "instructzero", 2, seed=0)
        trials, _ = ask(study, len(scores), 2)
        for k, (trial, value) in enumerate(zip(trials, scores, strict=True)):
            tell(study, trial, Evaluation(f"v{k}", ("a", "b"), (value, value)))
        return study

    study = study_of([0.0, 0.5, 0.0])
    assert known_evaluations(study)["v1"] == Evaluation("v1", ("a", "b"), (0.5, 0.5))
    space = {f"z{i:02d}": optuna.distributions.FloatDistribution(-1.0, 1.0) for i in range(2)}
    assert set(study.sampler.sample_relative(study, study.ask(), space)) == set(space)  # the GP serves
    flat = study_of([0.0, 0.0, 0.0])
    assert flat.sampler.sample_relative(flat, flat.ask(), space) == {}  # equal scores: Sobol serves


def test_retries_the_finished_study_no_longer_needs_are_failed_not_left_waiting():
    from components.study import fail_waiting

    study = open_study("sqlite:///:memory:", "s", "random", 2, seed=0)
    (lost, kept), _ = ask(study, 2, 2)
    fail_and_retry(study, lost)
    study.tell(kept, 1.0)
    fail_waiting(study)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE,
                                               optuna.trial.TrialState.FAIL]


def test_a_trial_draws_as_if_no_retry_or_trial_failed_before_its_z_had_come_before_it():
    from components.seeds import draw_number

    study = open_study("sqlite:///:memory:", "s", "random", 2, seed=0)
    (lost, kept), _ = ask(study, 2, 2)
    fail_and_retry(study, lost)  # its retry (number 2) draws nothing
    study.tell(kept, 1.0)
    [unasked] = reserve(study, 1, cap=100, owner="w")  # the retry
    [empty] = reserve(study, 1, cap=100, owner="w")
    study.tell(empty, state=optuna.trial.TrialState.FAIL)  # failed before it had a z
    [fresh] = reserve(study, 1, cap=100, owner="w")
    assert (unasked.user_attrs[RETRY_OF], draw_number(study, fresh.number)) == (lost.number, 2)


def test_calls_answered_but_never_reported_are_booked_once_as_unreported():
    from components.study import UNREPORTED, book_unreported

    study = open_study("sqlite:///:memory:", "s", "random", 2, seed=0)
    record_spending(study, "main", CallStats(calls=10, prompt_tokens=100), {})
    book_unreported(study, CallStats(calls=14, prompt_tokens=150))  # a killed worker's last batch: 4 calls
    book_unreported(study, CallStats(calls=14, prompt_tokens=150))  # (again: the same figure, not twice)
    assert spent(study, UNREPORTED)[0] == CallStats(calls=4, prompt_tokens=50)
    assert spent_by_all(study)[0].calls == 14
