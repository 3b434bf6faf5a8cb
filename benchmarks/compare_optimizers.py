"""Every optimiser on the same tasks, splits, black box and budget, over several seeds.

Runs the real flows (prepare -> optimize -> evaluate) per task x seed x method in a temporary
project directory with its own (cold) response cache, all against one local model server.
Same budget = the same number of distinct instructions scored on the validation set
(`--instructions`, i.e. that many x n_validation black-box calls, also set as a hard limit): a
method whose candidates repeat asks more trials (a repeat costs no call), up to `--max-trials`.
The baselines run as the paper defines them (no pool), except ``random_pool``: Uniform with
params.yaml's ``bo.pool``, without the GP. Two
references are scored the same way on each run's test split: the empty instruction and one
hand-written instruction per task (benchmarks/tasks.py). ``gepa`` and ``metaprompt`` are MLflow's
own optimisers run through ``mlflow.genai.optimize_prompts`` (benchmarks/mlflow_methods.py) on the
same split, black box and metric, the served embedded model (InstructZero's generator) as their
reflection LLM: GEPA with the same budget of validation calls, MetaPrompt in its one pass (two
evaluations of the validation split); their reflection calls are counted apart. Prints a markdown table (test score
mean +- std per task and method, paired (task, seed) wins/ties/losses of InstructZero against
each method, distinct instructions, calls, trials and wall time per run) and writes it with a
plot under --out. Results are saved after every run; started again with the same settings (these
and params.yaml's generator and projection sections), it skips the runs already done with the
method's own knobs as they are now (``method_knobs``: a changed one runs that method again).
``--against DIR`` adds a table pairing InstructZero's runs here with every method's runs saved in
another --out (run with the same budget and splits, e.g. at another generator setting), and names
the settings and InstructZero's knobs in which the two differ. ``--keep-trials`` keeps each new
run's trials too (what the summaries cannot answer: where in z a run met its hits). ``--confirmation``
runs the task split's confirmation set (docs/README.md), each task with the metric its headroom
says; ``--set KEY=VALUE`` changes params.yaml for every run (e.g. the generator's temperature).

    .venv/bin/python -m benchmarks.compare_optimizers --tasks sentiment negation word_sentiment \
        first_word_letter antonyms --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

import flows  # noqa: F401  (runtime defaults: offline hub, no telemetry)
from benchmarks.mlflow_methods import (
    MLFLOW_METHODS,
    cold_blackbox,
    mlflow_optimizer,
    optimize_with_mlflow,
    records,
    score_prompt,
)
from benchmarks.tasks import (
    BIGBENCH,
    HANDWRITTEN,
    INDUCTION,
    RESULTS,
    ROOT,
    confirmation_tasks,
    embedded_model,
    local_blackbox,
)
from components.blackbox import BlackBox, evaluate_instructions
from components.builtin_tasks import BUILTIN_TASKS
from components.params import BlackBoxParams, apply_overrides, override_argument
from flows.evaluate import evaluate_test
from flows.optimize import optimize
from flows.prepare import prepare
from flows.settings import Workspace
from tasks.data import read_split
from tasks.files import read_json, write_json

METHODS = ("instructzero", "random", "ape", "tpe", "gp", "random_pool", *MLFLOW_METHODS)
LABELS = {"instructzero": "InstructZero", "random": "Uniform", "ape": "APE", "tpe": "TPE", "gp": "GPSampler",
          "random_pool": "Uniform + pool", "gepa": "GEPA (MLflow)", "metaprompt": "MetaPrompt (MLflow)"}
# Knobs retired at tag experiments-2026-12, at the values the pipeline now runs: a saved run counts
# only if it ran at these.
RETIRED = {"trust_region": None, "partial_credit": 0.0, "pool_share": 1.0, "screen": 0, "flat": "sobol"}
KNOB_DEFAULTS = {"lengthscale": 0.5, **RETIRED}  # added later: runs saved before ran at these
RETIRED_SETTINGS = {"generator": {"soft_prompt_position": "start"}, "projection": {"kind": "linear"}}  # likewise
SAVED = "compare_optimizers.json"  # the runs, under --out
POOLED = {"random_pool": "random"}  # baselines run with params.yaml's bo.pool (without the GP)


def saved_knob(run: dict, knob: str) -> Any:
    """The value of ``knob`` a saved run ran at (a run saved before the knob existed: its default)."""
    return (run.get("knobs") or {}).get(knob, KNOB_DEFAULTS.get(knob))


def method_knobs(method: str, bo: dict) -> dict:
    """The params.yaml ``bo`` knobs that only ``method`` reads: its saved runs count while they match."""
    if method == "instructzero":
        return {**RETIRED, "pool": bo["pool"], "lengthscale": bo["lengthscale"]}
    return {"pool": bo["pool"], "pool_share": RETIRED["pool_share"], "screen": RETIRED["screen"]} \
        if method in POOLED else {}


def method_bo(method: str, bo: dict) -> dict:
    """``method``'s changes to params.yaml's ``bo``: the baselines as the paper defines them (no
    pool), a pooled one with params.yaml's pool; MLflow's optimisers read no ``bo`` knob."""
    if method == "instructzero":
        return {"sampler": method}
    if method in MLFLOW_METHODS:
        return {}
    return {"sampler": POOLED.get(method, method), "pool": bo["pool"] if method in POOLED else 0}


def data_params(task: str) -> dict:
    """Where the flows find ``task``: built in, Instruction Induction or BIG-bench."""
    if task in BUILTIN_TASKS:
        return {"source": "builtin", "task": task, "location": None}
    if (BIGBENCH / task / "task.json").exists():
        return {"source": "bigbench", "task": task, "location": str(BIGBENCH)}
    return {"source": "instruction_induction", "task": task, "location": str(INDUCTION)}


def run_one(workdir: Path, params: dict, blackbox: BlackBox) -> dict:
    """One pipeline run in ``workdir``; returns its test and optimisation metrics, and the
    hand-written instruction's test score on the same split."""
    workspace = Workspace(workdir)
    workspace.params.write_text(yaml.safe_dump(params))
    start = time.perf_counter()
    prepare(workspace)
    optimize(workspace)
    test = evaluate_test(workspace)
    seconds = time.perf_counter() - start
    opt = read_json(workspace.metrics / "optimize.json")
    split, metric = read_split(workspace.prepared)
    hand = evaluate_instructions(blackbox, [HANDWRITTEN[params["data"]["task"]]], split.test, metric).evaluations[0]
    return {"test": test["best_test_score"], "val": test["best_val_score"],
            "empty": test["empty_instruction_test_score"], "hand": hand.mean if hand else None,
            "trials": opt["n_trials"], "distinct": opt["n_distinct_instructions"],
            "unwritten": opt["n_empty_instructions"],
            "calls": opt["blackbox_calls"], "seconds": seconds, "instruction": test["best_instruction"]}


def run_mlflow_one(workdir: Path, params: dict, blackbox: BlackBox, method: str) -> dict:
    """One run of MLflow's optimiser ``method`` (benchmarks.mlflow_methods) on the split the
    pipeline prepares in ``workdir``, its reflection LLM the served model, its budget
    params.yaml's ``budget.max_calls``; the same metrics as :func:`run_one`, and its reflection
    calls."""
    workspace = Workspace(workdir)
    workspace.params.write_text(yaml.safe_dump(params))
    start = time.perf_counter()
    prepare(workspace)
    split, metric = read_split(workspace.prepared)
    box = cold_blackbox(blackbox, workdir / "cache.db")
    optimizer = mlflow_optimizer(method, f"openai:/{blackbox.model}", params["budget"]["max_calls"],
                                 params["bo"]["seed"])
    result, predict, reflections = optimize_with_mlflow(workdir, params["data"]["task"], optimizer, box,
                                                        records(split.validation), metric)
    [prompt] = result.optimized_prompts
    test = score_prompt(box, prompt, split.test, metric)
    seconds = time.perf_counter() - start
    empty, hand = evaluate_instructions(blackbox, ["", HANDWRITTEN[params["data"]["task"]]], split.test,
                                        metric).evaluations
    return {"test": test, "val": result.final_eval_score if result.final_eval_score is not None
            else result.initial_eval_score, "empty": empty.mean if empty else None,
            "hand": hand.mean if hand else None, "trials": len(predict.templates),
            "distinct": len(predict.templates), "unwritten": 0, "calls": predict.calls,
            "reflections": reflections.calls, "reflection_tokens": reflections.tokens,
            "reflection_answers": reflections.answers, "seconds": seconds, "instruction": str(prompt.template)}


def keep_trials(workdir: Path, out: Path, name: str) -> Path:
    """The trials of the run in ``workdir`` (z, instruction, score, answers) copied to
    ``out``/trials/``name``.json."""
    keep = out / "trials" / f"{name}.json"
    keep.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Workspace(workdir).trials, keep)
    return keep


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, ``--confirmation`` turned into its tasks and metrics."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    tasks = parser.add_mutually_exclusive_group(required=True)
    tasks.add_argument("--tasks", nargs="+", help="task names (benchmarks/tasks.py)")
    tasks.add_argument("--confirmation", action="store_true",
                       help="the confirmation set's tasks, each with the metric its headroom says "
                            "(benchmarks/tasks.py: confirmation_tasks; sets --tasks, --metric paper and --contains)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--instructions", type=int, default=20,
                        help="distinct instructions scored per run (the budget: x n_validation calls)")
    parser.add_argument("--n-validation", type=int, default=20)
    parser.add_argument("--max-trials", type=int, default=200, help="trials per run, at most (a safety cap)")
    parser.add_argument("--metric", default="paper", help="'paper' for the paper's per-task metric, or one metric")
    parser.add_argument("--contains", nargs="*", default=[], metavar="TASK",
                        help="tasks scored with contains (on the answer's first sentence) instead of --metric")
    parser.add_argument("--n-test", type=int, default=40)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--report-only", action="store_true", help="tabulate the saved runs, run nothing")
    parser.add_argument("--report", default="compare_optimizers", metavar="NAME",
                        help="the table and plot go to --out/NAME.md and NAME.png")
    parser.add_argument("--against", type=Path, metavar="DIR",
                        help="also pair InstructZero's runs here with every method's runs saved in DIR (another "
                             "--out, e.g. run at another generator setting; same budget and splits)")
    parser.add_argument("--keep-trials", action="store_true",
                        help="also keep each new run's trials (z, instruction, validation score, answers) as "
                             "--out/trials/TASK-SEED-METHOD.json")
    parser.add_argument("--set", dest="overrides", action="append", type=override_argument, default=[],
                        metavar="KEY=VALUE", help="run with params.yaml's KEY set, e.g. generator.temperature=1.0 "
                                                  "(a generator or projection setting needs its own --out)")
    args = parser.parse_args(argv)
    if args.confirmation:
        confirmation = confirmation_tasks(read_json(RESULTS / "headroom.json"))
        args.tasks, args.metric = list(confirmation), "paper"
        args.contains = [t for t, metric in confirmation.items() if metric == "contains"]
    return args


def main() -> None:
    args = arguments()
    base = apply_overrides(yaml.safe_load((ROOT / "params.yaml").read_text()), dict(args.overrides))
    settings = {"instructions": args.instructions, "n_validation": args.n_validation, "max_trials": args.max_trials,
                "n_test": args.n_test,
                "generator": {k: v for k, v in base["generator"].items() if k != "model"},
                "projection": {k: v for k, v in base["projection"].items() if k != "seed"}}  # (the candidates)
    metrics = {t: task_metric(t, args) for t in args.tasks}
    # (a bad DIR: before any run)
    against = load_against(args.against, settings, base["bo"], metrics) if args.against else None
    results = load(args.out, settings, base["bo"], metrics)
    if not args.report_only:
        run_all(args, base, settings, results)
    table = markdown(results, args)
    if against:
        table += "\n\n" + against_markdown(results, *against, args)
    print(table)
    (args.out / f"{args.report}.md").write_text(table + "\n")
    plot(results, args, args.out / f"{args.report}.png")


def run_all(args: argparse.Namespace, base: dict, settings: dict, results: dict[tuple[str, str], list[dict]]) -> None:
    """Every task x seed x method not saved yet, against one local model server."""
    os.environ["OPENAI_API_KEY"] = "local"  # the local server checks no key
    # served under a relative name: MLflow's model URIs (the reflection LLM's) drop a leading "/"
    model = os.path.relpath(embedded_model())
    with tempfile.TemporaryDirectory() as tmp, local_blackbox(
        Path(tmp), BlackBoxParams(**base["blackbox"]), "references.db", Path(model)
    ) as (url, references):
        os.environ["OPENAI_BASE_URL"] = url  # the reflection LLM's endpoint (litellm)
        for seed in args.seeds:  # seed-major: a benchmark cut short still covers every task
            for task in args.tasks:
                for method in args.methods:
                    if any(r["seed"] == seed for r in results[task, method]):
                        continue
                    workdir = Path(tmp) / f"{task}-{seed}-{method}"
                    workdir.mkdir()
                    metric = task_metric(task, args)
                    params = run_params(base, task, seed, method, metric, args, url, model)
                    run = run_mlflow_one(workdir, params, references, method) if method in MLFLOW_METHODS \
                        else run_one(workdir, params, references)
                    r = {"seed": seed, "knobs": method_knobs(method, base["bo"]), "metric": metric, **run}
                    results[task, method].append(r)
                    if args.keep_trials:
                        keep_trials(workdir, args.out, f"{task}-{seed}-{method}")
                    save(results, settings, args.out)  # after every run: an interrupted benchmark keeps its results
                    print(f"{task} seed={seed} {LABELS[method]}: test {r['test']:.3f} (val {r['val']:.3f}, empty "
                          f"{r['empty']:.3f}, hand-written {r['hand']:.3f}) {r['distinct']} instructions in "
                          f"{r['trials']} trials, {r['seconds']:.0f}s {r['instruction']!r}", flush=True)


def run_params(base: dict, task: str, seed: int, method: str, metric: str, args: argparse.Namespace, url: str,
               model: str) -> dict:
    """params.yaml for one run: ``task``'s split at ``seed``, ``method``'s sampler and knobs, the
    budget of ``args.instructions`` distinct instructions, the served ``model`` at ``url``."""
    params = copy.deepcopy(base)
    params["generator"]["model"] = model
    params["data"].update(**data_params(task), metric=None if metric == "paper" else metric,
                          seed=seed, n_test=args.n_test, n_validation=args.n_validation)
    params["projection"]["seed"] = seed
    params["bo"].update(**method_bo(method, base["bo"]), seed=seed, n_trials=args.max_trials,
                        n_instructions=args.instructions)
    params["budget"]["max_calls"] = args.instructions * args.n_validation
    params["blackbox"].update(base_url=url, model=model)
    params["eval"]["top_k"] = 1
    return params


def task_metric(task: str, args: argparse.Namespace) -> str:
    """How ``task`` is scored: ``contains`` if listed in ``--contains``, else ``--metric``."""
    return "contains" if task in args.contains else args.metric


def current_settings(settings: dict) -> dict:
    """Saved settings in today's keys: a retired generator or projection setting at the value the
    pipeline now runs is dropped (with ``mixture_atoms``, which only mixtures read); at another
    value it stays, so the runs do not match today's."""
    current = copy.deepcopy(settings)
    for section, fixed in RETIRED_SETTINGS.items():
        for key, value in fixed.items():
            if current[section].get(key, value) == value:
                current[section].pop(key, None)
    if "kind" not in current["projection"]:
        current["projection"].pop("mixture_atoms", None)
    return current


def saved_runs(out: Path, metrics: dict[str, str]) -> tuple[dict | None, dict[tuple[str, str], list[dict]]]:
    """The settings and the runs saved under ``out`` (None and none if nothing is), each task's runs
    only those scored with the metric in ``metrics`` (task -> metric)."""
    path = out / SAVED
    if not path.exists():
        return None, {}
    saved = read_json(path)
    runs: dict[tuple[str, str], list[dict]] = {}
    for key, rs in saved["runs"].items():
        task, method = key.split("/")
        runs[task, method] = [r for r in rs if r["metric"] == metrics.get(task)]
    return current_settings(saved["settings"]), runs


def load(out: Path, settings: dict, bo: dict, metrics: dict[str, str]) -> defaultdict[tuple[str, str], list[dict]]:
    """Runs saved by an earlier invocation, each method's only while it was run with its knobs as
    they are in ``bo`` now, and each task's only while it is scored with the metric in ``metrics``
    (task -> metric); exits naming the file if they had other settings (before any run)."""
    results: defaultdict[tuple[str, str], list[dict]] = defaultdict(list)
    theirs, runs = saved_runs(out, metrics)
    if theirs is not None and theirs != settings:
        changed = ", ".join(k for k in settings if theirs.get(k) != settings[k])
        raise SystemExit(f"{out / SAVED}: its runs had other settings ({changed}): run with "
                         "theirs (params.yaml, the flags) or use another --out")
    for (task, method), rs in runs.items():
        knobs = method_knobs(method, bo)
        results[task, method] = [r for r in rs if knobs == {k: saved_knob(r, k) for k in knobs}]
    return results


def load_against(out: Path, settings: dict, bo: dict, metrics: dict[str, str],
                 ) -> tuple[dict[tuple[str, str], list[dict]], list[str]]:
    """Every run saved under ``out`` that is scored with the metric in ``metrics`` (task -> metric), and
    how its generator and projection settings and its InstructZero runs' knobs differ from ``settings``
    and ``bo``; exits naming the file if its runs had another budget or splits (then no (task, seed)
    pair is comparable)."""
    theirs, runs = saved_runs(out, metrics)
    if theirs is None:
        raise SystemExit(f"--against {out}: no {SAVED} there")
    other = [f"{k} {theirs.get(k)} (here {v})" for k, v in settings.items()
             if k not in ("generator", "projection") and theirs.get(k) != v]
    if other:
        raise SystemExit(f"{out / SAVED}: its runs had another budget or splits: "
                         f"{', '.join(other)}")
    differ = [f"{section}.{k}: {theirs[section].get(k)} there, {settings[section].get(k)} here"
              for section in ("generator", "projection")
              for k in sorted(set(settings[section]) | set(theirs[section]))
              if theirs[section].get(k) != settings[section].get(k)]
    ours = [r for (_, method), rs in runs.items() if method == "instructzero" for r in rs]
    for k, v in method_knobs("instructzero", bo).items():
        there = sorted({str(saved_knob(r, k)) for r in ours})
        if ours and there != [str(v)]:
            differ.append(f"InstructZero's bo.{k}: {', '.join(there)} there, {v} here")
    return runs, differ


def save(results: dict[tuple[str, str], list[dict]], settings: dict, out: Path) -> None:
    """``results`` added to the runs saved under ``out`` (those :func:`load` left out, run with other
    knobs or metrics, are kept)."""
    path = out / SAVED
    runs = read_json(path)["runs"] if path.exists() else {}
    for (task, method), rs in results.items():
        saved = runs.setdefault(f"{task}/{method}", [])
        saved += [r for r in rs if r not in saved]
    write_json(path, {"settings": settings, "runs": runs})


def _mean_std(values: list[float]) -> str:
    if not values:
        return "n/a"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {std:.3f}" + (f" (n={len(values)})" if len(values) < 3 else "")


def _pairs(results: dict[tuple[str, str], list[dict]], tasks: list[str], method: str,
           baselines: dict[tuple[str, str], list[dict]] | None = None) -> list[tuple[float, float]]:
    """(InstructZero's, ``method``'s) test scores on every (task, seed) both ran, ``method``'s runs taken
    from ``baselines`` (by default from ``results``)."""
    theirs = results if baselines is None else baselines
    pairs = []
    for task in tasks:
        ours = {r["seed"]: r["test"] for r in results.get((task, "instructzero"), [])}
        pairs += [(ours[r["seed"]], r["test"]) for r in theirs.get((task, method), []) if r["seed"] in ours]
    return pairs


def _paired(pairs: list[tuple[float, float]]) -> str:
    """InstructZero's wins / ties / losses over ``pairs``, and the mean paired difference with its
    standard error."""
    diffs = [ours - theirs for ours, theirs in pairs]
    if not diffs:
        return "- | -"
    wins, losses = sum(d > 1e-9 for d in diffs), sum(d < -1e-9 for d in diffs)
    se = statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else float("nan")
    return f"{wins} / {len(diffs) - wins - losses} / {losses} | {statistics.mean(diffs):+.3f} ({se:.3f})"


def markdown(results: dict[tuple[str, str], list[dict]], args: argparse.Namespace) -> str:
    methods = list(args.methods)
    results = {key: [r for r in rs if r["seed"] in args.seeds] for key, rs in results.items()}
    done = sum(len(results.get((t, m), [])) for t in args.tasks for m in methods)
    header = "| task | " + " | ".join(LABELS[m] for m in methods) + " | empty instruction | hand-written |"
    scored = f"{args.metric}; contains for {', '.join(args.contains)}" if args.contains else args.metric
    lines = [f"Test score (metric: {scored}; budget {args.instructions} distinct instructions x "
             f"{args.n_validation} validation examples, at most {args.max_trials} trials; seeds {args.seeds}, "
             f"mean ± std over seeds; n_test ≤ {args.n_test})", "",
             "Command: `.venv/bin/python -m benchmarks.compare_optimizers " + " ".join(sys.argv[1:]) + "`", "",
             f"Runs done: {done} of {len(args.tasks) * len(args.seeds) * len(methods)} (tasks x seeds x methods; "
             "started again with the same settings, the benchmark runs the rest)", "",
             header, "|" + "---|" * (len(methods) + 3)]
    for task in args.tasks:
        runs = next((results[task, m] for m in methods if results.get((task, m))), [])  # (same splits: same scores)
        lines.append(f"| {task} | " + " | ".join(_mean_std([r["test"] for r in results.get((task, m), [])])
                                                 for m in methods)
                     + f" | {_mean_std([r['empty'] for r in runs])} | "
                     f"{_mean_std([r['hand'] for r in runs if r.get('hand') is not None])} |")
    ours = {(t, r["seed"]) for t in args.tasks for r in results.get((t, "instructzero"), [])}
    lines += ["", "Each method on the (task, seed) pairs it and InstructZero both ran (InstructZero: all its runs):",
              "", "| method | pairs | its mean test score | InstructZero's, same pairs | "
              "InstructZero wins / ties / losses | InstructZero − method, paired mean (se) | "
              "mean best validation score | its drop on test (validation − test) | distinct instructions per run | "
              "black-box calls per run | trials per run | reflection LLM calls per run | wall time per run (s) |",
              "|" + "---|" * 13]
    for m in methods:
        runs = [r for t in args.tasks for r in results.get((t, m), []) if (t, r["seed"]) in ours]
        if not runs:
            continue
        pairs = _pairs(results, args.tasks, m)
        paired = ("- | - | -" if m == "instructzero" else
                  f"{statistics.mean(p[0] for p in pairs):.3f} | {_paired(pairs)}")
        lines.append(f"| {LABELS[m]} | {len(runs)} | {statistics.mean(r['test'] for r in runs):.3f} | {paired} | "
                     f"{statistics.mean(r['val'] for r in runs):.3f} | "
                     f"{statistics.mean(r['val'] - r['test'] for r in runs):+.3f} | "
                     f"{statistics.mean(r['distinct'] for r in runs):.1f} | "
                     f"{statistics.mean(r['calls'] for r in runs):.0f} | "
                     f"{statistics.mean(r['trials'] for r in runs):.0f} | "
                     f"{_reflections(runs)} | {statistics.mean(r['seconds'] for r in runs):.0f} |")
    return "\n".join(lines)


def _reflections(runs: list[dict]) -> str:
    """The mean reflection LLM calls of MLflow's optimisers' runs ("-" for the others)."""
    counts = [r["reflections"] for r in runs if "reflections" in r]
    return f"{statistics.mean(counts):.1f}" if counts else "-"


def against_markdown(results: dict[tuple[str, str], list[dict]], baselines: dict[tuple[str, str], list[dict]],
                     differ: list[str], args: argparse.Namespace) -> str:
    """InstructZero's runs here paired with every method's runs saved in ``args.against``."""
    lines = [f"InstructZero here against the runs saved in {args.against} (their settings differ in: "
             f"{'; '.join(differ) or 'nothing'}), on the (task, seed) pairs both ran:", "",
             "| method there | pairs | its mean test score | InstructZero's here, same pairs | "
             "InstructZero wins / ties / losses | InstructZero − method, paired mean (se) |",
             "|---|---|---|---|---|---|"]
    for m in METHODS:
        pairs = _pairs(results, args.tasks, m, baselines)
        if pairs:
            lines.append(f"| {LABELS[m]} | {len(pairs)} | {statistics.mean(p[1] for p in pairs):.3f} | "
                         f"{statistics.mean(p[0] for p in pairs):.3f} | {_paired(pairs)} |")
    return "\n".join(lines)


def plot(results: dict[tuple[str, str], list[dict]], args: argparse.Namespace, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(args.tasks)), 4))
    width = 0.8 / len(args.methods)
    for i, m in enumerate(args.methods):
        scores = [[r["test"] for r in results.get((t, m), [])] for t in args.tasks]
        means = [statistics.mean(s) if s else float("nan") for s in scores]  # a run not done yet: no bar
        stds = [statistics.stdev(s) if len(s) > 1 else 0.0 for s in scores]
        ax.bar([k + i * width for k in range(len(args.tasks))], means, width, yerr=stds, label=LABELS[m], capsize=2)
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(args.tasks))], args.tasks, rotation=20)
    ax.set(ylabel="test score", title=f"Optimisers on the embedded default ({args.instructions} instructions each)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
