"""A shared database (PostgreSQL) for the study and the response cache: several caches on one
database share answers (insert-if-absent), and a pipeline run keeps its study there, with the
SQLite copy that dvc.yaml tracks."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import optuna
import pytest
import yaml

from components.blackbox import ResponseCache
from components.study import open_study
from flows.evaluate import evaluate_test
from flows.optimize import optimize
from flows.prepare import prepare
from flows.settings import DATABASE_URL
from tests.conftest import small_params
from tests.openai_stub import stub_server
from tests.services import new_database

pytestmark = pytest.mark.slow  # a real PostgreSQL server
SECRET = "pg-pw-DO-NOT-STORE-7171"


def test_two_workers_caches_on_one_database_share_answers(postgres_url):
    first, second = ResponseCache(postgres_url), ResponseCache(postgres_url)
    try:
        key = ResponseCache.key("http://h/v1", "m", "prompt", {"t": 0})
        assert first.get(key) is None
        first.put(key, "answer")
        second.put(key, "a later answer")  # already there: the first one stays
        assert second.get(key) == "answer" and first.get(key) == "answer"
    finally:
        first.close()
        second.close()


def test_workers_starting_together_on_a_new_database_all_open_the_cache_and_the_study(postgres_url):
    url = new_database(postgres_url, "race")
    start = threading.Barrier(6)

    def open_both(_: int) -> int:
        start.wait()  # every process creates the tables at the same moment
        ResponseCache(url).close()
        return len(open_study(url, "s", "random", 2, 0, shared=True).trials)

    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(open_both, range(6))) == [0] * 6


def test_a_run_keeps_its_study_and_answers_in_the_database_and_never_its_password(
        workdir, prefect_api, postgres_url, monkeypatch, capfd):
    url = postgres_url.replace("postgres@", f"postgres:{SECRET}@")  # trust auth: any password connects
    monkeypatch.setenv(DATABASE_URL, url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with stub_server(lambda prompt: "f") as server:
        (workdir / "params.yaml").write_text(yaml.safe_dump(small_params(
            blackbox={"base_url": server.base_url, "model": "stub"})))
        prepare()
        optimize()
        result = evaluate_test()
    study_name = json.loads((workdir / "outputs/run.json").read_text())["study"]
    shared = optuna.load_study(study_name=study_name, storage=url)
    copy = optuna.load_study(study_name=study_name, storage="sqlite:///outputs/optuna.db")
    assert [t.params for t in copy.trials] == [t.params for t in shared.trials] and len(shared.trials) >= 4
    assert not (workdir / "outputs/responses.db").exists()  # the answers went to the database
    cache = ResponseCache(postgres_url)
    try:
        prompts = {r["messages"][0]["content"] for r in server.requests}
        assert all(cache.get(ResponseCache.key(server.base_url, "stub", p, {"temperature": 0.0, "max_tokens": 32}))
                   for p in prompts)
    finally:
        cache.close()
    assert result["n_test"] == 6
    out, err = capfd.readouterr()
    assert SECRET not in out + err
    for path in workdir.rglob("*"):  # outputs, metrics, MLflow's database and artifacts
        if path.is_file() and not path.is_symlink():
            assert SECRET.encode() not in path.read_bytes(), path


def test_the_preflight_connects_to_the_database_and_names_what_is_wrong(postgres_url):
    from flows.preflight import database_problem

    assert database_problem(postgres_url) is None
    missing = postgres_url.replace("postgres@", f"postgres:{SECRET}@").rsplit("/", 1)[0] + "/no_such_db"
    problem = database_problem(missing)
    assert problem is not None and DATABASE_URL in problem and "no_such_db" in problem
    assert "does not exist" in problem and SECRET not in problem


def test_a_database_gone_mid_run_ends_it_with_one_message_and_no_traceback(tmp_path, embedded_model, servers):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    import psutil

    from tests.conftest import ROOT
    from tests.services import temporary_postgres

    def slow(prompt: str) -> str:
        time.sleep(0.3)
        return "f"

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / embedded_model.name).symlink_to(embedded_model)
    with temporary_postgres() as url, stub_server(slow) as server:
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(small_params(
            blackbox={"base_url": server.base_url, "model": "stub", "concurrency": 2})))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "MLFLOW_TRACKING"))}
        env.update({DATABASE_URL: url, "OPENAI_API_KEY": "sk-test", "PYTHONPATH": str(ROOT),
                    "PREFECT_API_URL": servers["PREFECT_API_URL"],
                    "PREFECT_HOME": str(tmp_path / "prefect"),
                    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"})
        run = subprocess.Popen([sys.executable, "-m", "flows", "run"], cwd=tmp_path, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 600
        while len(server.requests) < 3:  # scoring
            assert run.poll() is None and time.monotonic() < deadline, run.communicate()[0][-3000:]
            time.sleep(0.05)
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        [postmaster] = [p for p in psutil.process_iter(["name", "cmdline"])
                        if p.info["name"] == "postgres" and str(port) in " ".join(p.info["cmdline"] or [])
                        and "-p" in (p.info["cmdline"] or [])]
        postmaster.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown: every client is cut off
        output, _ = run.communicate(timeout=300)
    assert run.returncode == 1, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert output.strip().splitlines()[-1].startswith("error: the database failed mid-run ("), output[-2000:]
