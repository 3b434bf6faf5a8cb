"""A sweep: the whole pipeline for every task x black-box model x seed, as flow runs on a work pool.

Each cell is one `instructzero-pipeline` flow run on ``scale.work_pool`` in its own workspace,
sweeps/<name>/<task>-<model>-<seed>/, all logging to one MLflow experiment; with
``blackbox.shared_rate_limit`` every run on an endpoint shares one Prefect global concurrency
limit (``blackbox.requests_per_minute`` in all). The summary of the grid (table, JSON, plot)
goes to sweeps/<name>/ and to an MLflow run `sweep-<name>` in the same experiment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import State

from components.errors import ConfigError, WorkerError
from components.params import Params
from components.sweep import Cell, grid, summary
from flows.preflight import preflight
from flows.settings import HERE, PARAMS, Workspace
from tasks.files import read_json, write_atomic, write_json
from tasks.tracking import log_results, start_run, sweep_plot
from tasks.workers import Watch, failure, run_flows

SWEEPS = Path("sweeps")
PIPELINE_ENTRYPOINT = "flows.pipeline.pipeline"


@flow(name="instructzero-sweep")
def sweep(
    tasks: list[str], seeds: list[int] | None = None, models: list[str] | None = None, name: str = "sweep",
    params_path: Path = PARAMS, overrides: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Run the pipeline for every cell of ``tasks`` x ``models`` (black-box models; default
    params.yaml's) x ``seeds`` (default [0]; each sets data, projection and bo seeds) with
    ``overrides`` on top of params.yaml, and summarise the grid. Every cell's input is checked
    before any run starts. Returns one row per cell (its test score, or None if it failed)."""
    logger = get_run_logger()
    base, cells, runs = plan_sweep(tasks, seeds, models, name, params_path, overrides)
    experiment = f"{base.tracking.experiment}-{name}"
    folder = (SWEEPS / name).resolve()
    logger.info("sweep %s: %d runs (%d tasks x %d models x %d seeds) on work pool %r, MLflow experiment %r",
                name, len(cells), len({c.task for c in cells}), len({c.model for c in cells}),
                len({c.seed for c in cells}),
                base.scale.work_pool, experiment)

    def progress() -> str:
        return f"{sum((Workspace(folder / c.name).metrics / 'test.json').exists() for c in cells)}/{len(cells)} " \
               "runs tested"

    watch = Watch(progress, base.scale.claim_timeout, base.scale.grace)
    states = run_flows(PIPELINE_ENTRYPOINT, f"sweep-{name}", base.scale.work_pool, Path.cwd(), runs, watch)
    rows = [_row(cell, folder / cell.name, states[f"{name}-{cell.name}"]) for cell in cells]
    table = summary(rows)
    write_atomic(folder / "summary.md", table + "\n")
    write_json(folder / "summary.json", rows)
    png = sweep_plot(rows, f"sweep {name}", folder / "summary.png")
    run_id = start_run(HERE.tracking_uri(), HERE.artifact_root(), experiment, f"sweep-{name}",
                       {"tasks": tasks, "models": models, "seeds": seeds, "overrides": overrides}, tags={"sweep": name})
    failed = sum(r["test"] is None for r in rows)
    log_results(HERE.tracking_uri(), run_id, {"runs": len(rows), "failed_runs": failed},
                files=[folder / "summary.md", folder / "summary.json", png], status="FINISHED")
    logger.info("sweep %s: %d of %d runs done (summary: %s)\n%s", name, len(rows) - failed, len(rows),
                folder / "summary.md", table)
    if failed:  # the sweep's own flow run fails too, naming each failed cell
        raise WorkerError(f"sweep {name}: {failed} of {len(rows)} runs failed: " + "; ".join(
            f"{r['task']}-{r['model']}-{r['seed']}: {r['error']}" for r in rows if r["test"] is None))
    return rows


def plan_sweep(
    tasks: list[str], seeds: list[int] | None, models: list[str] | None, name: str, params_path: Path,
    overrides: dict[str, Any] | None,
) -> tuple[Params, list[Cell], dict[str, dict[str, Any]]]:
    """The sweep's params, cells and flow-run parameters (by run name), every cell's input
    checked (flows/preflight.py) before anything runs."""
    from prefect.settings import PREFECT_API_URL

    model_list: list[str | None] = list(models) if models else [None]
    cells = grid(tasks, model_list, seeds or [0])
    base = preflight(params_path, {**(overrides or {}), **cells[0].overrides()})  # (a model may be the cells')
    experiment = f"{base.tracking.experiment}-{name}"
    folder = (SWEEPS / name).resolve()
    runs = {}
    for cell in cells:
        cell_overrides = {**(overrides or {}), **cell.overrides(), "tracking.experiment": experiment}
        preflight(params_path, cell_overrides)
        runs[f"{name}-{cell.name}"] = {"params_path": str(params_path.resolve()), "overrides": cell_overrides,
                                       "workspace": str(folder / cell.name)}
    if not PREFECT_API_URL.value():
        raise ConfigError("a sweep runs on a work pool: set PREFECT_API_URL to the Prefect server its workers use "
                          "(prefect server start; prefect worker start --pool POOL)")
    return base, cells, runs


def _row(cell: Cell, workspace: Path, state: State | None) -> dict[str, Any]:
    """A cell's result from its workspace (test score None when its run failed, and why)."""
    path = Workspace(workspace).metrics / "test.json"
    completed = state is not None and state.is_completed()
    result = read_json(path) if completed and path.exists() else {}
    error = None if result else "no test score written" if completed else failure(state)
    return {"task": cell.task, "model": cell.model or "default", "seed": cell.seed, "workspace": str(workspace),
            "test": result.get("best_test_score"), "empty": result.get("empty_instruction_test_score"),
            "reference": result.get("reference_test_score"),
            "instruction": result.get("best_instruction"), "error": error}

