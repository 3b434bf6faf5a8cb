"""Sweeps: the grid and its summary; a real sweep on a process work pool under one shared rate limit."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from components.sweep import Cell, grid, summary
from tests.conftest import ROOT, small_params
from tests.openai_stub import stub_server
from tests.services import background


def test_the_grid_names_every_cell_by_task_model_and_seed():
    cells = grid(["parity", "parity", "first_letter"], ["gpt-4o-mini", "/models/Qwen 7B/"], [0, 1])
    assert len(cells) == 8  # a repeated task counts once
    assert cells[0] == Cell("parity", "gpt-4o-mini", 0) and cells[0].name == "parity-gpt-4o-mini-0"
    assert Cell("parity", "/models/Qwen 7B/", 1).name == "parity-Qwen_7B-1"
    assert Cell("parity", None, 2).overrides() == {"data.task": "parity", "data.seed": 2, "projection.seed": 2,
                                                  "bo.seed": 2}
    with pytest.raises(ValueError, match="at least one task"):
        grid([], [None], [0])


def test_the_summary_gives_mean_and_spread_per_task_and_model_and_counts_failures():
    rows = [{"task": "parity", "model": "m", "seed": 0, "test": 0.5, "empty": 0.1, "reference": 0.2},
            {"task": "parity", "model": "m", "seed": 1, "test": 0.7, "empty": 0.1, "reference": 0.4},
            {"task": "parity", "model": "m", "seed": 2, "test": None, "empty": None, "reference": None},
            {"task": "sentiment", "model": "m", "seed": 0, "test": 0.5, "empty": 0.0, "reference": None}]
    table = summary(rows)
    assert "| parity | m | 3 | 0.600 ± 0.141 | 0.100 ± 0.000 | 0.300 ± 0.141 | 1 |" in table
    assert "| sentiment | m | 1 | 0.500 | 0.000 | - | 0 |" in table  # no reference: none shown


@pytest.mark.slow
def test_a_sweep_runs_every_cell_on_the_pool_within_one_shared_rate_limit(tmp_path, servers, embedded_model):
    rpm, pool = 240, "iz-sweep"
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    (project / "models" / embedded_model.name).symlink_to(embedded_model)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PREFECT_HOME": str(tmp_path / "prefect"), "OPENAI_API_KEY": "sk-test", **servers}
    with stub_server(lambda prompt: "f") as blackbox, background() as start:
        (project / "params.yaml").write_text(yaml.safe_dump(small_params(
            blackbox={"base_url": blackbox.base_url, "model": "stub", "requests_per_minute": rpm,
                      "shared_rate_limit": True},
            scale={"work_pool": pool})))
        for _ in range(2):
            start("prefect", "worker", "start", "--pool", pool, "--type", "process", "--limit", "1", env=env, cwd=ROOT)
        done = subprocess.run([sys.executable, "-m", "flows", "sweep", "--tasks", "parity", "--seeds", "0", "1",
                               "--name", "t"], cwd=project, env=env, capture_output=True,
                              text=True, timeout=1200, check=False)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        experiment = MlflowClient(env["MLFLOW_TRACKING_URI"]).get_experiment_by_name("instructzero-t")
        runs = MlflowClient(env["MLFLOW_TRACKING_URI"]).search_runs([experiment.experiment_id])
    rows = json.loads((project / "sweeps/t/summary.json").read_text())
    assert {(r["task"], r["seed"]) for r in rows} == {("parity", 0), ("parity", 1)}
    assert all(r["test"] is not None and Path(r["workspace"], "metrics/test.json").exists() for r in rows)
    assert all(r["reference"] is not None for r in rows)  # parity, built in, has its reference
    assert (project / "sweeps/t/summary.png").exists() and "| parity | default | 2 |" in \
        (project / "sweeps/t/summary.md").read_text()
    assert sorted(r.info.run_name for r in runs)[-1] == "sweep-t" and len(runs) == 3  # 2 runs and the summary

    # Both runs together stayed within one rate limit: at most a second's worth at once,
    # then rpm/60 a second.
    times = sorted(r["time"] for r in blackbox.requests)
    per_second, burst = rpm / 60, math.ceil(rpm / 60)
    assert len(times) > 2 * 20
    assert all(j - i + 1 <= burst + per_second * (times[j] - times[i]) + 1
               for i in range(len(times)) for j in range(i, len(times)))


@pytest.mark.slow
def test_the_readme_sweep_example_is_planned_with_each_cells_model(embedded_model, monkeypatch):
    """A remote endpoint named by --set and its models by --models: no model in params.yaml."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.sweep import plan_sweep

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    overrides = {"blackbox.base_url": "https://api.openai.com/v1", "blackbox.requests_per_minute": "5000",
                 "blackbox.shared_rate_limit": "true"}
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:4200/api"}):
        _, cells, runs = plan_sweep(["first_letter", "parity"], [0, 1, 2], ["gpt-4o-mini", "gpt-4.1-mini"], "june",
                                    ROOT / "params.yaml", overrides)
    assert len(cells) == len(runs) == 12
    assert {r["overrides"]["blackbox.model"] for r in runs.values()} == {"gpt-4o-mini", "gpt-4.1-mini"}


def test_a_failed_cells_row_says_why(tmp_path):
    from prefect.states import Completed, Failed

    from flows.sweep import _row

    cell = Cell("parity", None, 0)
    row = _row(cell, tmp_path, Failed(message="black box down"))
    assert row["test"] is None and row["error"] == "Failed (black box down)"
    assert _row(cell, tmp_path, None)["error"] == "never ran"
    assert _row(cell, tmp_path, Completed())["error"] == "no test score written"
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "test.json").write_text(json.dumps({"best_test_score": 0.5}))
    assert _row(cell, tmp_path, Completed())["error"] is None
