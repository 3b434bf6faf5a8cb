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
