"""tasks/study.py: seeds that follow the trial, not the process; a retry asks the same z."""

from __future__ import annotations

import optuna

from tasks.study import ask, fail_and_retry, open_study, trial_seed


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


def test_a_shared_study_fails_only_trials_whose_worker_stopped_beating(tmp_path):
    import time

    from tasks.study import RETRY_OF, heartbeats

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
