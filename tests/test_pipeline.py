"""The real path: Prefect flow runs, the local model server over HTTP, SQLite stores."""

from __future__ import annotations

import hashlib
import json
import sqlite3

import optuna
import psutil
import pytest
import yaml
from mlflow.tracking import MlflowClient

from components.builtin_tasks import REFERENCES
from flows.evaluate import evaluate_test
from flows.optimize import optimize
from flows.prepare import prepare
from flows.settings import HERE, load_params, study_name
from tasks.data import read_split
from tests.conftest import small_params

pytestmark = pytest.mark.slow


def _servers() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True)
            if any(part.endswith("transformers") for part in p.cmdline()) and "serve" in p.cmdline()]


def _cached_responses() -> int:
    with sqlite3.connect("outputs/responses.db") as db:
        return db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]


def test_pipeline_end_to_end_and_resume(workdir, prefect_api):
    prepare()
    assert [len((workdir / "data/prepared" / f"{s}.jsonl").read_text().splitlines())
            for s in ("exemplars", "validation", "test")] == [5, 5, 6]

    optimize()
    assert not _servers(), "the local model server outlived the flow"
    run_id = json.loads((workdir / "outputs/run.json").read_text())["mlflow_run_id"]
    study_name = json.loads((workdir / "outputs/run.json").read_text())["study"]
    study = optuna.load_study(study_name=study_name, storage="sqlite:///outputs/optuna.db")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 4
    assert all(len(t.user_attrs["scores"]) == 5 and len(t.user_attrs["outputs"]) == 5 for t in complete)
    trials = json.loads((workdir / "outputs/trials.json").read_text())
    distinct = {t["instruction"] for t in trials}
    responses = _cached_responses()
    assert responses == 5 * len(distinct), "identical instructions must be scored once"

    result = evaluate_test()
    assert result["best_instruction"] == json.loads((workdir / "outputs/candidates.json").read_text())[0]["instruction"]
    assert 0.0 <= result["best_test_score"] <= 1.0 and result["n_test"] == 6
    gain = result["best_test_score"] - result["empty_instruction_test_score"]  # per example, with an interval:
    assert result["gain_over_empty"] == pytest.approx(gain)
    assert result["gain_low"] <= result["gain_over_empty"] <= result["gain_high"]
    assert result["reference_instruction"] == REFERENCES["first_letter"]  # a built-in task's own reference
    gain = result["best_test_score"] - result["reference_test_score"]
    assert result["gain_over_reference"] == pytest.approx(gain)
    assert result["reference_gain_low"] <= result["gain_over_reference"] <= result["reference_gain_high"]
    assert json.loads((workdir / "metrics/test.json").read_text())["mlflow_run_id"] == run_id

    client = MlflowClient(HERE.tracking_uri())
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # the UI opens on runs
    assert run.data.params["bo.sampler"] == "instructzero" and run.data.params["data.task"] == "first_letter"
    assert run.data.tags["data_version"] and {"test_score", "gain_over_empty", "gain_low", "gain_over_reference",
                                                               "reference_test_score"} <= set(run.data.metrics)
    test_md5 = hashlib.md5((workdir / "data/prepared/test.jsonl").read_bytes()).hexdigest()
    assert sorted(i.dataset.name for i in run.inputs.dataset_inputs) == [  # the splits, once though resumed,
        "first_letter-exemplars", "first_letter-test", f"first_letter-test-{test_md5[:8]}",  # the evaluation's
        "first_letter-validation"]
    # The test scoring of the registered prompt, an MLflow GenAI evaluation: a trace per example, judged.
    assert run.data.metrics[f"{result['metric']}/mean"] == pytest.approx(result["best_test_score"])
    traces = client.search_traces(locations=[run.info.experiment_id], run_id=run_id)
    assert len(traces) == 6 and all(result["metric"] in {a.name for a in t.info.assessments} for t in traces)
    assert json.loads(run.data.tags["mlflow.linkedPrompts"]) == [{"name": "instructzero-first_letter", "version": "1"}]
    assert [m.step for m in client.get_metric_history(run_id, "val_score")] == [t.number for t in complete]
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"best_instruction.txt", "convergence.png", "trials", "candidates.json"} <= artifacts
    assert len(client.list_artifacts(run_id, "trials")) == 4
    assert result["registered"] == {"prompt": "instructzero-first_letter", "version": 1, "production": True}
    prompt = MlflowClient(HERE.tracking_uri(), registry_uri=HERE.tracking_uri()).get_prompt_version_by_alias(
        "instructzero-first_letter", "production")
    assert prompt.tags["mlflow_run_id"] == run_id and prompt.tags["instruction"] == result["best_instruction"]

    # More trials: the same study and MLflow run go on; old answers come from the cache.
    (workdir / "params.yaml").write_text(yaml.safe_dump(small_params(bo={"n_trials": 6, "n_instructions": 6})))
    before = _cached_responses()
    optimize()
    study = optuna.load_study(study_name=study_name, storage="sqlite:///outputs/optuna.db")
    assert len([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]) == 6
    assert json.loads((workdir / "outputs/run.json").read_text())["mlflow_run_id"] == run_id
    opt = json.loads((workdir / "metrics/optimize.json").read_text())
    new_distinct = {t["instruction"] for t in json.loads((workdir / "outputs/trials.json").read_text())}
    assert opt["blackbox_calls"] == 5 * len(new_distinct)  # the study's spending, across both runs
    assert _cached_responses() - before == opt["blackbox_calls_this_run"] == 5 * len(new_distinct - distinct)


def test_budget_stops_cleanly_and_the_best_so_far_is_tested(workdir, prefect_api, monkeypatch):
    from tests.openai_stub import last_input, stub_server

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with stub_server(lambda p: last_input(p)[0] if len(p) % 2 else "no") as server:
        (workdir / "params.yaml").write_text(yaml.safe_dump(small_params(
            blackbox={"base_url": server.base_url, "model": "stub"}, budget={"max_calls": 13},
            bo={"n_trials": 10, "n_instructions": 10, "batch_size": 4})))
        prepare()
        optimize()
        opt = json.loads((workdir / "metrics/optimize.json").read_text())
        # 5 validation calls an instruction: the batch that would pass 13 shrinks to the 2 that fit
        assert opt["stopped_by_budget"] == 1 and opt["blackbox_calls"] == 10 and opt["n_trials"] < 10
        assert len(server.requests) == opt["blackbox_calls"]
        result = evaluate_test()
    assert result["best_instruction"] == json.loads((workdir / "outputs/candidates.json").read_text())[0]["instruction"]


def test_the_budget_is_distinct_instructions_and_repeats_cost_no_call(workdir, prefect_api, monkeypatch):
    import torch

    from tests.openai_stub import stub_server

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    threads, seen = torch.get_num_threads(), set()
    with stub_server(lambda p: seen.add(torch.get_num_threads()) or "x") as server:  # (in this process)
        (workdir / "params.yaml").write_text(yaml.safe_dump(small_params(
            blackbox={"base_url": server.base_url, "model": "stub"}, bo={"n_instructions": 3, "n_trials": 40},
            scale={"threads": threads + 1})))
        prepare()
        optimize()
    assert seen == {threads + 1} and torch.get_num_threads() == threads  # scale.threads while it ran, then given back
    opt = json.loads((workdir / "metrics/optimize.json").read_text())
    trials = json.loads((workdir / "outputs/trials.json").read_text())
    assert opt["n_distinct_instructions"] == len({t["instruction"] for t in trials}) == 3
    assert opt["blackbox_calls"] == len(server.requests) == 3 * 5 and opt["n_trials"] == len(trials) >= 3


def test_a_z_that_writes_no_instruction_costs_no_call_and_is_no_candidate(workdir, prefect_api, monkeypatch):
    from tasks.search import PipelineOperations
    from tests.openai_stub import stub_server

    real = PipelineOperations.write

    def blanking(self, trials, z):  # the generator writes nothing for odd-numbered trials
        return ["" if t.number % 2 else v for t, v in zip(trials, real(self, trials, z), strict=True)]

    monkeypatch.setattr(PipelineOperations, "write", blanking)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with stub_server(lambda p: "x") as server:
        (workdir / "params.yaml").write_text(yaml.safe_dump(small_params(
            blackbox={"base_url": server.base_url, "model": "stub"}, bo={"n_instructions": 3, "n_trials": 40})))
        prepare()
        optimize()
    opt = json.loads((workdir / "metrics/optimize.json").read_text())
    trials = json.loads((workdir / "outputs/trials.json").read_text())
    empty = [t for t in trials if not t["instruction"]]
    assert empty and all(t["number"] % 2 and t["val_score"] == 0.0 and not t["outputs"] for t in empty)
    assert opt["n_empty_instructions"] == len(empty) and opt["n_distinct_instructions"] == 3
    assert opt["blackbox_calls"] == len(server.requests) == 3 * 5  # nothing paid for the empty ones
    candidates = json.loads((workdir / "outputs/candidates.json").read_text())
    assert len(candidates) == 3 and all(c["instruction"] for c in candidates)


def test_two_runs_in_their_own_workspaces_share_one_process(tmp_path, embedded_model, prefect_api, monkeypatch):
    """No step changes the working directory: two whole runs in two threads at once, each in its
    own workspace, write only there (and the current directory stays empty)."""
    from concurrent.futures import ThreadPoolExecutor

    from prefect import get_client

    from flows.settings import Workspace
    from tests.openai_stub import last_input, stub_server

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    (elsewhere := tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(elsewhere)
    with stub_server(lambda p: last_input(p)[0]) as server:
        spaces = []
        for task in ("first_letter", "parity"):
            (tmp_path / task).mkdir()
            spaces.append(Workspace(tmp_path / task))
            spaces[-1].params.write_text(yaml.safe_dump(small_params(
                data={"task": task}, generator={"model": str(embedded_model)},
                blackbox={"base_url": server.base_url, "model": "stub"})))

        def run(workspace: Workspace) -> dict:
            prepare(workspace)
            optimize(workspace)
            return evaluate_test(workspace)

        with get_client(sync_client=True) as client:
            before = client.count_flow_runs()
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(run, spaces))
        with get_client(sync_client=True) as client:
            assert client.count_flow_runs() >= before + 6  # both runs' three flows, on the session's server
    assert [r["task"] for r in results] == ["first_letter", "parity"]
    for workspace, result in zip(spaces, results, strict=True):
        assert json.loads((workspace.metrics / "test.json").read_text()) == result
        assert MlflowClient(workspace.tracking_uri()).get_run(result["mlflow_run_id"]).info.status == "FINISHED"
        trials = json.loads(workspace.trials.read_text())
        assert json.loads((workspace.metrics / "optimize.json").read_text())["n_trials"] == len(trials) >= 1
    assert list(elsewhere.iterdir()) == []


def test_a_pool_pays_first_for_new_instructions_that_name_an_answer_as_their_own_z_writes_them(
        workdir, prefect_api, monkeypatch):
    from components.generator import load_generator, write_instructions
    from components.pool import answer_labels, names_an_answer
    from components.projection import Projection
    from tasks.generator import make_prompt
    from tests.openai_stub import stub_server

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with stub_server(lambda p: "positive") as server:
        (workdir / "params.yaml").write_text(yaml.safe_dump(small_params(
            data={"task": "word_sentiment"}, blackbox={"base_url": server.base_url, "model": "stub"},
            bo={"pool": 16, "batch_size": 4, "n_instructions": 8, "n_trials": 12})))
        prepare()
        optimize()
    split = read_split(workdir / "data/prepared")[0]
    labels = answer_labels(split.exemplars)
    trials = json.loads((workdir / "outputs/trials.json").read_text())
    named = [t for t in trials if names_an_answer(t["instruction"], labels)]
    assert labels and trials[0] in named, "the pool's instructions naming an answer are scored first"
    params = load_params(workdir / "params.yaml")
    study = optuna.load_study(study_name=study_name(params), storage=f"sqlite:///{workdir / 'outputs/optuna.db'}")
    pooled = [t for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
              if "fixed_params" in t.system_attrs]  # (enqueued z)
    assert pooled[0].number == 0 and all(names_an_answer(t.user_attrs["instruction"], labels) for t in pooled)
    model, tokenizer = load_generator(params.generator.model)
    prompt = make_prompt.fn(tokenizer, params.generator, split.exemplars)
    again = write_instructions(model, tokenizer, prompt, Projection.load(workdir / "outputs/projection.pt"),
                        [t["z"] for t in named], params.generator, params.bo.seed)
    assert again == [t["instruction"] for t in named], "a trial records the z that wrote its instruction"
    assert len(server.requests) == 5 * len({t["instruction"] for t in trials})
