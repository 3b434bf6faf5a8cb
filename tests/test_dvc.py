"""`dvc repro` / `dvc exp` / `dvc plots` in a temporary git clone of this repository, reporting to
the session's Prefect server, with a stub black box (the local model server's path is
tests/test_pipeline.py's)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, small_params
from tests.openai_stub import last_input, stub_server

pytestmark = pytest.mark.slow


def _run(*cmd: str, cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _link(source: str, target: str) -> None:
    """A hard link (a copy across file systems)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


@pytest.fixture
def blackbox(monkeypatch) -> Iterator[str]:
    """A stub black box's base URL (answers: the input's first letter)."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with stub_server(lambda prompt: last_input(prompt)[0]) as server:
        yield server.base_url


def test_repro_reruns_only_what_changed_and_experiments_compare_optimizers(tmp_path, embedded_model, prefect_api,
                                                                            blackbox):
    clone = tmp_path / "repo"
    _run("git", "clone", "--quiet", str(ROOT), str(clone), cwd=tmp_path)
    shutil.copytree(embedded_model, clone / "models" / embedded_model.name, copy_function=_link)  # not converted again
    params = small_params(eval={"top_k": 2}, blackbox={"base_url": blackbox, "model": "stub"})
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run("git", "commit", "--quiet", "-am", "small params", cwd=clone)

    first = _run(sys.executable, "-m", "flows.prefect_api", "dvc", "repro", cwd=clone)  # as `make run` does
    assert all(f"Running stage '{s}'" in first for s in ("prepare", "optimize", "evaluate"))
    assert "Stage 'model' didn't change, skipping" in first  # the converted model is the one dvc.lock records
    assert 1 <= len(json.loads((clone / "metrics/test.json").read_text())["top"]) <= 2

    params = yaml.safe_load((clone / "params.yaml").read_text())
    params["eval"]["top_k"] = 1  # read by the evaluate stage only (optimize keeps its candidates)
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    second = _run("dvc", "repro", cwd=clone)
    assert "Running stage 'evaluate'" in second
    assert all(f"Stage '{s}' didn't change, skipping" in second for s in ("model", "prepare", "optimize")), second
    assert len(json.loads((clone / "metrics/test.json").read_text())["top"]) == 1
    _run("git", "commit", "--quiet", "-am", "top_k 1", cwd=clone)

    exp = _run("dvc", "exp", "run", "-S", "bo.sampler=random", "--name", "uniform", cwd=clone)
    assert "Running stage 'optimize'" in exp and "Stage 'prepare' didn't change, skipping" in exp
    rows = json.loads(_run("dvc", "exp", "show", "--json", cwd=clone))
    found = {}
    for commit in rows:
        for entry in [commit, *(e for x in commit.get("experiments") or [] for e in x["revs"])]:
            data = entry["data"]
            sampler = data["params"]["params.yaml"]["data"]["bo"]["sampler"]
            found[entry.get("name") or entry["rev"]] = (sampler, data["metrics"]["metrics/test.json"]["data"])
    assert found["uniform"][0] == "random" and "best_test_score" in found["uniform"][1]
    assert "instructzero" in {sampler for sampler, _ in found.values()}

    plots = json.loads(_run("dvc", "plots", "show", "--json", cwd=clone))["data"]
    points = plots["plots/convergence.json"][0]["content"]["data"]["values"]
    assert [p["trial"] for p in points] == [1, 2, 3, 4] and all("best_val_score" in p for p in points)


def test_a_changed_task_file_reruns_prepare_and_an_unchanged_one_does_not(tmp_path, prefect_api):
    clone = tmp_path / "repo"
    _run("git", "clone", "--quiet", str(ROOT), str(clone), cwd=tmp_path)
    rows = "".join(json.dumps({"input": f"word{i}", "output": f"w{i}"}) + "\n" for i in range(40))
    (clone / "task.jsonl").write_text(rows)
    params = small_params(data={"source": "pairs", "task": "mine", "location": "task.jsonl"})
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run("git", "add", "task.jsonl", "params.yaml", cwd=clone)
    _run("git", "commit", "--quiet", "-m", "my task", cwd=clone)

    def splits() -> str:
        return "".join((clone / "data/prepared" / f"{name}.jsonl").read_text()
                       for name in ("exemplars", "validation", "test"))

    out = _run("dvc", "repro", "prepare", cwd=clone)
    assert "Running stage 'prepare'" in out and "git add" not in out  # core.autostage: no advice to add files
    first, lock = splits(), (clone / "dvc.lock").read_text()
    with (clone / "task.jsonl").open("a") as f:
        f.write(json.dumps({"input": "word40", "output": "w40"}) + "\n")
    assert "Running stage 'prepare'" in _run("dvc", "repro", "prepare", cwd=clone)
    assert splits() != first and json.loads((clone / "data/source.json").read_text())["pool"] == 41
    assert (clone / "dvc.lock").read_text() != lock  # the data's hash is recorded
    assert "Stage 'prepare' didn't change, skipping" in _run("dvc", "repro", "prepare", cwd=clone)
