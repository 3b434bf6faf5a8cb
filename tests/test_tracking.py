"""MLflow tracking on a real SQLite store."""

import hashlib
import json

from mlflow.tracking import MlflowClient

from tasks.tracking import DATASET_CONTEXT, PRODUCTION, flatten, log_splits, register_instruction


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
