"""Loading a task from its source, splitting it and writing the split files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from prefect import task

from components.builtin_tasks import builtin_task
from components.data import (
    Example,
    Split,
    TaskData,
    parse_bigbench,
    parse_instruction_induction,
    parse_pairs,
    read_text,
    split_task,
)
from components.metrics import metric_for_task
from components.params import DataParams
from tasks.files import write_atomic, write_json

SPLITS = ("exemplars", "validation", "test")


def _join(location: str, *parts: str) -> str:
    """A path below a directory or a URL."""
    return "/".join([location.rstrip("/"), *parts])


@task
def load_task(params: DataParams) -> TaskData:
    """Read the task's examples from its source (directory, URL, file or built-in)."""
    if params.source == "builtin":
        return builtin_task(params.task)
    assert params.location is not None  # checked by DataParams
    if params.source == "instruction_induction":
        induce = _join(params.location, "raw", "induce", f"{params.task}.json")
        execute = _join(params.location, "raw", "execute", f"{params.task}.json")
        return TaskData(
            params.task,
            parse_instruction_induction(read_text(induce), induce),
            parse_instruction_induction(read_text(execute), execute),
        )
    if params.source == "bigbench":
        path = _join(params.location, params.task, "task.json")
        return TaskData(params.task, parse_bigbench(read_text(path), path))
    return TaskData(params.task, parse_pairs(read_text(params.location), params.location))


@task
def split_and_write(data: TaskData, params: DataParams, out_dir: Path) -> Split:
    """Split with the fixed seed and write ``{exemplars,validation,test}.jsonl`` + ``task.json``."""
    split = split_task(data, params.n_exemplars, params.n_validation, params.n_test, params.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in SPLITS:
        rows = "".join(json.dumps(e.to_json()) + "\n" for e in getattr(split, name))
        write_atomic(out_dir / f"{name}.jsonl", rows)
    meta = {"task": data.name, "metric": params.metric or metric_for_task(data.name),
            **{name: len(getattr(split, name)) for name in SPLITS}}
    write_json(out_dir / "task.json", meta)
    return split


def split_digest(out_dir: Path) -> str:
    """A short content hash of the split files: the data version runs are tagged with."""
    digest = hashlib.sha256()
    for name in (*SPLITS, "task"):
        suffix = ".json" if name == "task" else ".jsonl"
        digest.update((out_dir / f"{name}{suffix}").read_bytes())
    return digest.hexdigest()[:12]


def read_split(out_dir: Path) -> tuple[Split, str]:
    """The split written by :func:`split_and_write` and its metric."""
    def rows(name: str) -> tuple[Example, ...]:
        lines = (out_dir / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
        return tuple(Example.from_json(r) for r in map(json.loads, lines))

    meta = json.loads((out_dir / "task.json").read_text(encoding="utf-8"))
    return Split(rows("exemplars"), rows("validation"), rows("test")), meta["metric"]
