"""Print the outcome of the last run: the best instruction, its scores, where to look."""

from __future__ import annotations

from flows.settings import METRICS, TRACKING_URI
from tasks.files import read_json


def report() -> str:
    test, opt = read_json(METRICS / "test.json"), read_json(METRICS / "optimize.json")
    seconds = ", ".join(f"{k.removeprefix('seconds_')} {v:.0f}s" for k, v in opt.items() if k.startswith("seconds_"))
    lines = [
        (f"Best instruction for task {test['task']!r} ({test['metric']}, {opt['n_trials']} trials, "
         f"{opt['n_distinct_instructions']} distinct instructions):"),
        f"  {test['best_instruction']!r}",
        (f"  validation {test['best_val_score']:.3f} | test {test['best_test_score']:.3f} "
         f"| empty instruction on test {test['empty_instruction_test_score']:.3f} (n={test['n_test']})"),
        "Top candidates (validation -> test):",
        *(f"  {r['val_score']:.3f} -> {r['test_score']:.3f}  {r['instruction']!r}" for r in test["top"]),
        f"Time: {seconds}; black-box calls {opt['blackbox_calls']} (+{opt['blackbox_cache_hits']} cached)",
        f"Metrics: {METRICS}/test.json, {METRICS}/optimize.json; plot: plots/convergence.png",
        f"MLflow UI: .venv/bin/mlflow ui --backend-store-uri {TRACKING_URI}  (run {test['mlflow_run_id']})",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(report())
