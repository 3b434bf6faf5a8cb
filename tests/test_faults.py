"""The whole pipeline against the fault-injecting server gives the clean run's result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from flows.evaluate import evaluate_test
from flows.optimize import optimize
from flows.prepare import prepare
from flows.settings import HERE
from tests.conftest import small_params
from tests.openai_stub import FAULTS, last_input, stub_server

pytestmark = pytest.mark.slow


def _answer(prompt: str) -> str:
    """Deterministic and instruction-dependent, so instructions score differently."""
    return last_input(prompt)[0] if len(prompt) % 3 else last_input(prompt)


def _pipeline(directory: Path, base_url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, dict]:
    directory.mkdir(exist_ok=True)
    monkeypatch.chdir(directory)
    (directory / "params.yaml").write_text(yaml.safe_dump(small_params(
        blackbox={"base_url": base_url, "model": "stub", "timeout": 1.0, "max_retries": 10, "backoff": 0.01},
        bo={"n_trials": 6, "n_instructions": 6})))
    prepare()
    optimize()
    result = evaluate_test()
    return result, MlflowClient(HERE.tracking_uri()).get_run(result["mlflow_run_id"]).data.metrics


def test_faults_are_absorbed_with_the_clean_runs_result(workdir, prefect_api, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    (workdir / "clean" / "models").mkdir(parents=True)
    (workdir / "faulty" / "models").mkdir(parents=True)
    for name in ("clean", "faulty"):
        (workdir / name / "models" / "smollm2-135m-instruct").symlink_to(workdir / "models" / "smollm2-135m-instruct")
    with stub_server(_answer) as server:
        clean, clean_metrics = _pipeline(workdir / "clean", server.base_url, monkeypatch)
    faults = dict.fromkeys(FAULTS, 0.05)
    with stub_server(_answer, faults=faults, seed=7, hang_seconds=1.5, retry_after=0.05) as server:
        faulty, metrics = _pipeline(workdir / "faulty", server.base_url, monkeypatch)
    for key in ("best_instruction", "best_val_score", "best_test_score", "empty_instruction_test_score", "top"):
        assert faulty[key] == clean[key], key
    injected = sum(server.injected.values())
    assert injected > 0 and set(server.injected) == set(FAULTS)
    assert metrics["blackbox_faults"] + metrics["test_blackbox_faults"] == injected  # every fault shows in MLflow
    assert metrics["blackbox_failed"] == metrics["test_blackbox_failed"] == 0
    assert clean_metrics["blackbox_faults"] == 0
    trials = json.loads((workdir / "faulty" / "outputs/trials.json").read_text())
    assert trials == json.loads((workdir / "clean" / "outputs/trials.json").read_text())


def test_failed_calls_fail_their_trial_which_is_asked_again(workdir, prefect_api, monkeypatch):
    import optuna

    from components.errors import BlackBoxError

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with stub_server(_answer, faults={"server_error": 0.1}, seed=2) as server:
        (workdir / "params.yaml").write_text(yaml.safe_dump(small_params(
            blackbox={"base_url": server.base_url, "model": "stub", "max_retries": 0},
            bo={"n_trials": 6, "n_instructions": 6})))
        prepare()
        optimize()
        run = json.loads((workdir / "outputs/run.json").read_text())
        study = optuna.load_study(study_name=run["study"], storage="sqlite:///outputs/optuna.db")
        failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
        retries = [t for t in study.trials if "retry_of" in t.user_attrs]
        assert failed and {t.user_attrs["retry_of"] for t in retries} <= {t.number for t in failed}
        assert all(t.params == study.trials[t.user_attrs["retry_of"]].params for t in retries)
        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        assert len(complete) == 6 and all(len(t.user_attrs["scores"]) == 5 for t in complete)
        metrics = MlflowClient(HERE.tracking_uri()).get_run(run["mlflow_run_id"]).data.metrics
        assert metrics["blackbox_failed"] == server.injected["server_error"] > 0

        server.faults["server_error"] = 0.5  # the test set: failed calls stop the stage, nothing is written
        with pytest.raises(BlackBoxError, match="test calls that failed after 0 retries"):
            evaluate_test()
        assert not (workdir / "metrics/test.json").exists()
        failed_run = MlflowClient(HERE.tracking_uri()).get_run(run["mlflow_run_id"])
        assert failed_run.info.status == "FAILED" and "test calls that failed" in failed_run.data.tags["error"]
        sent = len(server.requests)
        server.faults.clear()
        result = evaluate_test()  # run again: only the failed calls are sent
    assert (workdir / "metrics/test.json").exists() and result["n_test"] == 6
    assert MlflowClient(HERE.tracking_uri()).get_run(run["mlflow_run_id"]).info.status == "FINISHED"
    assert 0 < len(server.requests) - sent < 6 * len({c["instruction"] for c in result["top"]} | {""})
