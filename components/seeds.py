"""Seeds derived from stable names, never from how often a process has drawn."""

from __future__ import annotations


def derive_seed(seed: int, number: int) -> int:
    """The seed of draw ``number`` (a trial's number) under the run's ``seed``: distinct for each
    number, the same in a resumed or distributed run as in an uninterrupted one."""
    return seed * 1_000_003 + number
