"""Seeds derived from stable names, never from how often a process has drawn."""

from __future__ import annotations

import optuna

RETRY_OF = "retry_of"  # a trial's user attribute: the number of the dead trial whose z it asks again


def derive_seed(seed: int, number: int) -> int:
    """The seed of draw ``number`` (:func:`draw_number`) under the run's ``seed``: distinct for
    each number, the same in a resumed or distributed run as in an uninterrupted one."""
    return seed * 1_000_003 + number


def draw_number(study: optuna.Study, number: int) -> int:
    """The draw trial ``number`` serves: its number less the trials before it that drew nothing
    (retries, which take their dead trial's z, and trials failed before they got one). A run
    stopped or crashed and resumed then draws, trial by trial, what an uninterrupted run draws."""
    drew_nothing = (t for t in study.get_trials(deepcopy=False) if t.number < number and (
        RETRY_OF in t.user_attrs or (t.state == optuna.trial.TrialState.FAIL and not t.params)))
    return number - sum(1 for _ in drew_nothing)
