"""Print the outcome of the last run: the best instruction, its scores, where to look."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from flows.settings import HERE, Workspace
from tasks.files import read_json


def report(workspace: Workspace = HERE) -> str:
    """A few lines on the run whose results are in ``workspace``."""
    test, opt = read_json(workspace.metrics / "test.json"), read_json(workspace.metrics / "optimize.json")
    seconds = ", ".join(f"{k.removeprefix('seconds_')} {v:.0f}s" for k, v in opt.items() if k.startswith("seconds_"))
    lines = [
        (f"Best instruction for task {test['task']!r} ({test['metric']}, {opt['n_trials']} trials, "
         f"{opt['n_distinct_instructions']} distinct instructions):"),
        f"  {test['best_instruction']!r}",
        (f"  validation {test['best_val_score']:.3f} | test {test['best_test_score']:.3f} "
         f"| empty instruction on test {test['empty_instruction_test_score']:.3f} (n={test['n_test']})"),
        *(f"  {line}" for line in verdict(test["gain_over_empty"], test["gain_low"], test["gain_high"],
                                           test["n_test"]).splitlines()),
        "Top candidates (validation -> test):",
        *(f"  {r['val_score']:.3f} -> {r['test_score']:.3f}  {r['instruction']!r}" for r in test["top"]),
        (f"Time: {seconds}; black-box calls: this run {opt['blackbox_calls_this_run']}, the study "
         f"{opt['blackbox_calls']} (+{opt['blackbox_cache_hits']} cached)"),
        f"Metrics: {workspace.metrics}/test.json, {workspace.metrics}/optimize.json; "
        f"plot: {workspace.plots / 'convergence.png'}",
        f"MLflow UI: .venv/bin/mlflow ui --backend-store-uri {workspace.tracking_uri()}, then the runs table:",
        f"  {runs_page(workspace, test['mlflow_run_id'])}  (run {test['mlflow_run_id'][:8]})",
    ]
    return "\n".join(lines)


WHAT_TO_TRY = ("Try more instructions (bo.n_instructions), a larger generator (generator.model), or another "
               "metric (data.metric).")


def verdict(gain: float, low: float, high: float, n: int) -> str:
    """In words: whether the found instruction beats no instruction on the ``n`` test examples,
    by how much, with the 95% interval of the gain; what to try when it does not."""
    figures = f"{gain:+.3f}, 95% interval {low:+.3f} to {high:+.3f}"
    if low > 0:
        return f"On {n} held-out test examples it beats no instruction by {gain:.3f} ({figures})."
    if high < 0:
        return f"On {n} held-out test examples it scores below no instruction ({figures}).\n{WHAT_TO_TRY}"
    return f"On {n} held-out test examples it is not shown better than no instruction ({figures}).\n{WHAT_TO_TRY}"


def runs_page(workspace: Workspace, run_id: str, ui: str = "http://127.0.0.1:5000") -> str:
    """The UI's runs table of the run's experiment. MLflow 3's UI opens on GenAI traces unless
    asked for its machine-learning view (the experiment's kind tag is not enough there)."""
    experiment = MlflowClient(workspace.tracking_uri()).get_run(run_id).info.experiment_id
    return f"{ui}/#/experiments/{experiment}/runs?workflowType=machine_learning"


if __name__ == "__main__":
    print(report())
