"""Tasks generated deterministically by the project, so the default runs with no data.

Words come from the ``english-words`` package (its GCIDE list), word sentiment from the AFINN
lexicon in the ``afinn`` package (words rated -5..+5; |rating| >= 2, drawn half positive, half
negative); numbers from a seeded RNG. The same name always gives the same examples.
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


_MAKERS: dict[str, Callable[[random.Random], Example]] = {
    "parity": _parity,
    "first_letter": _first_letter,
    "larger_number": _larger_number,
    "spell_out": _spell_out,
    "word_sentiment": _word_sentiment,
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
