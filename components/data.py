"""Task examples: parsing the supported formats and splitting them reproducibly.

Formats:
- Instruction Induction (``raw/induce/TASK.json`` pool + ``raw/execute/TASK.json`` test),
- BIG-bench ``task.json``,
- a user's own JSONL or CSV of ``input``/``output`` pairs.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.errors import TaskDataError
from components.metrics import label_set


@dataclass(frozen=True)
class Example:
    """One input with its accepted answers; ``outputs[0]`` is the one shown in exemplars.
    ``choices``, when there are any, are the answers it lets one pick from (right and wrong):
    ``contains`` refuses a prediction naming a wrong one."""

    input: str
    outputs: tuple[str, ...]
    choices: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {"input": self.input, "outputs": list(self.outputs)}
        return row | {"choices": list(self.choices)} if self.choices else row

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Example:
        return cls(row["input"], tuple(row["outputs"]), tuple(row.get("choices", ())))


@dataclass(frozen=True)
class TaskData:
    """The examples of a task: a pool to draw exemplars and validation from, maybe a test set."""

    name: str
    pool: tuple[Example, ...]
    test: tuple[Example, ...] = ()


@dataclass(frozen=True)
class Split:
    exemplars: tuple[Example, ...]
    validation: tuple[Example, ...]
    test: tuple[Example, ...]
    n_duplicates: int = 0  # rows dropped: a repeated input, or a test input also in exemplars/validation


def read_text(location: str) -> str:
    """Read a local file or an http(s) URL as UTF-8 text (a byte-order mark dropped).

    Raises:
        TaskDataError: naming ``location`` when it is missing, unreadable or empty.
    """
    try:
        if location.startswith(("http://", "https://")):
            with urllib.request.urlopen(location, timeout=60) as response:
                text = response.read().decode("utf-8-sig")  # (-sig: without a byte-order mark, as spreadsheets write)
        else:
            text = Path(location).read_text(encoding="utf-8-sig")
    except (OSError, urllib.error.URLError, UnicodeDecodeError) as err:
        raise TaskDataError(f"{location}: cannot read task file ({err})") from err
    if not text.strip():
        raise TaskDataError(f"{location}: task file is empty")
    return text


def _text(value: Any, where: str, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TaskDataError(f"{where}: field {field!r} must be a non-empty string, got {value!r}")
    return value


def _answers(value: Any, where: str, field: str) -> tuple[str, ...]:
    """The accepted answers: strings (numbers as text); empty alternatives are dropped (some
    public files have them), a row with no usable answer is refused."""
    values = value if isinstance(value, list) else [value]
    texts = [str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in values]
    if wrong := [v for v in texts if not isinstance(v, str)]:
        raise TaskDataError(f"{where}: field {field!r} must hold strings, got {wrong[0]!r}")
    if not (kept := tuple(v for v in texts if v.strip())):
        raise TaskDataError(f"{where}: field {field!r} has no non-empty answer, got {value!r}")
    return kept


def _instruction_induction_example(row: dict[str, Any], index: int, where: str) -> Example:
    """One Instruction Induction row; a few tasks use their own fields (see shared/data/README)."""
    if "cause" in row and "effect" in row:
        cause, effect = _text(row["cause"], where, "cause"), _text(row["effect"], where, "effect")
        first, second = (cause, effect) if index % 2 == 0 else (effect, cause)
        return Example(f"Sentence 1: {first} Sentence 2: {second}", (cause,), (cause, effect))
    if "items" in row:
        items = row["items"]
        if not isinstance(items, list) or not items:
            raise TaskDataError(f"{where}: field 'items' must be a non-empty list, got {items!r}")
        answers = row.get("all_common_concepts") or row.get("concept")
        return Example(", ".join(map(str, items)), _answers(answers, where, "all_common_concepts"))
    if "input" not in row or "output" not in row:
        raise TaskDataError(f"{where}: row needs 'input' and 'output', has {sorted(row)}")
    answers = _answers(row["output"], where, "output")
    extra = row.get("possible_translations")
    if isinstance(extra, list) and any(isinstance(v, str) and v.strip() for v in extra):
        answers = tuple(dict.fromkeys(answers + _answers(extra, where, "possible_translations")))
    return Example(_text(row["input"], where, "input"), answers)


def _examples(text: str, source: str, container: type[dict] | type[list]) -> tuple[dict, Any]:
    """The parsed JSON document and its non-empty ``examples`` (an object or a list)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise TaskDataError(f"{source}: not valid JSON (line {err.lineno}: {err.msg})") from err
    rows = data.get("examples") if isinstance(data, dict) else None
    if not isinstance(rows, container) or not rows:
        kind = "object" if container is dict else "list"
        raise TaskDataError(f"{source}: expected a non-empty {kind} under 'examples'")
    return data, rows


def parse_instruction_induction(text: str, source: str) -> tuple[Example, ...]:
    """Parse ``{"examples": {"1": {...}, ...}}`` in the Instruction Induction format."""
    _, rows = _examples(text, source, dict)
    examples = []
    for index, (key, row) in enumerate(rows.items()):
        where = f"{source}: example {key!r}"
        if not isinstance(row, dict):
            raise TaskDataError(f"{where}: expected an object, got {type(row).__name__}")
        examples.append(_instruction_induction_example(row, index, where))
    return tuple(examples)


def parse_bigbench(text: str, source: str) -> tuple[Example, ...]:
    """Parse a BIG-bench ``task.json``: ``target`` answers or the best of ``target_scores``."""
    data, rows = _examples(text, source, list)
    show_choices = data.get("append_choices_to_input", True)
    examples = []
    for index, row in enumerate(rows):
        where = f"{source}: example {index}"
        if not isinstance(row, dict) or "input" not in row:
            raise TaskDataError(f"{where}: row needs 'input'")
        question = _text(row["input"], where, "input")
        choices: tuple[str, ...] = ()
        if "target_scores" in row:
            scores = row["target_scores"]
            if not isinstance(scores, dict) or not scores:
                raise TaskDataError(f"{where}: 'target_scores' must be a non-empty object")
            best = max(scores.values())
            answers, choices = tuple(choice for choice, s in scores.items() if s == best), tuple(scores)
            if show_choices:
                question = f"{question}\nOptions: {', '.join(scores)}"
        elif "target" in row:
            answers = _answers(row["target"], where, "target")
        else:
            raise TaskDataError(f"{where}: row needs 'target' or 'target_scores'")
        examples.append(Example(question, answers, choices))
    return tuple(examples)


def parse_pairs(text: str, source: str) -> tuple[Example, ...]:
    """Parse a user's JSONL (``{"input", "output"}`` per line) or CSV (header input,output).

    ``output`` may be a list of accepted answers in JSONL. The format follows the suffix of
    ``source`` (``.csv`` or else JSONL).
    """
    if source.lower().endswith(".csv"):
        reader = csv.DictReader(io.StringIO(text))
        missing = {"input", "output"} - set(reader.fieldnames or [])
        if missing:
            raise TaskDataError(f"{source}: CSV header lacks column(s) {sorted(missing)}")
        rows = [(line, row) for line, row in enumerate(reader, start=2)]
    else:
        rows = []
        for line, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as err:
                raise TaskDataError(f"{source}:{line}: not valid JSON ({err.msg})") from err
            if not isinstance(row, dict):
                raise TaskDataError(f"{source}:{line}: expected an object")
            rows.append((line, row))
    examples = []
    for line, row in rows:
        where = f"{source}:{line}"
        if row.get("input") in (None, "") or row.get("output") in (None, "", []):
            raise TaskDataError(f"{where}: row needs a non-empty 'input' and 'output'")
        examples.append(Example(_text(row["input"], where, "input"), _answers(row["output"], where, "output")))
    if not examples:
        raise TaskDataError(f"{source}: no examples")
    return tuple(examples)


def task_digest(task: TaskData) -> str:
    """A content hash of every example of ``task`` (pool and test set), in file order."""
    rows = [[e.to_json() for e in task.pool], [e.to_json() for e in task.test]]
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()


def split_task(
    task: TaskData, n_exemplars: int, n_validation: int, n_test: int, seed: int
) -> Split:
    """Split reproducibly: exemplars and validation from the pool, test from the task's own
    test set when it has one, otherwise from the rest of the pool. A repeated input counts once
    (its answers merged) and the test set never shares an input with the others. When the
    task's answers form a label set (``label_set``), examples without choices get the labels as
    theirs. A pool too
    small for ``n_validation`` gives what is left after the exemplars (and one test example), as
    the paper's code does (``len(split.validation)`` says how many).

    Raises:
        TaskDataError: when the pool leaves no validation example at all.
    """
    labels = label_set([e.outputs[0] for e in task.pool + task.test])
    pool, test = _distinct(task.pool, labels), _distinct(task.test, labels)
    random.Random(seed).shuffle(pool)
    held_out = 0 if task.test else 1  # a test example from the pool when the task has no test set
    n_validation = min(n_validation, len(pool) - n_exemplars - held_out)
    if n_validation < 1:
        raise TaskDataError(
            f"task {task.name!r}: {len(pool)} distinct examples, need at least {n_exemplars + 1 + held_out} "
            f"for {n_exemplars} exemplars, a validation example and a test set"
        )
    exemplars, validation = pool[:n_exemplars], pool[n_exemplars : n_exemplars + n_validation]
    seen = {e.input for e in exemplars + validation}
    rest = [e for e in test if e.input not in seen] if task.test else pool[n_exemplars + n_validation :]
    if not rest:
        raise TaskDataError(f"task {task.name!r}: every test example is also an exemplar or validation example")
    n_duplicates = len(task.pool) - len(pool) + len(task.test) - (len(rest) if task.test else 0)
    if len(rest) > n_test:
        rest = random.Random(seed + 1).sample(rest, n_test)
    return Split(tuple(exemplars), tuple(validation), tuple(rest), n_duplicates)


def _distinct(examples: tuple[Example, ...], labels: tuple[str, ...]) -> list[Example]:
    """One example per input, in first-seen order; a repeated input's answers and choices are
    merged, and ``labels`` are the choices of an example that has none."""
    merged: dict[str, Example] = {}
    for e in examples:
        seen = merged.get(e.input, Example(e.input, ()))
        merged[e.input] = Example(e.input, tuple(dict.fromkeys(seen.outputs + e.outputs)),
                                  tuple(dict.fromkeys(seen.choices + e.choices)))
    return [Example(e.input, e.outputs, e.choices or labels) for e in merged.values()]
