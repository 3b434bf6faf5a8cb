"""prefect.yaml's deployments on the session's Prefect server, with a real process worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from components.blackbox import ZERO_SHOT
from components.builtin_tasks import builtin_task
from components.data import split_task
from components.metrics import score
from components.params import DataParams
from flows.deployments import deployments
from tasks.tracking import register_instruction
from tests.conftest import ROOT
from tests.openai_stub import stub_server
from tests.services import background

pytestmark = pytest.mark.slow
NAMES = {"first-letter-nightly", "sentiment-nightly", "sweep-nightly", "revalidate-weekly"}


def test_prefect_yaml_deployments_are_scheduled_and_servable():
    found = {d.name: d for d in deployments(ROOT / "prefect.yaml")}
    assert set(found) == NAMES
    assert all(len(d.schedules) == 1 and d.schedules[0].schedule.cron for d in found.values())
    assert found["sentiment-nightly"].parameters["overrides"]["data.task"] == "sentiment"


def _run(*cmd: str, env: dict[str, str], timeout: float = 600) -> str:
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_revalidation_deployment_runs_on_a_real_server(tmp_path, servers):
    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_API_URL": servers["PREFECT_API_URL"],
           "MLFLOW_TRACKING_URI": tracking, "OPENAI_API_KEY": "sk-test", "COLUMNS": "250"}
    data = DataParams(source="builtin", task="parity", n_validation=5, n_test=6)
    register_instruction.fn(tracking, "parity", ZERO_SHOT.format(instruction="Say even.", input="{{input}}"), 0.5,
                            {"instruction": "Say even.", "metric": "contains", "data": data.model_dump_json(),
                             "data_version": "x", "blackbox_model": "stub"})
    with background() as start:
        _run("prefect", "work-pool", "create", "instructzero", "--type", "process", env=env)
        registered = _run(sys.executable, "-m", "flows", "deploy", env=env)
        assert "registered revalidate-prompts/revalidate-weekly" in registered
        listed = _run("prefect", "deployment", "ls", env=env)
        assert all(name in listed for name in NAMES)
        start("prefect", "worker", "start", "--pool", "instructzero", env=env, cwd=ROOT)
        with stub_server(lambda prompt: "even") as blackbox:
            watched = _run("prefect", "deployment", "run", "revalidate-prompts/revalidate-weekly",
                           "--param", f"base_url={json.dumps(blackbox.base_url)}", "--param", 'model="stub"',
                           "--watch", "--watch-timeout", "400", env=env)
            assert len(blackbox.requests) == 6  # the registered test split, scored anew
        assert "Completed" in watched
    version = MlflowClient(tracking, registry_uri=tracking).get_prompt_version_by_alias("instructzero-parity",
                                                                                         "production")
    test = split_task(builtin_task("parity"), data.n_exemplars, data.n_validation, data.n_test, data.seed).test
    expected = sum(score("even", e.outputs, "contains") for e in test) / len(test)
    assert float(version.tags["revalidated_test_score"]) == pytest.approx(expected)
    assert version.tags["dropped"] == str(expected < 0.5 - 0.05).lower()
