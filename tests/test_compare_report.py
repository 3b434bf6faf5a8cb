"""The comparison benchmark's report (InstructZero's runs paired with another folder's) and the trials it keeps."""

import argparse
import json

import pytest

from benchmarks import tasks
from benchmarks.compare_optimizers import (
    against_markdown,
    arguments,
    keep_trials,
    load,
    load_against,
    save,
    task_metric,
)
from flows.settings import Workspace

SETTINGS = {"instructions": 20, "n_validation": 20, "max_trials": 200, "n_test": 40,
            "generator": {"temperature": 0.5, "max_new_tokens": 48}, "projection": {"scale": 1.0}}
BO = {"pool": 16, "lengthscale": 0.5}


def run(seed: int, test: float, metric: str = "paper") -> dict:
    return {"seed": seed, "test": test, "metric": metric}


def save_runs(path, settings: dict, runs: dict) -> None:
    path.mkdir()
    (path / "compare_optimizers.json").write_text(json.dumps({"settings": settings, "runs": runs}))


def test_against_pairs_each_task_and_seed_with_the_other_folders_runs(tmp_path):
    there = {**SETTINGS, "generator": {"temperature": 1.0, "max_new_tokens": 48}}
    save_runs(tmp_path / "t1", there, {
        "a/random": [run(0, 0.5), run(1, 0.2), run(2, 0.9)],  # seed 2: InstructZero has no run there
        "b/random": [run(0, 0.3, metric="contains")],  # scored another way: not paired
        "a/tpe": [run(0, 0.4)],
    })
    baselines, differ = load_against(tmp_path / "t1", SETTINGS, BO, {"a": "paper", "b": "paper"})
    assert differ == ["generator.temperature: 1.0 there, 0.5 here"]
    ours = {("a", "instructzero"): [run(0, 0.5), run(1, 0.4)], ("b", "instructzero"): [run(0, 0.1)]}
    args = argparse.Namespace(tasks=["a", "b"], against=tmp_path / "t1")
    rows = {line.split(" | ")[0]: line for line in against_markdown(ours, baselines, differ, args).splitlines()
            if line.startswith("| ") and "---" not in line}
    assert rows["| Uniform"] == "| Uniform | 2 | 0.350 | 0.450 | 1 / 1 / 0 | +0.100 (0.100) |"
    assert rows["| TPE"] == "| TPE | 1 | 0.400 | 0.500 | 1 / 0 / 0 | +0.100 (nan) |"
    assert "| APE" not in rows  # no run there


def test_against_names_the_knobs_its_instructzero_runs_had_otherwise(tmp_path):
    old = {"trust_region": None, "partial_credit": 0.0, "pool": 16}  # saved before the later knobs: their defaults
    save_runs(tmp_path / "t1", SETTINGS, {"a/instructzero": [{**run(0, 0.5), "knobs": old}],
                                          "b/instructzero": [{**run(0, 0.2), "knobs": {**old, "pool": 0}}]})
    _, differ = load_against(tmp_path / "t1", SETTINGS, {**BO, "lengthscale": 0.15}, {"a": "paper", "b": "paper"})
    assert differ == ["InstructZero's bo.pool: 0, 16 there, 16 here",
                      "InstructZero's bo.lengthscale: 0.5 there, 0.15 here"]


def test_against_a_folder_with_other_splits_is_refused_before_any_run(tmp_path):
    save_runs(tmp_path / "other", {**SETTINGS, "n_test": 30}, {})
    with pytest.raises(SystemExit, match=r"other/compare_optimizers.json.*n_test 30 \(here 40\)"):
        load_against(tmp_path / "other", SETTINGS, BO, {})
    with pytest.raises(SystemExit, match="no compare_optimizers.json"):
        load_against(tmp_path / "missing", SETTINGS, BO, {})


def test_saving_keeps_the_runs_loading_left_out_and_other_settings_are_refused(tmp_path):
    bo = {"pool": 16, "lengthscale": 0.5}
    kept_out = {"seed": 0, "test": 0.3, "metric": "paper", "knobs": {"pool": 0, "screen": 0}}  # not loaded
    before_share = {**kept_out, "knobs": {"pool": 16, "screen": 0}}  # saved before bo.pool_share: ran at 1.0
    screened = {**kept_out, "knobs": {"pool": 16, "screen": 5}}  # ran at a retired knob's other value: not loaded
    save_runs(tmp_path / "out", SETTINGS, {"a/random_pool": [kept_out, before_share, screened],
                                           "b/random": [run(0, 0.2, metric="contains")]})
    results = load(tmp_path / "out", SETTINGS, bo, {"a": "paper", "b": "paper"})
    assert results["a", "random_pool"] == [before_share] and results["b", "random"] == []
    assert load(tmp_path / "out", SETTINGS, {**bo, "pool": 8}, {"a": "paper"})["a", "random_pool"] == []
    results["a", "random_pool"].append({"seed": 1, "test": 0.4, "metric": "paper", "knobs": bo})
    save(results, SETTINGS, tmp_path / "out")
    runs = json.loads((tmp_path / "out" / "compare_optimizers.json").read_text())["runs"]
    assert [r["seed"] for r in runs["a/random_pool"]] == [0, 0, 0, 1] and runs["a/random_pool"][0] == kept_out
    assert runs["b/random"] == [run(0, 0.2, metric="contains")]
    with pytest.raises(SystemExit, match=r"out/compare_optimizers.json: its runs had other settings \(generator\)"):
        load(tmp_path / "out", {**SETTINGS, "generator": {"temperature": 1.0, "max_new_tokens": 48}}, bo, {})


def test_kept_trials_are_the_runs_own_under_the_outs_trials_folder(tmp_path):
    trials = Workspace(tmp_path / "run").trials
    trials.parent.mkdir(parents=True)
    trials.write_text(json.dumps([{"number": 0, "z": [0.5, -1.0], "instruction": "Say yes.", "val_score": 0.1}]))
    kept = keep_trials(tmp_path / "run", tmp_path / "out", "sentiment-4-gp")
    assert kept == tmp_path / "out" / "trials" / "sentiment-4-gp.json"
    assert json.loads(kept.read_text())[0]["z"] == [0.5, -1.0]


def test_runs_saved_with_a_retired_setting_count_only_at_the_value_the_pipeline_now_runs(tmp_path):
    old = {**SETTINGS, "generator": {**SETTINGS["generator"], "soft_prompt_position": "start"},
           "projection": {**SETTINGS["projection"], "kind": "linear", "mixture_atoms": 8}}
    save_runs(tmp_path / "old", old, {"a/random": [run(0, 0.5)]})
    assert load(tmp_path / "old", SETTINGS, BO, {"a": "paper"})["a", "random"] == [run(0, 0.5)]
    user = {**old, "generator": {**old["generator"], "soft_prompt_position": "user"}}
    save_runs(tmp_path / "user", user, {"a/random": [run(0, 0.5)]})
    with pytest.raises(SystemExit, match="other settings"):
        load(tmp_path / "user", SETTINGS, BO, {"a": "paper"})


def headroom_row(task: str, paper: tuple[float, float], contains: tuple[float, float]) -> dict:
    return {"task": task, "metric": "exact_match", "empty_paper": paper[0], "hand_paper": paper[1],
            "empty_contains": contains[0], "hand_contains": contains[1]}


def test_the_confirmation_set_is_the_unused_tasks_with_most_headroom_each_with_its_metric(monkeypatch):
    monkeypatch.setattr(tasks, "CONFIRMATION_SIZE", 2)
    rows = [headroom_row("floored", (0.0, 0.0), (0.05, 0.0)),  # no instruction scores: no headroom
            headroom_row("by_contains", (0.0, 0.0), (0.1, 0.6)),
            headroom_row("by_paper", (0.3, 0.1), (0.9, 0.9)),  # the paper's metric first, when it scores
            headroom_row("least", (0.2, 0.0), (0.9, 0.9)),  # has headroom, but two score higher
            headroom_row("navigate", (0.0, 0.9), (0.0, 0.9)),  # used for a choice
            headroom_row("parity", (0.0, 0.9), (0.0, 0.9))]  # built in, not from ../shared/data
    assert tasks.confirmation_tasks(rows) == {"by_contains": "contains", "by_paper": "exact_match"}


def test_the_committed_split_keeps_six_unused_tasks_with_headroom_and_the_benchmark_runs_them():
    rows = json.loads((tasks.RESULTS / "headroom.json").read_text())
    confirmation = tasks.confirmation_tasks(rows)
    assert len(confirmation) == 6 and not set(confirmation) & set(tasks.USED_FOR_CHOICES)
    assert all(tasks.headroom(r)[0] == confirmation[r["task"]] for r in rows if r["task"] in confirmation)
    written = (tasks.ROOT / "docs" / "README.md").read_text()
    assert all(f"`{t}`" in written for t in confirmation)  # the split as written down is the one the code runs
    args = arguments(["--confirmation", "--set", "generator.temperature=1.0"])
    assert args.tasks == list(confirmation) and args.metric == "paper" and args.overrides == [
        ("generator.temperature", "1.0")]
    assert {t for t in args.tasks if task_metric(t, args) == "contains"} == {
        t for t, m in confirmation.items() if m == "contains"}
