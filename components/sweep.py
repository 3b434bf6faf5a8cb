"""A sweep's grid (tasks x black-box models x seeds) and its summary table."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from components.stats import mean_sd


@dataclass(frozen=True)
class Cell:
    """One run of a sweep."""

    task: str
    model: str | None  # the black box's model (None: params.yaml's)
    seed: int

    @property
    def name(self) -> str:
        """A directory and flow-run name naming all three (the model by its last path part)."""
        model = re.sub(r"[^\w.-]+", "_", (self.model or "default").rstrip("/").rsplit("/", 1)[-1])
        return f"{self.task}-{model}-{self.seed}"

    def overrides(self) -> dict[str, Any]:
        """params.yaml keys this cell sets: the task, the model, and every seed."""
        return {"data.task": self.task, "data.seed": self.seed, "projection.seed": self.seed, "bo.seed": self.seed,
                **({"blackbox.model": self.model} if self.model is not None else {})}


def grid(tasks: Sequence[str], models: Sequence[str | None], seeds: Sequence[int]) -> list[Cell]:
    """Every task x model x seed, task-major; duplicates named once."""
    cells = [Cell(t, m, s) for t in dict.fromkeys(tasks) for m in dict.fromkeys(models) for s in dict.fromkeys(seeds)]
    if not cells:
        raise ValueError("a sweep needs at least one task, one model and one seed")
    return cells


def summary(rows: Sequence[dict[str, Any]]) -> str:
    """A markdown table: per task and model, the test score's mean ± std over seeds (and the
    empty instruction's and the reference's, "-" where a run had none), with the runs that failed."""
    lines = ["| task | black-box model | seeds | test score | empty instruction | reference | failed runs |",
             "|---|---|---|---|---|---|---|"]
    for task, model in dict.fromkeys((r["task"], r["model"]) for r in rows):
        runs = [r for r in rows if (r["task"], r["model"]) == (task, model)]
        done = [r for r in runs if r.get("test") is not None]
        lines.append(f"| {task} | {model} | {len(runs)} | {mean_sd([r['test'] for r in done])} | "
                     f"{mean_sd([r['empty'] for r in done])} | "
                     f"{mean_sd([r['reference'] for r in done if r.get('reference') is not None])} | "
                     f"{len(runs) - len(done)} |")
    return "\n".join(lines)

