"""components/preflight.py: model folders, task files and the endpoint's key, checked offline."""

from __future__ import annotations

from pathlib import Path

from components.params import parse_params
from components.preflight import input_problems
from tests.conftest import small_params


def _params(**sections: dict):
    return parse_params(small_params(**sections), "p.yaml")


def test_the_default_passes_before_the_embedded_model_is_converted(tmp_path):
    assert input_problems(_params(), {}, Path("models/smollm2-135m-instruct")) == []


def test_a_model_folder_needs_a_config_and_weights(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    params = _params(generator={"model": str(folder)})
    assert "no config.json" in input_problems(params, {}, tmp_path / "embedded")[0]
    (folder / "config.json").write_text("{}")
    assert "holds no weights" in input_problems(params, {}, tmp_path / "embedded")[0]
    (folder / "model.safetensors").write_bytes(b"")
    assert input_problems(params, {}, tmp_path / "embedded") == []


def test_a_hub_id_needs_the_local_cache_unless_downloads_are_on(tmp_path):
    params = _params(generator={"model": "someone/not-cached-model"})
    assert "HF_HUB_OFFLINE" in input_problems(params, {}, tmp_path)[0]
    assert input_problems(params, {"HF_HUB_OFFLINE": "0"}, tmp_path) == []


def test_a_remote_endpoint_needs_its_key_and_every_problem_is_listed(tmp_path):
    params = _params(blackbox={"base_url": "https://api.example.com/v1", "model": "m"},
                     data={"task": "nope"})
    embedded = Path(params.generator.model)  # written by the model stage: may be missing
    problems = input_problems(params, {}, embedded)
    assert len(problems) == 2 and "OPENAI_API_KEY" in problems[1] and "'nope'" in problems[0]
    assert input_problems(params, {"OPENAI_API_KEY": "k"}, embedded) == [problems[0]]
