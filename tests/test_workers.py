"""One optimisation fanned out to three flow runs on a real process work pool: one study on
PostgreSQL, the session's Prefect server and MLflow tracking server (PostgreSQL backend), a black
box with fixed latency, and one worker killed (SIGKILL, with its flow-run process) while its
instruction is half-scored; and a launcher whose flow runs no worker takes."""

from __future__ import annotations

import collections
import datetime
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from uuid import UUID

import optuna
import psutil
import pytest
import yaml
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings

from components.study import RETRY_OF
from flows.settings import DATABASE_URL
from tests.conftest import ROOT, small_params
from tests.openai_stub import stub_server
from tests.services import background, new_database

pytestmark = pytest.mark.slow
LATENCY = 0.8  # seconds per black-box call
POOL = "iz-workers"


def _instruction(prompt: str) -> str:
    return prompt.split("\n\nInput: ")[0].removeprefix("Instruction: ")


def _run(*cmd: str, env: dict[str, str], cwd: Path = ROOT) -> None:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"{' '.join(cmd)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def _project(tmp_path: Path, embedded_model: Path, servers: dict[str, str], database: str,
             **extra: str) -> tuple[Path, dict[str, str]]:
    """A project folder with the embedded model, and the environment its commands run in (the
    session's Prefect and MLflow servers)."""
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    (project / "models" / embedded_model.name).symlink_to(embedded_model)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PREFECT_HOME": str(tmp_path / "prefect"), DATABASE_URL: database, "OPENAI_API_KEY": "sk-test",
           **servers, **extra}
    return project, env


def test_three_workers_share_one_study_and_absorb_a_killed_one(tmp_path, postgres_url, servers, embedded_model):
    study_db = new_database(postgres_url, "workers_study")
    project, env = _project(tmp_path, embedded_model, servers, study_db)
    in_flight: set[str] = set()
    answered: collections.Counter[str] = collections.Counter()
    answered_at: dict[str, float] = {}  # prompt -> when its answer left the stub
    lock = threading.Lock()

    def answer(prompt: str) -> str:
        with lock:
            in_flight.add(prompt)
        time.sleep(LATENCY)
        with lock:
            in_flight.discard(prompt)
            answered[_instruction(prompt)] += 1
            answered_at[prompt] = time.monotonic()
        return "f"

    with stub_server(answer) as blackbox, background() as start:
        (project / "params.yaml").write_text(yaml.safe_dump(small_params(
            data={"n_validation": 6},
            blackbox={"base_url": blackbox.base_url, "model": "stub", "concurrency": 2},
            bo={"n_instructions": 6, "n_trials": 6, "batch_size": 1},
            scale={"workers": 3, "work_pool": POOL, "heartbeat": 1, "grace": 8, "threads": 1})))
        _run("prefect", "work-pool", "create", POOL, "--type", "process", env=env)
        for _ in range(3):
            start("prefect", "worker", "start", "--pool", POOL, "--limit", "1", env=env, cwd=ROOT)
        _run(sys.executable, "-m", "flows.prepare", env=env, cwd=project)
        optimize = subprocess.Popen([sys.executable, "-m", "flows.optimize"], cwd=project, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        run_id, half_scored, in_flight_at_kill = None, "", set()
        deadline = time.monotonic() + 400
        while run_id is None:  # a flow run with answers back for its instruction and calls in flight
            assert time.monotonic() < deadline and optimize.poll() is None, "no half-scored instruction seen"
            with lock:
                ports = {r["client_port"]: r["messages"][-1]["content"] for r in blackbox.requests
                         if r["messages"][-1]["content"] in in_flight
                         and answered[_instruction(r["messages"][-1]["content"])] > 0}
            for conn in psutil.net_connections(kind="tcp"):
                if conn.laddr and conn.laddr.port in ports and conn.pid:
                    victim = psutil.Process(conn.pid)
                    worker = next(p for p in victim.parents() if "worker" in p.cmdline())
                    half_scored = _instruction(ports[conn.laddr.port])
                    with lock:
                        run_id = victim.environ()["PREFECT__FLOW_RUN_ID"]
                        worker.send_signal(signal.SIGKILL)  # nobody is left to report the flow run's end
                        victim.send_signal(signal.SIGKILL)
                        killed_at = time.monotonic()
                        # in flight, or answered too late to reach the victim's cache before the kill
                        recent = {p for p, at in answered_at.items() if at > time.monotonic() - 1.0}
                        in_flight_at_kill = {p for p in in_flight | recent if _instruction(p) == half_scored}
                    break
            time.sleep(0.05)
        output, _ = optimize.communicate(timeout=600)
        assert optimize.returncode == 0, output[-4000:]
        assert time.monotonic() - killed_at < 300, "the launcher waited for the dead worker's flow run"
        with temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"]}), \
                get_client(sync_client=True) as prefect:  # the launcher cancelled what no worker would end
            assert prefect.read_flow_run(UUID(run_id)).state.is_cancelled()  # type: ignore[union-attr]
            assert f"{prefect.read_flow_run(UUID(run_id)).name}: Cancelled" in output
            others = [r for r in prefect.read_flow_runs() if r.work_pool_name == POOL and str(r.id) != run_id]
            assert [r.state_name for r in others] == ["Completed"] * 2  # (none lost a race to create tables)
        run_info = json.loads((project / "outputs/run.json").read_text())
        history = MlflowClient(env["MLFLOW_TRACKING_URI"]).get_metric_history(run_info["mlflow_run_id"], "val_score")

    study = optuna.load_study(study_name=run_info["study"], storage=study_db)
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    failed = study.get_trials(states=(optuna.trial.TrialState.FAIL,))
    assert len(complete) == 6  # exactly the requested trials, whoever scored them
    # The calls the killed worker had answered but not reported are counted: all but those in flight.
    spent = json.loads((project / "metrics/optimize.json").read_text())["blackbox_calls"]
    assert len(blackbox.requests) - len(in_flight_at_kill) <= spent <= len(blackbox.requests), in_flight_at_kill
    # Workers starting together drew different z (every draw is seeded from the trial it serves).
    assert len({tuple(t.params.values()) for t in complete}) == 6

    # The killed trial was asked again with the same z and wrote the same instruction.
    retries = [t for t in complete if RETRY_OF in t.user_attrs]
    assert any(t.user_attrs["instruction"] == half_scored and t.params == next(
        f.params for f in failed if f.number == t.user_attrs[RETRY_OF]) for t in retries), (half_scored, retries)

    # Every prompt was paid once, except those in flight at the kill (and an instruction that
    # two workers wrote at the same moment).
    counts = collections.Counter(r["messages"][-1]["content"] for r in blackbox.requests)
    twice = {_instruction(p) for p, n in counts.items() if n > 1} - {_instruction(p) for p in in_flight_at_kill}
    written = collections.Counter(t.user_attrs["instruction"] for t in complete)
    assert all(written[v] > 1 for v in twice), twice

    # One MLflow run on the server, one step per complete trial number.
    assert sorted(m.step for m in history) == sorted(t.number for t in complete)
    assert (project / "outputs/optuna.db").exists() and json.loads((project / "outputs/candidates.json").read_text())


def test_a_launcher_whose_flow_runs_no_worker_takes_cancels_them_and_says_what_to_do(tmp_path, postgres_url,
                                                                                      servers, embedded_model):
    project, env = _project(tmp_path, embedded_model, servers, new_database(postgres_url, "unclaimed"))
    (project / "params.yaml").write_text(yaml.safe_dump(small_params(
        blackbox={"base_url": "http://127.0.0.1:9/v1", "model": "stub"},
        scale={"workers": 2, "work_pool": "iz-nobody", "claim_timeout": 5})))
    _run(sys.executable, "-m", "flows.prepare", env=env, cwd=project)
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "flows.optimize"], cwd=project, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 1 and time.monotonic() - began < 120, done.stdout[-3000:] + done.stderr[-3000:]
    assert "no worker took a flow run in 5 s: start one on the work pool" in done.stderr.splitlines()[-1]
    with temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"]}), get_client(sync_client=True) as prefect:
        runs = [r for r in prefect.read_flow_runs() if r.work_pool_name == "iz-nobody"]
        assert len(runs) == 2 and all(r.state is not None and r.state.is_cancelled() for r in runs)


def test_a_worker_flow_run_stopped_by_sigterm_ends_within_seconds_and_hands_its_trials_back(
        tmp_path, postgres_url, servers, embedded_model):
    """What a worker does to cancel a flow run (SIGTERM to its process): it stops within seconds,
    its trials are failed and asked again at once (not after the heartbeat grace), the other
    worker finishes the study."""
    project, env = _project(tmp_path, embedded_model, servers, new_database(postgres_url, "stopped_worker"),
                            PYTHONPATH=str(ROOT))

    def answer(prompt: str) -> str:
        time.sleep(LATENCY)
        return "f"

    with stub_server(answer) as blackbox, background() as start:
        (project / "params.yaml").write_text(yaml.safe_dump(small_params(
            data={"n_validation": 6},
            blackbox={"base_url": blackbox.base_url, "model": "stub", "concurrency": 2},
            bo={"n_instructions": 6, "n_trials": 8, "batch_size": 1},
            scale={"workers": 2, "work_pool": "iz-stopped", "heartbeat": 1, "grace": 60, "threads": 1})))
        _run("prefect", "work-pool", "create", "iz-stopped", "--type", "process", env=env)
        for _ in range(2):
            start("prefect", "worker", "start", "--pool", "iz-stopped", "--limit", "1", env=env, cwd=ROOT)
        _run(sys.executable, "-m", "flows.prepare", env=env, cwd=project)
        optimize = subprocess.Popen([sys.executable, "-m", "flows.optimize"], cwd=project, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline, victim = time.monotonic() + 400, None
        while victim is None:  # a flow run's process with calls in flight
            assert time.monotonic() < deadline and optimize.poll() is None, "no worker started scoring"
            ports = {r["client_port"] for r in blackbox.requests[-2:]}
            for conn in psutil.net_connections(kind="tcp"):
                if conn.laddr and conn.laddr.port in ports and conn.pid:
                    victim = psutil.Process(conn.pid)
                    break
            time.sleep(0.05)
        run_id = victim.environ()["PREFECT__FLOW_RUN_ID"]
        stopped_at, stopped_wall = time.monotonic(), datetime.datetime.now()
        victim.send_signal(signal.SIGTERM)
        victim.wait(timeout=30)
        stopped_in = time.monotonic() - stopped_at
        output, _ = optimize.communicate(timeout=600)
        assert optimize.returncode == 0, output[-4000:]
        assert stopped_in < 10, stopped_in
        with temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"]}), get_client(sync_client=True) as prefect:
            state = prefect.read_flow_run(UUID(run_id)).state
            assert state is not None and (state.is_crashed() or state.is_cancelled()), state
        run_info = json.loads((project / "outputs/run.json").read_text())

    study = optuna.load_study(study_name=run_info["study"], storage=env[DATABASE_URL])
    handed_back = [t for t in study.get_trials(states=(optuna.trial.TrialState.FAIL,)) if t.params
                   and t.datetime_complete and (t.datetime_complete - stopped_wall).total_seconds() < 15]
    retried = {t.user_attrs[RETRY_OF] for t in study.trials if RETRY_OF in t.user_attrs}
    assert handed_back and {t.number for t in handed_back} <= retried  # at once, not stale after scale.grace
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))  # the other worker finished the study
    assert len({t.user_attrs["instruction"] for t in complete if "instruction" in t.user_attrs}) == 6 \
        or len(complete) == 8
