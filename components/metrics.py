"""Per-task metrics of the Instruction Induction benchmark, as the paper's evaluation code
(Instruction Induction's, used by APE and InstructZero) computes them.

Every metric takes a prediction and one accepted answer and returns a score in [0, 1]; ``score``
takes the best over the accepted answers. Both sides are normalised alike (``normalize``). A
prediction that normalises to nothing never scores, whatever the answer.

``contains`` alone can be won by hedging: an answer naming every label ("positive or negative")
holds the right one. Where an example has choices (a multiple-choice question's options, a label
task's labels, see ``label_set``), ``score`` gives 0 under ``contains`` to a prediction that names a
wrong choice too.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence

_PUNCT = str.maketrans("", "", string.punctuation)


def normalize(text: str) -> str:
    """The paper's normalisation: " and " -> " ", drop "Sentence 1:"/"Sentence 2:", strip, keep
    the first line, cut at the first ".", lowercase, "-" -> " ", drop punctuation. Articles stay
    (some answers are "a"); white space is left as it is (the metrics split on it)."""
    text = text.replace(" and ", " ").replace("Sentence 1:", " ").replace("Sentence 2:", " ").strip()
    text = text.split("\n")[0].split(".")[0].lower().replace("-", " ")
    return text.translate(_PUNCT)


def exact_match(prediction: str, answer: str) -> float:
    pred = normalize(prediction)
    return float(bool(pred.strip()) and pred == normalize(answer))


def f1(prediction: str, answer: str) -> float:
    """Token-overlap F1 between the normalised texts."""
    pred, gold = normalize(prediction).split(), normalize(answer).split()
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def exact_set(prediction: str, answer: str) -> float:
    """1 when both texts hold the same set of normalised tokens."""
    pred = set(normalize(prediction).split())
    return float(bool(pred) and pred == set(normalize(answer).split()))


def contains(prediction: str, answer: str) -> float:
    """1 when the normalised answer appears, as whole words, in the normalised prediction (its
    first sentence)."""
    gold = normalize(answer).strip()
    return float(bool(gold) and re.search(rf"\b({re.escape(gold)})\b", normalize(prediction)) is not None)


MAX_LABELS, MAX_LABEL_WORDS = 10, 3


def label_set(answers: Sequence[str]) -> tuple[str, ...]:
    """``answers`` (one per example) as a label set, or none: at most ``MAX_LABELS`` distinct, each
    at most ``MAX_LABEL_WORDS`` words and more than one character, at most two distinct per three
    answers. (A one-letter label such as "a" would be found in any sentence; a repeat among a few
    open-ended answers, such as the numbers of Instruction Induction's diff, is chance.)"""
    answers = [a.strip() for a in answers]
    distinct = tuple(dict.fromkeys(answers))
    short = all(0 < len(a.split()) <= MAX_LABEL_WORDS and len(normalize(a).strip()) > 1 for a in answers)
    repeated = 3 * len({normalize(a) for a in answers}) <= 2 * len(answers)
    return distinct if answers and short and repeated and len(distinct) <= MAX_LABELS else ()


def names_wrong_choice(prediction: str, answers: Sequence[str], choices: Sequence[str]) -> bool:
    """Whether ``prediction`` (its first sentence) holds, as whole words, one of ``choices`` that is
    not an accepted answer (choices of one character are skipped: "a" is also an article)."""
    right = {normalize(a).strip() for a in answers}
    wrong = {c for c in (normalize(c).strip() for c in choices) if len(c) > 1} - right
    return any(contains(prediction, c) for c in wrong)


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


def score(prediction: str, answers: Sequence[str], metric: str, choices: Sequence[str] = ()) -> float:
    """Best score of ``prediction`` over the accepted ``answers`` under ``metric``; under
    ``contains``, 0 when it also names a wrong one of the example's ``choices``."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {sorted(METRICS)}")
    if metric == "contains" and names_wrong_choice(prediction, answers, choices):
        return 0.0
    fn = METRICS[metric]
    return max((fn(prediction, a) for a in answers), default=0.0)
