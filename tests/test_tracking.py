"""MLflow tracking on a real SQLite store."""

from mlflow.tracking import MlflowClient

from tasks.tracking import PRODUCTION, flatten, register_instruction


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
