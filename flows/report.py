"""Print the outcome of the last run: the best instruction, its scores, where to look."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from flows.settings import HERE, Workspace
from tasks.files import read_json


def report(workspace: Workspace = HERE) -> str:
    """A few lines on the run whose results are in ``workspace``."""
    test, opt = read_json(workspace.metrics / "test.json"), read_json(workspace.metrics / "optimize.json")
    seconds = ", ".join(f"{k.removeprefix('seconds_')} {v:.0f}s" for k, v in opt.items() if k.startswith("seconds_"))
    reference = test.get("reference_instruction")
    lines = [
        (f"Best instruction for task {test['task']!r} ({test['metric']}, {opt['n_trials']} trials, "
         f"{opt['n_distinct_instructions']} distinct instructions):"),
        f"  {test['best_instruction']!r}",
        (f"  validation {test['best_val_score']:.3f} | test {test['best_test_score']:.3f} "
         f"| empty instruction on test {test['empty_instruction_test_score']:.3f}"
         + (f" | reference on test {test['reference_test_score']:.3f}" if reference else "")
         + f" (n={test['n_test']})"),
        *(f"  {line}" for line in in_words(test)),
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


def in_words(test: dict) -> list[str]:
    """What metrics/test.json says of the found instruction against no instruction and against the
    reference (if the run had one), and what to try when it beats neither for certain."""
    verdicts = [verdict(test["gain_over_empty"], test["gain_low"], test["gain_high"], "no instruction")]
    lines = [f"On {test['n_test']} held-out test examples it {verdicts[0][1]}."]
    if reference := test.get("reference_instruction"):
        verdicts.append(verdict(test["gain_over_reference"], test["reference_gain_low"], test["reference_gain_high"],
                                f"the reference instruction {reference!r}"))
        lines.append(f"It {verdicts[1][1]}.")
    return lines + ([] if all(beaten for beaten, _ in verdicts) else [WHAT_TO_TRY])


def verdict(gain: float, low: float, high: float, against: str) -> tuple[bool, str]:
    """Whether the found instruction beats ``against`` on the test examples (the 95% interval of
    the paired gain above 0), and a predicate saying so with the gain and its interval."""
    figures = f"{gain:+.3f}, 95% interval {low:+.3f} to {high:+.3f}"
    if low > 0:
        return True, f"beats {against} by {gain:.3f} ({figures})"
    if high < 0:
        return False, f"scores below {against} ({figures})"
    return False, f"is not shown better than {against} ({figures})"


def runs_page(workspace: Workspace, run_id: str, ui: str = "http://127.0.0.1:5000") -> str:
    """The UI's runs table of the run's experiment. MLflow 3's UI opens on GenAI traces unless
    asked for its machine-learning view (the experiment's kind tag is not enough there)."""
    experiment = MlflowClient(workspace.tracking_uri()).get_run(run_id).info.experiment_id
    return f"{ui}/#/experiments/{experiment}/runs?workflowType=machine_learning"


if __name__ == "__main__":
    print(report())
