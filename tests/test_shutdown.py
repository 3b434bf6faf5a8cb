"""Ctrl-C and SIGTERM through the real path: `instructzero run` in a subprocess (its own Prefect
temporary server, the embedded generator, a stub black box), stopped while it generates, scores
and evaluates; then run again to the end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import optuna
import psutil
import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT, small_params
from tests.openai_stub import last_input, stub_server

LATENCY = 0.3  # seconds per black-box answer: a batch is in flight for a while
WITHIN = 10  # seconds from the signal to the exit, as the README promises


SECOND_SIGNAL = """
import subprocess, sys, time
from flows.shutdown import stop_on_signals
with stop_on_signals():
    child = subprocess.Popen(["sleep", "300"])
    print(child.pid, flush=True)
    try:
        time.sleep(300)
    except KeyboardInterrupt:
        print("cleaning up", flush=True)
        time.sleep(300)  # a slow clean-up: the second Ctrl-C must not wait for it
"""


def test_the_first_signal_raises_and_a_second_ends_the_process_and_its_children_at_once():
    run = subprocess.Popen([sys.executable, "-c", SECOND_SIGNAL], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                           start_new_session=True)
    assert run.stdout is not None
    child = psutil.Process(int(run.stdout.readline()))
    run.send_signal(signal.SIGINT)
    assert run.stdout.readline().strip() == "cleaning up"
    began = time.monotonic()
    run.send_signal(signal.SIGINT)
    assert run.wait(timeout=10) == 130 and time.monotonic() - began < 5
    child.wait(timeout=5)  # killed (it would sleep 300 s)


def _project(tmp_path: Path, embedded_model: Path, base_url: str) -> tuple[Path, dict[str, str]]:
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    (project / "models" / embedded_model.name).symlink_to(embedded_model)
    (project / "params.yaml").write_text(yaml.safe_dump(small_params(
        data={"task": "parity", "n_validation": 5, "n_test": 6},
        blackbox={"base_url": base_url, "model": "stub", "concurrency": 4},
        bo={"n_instructions": 6, "n_trials": 8, "batch_size": 2})))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "MLFLOW_TRACKING"))}
    env.update(OPENAI_API_KEY="sk-test", PREFECT_HOME=str(tmp_path / "prefect"), PYTHONPATH=str(ROOT),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return project, env


def _run(project: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """`instructzero run` as a terminal would start it: its own process group."""
    return subprocess.Popen([sys.executable, "-m", "flows", "run"], cwd=project, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(run: subprocess.Popen[str], signum: int, when: Callable[[], bool]) -> tuple[str, float, list[psutil.Process]]:
    """Send ``signum`` once ``when()`` (SIGINT to the group, as Ctrl-C does; SIGTERM to the
    process, as `docker stop` or systemd do); returns the output, the seconds to the exit and the
    processes the run had started."""
    deadline = time.monotonic() + 600
    while not when():
        if run.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the run ended before the moment came:\n{run.communicate()[0][-3000:]}")
        time.sleep(0.05)
    children = psutil.Process(run.pid).children(recursive=True)
    sent = time.monotonic()
    if signum == signal.SIGINT:
        os.killpg(run.pid, signum)
    else:
        run.send_signal(signum)
    output, _ = run.communicate(timeout=120)
    return output, time.monotonic() - sent, children


class Stub:
    """The black box: parity-ish answers after ``LATENCY`` seconds; counts what it answered."""

    def __init__(self) -> None:
        self.answered: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, prompt: str) -> str:
        time.sleep(LATENCY)
        with self.lock:
            self.answered[prompt] += 1
        return "even" if len(last_input(prompt)) % 2 else "odd"


def _outcome(project: Path) -> dict:
    """What a run found: its instructions' scores, ranked, and the best on test."""
    test = json.loads((project / "metrics/test.json").read_text())
    return {"best": test["best_instruction"], "test": test["best_test_score"],
            "candidates": json.loads((project / "outputs/candidates.json").read_text())}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, embedded_model) -> dict:
    """The outcome of the same run, not stopped."""
    with stub_server(Stub()) as blackbox:
        project, env = _project(tmp_path_factory.mktemp("uninterrupted"), embedded_model, blackbox.base_url)
        run = _run(project, env)
        output, _ = run.communicate(timeout=900)
    assert run.returncode == 0, output[-3000:]
    return _outcome(project)


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "moment"), [
    (signal.SIGINT, "scoring"), (signal.SIGTERM, "generating"), (signal.SIGINT, "evaluating")])
def test_a_stopped_run_ends_within_seconds_leaves_nothing_running_and_resumes_without_paying_again(
        tmp_path, embedded_model, uninterrupted, signum, moment):
    answer = Stub()
    with stub_server(answer) as blackbox:
        project, env = _project(tmp_path, embedded_model, blackbox.base_url)
        study_db = project / "outputs" / "optuna.db"

        def asked_a_trial() -> bool:  # the search has started (a trial asked, its pool generated now)
            if not study_db.exists():
                return False
            try:
                return bool(optuna.get_all_study_summaries(f"sqlite:///{study_db}")[0].n_trials)
            except (IndexError, Exception):  # (the tables being created)
                return False

        moments = {
            "generating": lambda: asked_a_trial() and not blackbox.requests,
            "scoring": lambda: len(blackbox.requests) >= 4,
            "evaluating": lambda: (project / "metrics/optimize.json").exists()
            and len(blackbox.requests) > json.loads(
                (project / "metrics/optimize.json").read_text())["blackbox_calls"] + 2,
        }
        output, seconds, children = _stop(_run(project, env), signum, moments[moment])
        code = 128 + signum
        assert (code, "Traceback" in output) == (code, False), output[-3000:]
        assert seconds < WITHIN, f"{seconds:.1f} s\n{output[-3000:]}"
        assert output.strip().splitlines()[-1].startswith(
            f"stopped by {'Ctrl-C' if signum == signal.SIGINT else 'SIGTERM'}: the answered black-box calls "
            "are cached"), output[-2000:]
        assert children and not [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        mlflow = MlflowClient(f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")
        runs = [r for e in mlflow.search_experiments() for r in mlflow.search_runs([e.experiment_id])]
        assert [r.info.status for r in runs] == ["KILLED"]
        if moment != "evaluating":
            study = optuna.load_study(study_name=None, storage=f"sqlite:///{study_db}")
            assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))  # failed, asked again

        paid = set(answer.answered)
        again = _run(project, env)
        output, _ = again.communicate(timeout=900)
        assert again.returncode == 0, output[-3000:]
        assert not [p for p in paid if answer.answered[p] > 1]  # nothing answered before the stop was paid again
    assert _outcome(project) == uninterrupted  # the same instructions, scores and best as a run not stopped
