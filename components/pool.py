"""Which generated instructions to pay for: a pool of candidates, those naming an answer first.

Most instructions the small generator writes score 0 on the black box; the ones that score are,
far more often, those that name one of the task's answers (benchmarks/results/pool_replay.md:
of the random-z instructions naming "positive"/"negative", "yes"/"no" or "True"/"False", 3 of
22, 6 of 8 and 4 of 6 scored above 0; of the rest, 0 of 74, 1 of 88 and 2 of 88; on two tasks
checked afterwards, pool_replay_heldout.md, 3 of 3 vs 21 of 92 and 4 of 53 vs 1 of 41). The answers
an instruction can name are read from the exemplars the generator is shown, when they form a
label set; tasks with open-ended answers have none, and every candidate ranks alike.

Screening (``bo.screen``) ranks them by measurement instead: each new candidate is scored on a few
validation examples and only the best is scored on all (benchmarks/results/pool_replay_screen.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from components.blackbox import Evaluation
from components.data import Example
from components.metrics import contains, normalize

MAX_LABEL_WORDS = 3


def answer_labels(exemplars: Sequence[Example]) -> tuple[str, ...]:
    """The exemplars' answers if they form a label set (each at most ``MAX_LABEL_WORDS`` words
    and more than one character, at most two distinct per three exemplars), else none. (A single
    letter such as "a" would be found in any instruction; one repeat among open-ended answers,
    such as the numbers of Instruction Induction's diff, is chance, not a label set.)"""
    answers = [e.outputs[0].strip() for e in exemplars]
    short = all(0 < len(a.split()) <= MAX_LABEL_WORDS and len(normalize(a).strip()) > 1 for a in answers)
    repeated = 3 * len({normalize(a) for a in answers}) <= 2 * len(answers)
    return tuple(dict.fromkeys(answers)) if answers and short and repeated else ()


def names_an_answer(instruction: str, labels: Iterable[str]) -> bool:
    """Whether ``instruction`` holds one of ``labels`` as whole words (the ``contains`` metric)."""
    return any(contains(instruction, label) for label in labels)


def rank_candidates(candidates: Sequence[str], labels: Sequence[str], exclude: Iterable[str] = ()) -> list[str]:
    """The distinct, non-empty ``candidates`` not in ``exclude``: those naming one of ``labels``
    first, each group in the pool's order."""
    seen = set(exclude)
    fresh = [v for v in dict.fromkeys(candidates) if v and v not in seen]
    return sorted(fresh, key=lambda v: not names_an_answer(v, labels))


def pool_quota(batch: int, share: float) -> int:
    """How many of a batch of ``batch`` trials the pool's picks may take: ``share`` of it, rounded
    up (after rounding away float error: 0.3 x 10 is 3.0000000000000004, which is 3)."""
    return math.ceil(round(share * batch, 9))


def named_picks(
    points: Sequence[Sequence[float]], instructions: Sequence[str], labels: Sequence[str] | None,
    exclude: Iterable[str], n: int,
) -> list[tuple[list[float], str]]:
    """Up to ``n`` (z, instruction) of a pool whose instruction names one of ``labels`` (``None``:
    any) and is new (not empty, not in ``exclude``, the first z writing it), in the pool's order."""
    seen, picks = set(exclude), []
    for z, v in zip(points, instructions, strict=True):
        if v and v not in seen and (labels is None or names_an_answer(v, labels)):
            picks.append((list(z), v))
        seen.add(v)
    return picks[:n]


def finalist(screened: Mapping[str, Evaluation | None]) -> str | None:
    """The screened instruction with the best score (the earliest on ties; one whose calls
    failed is out), or none."""
    scored = [(v, e.mean) for v, e in screened.items() if e is not None]
    return max(scored, key=lambda pair: pair[1])[0] if scored else None
