"""Which generated instructions to pay for first: those of a pool of random z that name an answer.

Most instructions a small generator writes score 0 on the black box; the ones that score are far
more often those that name one of the task's answers (docs/generator.md). The answers an
instruction can name are read from the exemplars the generator is shown, when they form a label
set; tasks with open-ended answers have none, and the pool is not drawn.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from components.data import Example
from components.metrics import contains, label_set


def answer_labels(exemplars: Sequence[Example]) -> tuple[str, ...]:
    """The exemplars' answers if they form a label set (``label_set``), else none."""
    return label_set([e.outputs[0] for e in exemplars])


def names_an_answer(instruction: str, labels: Iterable[str]) -> bool:
    """Whether ``instruction`` holds one of ``labels`` as whole words (the ``contains`` metric)."""
    return any(contains(instruction, label) for label in labels)


def named_picks(
    points: Sequence[Sequence[float]], instructions: Sequence[str], labels: Sequence[str], exclude: Iterable[str],
    n: int,
) -> list[tuple[list[float], str]]:
    """Up to ``n`` (z, instruction) of a pool whose instruction names one of ``labels`` and is new
    (not empty, not in ``exclude``, the first z writing it), in the pool's order."""
    seen, picks = set(exclude), []
    for z, v in zip(points, instructions, strict=True):
        if v and v not in seen and names_an_answer(v, labels):
            picks.append((list(z), v))
        seen.add(v)
    return picks[:n]


def random_points(seed: int, n: int, dim: int) -> list[list[float]]:
    """``n`` points uniform on [-1, 1]^``dim``, drawn from ``seed``."""
    draw = torch.Generator().manual_seed(seed)
    return (torch.rand(n, dim, generator=draw) * 2 - 1).tolist()
