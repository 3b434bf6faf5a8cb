"""Tasks generated deterministically by the project, so the default runs with no data.

Words come from the ``english-words`` package (its GCIDE list), word sentiment from the AFINN
lexicon in the ``afinn`` package (words rated -5..+5; |rating| >= 2, drawn half positive, half
negative); numbers and walks from a seeded RNG (``back_to_start`` is written after BIG-bench's
``navigate``: does a walk end where it began? "True" or "False", half each). The same name always
gives the same examples.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import cache
from importlib.resources import files

from english_words import get_english_words_set

from components.data import Example, TaskData

_POOL_SIZE = 600


@cache
def _words() -> tuple[str, ...]:
    words = get_english_words_set(["gcide"], lower=True, alpha=True)
    return tuple(sorted(w for w in words if 3 <= len(w) <= 8))


@cache
def _rated_words() -> dict[str, tuple[str, ...]]:
    """AFINN's single words by sign: {"positive": (...), "negative": (...)}."""
    text = files("afinn").joinpath("data", "AFINN-en-165.txt").read_text(encoding="utf-8")
    rated = [(word, int(value)) for word, value in (line.split("\t") for line in text.splitlines() if line)]
    return {label: tuple(sorted(w for w, v in rated if w.isalpha() and sign * v >= 2))
            for label, sign in (("positive", 1), ("negative", -1))}


def _word_sentiment(rng: random.Random) -> Example:
    label = rng.choice(("positive", "negative"))
    return Example(rng.choice(_rated_words()[label]), (label,))


def _parity(rng: random.Random) -> Example:
    n = rng.randint(10, 9999)
    return Example(str(n), ("even" if n % 2 == 0 else "odd",))


def _first_letter(rng: random.Random) -> Example:
    word = rng.choice(_words())
    return Example(word, (word[0],))


def _larger_number(rng: random.Random) -> Example:
    a, b = rng.sample(range(1, 1000), 2)
    return Example(f"{a}, {b}", (str(max(a, b)),), (str(a), str(b)))


def _spell_out(rng: random.Random) -> Example:
    word = rng.choice(_words())
    return Example(word, (" ".join(word),))


_STEPS = {"forward": (0, 1), "left": (-1, 0), "backward": (0, -1), "right": (1, 0)}  # quarter turns apart
_TURNS = {"Turn left.": 1, "Turn around.": 2, "Turn right.": 3}  # quarter turns to the left


def _take(n: int, way: str = "") -> str:
    return f"Take {n} step{'s' if n > 1 else ''}{' ' + way if way else ''}."


def _forward_walk(rng: random.Random, back: bool) -> str:
    """Facing forward, 2-6 moves of 1-10 steps; a walk back to the start is random moves and the
    moves that undo them, in random order."""
    while True:
        size = rng.randint(1, 4) if back else rng.randint(2, 6)
        moves = [(rng.randint(1, 10), rng.choice(tuple(_STEPS))) for _ in range(size)]
        x, y = (sum(n * _STEPS[way][i] for n, way in moves) for i in (0, 1))
        if back:
            moves += [(abs(x), "left" if x > 0 else "right")] * (x != 0)
            moves += [(abs(y), "backward" if y > 0 else "forward")] * (y != 0)
            rng.shuffle(moves)
        if back or (x, y) != (0, 0):
            return " ".join(["Always face forward.", *(_take(n, way) for n, way in moves)])


def _turning_walk(rng: random.Random, back: bool) -> str:
    """3-7 moves, steps ahead (at least two) and turns, drawn until the walk ends at the start
    or not, as asked."""
    while True:
        x = y = heading = 0
        moves: list[str] = []
        for _ in range(rng.randint(3, 7)):
            if rng.random() < 0.4:
                turn = rng.choice(tuple(_TURNS))
                heading, moves = (heading + _TURNS[turn]) % 4, [*moves, turn]
            else:
                n, (dx, dy) = rng.randint(1, 10), list(_STEPS.values())[heading]
                x, y, moves = x + n * dx, y + n * dy, [*moves, _take(n)]
        if sum(m.startswith("Take") for m in moves) >= 2 and ((x, y) == (0, 0)) == back:
            return " ".join(moves)


def _back_to_start(rng: random.Random) -> Example:
    back = rng.random() < 0.5
    walk = (_forward_walk if rng.random() < 0.5 else _turning_walk)(rng, back)
    return Example(walk, (str(back),))


_MAKERS: dict[str, Callable[[random.Random], Example]] = {
    "parity": _parity,
    "first_letter": _first_letter,
    "larger_number": _larger_number,
    "spell_out": _spell_out,
    "word_sentiment": _word_sentiment,
    "back_to_start": _back_to_start,
}

BUILTIN_TASKS: tuple[str, ...] = tuple(_MAKERS)

# One hand-written instruction per built-in task (written once, never tuned on test data): what a
# found instruction is compared with on the test set, beside no instruction.
REFERENCES: dict[str, str] = {
    "first_letter": "Write the first letter of the word.",
    "parity": "Answer even if the number is even and odd if it is odd.",
    "larger_number": "Write the larger of the two numbers.",
    "spell_out": "Write the letters of the word separated by spaces.",
    "word_sentiment": "Is the sentiment of the word positive or negative?",
    "back_to_start": "Do these moves end where they began? Answer True or False.",
}


def builtin_task(name: str) -> TaskData:
    """The examples of built-in task ``name`` (no separate test set: the split draws it)."""
    if name not in _MAKERS:
        raise ValueError(f"unknown built-in task {name!r}; choose one of {list(BUILTIN_TASKS)}")
    rng = random.Random(f"instructzero-builtin-{name}")
    examples: dict[str, Example] = {}
    while len(examples) < _POOL_SIZE:
        example = _MAKERS[name](rng)
        examples.setdefault(example.input, example)
    return TaskData(name=name, pool=tuple(examples.values()))
