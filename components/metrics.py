"""Per-task metrics of the Instruction Induction benchmark (APE's convention).

Every metric takes a prediction and the accepted answers and returns a score in [0, 1]:
the best score over the accepted answers.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize(text: str) -> str:
    """Lowercase, drop punctuation and articles, collapse white space."""
    text = text.lower().translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, answer: str) -> float:
    return float(normalize(prediction) == normalize(answer))


def f1(prediction: str, answer: str) -> float:
    """Token-overlap F1 between the normalized texts."""
    pred, gold = normalize(prediction).split(), normalize(answer).split()
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return float(pred == gold)
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def exact_set(prediction: str, answer: str) -> float:
    """1 when both texts hold the same set of normalized tokens."""
    return float(set(normalize(prediction).split()) == set(normalize(answer).split()))


def contains(prediction: str, answer: str) -> float:
    """1 when the normalized answer appears, as whole words, in the normalized prediction."""
    gold = normalize(answer)
    return float(bool(gold) and re.search(rf"\b{re.escape(gold)}\b", normalize(prediction)) is not None)


METRICS: dict[str, Callable[[str, str], float]] = {
    "exact_match": exact_match,
    "f1": f1,
    "exact_set": exact_set,
    "contains": contains,
}

# The paper's per-task choice; every other task uses exact match.
TASK_METRICS: dict[str, str] = {
    "common_concept": "f1",
    "informal_to_formal": "f1",
    "orthography_starts_with": "exact_set",
    "taxonomy_animal": "exact_set",
    "synonyms": "contains",
}


def metric_for_task(task: str) -> str:
    return TASK_METRICS.get(task, "exact_match")


def score(prediction: str, answers: Sequence[str], metric: str) -> float:
    """Best score of ``prediction`` over the accepted ``answers`` under ``metric``."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {sorted(METRICS)}")
    fn = METRICS[metric]
    return max((fn(prediction, a) for a in answers), default=0.0)
