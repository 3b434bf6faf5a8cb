"""MLflow tracking on a real SQLite store."""

import hashlib
import json
import os

import mlflow
from mlflow.tracking import MlflowClient

from components.blackbox import Evaluation
from components.data import Example
from tasks.tracking import (
    DATASET_CONTEXT,
    PRODUCTION,
    flatten,
    log_splits,
    log_test_evaluation,
    process_tracking_uri,
    register_instruction,
)


def test_flatten_names_params_by_section():
    assert flatten({"bo": {"seed": 0, "sampler": "tpe"}, "x": 1}) == {"bo.seed": "0", "bo.sampler": "tpe", "x": "1"}


def test_production_alias_moves_only_on_a_better_test_score(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    template = "Instruction: Say hi.\n\nInput: {{input}}\nOutput:"
    first = register_instruction.fn(uri, "demo", template, 0.40, {"mlflow_run_id": "r1"})
    worse = register_instruction.fn(uri, "demo", template.replace("hi", "yo"), 0.30, {"mlflow_run_id": "r2"})
    better = register_instruction.fn(uri, "demo", template.replace("hi", "hey"), 0.55, {"mlflow_run_id": "r3"})
    assert [first["production"], worse["production"], better["production"]] == [True, False, True]
    assert [first["version"], worse["version"], better["version"]] == [1, 2, 3]
    client = MlflowClient(uri, registry_uri=uri)
    production = client.get_prompt_version_by_alias("instructzero-demo", PRODUCTION)
    assert production.version == 3 and production.tags["mlflow_run_id"] == "r3"
    assert production.format(input="abc") == "Instruction: Say hey.\n\nInput: abc\nOutput:"


def test_the_splits_are_the_runs_datasets_digested_as_dvc_hashes_them_once_each(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    for split, n in (("exemplars", 2), ("validation", 3), ("test", 4)):
        rows = [json.dumps({"input": f"{split} {i}", "outputs": ["x"]}) for i in range(n)]
        (prepared / f"{split}.jsonl").write_text("\n".join(rows) + "\n")
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("e")).info.run_id
    for _ in range(2):  # a resumed run logs them again
        log_splits.fn(uri, run_id, prepared, "demo")
    inputs = client.get_run(run_id).inputs.dataset_inputs
    logged = {i.dataset.name: (i.dataset.digest, {t.key: t.value for t in i.tags}[DATASET_CONTEXT],
                               json.loads(i.dataset.profile)["num_rows"]) for i in inputs}
    md5 = {split: hashlib.md5((prepared / f"{split}.jsonl").read_bytes()).hexdigest()
           for split in ("exemplars", "validation", "test")}
    assert logged == {"demo-exemplars": (md5["exemplars"], "exemplars", 2),
                      "demo-validation": (md5["validation"], "validation", 3), "demo-test": (md5["test"], "test", 4)}
    assert len(inputs) == 3


def test_the_registered_prompts_test_scoring_is_a_genai_evaluation_on_the_run(tmp_path, capsys, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    client = MlflowClient(uri, registry_uri=uri)
    run_id = client.create_run(client.create_experiment("e")).info.run_id
    registered = register_instruction.fn(uri, "demo", "Say it.\n{{input}}", 0.5, {"mlflow_run_id": run_id})
    labels = ("yes", "no")  # (the hedge "yes or no" is refused where an example has them as its choices)
    examples = [Example("a", ("yes",), labels), Example("b", ("no", "nope")), Example("c", ("yes",), labels),
                Example("d", ("no",))]
    scored = Evaluation("Say it.", ("yes or no", "nope", "no", "yes"), (0.0, 1.0, 0.0, 0.0))
    test_file = tmp_path / "test.jsonl"
    test_file.write_text("".join(json.dumps(e.to_json()) + "\n" for e in examples))
    for _ in range(2):  # (evaluated again: the same dataset)
        log_test_evaluation.fn(uri, run_id, f"prompts:/{registered['prompt']}/{registered['version']}",
                               "contains", "demo", test_file, examples, scored)
    run = client.get_run(run_id)
    assert run.data.metrics["contains/mean"] == scored.mean == 0.25
    assert run.data.tags["mlflow.runType"] == "genai_evaluate"
    assert json.loads(run.data.tags["mlflow.linkedPrompts"]) == [{"name": "instructzero-demo", "version": "1"}]
    traces = client.search_traces(locations=[run.info.experiment_id], run_id=run_id)
    judged = {t.data.request: ({a.name: a.value for a in t.info.assessments}, t.data.response) for t in traces}
    assert judged == {json.dumps({"input": e.input}): (
        {"contains": s, "expected_response": list(e.outputs)} | ({"choices": list(e.choices)} if e.choices else {}),
        json.dumps(answer))
        for e, answer, s in zip(examples, scored.outputs, scored.scores, strict=True)}
    assert len(traces) == 8
    assert capsys.readouterr().out == ""  # (MLflow's summary and progress bar are not the run's output)
    assert not list((tmp_path / "cwd").iterdir())  # (no trace went to MLflow's default store, ./mlflow.db)
    name = f"demo-test-{hashlib.md5(test_file.read_bytes()).hexdigest()[:8]}"
    assert {i.dataset.name for i in run.inputs.dataset_inputs} == {name}
    with process_tracking_uri(uri):
        records = mlflow.genai.datasets.get_dataset(name=name).to_df()
    pairs = zip((r["input"] for r in records["inputs"]), (r["expected_response"] for r in records["expectations"]),
                strict=True)
    assert sorted(pairs) == [(e.input, list(e.outputs)) for e in examples]


def test_the_process_tracking_uri_is_put_back_with_the_users_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")  # (a server the user named)
    with process_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db"):
        assert mlflow.get_tracking_uri() == f"sqlite:///{tmp_path}/mlflow.db"
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://tracking.example:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    with process_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db"):
        pass
    assert "MLFLOW_TRACKING_URI" not in os.environ
