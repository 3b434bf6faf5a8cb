"""Kill the optimisation with SIGKILL mid-loop, run it again: it finishes with the same result
as an uninterrupted run, without asking the black box again for any answer it had received.
The black box is the project's OpenAI-compatible stub on 127.0.0.1 (a remote endpoint with an
API key), the generator the real embedded model, each run a real subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from components.blackbox import ResponseCache
from flows.prefect_api import shared_api
from tests.conftest import ROOT, small_params
from tests.openai_stub import last_input, stub_server

pytestmark = pytest.mark.slow
SECRET = "sk-test-DO-NOT-STORE-4242"


def _answer(prompt: str) -> str:
    """Deterministic, instruction-dependent answers, a little slow so a kill lands mid-run."""
    time.sleep(0.05)
    instruction = prompt.split("Instruction: ")[1].split("\n")[0]
    word = last_input(prompt)
    return word[0] if len(instruction) % 3 else f"The word is {word}."


def _project(path: Path, url: str, embedded_model: Path) -> Path:
    (path / "models").mkdir(parents=True)
    (path / "models" / embedded_model.name).symlink_to(embedded_model)
    params = small_params(bo={"n_trials": 12, "n_instructions": 12, "batch_size": 2, "n_startup_trials": 4},
                          blackbox={"base_url": url, "model": "stub"})
    (path / "params.yaml").write_text(yaml.safe_dump(params))
    return path


def _run(workdir: Path, stage: str) -> subprocess.Popen:
    env = {**os.environ, "OPENAI_API_KEY": SECRET, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", f"flows.{stage}"], cwd=workdir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def _finish(workdir: Path, stage: str) -> str:
    process = _run(workdir, stage)
    out = process.communicate(timeout=900)[0].decode()
    assert process.returncode == 0, out[-3000:]
    return out


def _result(workdir: Path) -> tuple[str, float]:
    best = json.loads((workdir / "outputs/candidates.json").read_text())[0]
    return best["instruction"], best["val_score"]


def test_sigkill_then_resume_pays_nothing_twice_and_keeps_the_key_off_disk(tmp_path, embedded_model, monkeypatch):
    with shared_api() as api, stub_server(_answer) as server:  # one Prefect server for every subprocess
        monkeypatch.setenv("PREFECT_API_URL", api)
        clean = _project(tmp_path / "clean", server.base_url, embedded_model)
        _finish(clean, "prepare")
        _finish(clean, "optimize")
        server.requests.clear()

        killed = _project(tmp_path / "killed", server.base_url, embedded_model)
        _finish(killed, "prepare")
        process = _run(killed, "optimize")
        deadline = time.monotonic() + 600
        while len(server.requests) < 12 and time.monotonic() < deadline:  # some trials scored
            assert process.poll() is None, process.communicate()[0].decode()[-3000:]
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        cache = ResponseCache(killed / "outputs/responses.db")
        params = {"temperature": 0.0, "max_tokens": 32}
        paid = {r["messages"][-1]["content"] for r in server.requests
                if cache.get(ResponseCache.key(server.base_url, "stub", r["messages"][-1]["content"], params))}
        assert paid, "the kill came before any answer was stored"
        before = len(server.requests)

        _finish(killed, "optimize")
        again = [r["messages"][-1]["content"] for r in server.requests[before:]]
        assert not paid & set(again), "an answer received before the kill was paid for again"
        assert _result(killed) == _result(clean)
        _finish(killed, "evaluate")

    assert all(r["authorization"] == f"Bearer {SECRET}" for r in server.requests)
    leaks = [p for p in killed.rglob("*") if p.is_file() and not p.is_symlink() and SECRET.encode() in p.read_bytes()]
    assert not leaks, f"the API key was written to {leaks}"
