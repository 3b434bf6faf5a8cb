import os
from pathlib import Path

import pytest
import yaml

from components.errors import ConfigError
from components.params import Params, apply_overrides, parse_params
from flows.settings import PARAMS, Workspace, load_params, open_workspace, run_workspace
from tests.conftest import small_params

ROOT = Path(__file__).resolve().parents[1]


def _raw() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_repository_params_are_valid():
    params = parse_params(_raw(), "params.yaml")
    assert params.data.n_exemplars == 5 and params.data.n_validation == 20 and params.projection.intrinsic_dim == 10


def _keys(tree: dict, prefix: str = "") -> dict:
    """Dotted key -> value, down to the knobs (``budget.prices`` is one knob)."""
    return {k: v for key, value in tree.items() for k, v in
            (_keys(value, f"{prefix}{key}.") if isinstance(value, dict) and key != "prices"
             else {f"{prefix}{key}": value}).items()}


def test_params_yaml_shows_every_knob_at_the_schemas_default():
    """One source of defaults: a params.yaml without a key runs what the shipped one shows."""
    shipped, defaults = _keys(_raw()), _keys(Params().model_dump())
    assert sorted(shipped) == sorted(defaults), "params.yaml and the schema name different knobs"
    parsed = _keys(parse_params(_raw(), "params.yaml").model_dump())
    differ = {k: (parsed[k], defaults[k]) for k in defaults if parsed[k] != defaults[k]}
    assert not differ, f"params.yaml (first) and the schema's defaults (second) differ: {differ}"


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("bo", "n_trails", 3, r"bo.n_trails: Extra inputs are not permitted"),
        ("data", "n_validation", 0, r"data.n_validation: Input should be greater than or equal to 1 \(got 0\)"),
        ("bo", "sampler", "grid",
         r"bo.sampler: Input should be 'instructzero', 'botorch', 'gp', 'tpe', 'random' or 'ape'"),
        ("data", "metric", "bleu", r"data.metric must be one of"),
        ("projection", "scale", "big", r"projection.scale: Input should be a valid number"),
        ("bo", "pool", -1, r"bo.pool: Input should be greater than or equal to 0"),
        ("bo", "lengthscale", 0, r"bo.lengthscale: Input should be greater than 0"),
        ("bo", "screen", 5, r"bo.screen: Extra inputs are not permitted"),
        ("generator", "prompt", "no placeholder", r"generator.prompt must contain the placeholder \{exemplars\}"),
    ],
)
def test_bad_params_name_the_key(section, key, value, message):
    raw = _raw()
    raw[section][key] = value
    with pytest.raises(ConfigError, match=message) as info:
        parse_params(raw, "params.yaml")
    assert str(info.value).startswith("params.yaml: invalid parameters")


def test_unknown_section_and_remote_without_model():
    raw = _raw()
    raw["trainer"] = {}
    with pytest.raises(ConfigError, match="trainer: Extra inputs are not permitted"):
        parse_params(raw, "p.yaml")
    raw = _raw()
    raw["blackbox"]["base_url"] = "https://api.example.com/v1"
    with pytest.raises(ConfigError, match="blackbox.model is required"):
        parse_params(raw, "p.yaml")
    raw = _raw()
    raw["data"]["source"] = "pairs"
    with pytest.raises(ConfigError, match="data.location is required"):
        parse_params(raw, "p.yaml")


def test_command_line_values_read_as_yaml_unless_they_are_text():
    got = apply_overrides({"generator": {}}, {"generator.response_prefix": "Instruction: ", "bo.sampler": "[tpe",
                                              "bo.n_trials": "8", "budget.prices": "{m: [1, 2]}"})
    assert got["generator"]["response_prefix"] == "Instruction: " and got["bo"]["sampler"] == "[tpe"
    assert got["bo"]["n_trials"] == 8 and got["budget"]["prices"] == {"m": [1, 2]}
    assert apply_overrides(None, {"bo.n_trials": "8"}) is None  # parse_params names a file that is not a mapping


def test_a_run_happens_in_the_project_unless_given_overrides_or_a_workspace(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    PARAMS.write_text(yaml.safe_dump(small_params()))
    assert open_workspace(PARAMS, {}) == Workspace(params_file=PARAMS) and os.listdir() == ["params.yaml"]
    overrides = {"data.task": "parity"}
    run = open_workspace(PARAMS, overrides)
    assert run.root == Path("runs/parity") and load_params(run.params).data.task == "parity"
    assert run == run_workspace(load_params(PARAMS, overrides), PARAMS, overrides, None)  # what the CLI reports on
    own = open_workspace(PARAMS, {}, tmp_path / "own")
    assert own.params == tmp_path / "own" / "params.yaml" and load_params(own.params) == load_params(PARAMS)
