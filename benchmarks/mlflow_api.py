"""The three optimisers through MLflow's API on one task, beside the pipeline at the same seed
and budget: ``mlflow.genai.optimize_prompts`` with InstructZero's optimiser
(flows.mlflow_optimizer), GEPA and MetaPrompt (benchmarks/mlflow_methods.py), and the pipeline
(prepare -> optimize -> evaluate), all on the split the pipeline prepares, one served model as
black box, generator and reflection LLM, and scored on the same test split.

InstructZero inside MLflow gets the pipeline's exemplars and validation split as ``train_data``
(ordered so that its seeded shuffle yields them), params.yaml's sections as the pipeline runs
them, and the template ``Input: {{input}}\\nOutput:``: each candidate is the instruction, a blank
line and that template, where the pipeline's prompt is ``Instruction: <v>\\n\\nInput: ...``. The
script reports the instructions both wrote, in order, and where they part, in
``--out/mlflow_api_<task>_<seed>.md`` (and ``.json``: every run's figures and instructions).

    .venv/bin/python -m benchmarks.mlflow_api --task sentiment --seed 0
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

import flows  # noqa: F401  (runtime defaults: offline hub, no telemetry)
from benchmarks.compare_optimizers import run_mlflow_one, run_one, run_params, task_metric
from benchmarks.mlflow_methods import cold_blackbox, optimize_with_mlflow, records, score_prompt
from benchmarks.tasks import ROOT, embedded_model, local_blackbox
from components.blackbox import BlackBox
from components.data import Example
from components.params import BlackBoxParams
from flows.mlflow_optimizer import InstructZeroPromptOptimizer
from flows.settings import Workspace
from tasks.data import read_split
from tasks.files import read_json, write_json

TEMPLATE = "Input: {{input}}\nOutput:"
COMMAND = ".venv/bin/python -m benchmarks.mlflow_api"
LABELS = {"pipeline": "InstructZero (pipeline)", "instructzero": "InstructZero (optimize_prompts)",
          "gepa": "GEPA (optimize_prompts)", "metaprompt": "MetaPrompt (optimize_prompts)"}


def seeded_order(exemplars: tuple[Example, ...], validation: tuple[Example, ...], seed: int,
                 ) -> list[dict[str, Any]]:
    """``train_data`` whose ``random.Random(seed).shuffle`` (the optimiser's) yields the
    exemplars, then the validation examples."""
    wanted = records(exemplars) + records(validation)
    order = list(range(len(wanted)))
    random.Random(seed).shuffle(order)  # shuffled[i] = data[order[i]], whatever the items
    data: list[dict[str, Any]] = [{}] * len(wanted)
    for i, j in enumerate(order):
        data[j] = wanted[i]
    return data


def run_instructzero(workdir: Path, params: dict, blackbox: BlackBox) -> dict:
    """InstructZero's optimiser through ``optimize_prompts`` on the split prepared in ``workdir``
    (by the pipeline's run), its settings the run's params."""
    split, metric = read_split(Workspace(workdir).prepared)
    box = cold_blackbox(blackbox, workdir / "mlflow-cache.db")
    optimizer = InstructZeroPromptOptimizer(
        generator=params["generator"], projection=params["projection"], bo=params["bo"],
        n_exemplars=len(split.exemplars), n_validation=len(split.validation), seed=params["data"]["seed"])
    start = time.perf_counter()
    train = seeded_order(split.exemplars, split.validation, params["data"]["seed"])
    result, predict, _ = optimize_with_mlflow(workdir, "instructzero", optimizer, box, train, metric, TEMPLATE)
    [prompt] = result.optimized_prompts
    written = [t.removesuffix("\n\n" + TEMPLATE) for t in predict.templates if t != TEMPLATE]
    return {"test": score_prompt(box, prompt, split.test, metric), "val": result.final_eval_score,
            "calls": predict.calls, "distinct": len(written), "seconds": time.perf_counter() - start,
            "instruction": str(prompt.template).removesuffix("\n\n" + TEMPLATE), "written": written}


def common_prefix(a: list[str], b: list[str]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def markdown(runs: dict[str, dict], args: argparse.Namespace) -> str:
    pipeline, inside = runs["pipeline"]["written"], runs["instructzero"]["written"]
    same = common_prefix(pipeline, inside)
    lines = [f"# The optimisers through MLflow's API: {args.task}, seed {args.seed}", "",
             f"`{COMMAND} --task {args.task} --seed {args.seed}`: {args.instructions} distinct instructions x "
             f"{args.n_validation} validation examples each for InstructZero, GEPA "
             f"{args.instructions * args.n_validation} metric calls, MetaPrompt one pass; test on the same split.", "",
             "| method | validation | test | black-box calls | distinct prompts | seconds | best instruction or prompt"
             " |",
             "|---|---|---|---|---|---|---|"]
    for method, r in runs.items():
        val = "-" if r["val"] is None else f"{r['val']:.3f}"
        lines.append(f"| {LABELS[method]} | {val} | {r['test']:.3f} | {r['calls']} | {r['distinct']} | "
                     f"{r['seconds']:.0f} | {json.dumps(r['instruction'])[:160]} |")
    lines += ["", f"InstructZero inside MLflow wrote the pipeline's first {same} instructions in the same order "
              f"(of {len(pipeline)} and {len(inside)}); best instruction the same: "
              f"{runs['pipeline']['instruction'] == runs['instructzero']['instruction']}.", "",
              "| # | pipeline | optimize_prompts |", "|---|---|---|"]
    for i in range(max(len(pipeline), len(inside))):
        cells = [json.dumps(w[i])[:100] if i < len(w) else "" for w in (pipeline, inside)]
        lines.append(f"| {i} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="sentiment")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--instructions", type=int, default=20)
    parser.add_argument("--n-validation", type=int, default=20)
    parser.add_argument("--n-test", type=int, default=40)
    parser.add_argument("--max-trials", type=int, default=200)
    parser.add_argument("--metric", default="paper", help="'paper' for the paper's per-task metric, or one metric")
    parser.add_argument("--contains", nargs="*", default=[], metavar="TASK")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()

    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    os.environ["OPENAI_API_KEY"] = "local"
    model = os.path.relpath(embedded_model())  # (MLflow's model URIs drop a leading "/")
    runs: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp, local_blackbox(
        Path(tmp), BlackBoxParams(**base["blackbox"]), "references.db", Path(model)
    ) as (url, references):
        os.environ["OPENAI_BASE_URL"] = url  # the reflection LLM's endpoint (litellm)
        metric = task_metric(args.task, args)
        for method in ("pipeline", "instructzero", "gepa", "metaprompt"):
            workdir = Path(tmp) / method
            workdir.mkdir()
            params = run_params(base, args.task, args.seed, "instructzero", metric, args, url, model)
            if method == "pipeline":
                runs[method] = run_one(workdir, params, references)
                runs[method]["written"] = list(dict.fromkeys(
                    t["instruction"] for t in read_json(Workspace(workdir).trials) if t["instruction"]))
            elif method == "instructzero":  # (on the pipeline's prepared split)
                runs[method] = run_instructzero(Path(tmp) / "pipeline", params, references)
            else:
                runs[method] = run_mlflow_one(workdir, params, references, method)
            r = runs[method]
            print(f"{LABELS[method]}: test {r['test']:.3f}, {r['calls']} calls, {r['seconds']:.0f} s", flush=True)
    name = f"mlflow_api_{args.task}_{args.seed}"
    write_json(args.out / f"{name}.json", {"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs})
    table = markdown(runs, args)
    (args.out / f"{name}.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
