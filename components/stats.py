"""Uncertainty of a score difference measured on the same examples."""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Gain:
    """The mean per-example difference of two instructions' scores and its interval."""

    mean: float
    low: float
    high: float
    level: float


def paired_bootstrap(a: Sequence[float], b: Sequence[float], resamples: int = 2000, level: float = 0.95,
                     seed: int = 0) -> Gain:
    """The mean of ``a - b`` over paired examples and its percentile bootstrap interval at
    ``level`` (examples resampled with replacement, ``resamples`` times, seeded).

    Raises:
        ValueError: if ``a`` and ``b`` differ in length or are empty.
    """
    if len(a) != len(b) or not a:
        raise ValueError(f"need two equally long, non-empty score lists, got {len(a)} and {len(b)}")
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    draw, n = random.Random(seed), len(diffs)
    means = sorted(sum(diffs[draw.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    tail = (1 - level) / 2
    return Gain(sum(diffs) / n, means[int(tail * resamples)], means[min(resamples - 1, int((1 - tail) * resamples))],
                level)


def mean_sd(values: Sequence[float]) -> str:
    """``values`` as "mean ± standard deviation" (one value as itself, none as "-")."""
    if len(values) < 2:
        return f"{values[0]:.3f}" if values else "-"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"
