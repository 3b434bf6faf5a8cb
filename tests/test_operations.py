"""Operating it: the CLI (run in a workspace, revalidate, exit codes) and MLflow over a real
`mlflow server` REST API."""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from flows.__main__ import BAD_INPUT, DROPPED, OK, main
from flows.settings import HERE
from tests.conftest import free_port, wait_for
from tests.openai_stub import stub_server
from tests.services import background

pytestmark = pytest.mark.slow


def _answer(prompt: str) -> str:
    return "even" if len(prompt) % 2 else "odd"


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def test_cli_runs_in_a_workspace_and_revalidate_flags_a_drop(workdir, prefect_api, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    registry = MlflowClient(HERE.tracking_uri(), registry_uri=HERE.tracking_uri())
    with stub_server(_answer) as server:
        box = ["--set", f"blackbox.base_url={server.base_url}", "--set", "blackbox.model=stub"]
        assert main(["run", *box, "--set", "data.task=parity"]) == OK
        out = capsys.readouterr().out
        assert "Best instruction for task 'parity'" in out and "runs/parity/metrics/test.json" in out
        assert "/runs?workflowType=machine_learning" in out  # the UI's runs table, not its GenAI traces
        space = workdir / "runs" / "parity"
        calls = json.loads((space / "metrics/optimize.json").read_text())["blackbox_calls"]
        assert calls > 0 and f"black-box calls: this run {calls}, the study {calls} (+" in out  # a first run
        test = json.loads((space / "metrics/test.json").read_text())
        assert test["task"] == "parity" and (space / "outputs/optuna.db").exists()
        assert not (space / "mlruns").exists() and not (workdir / "outputs").exists()  # MLflow stays the project's
        assert main(["revalidate", "--base-url", server.base_url, "--model", "stub"]) == OK  # same black box
        assert "instructzero-parity v1: " in capsys.readouterr().out
    version = registry.get_prompt_version_by_alias("instructzero-parity", "production")
    assert float(version.tags["revalidated_test_score"]) == pytest.approx(test["best_test_score"], abs=1e-6)
    assert version.tags["dropped"] == "false"
    assert test["best_test_score"] > 0

    with stub_server(lambda prompt: "no idea") as changed:  # the endpoint's model got worse
        assert main(["revalidate", "--base-url", changed.base_url, "--model", "stub"]) == DROPPED
    assert "DROPPED" in capsys.readouterr().out
    version = registry.get_prompt_version_by_alias("instructzero-parity", "production")
    assert version.tags["dropped"] == "true"
    assert float(version.tags["revalidated_drift"]) == pytest.approx(-test["best_test_score"], abs=1e-6)
    runs = registry.search_runs([registry.get_experiment_by_name("instructzero-revalidation").experiment_id])
    assert sorted(r.data.metrics["n_dropped"] for r in runs) == [0, 1]

    # The same store through a real MLflow tracking server's REST API.
    port = free_port()
    with background() as start:
        start(sys.executable, "-m", "mlflow", "server", "--backend-store-uri", HERE.tracking_uri(),
              "--host", "127.0.0.1", "--port", str(port), "--workers", "1", env=dict(os.environ), cwd=workdir)
        api = f"http://127.0.0.1:{port}/api/2.0/mlflow"
        wait_for(f"http://127.0.0.1:{port}/health")
        run = _get(f"{api}/runs/get?run_id={test['mlflow_run_id']}")["run"]
        params = {p["key"]: p["value"] for p in run["data"]["params"]}
        metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        assert params["data.task"] == "parity" and params["bo.sampler"] == "instructzero"
        assert metrics["test_score"] == test["best_test_score"] and run["info"]["status"] == "FINISHED"
        files = {f["path"] for f in _get(f"{api}/artifacts/list?run_id={test['mlflow_run_id']}")["files"]}
        assert {"best_instruction.txt", "trial_table.json", "convergence.png", "trials", "test.json"} <= files
        alias = _get(f"{api}/registered-models/alias?name=instructzero-parity&alias=production")["model_version"]
        tags = {t["key"]: t["value"] for t in alias["tags"]}
        assert tags["instruction"] == test["best_instruction"] and tags["mlflow_run_id"] == test["mlflow_run_id"]
        assert {"test_score", "val_score", "blackbox_model", "generator", "data_version"} <= set(tags)


def test_cli_bad_input_exit_codes(workdir, capsys):
    assert main(["dry-run", "--set", "bo.n_trials=many"]) == BAD_INPUT
    assert "bo.n_trials" in capsys.readouterr().err
    assert main(["run", "--set", "bo.typo=1"]) == BAD_INPUT
    assert "bo.typo" in capsys.readouterr().err
    assert main(["tasks", str(workdir / "nowhere")]) == BAD_INPUT
    with pytest.raises(SystemExit) as usage:
        main(["run", "--set", "no-equals-sign"])
    assert usage.value.code == 2
    with pytest.raises(SystemExit) as shown:
        main(["revalidate", "--help"])
    assert shown.value.code == 0 and "--tolerance" in capsys.readouterr().out


def test_cli_lists_tasks_and_plans(workdir, capsys):
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    assert main(["tasks", str(shared / "instruction-induction")]) == OK
    names = capsys.readouterr().out.split()
    assert "builtin/first_letter" in names and "instruction_induction/sentiment" in names
    assert main(["dry-run", "--set", "bo.n_instructions=10"]) == OK
    plan = capsys.readouterr().out.replace("\n", " ")
    assert "At most 80 calls: 50 validation (10 distinct instructions x 5 examples" in plan


def test_the_instructzero_command_is_installed_and_is_the_cli():
    import subprocess

    command = Path(sys.executable).with_name("instructzero")
    done = subprocess.run([str(command), "tasks"], capture_output=True, text=True, timeout=120, check=True)
    assert "builtin/first_letter" in done.stdout.split()
    bad = subprocess.run([str(command), "run", "--set", "bo.typo=1"], capture_output=True, text=True, timeout=120,
                         check=False)
    assert bad.returncode == BAD_INPUT and "bo.typo" in bad.stderr
