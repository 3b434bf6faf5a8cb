"""Every optimiser on the same tasks, splits, black box and budget, over several seeds.

Runs the real flows (prepare -> optimize -> evaluate) per task x seed x method in a temporary
project directory with its own (cold) response cache, all against one local model server.
Same budget = the same number of black-box validation calls (`--calls`, i.e. that many distinct
instructions x n_validation): a method whose candidates repeat gets more trials, up to
`--max-trials`. Prints a markdown table (mean test score +- std per task and method, black-box
calls, trials and wall time per method) and writes it with a plot under --out. Results are
saved after every run; started again with the same settings, it skips the runs already done.

    .venv/bin/python -m benchmarks.compare_optimizers --tasks sentiment first_word_letter singular_to_plural \
        antonyms negation --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml

import flows  # noqa: F401  (runtime defaults: offline hub, no telemetry)
from components.local_server import local_model_server
from flows.evaluate import evaluate_test
from flows.optimize import optimize
from flows.prepare import prepare
from flows.settings import EMBEDDED_MODEL

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "instruction-induction"
METHODS = ("instructzero", "random", "ape", "tpe", "gp")
LABELS = {"instructzero": "InstructZero", "random": "Uniform", "ape": "APE", "tpe": "TPE", "gp": "GPSampler"}


def run_one(workdir: Path, params: dict) -> dict:
    """One pipeline run in ``workdir``; returns its test and optimisation metrics."""
    cwd = Path.cwd()
    os.chdir(workdir)
    try:
        Path("params.yaml").write_text(yaml.safe_dump(params))
        start = time.perf_counter()
        prepare()
        optimize()
        test = evaluate_test()
        opt = json.loads(Path("metrics/optimize.json").read_text())
        return {"test": test["best_test_score"], "val": test["best_val_score"],
                "empty": test["empty_instruction_test_score"], "trials": opt["n_trials"],
                "calls": opt["n_distinct_instructions"] * params["data"]["n_validation"],
                "seconds": time.perf_counter() - start, "instruction": test["best_instruction"]}
    finally:
        os.chdir(cwd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", required=True, help="Instruction Induction task names")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--calls", type=int, default=160, help="black-box validation calls per run (the budget)")
    parser.add_argument("--max-trials", type=int, default=32, help="trials per run, at most")
    parser.add_argument("--metric", default="contains", help="'paper' for the paper's per-task metric")
    parser.add_argument("--n-test", type=int, default=40)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--report-only", action="store_true", help="tabulate the saved runs, run nothing")
    args = parser.parse_args()

    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    settings = {"calls": args.calls, "max_trials": args.max_trials, "metric": args.metric, "n_test": args.n_test}
    results = load(args.out, settings)
    if not args.report_only:
        run_all(args, base, settings, results)
    table = markdown(results, args)
    print(table)
    (args.out / "compare_optimizers.md").write_text(table + "\n")
    plot(results, args, args.out / "compare_optimizers.png")


def run_all(args: argparse.Namespace, base: dict, settings: dict, results: dict[tuple[str, str], list[dict]]) -> None:
    """Every task x seed x method not saved yet, against one local model server."""
    os.environ["OPENAI_API_KEY"] = "local"  # the local server checks no key
    with tempfile.TemporaryDirectory() as tmp, local_model_server(
        ROOT / EMBEDDED_MODEL, Path(tmp) / "server.log", cache_blocks=base["blackbox"]["server_cache_blocks"],
        block_size=base["blackbox"]["server_block_size"], max_batch_tokens=base["blackbox"]["server_max_batch_tokens"],
    ) as url:
        for seed in args.seeds:  # seed-major: a benchmark cut short still covers every task
            for task in args.tasks:
                for method in args.methods:
                    if any(r["seed"] == seed for r in results[task, method]):
                        continue
                    workdir = Path(tmp) / f"{task}-{seed}-{method}"
                    (workdir / "models").mkdir(parents=True)
                    (workdir / "outputs").mkdir()
                    (workdir / EMBEDDED_MODEL).symlink_to(ROOT / EMBEDDED_MODEL)
                    params = json.loads(json.dumps(base))
                    params["generator"]["model"] = str(ROOT / EMBEDDED_MODEL)
                    params["data"].update(source="instruction_induction", task=task, location=str(SHARED),
                                          metric=None if args.metric == "paper" else args.metric,
                                          seed=seed, n_test=args.n_test)
                    params["projection"]["seed"] = seed
                    params["bo"].update(sampler=method, seed=seed, n_trials=args.max_trials)
                    params["budget"]["max_calls"] = args.calls
                    params["blackbox"].update(base_url=url, model=str(ROOT / EMBEDDED_MODEL))
                    params["eval"]["top_k"] = 1
                    r = {"seed": seed, **run_one(workdir, params)}
                    results[task, method].append(r)
                    save(results, settings, args.out)  # after every run: an interrupted benchmark keeps its results
                    print(f"{task} seed={seed} {LABELS[method]}: test {r['test']:.3f} (val {r['val']:.3f}, "
                          f"empty {r['empty']:.3f}) {r['seconds']:.0f}s {r['instruction']!r}", flush=True)


def load(out: Path, settings: dict) -> defaultdict[tuple[str, str], list[dict]]:
    """Runs saved by an earlier invocation with the same settings (none otherwise)."""
    results: defaultdict[tuple[str, str], list[dict]] = defaultdict(list)
    path = out / "compare_optimizers.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    if saved.get("settings") == settings:
        for key, runs in saved["runs"].items():
            task, method = key.split("/")
            results[task, method] = runs
    return results


def save(results: dict[tuple[str, str], list[dict]], settings: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    runs = {f"{t}/{m}": rs for (t, m), rs in results.items()}
    (out / "compare_optimizers.json").write_text(json.dumps({"settings": settings, "runs": runs}, indent=2) + "\n")


def _mean_std(values: list[float]) -> str:
    if not values:
        return "n/a"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {std:.3f}" + (f" (n={len(values)})" if len(values) < 3 else "")


def markdown(results: dict[tuple[str, str], list[dict]], args: argparse.Namespace) -> str:
    header = "| task | " + " | ".join(LABELS[m] for m in args.methods) + " | empty instruction |"
    lines = [f"Test score (metric: {args.metric}; budget {args.calls} black-box validation calls, at most "
             f"{args.max_trials} trials; seeds {args.seeds}, mean ± std over seeds; n_test ≤ {args.n_test})",
             "", header,
             "|" + "---|" * (len(args.methods) + 2)]
    for task in args.tasks:
        empty = [r["empty"] for r in results.get((task, args.methods[0]), [])]
        lines.append(f"| {task} | " + " | ".join(_mean_std([r["test"] for r in results.get((task, m), [])])
                                                 for m in args.methods) + f" | {_mean_std(empty)} |")
    lines += ["", "| method | mean test score | black-box calls per run | trials per run | "
              "wall time per run (s) |", "|---|---|---|---|---|"]
    for m in args.methods:
        runs = [r for t in args.tasks for r in results.get((t, m), [])]
        if not runs:
            continue
        lines.append(f"| {LABELS[m]} | {statistics.mean(r['test'] for r in runs):.3f} | "
                     f"{statistics.mean(r['calls'] for r in runs):.0f} | "
                     f"{statistics.mean(r['trials'] for r in runs):.0f} | "
                     f"{statistics.mean(r['seconds'] for r in runs):.0f} |")
    return "\n".join(lines)


def plot(results: dict[tuple[str, str], list[dict]], args: argparse.Namespace, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(args.tasks)), 4))
    width = 0.8 / len(args.methods)
    for i, m in enumerate(args.methods):
        scores = [[r["test"] for r in results.get((t, m), [])] for t in args.tasks]
        means = [statistics.mean(s) if s else 0.0 for s in scores]
        stds = [statistics.stdev(s) if len(s) > 1 else 0.0 for s in scores]
        ax.bar([k + i * width for k in range(len(args.tasks))], means, width, yerr=stds, label=LABELS[m], capsize=2)
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(args.tasks))], args.tasks, rotation=20)
    ax.set(ylabel="test score", title=f"Optimisers on the embedded default ({args.calls} black-box calls)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
