"""Ctrl-C and SIGTERM through the real path: `instructzero run` in a subprocess (the embedded
generator, a stub black box with an API key), stopped while it generates, scores and evaluates,
and killed while it scores; then run again to the end."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from functools import partial
from pathlib import Path

import optuna
import psutil
import pytest
import yaml
from mlflow.tracking import MlflowClient

from components.blackbox import ResponseCache
from tests.conftest import ROOT, small_params
from tests.openai_stub import last_input, stub_server

LATENCY = 0.3  # seconds per black-box answer: a batch is in flight for a while
WITHIN = 10  # seconds from the signal to the exit, as the README promises
SECRET = "sk-test-DO-NOT-STORE-4242"
CALL = {"temperature": 0.0, "max_tokens": 32}  # the black box's call parameters (the cache key's)


SECOND_SIGNAL = """
import subprocess, sys, time
from flows.shutdown import stop_on_signals
with stop_on_signals():
    child = subprocess.Popen(["sleep", "300"])
    try:
        print(child.pid, flush=True)  # (in the try: the test's Ctrl-C may come at once)
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
    env.update(OPENAI_API_KEY=SECRET, PREFECT_HOME=str(tmp_path / "prefect"), PYTHONPATH=str(ROOT),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return project, env


def _run(project: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """`instructzero run` as a terminal would start it: its own process group."""
    return subprocess.Popen([sys.executable, "-m", "flows", "run"], cwd=project, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(run: subprocess.Popen[str], signum: int, when: Callable[[], bool]) -> tuple[str, float, list[psutil.Process]]:
    """Send ``signum`` once ``when()`` (SIGINT to the group, as Ctrl-C does; SIGTERM to the
    process, as `docker stop` or systemd do; SIGKILL to the group, a crash); returns the output,
    the seconds to the exit and the processes the run had started."""
    deadline = time.monotonic() + 600
    while not when():
        if run.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the run ended before the moment came:\n{run.communicate()[0][-3000:]}")
        time.sleep(0.05)
    children = psutil.Process(run.pid).children(recursive=True)
    sent = time.monotonic()
    if signum in (signal.SIGINT, signal.SIGKILL):
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


def _unsaved(project: Path, base_url: str, answered: Counter[str]) -> set[str]:
    """The prompts the black box answered that the run's cache does not hold (lost in flight)."""
    cache = ResponseCache(project / "outputs" / "responses.db")
    try:
        return {p for p in answered if cache.get(ResponseCache.key(base_url, "stub", p, CALL)) is None}
    finally:
        cache.close()


@pytest.mark.slow
def test_a_run_stopped_or_killed_ends_within_seconds_and_resumes_to_the_uninterrupted_result_paying_nothing_twice(
        tmp_path, embedded_model, servers):
    """Stopped by SIGTERM while it generates, by Ctrl-C while it scores, killed (SIGKILL, a crash)
    while it scores, stopped by Ctrl-C while it evaluates; then run to the end."""
    shared = {"PREFECT_API_URL": servers["PREFECT_API_URL"]}
    with stub_server(Stub()) as blackbox:  # the reference: the same run, not stopped
        reference, env = _project(tmp_path / "uninterrupted", embedded_model, blackbox.base_url)
        run = _run(reference, {**env, **shared})
        output, _ = run.communicate(timeout=900)
        assert run.returncode == 0, output[-3000:]
    uninterrupted = _outcome(reference)

    answer = Stub()
    with stub_server(answer) as blackbox:
        project, env = _project(tmp_path, embedded_model, blackbox.base_url)
        study_db, optimized = project / "outputs" / "optuna.db", project / "metrics" / "optimize.json"

        def trials() -> int:  # (read-only: the run creates the study's tables)
            try:
                with closing(sqlite3.connect(f"file:{study_db}?mode=ro", uri=True)) as db:
                    return db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
            except sqlite3.Error:  # (not created yet)
                return 0

        def paid() -> int:
            return sum(answer.answered.values())

        # (signal, moment, whether it has come: given the calls answered when the run started). The
        # first run starts its own temporary Prefect server, which SIGTERM (sent to the run alone)
        # must stop too; the others report to the session's.
        moments = [
            (signal.SIGTERM, "generating", lambda before: trials() > 0 and not blackbox.requests),
            (signal.SIGINT, "scoring", lambda before: len(blackbox.requests) >= 4 + before),
            (signal.SIGKILL, "scoring", lambda before: len(blackbox.requests) >= 4 + before),
            # (test calls paid: beyond the study's count and the answers the kill lost, paid again)
            (signal.SIGINT, "evaluating", lambda before: optimized.exists() and paid() > json.loads(
                optimized.read_text())["blackbox_calls"] + len(lost) + 2),
        ]
        lost: set[str] = set()
        for signum, moment, come in moments:
            before = len(blackbox.requests)
            own = signum == signal.SIGTERM
            output, seconds, children = _stop(_run(project, env if own else {**env, **shared}), signum,
                                              partial(come, before))
            if signum == signal.SIGKILL:  # nothing to see but what it left: resumed below
                deadline = time.monotonic() + 10
                while paid() < len(blackbox.requests) and time.monotonic() < deadline:
                    time.sleep(0.05)  # the calls in flight are answered (to no one) after the kill
                lost = _unsaved(project, blackbox.base_url, answer.answered)
                continue
            assert (moment, "Traceback" in output) == (moment, False), output[-3000:]
            assert seconds < WITHIN, f"{moment}: {seconds:.1f} s\n{output[-3000:]}"
            assert output.strip().splitlines()[-1].startswith(
                f"stopped by {'Ctrl-C' if signum == signal.SIGINT else 'SIGTERM'}: the answered black-box calls "
                "are cached"), output[-2000:]
            assert (bool(children) or not own) and not [
                p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
            mlflow = MlflowClient(f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")
            runs = [r for e in mlflow.search_experiments() for r in mlflow.search_runs([e.experiment_id])]
            assert [r.info.status for r in runs] == ["KILLED"], moment
            study = optuna.load_study(study_name=None, storage=f"sqlite:///{study_db}")
            assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,)), moment  # failed, asked again

        finish = _run(project, {**env, **shared})
        output, _ = finish.communicate(timeout=900)
        assert finish.returncode == 0, output[-3000:]
    # No call answered before a stop was paid again, but those the kill lost in flight.
    assert {p for p, n in answer.answered.items() if n > 1} <= lost
    validation = {json.loads(line)["input"] for line in (project / "data/prepared/validation.jsonl").open()}
    spent = json.loads(optimized.read_text())["blackbox_calls"]
    answered = sum(n for p, n in answer.answered.items() if last_input(p) in validation)
    assert answered - len(lost) <= spent <= answered  # all it paid, counted (but what the kill lost)
    assert _outcome(project) == uninterrupted  # the same instructions, scores and best as the run not stopped
    assert all(r["authorization"] == f"Bearer {SECRET}" for r in blackbox.requests)
    leaks = [p for p in project.rglob("*") if p.is_file() and not p.is_symlink() and SECRET.encode() in p.read_bytes()]
    assert not leaks, f"the API key was written to {leaks}"
