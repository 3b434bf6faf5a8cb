"""Are z at the cube's corners richer in scoring instructions than z inside it?

Optuna's GPSampler, while every score is still 0, proposes z on the boundary of [-1, 1]^d
(|z| ~ sqrt(d), where uniform z have ~sqrt(d / 3)); its sentiment hits came there. This asks
whether the boundary itself writes better instructions: at params.yaml's generator and
projection, on the split and projection of each benchmark seed (as compare_optimizers runs
them), n uniform z and the same z moved to their corners (sign(z)) -> instructions ->
validation scores on the local model server (the paper's metric). Writes
benchmarks/results/<--out>.{json,md}.

    .venv/bin/python -m benchmarks.corners --task sentiment --seeds 1 4 5 8
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

import flows  # noqa: F401  (runtime defaults: offline hub, no telemetry)
from benchmarks.locality import instructions_and_scores
from benchmarks.tasks import ROOT, embedded_model, load, local_blackbox, write_results
from components.data import split_task
from components.generator import build_prompt, load_generator, model_projection
from components.metrics import metric_for_task
from flows.settings import load_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="sentiment")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 4, 5, 8],
                        help="benchmark seeds: each its split and projection")
    parser.add_argument("--n", type=int, default=32, help="uniform z per seed (and as many corners)")
    parser.add_argument("--n-val", type=int, default=20)
    parser.add_argument("--n-test", type=int, default=40, help="as compare_optimizers (shapes the split)")
    parser.add_argument("--out", default="corners", help="results file name under benchmarks/results/")
    args = parser.parse_args()
    params = load_params(ROOT / "params.yaml")
    gen = params.generator
    model, tokenizer = load_generator(str(embedded_model()))
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp, local_blackbox(Path(tmp), params.blackbox) as (_, box):
        for seed in args.seeds:
            split = split_task(load(args.task), params.data.n_exemplars, args.n_val, args.n_test, seed)
            projection = model_projection(params.projection.model_copy(update={"seed": seed}), model, tokenizer)
            prompt = build_prompt(tokenizer, gen.prompt, split.exemplars, gen.response_prefix, gen.soft_prompt_position)
            inside = torch.rand(args.n, params.projection.intrinsic_dim,
                                generator=torch.Generator().manual_seed(100 + seed)) * 2 - 1
            for where, z in (("inside", inside), ("corners", torch.sign(inside))):
                instructions, scores, _ = instructions_and_scores(model, tokenizer, projection, gen, box, prompt,
                                                                  split, metric_for_task(args.task), z)
                scored = {v: s for v, s in zip(instructions, scores, strict=True) if v}  # the distinct, non-empty
                hits = sorted((s for s in scored.values() if s > 0), reverse=True)
                row = {"seed": seed, "z": where, "norm": statistics.mean(z.norm(dim=1).tolist()),
                       "distinct": len(scored), "hits": hits, "mean": statistics.mean(scored.values())}
                rows.append(row)
                print(f"{args.task} seed {seed} {where}: {row['distinct']} distinct, scoring above 0: "
                      f"{', '.join(f'{s:.2f}' for s in hits) or 'none'}", flush=True)
    write_results(args.out, rows, markdown(rows, args))


def markdown(rows: list[dict], args: argparse.Namespace) -> str:
    lines = [f"# z inside the cube vs at its corners: {args.task}, {args.n} z per seed, {args.n_val} validation "
             "examples", "",
             f"Command: `.venv/bin/python -m benchmarks.corners --task {args.task} --seeds "
             + " ".join(map(str, args.seeds)) + f" --n {args.n}`", "",
             "| seed | z | mean norm | distinct instructions | those scoring above 0 (their scores) | mean score |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['seed']} | {r['z']} | {r['norm']:.2f} | {r['distinct']} | {len(r['hits'])} ("
              + (", ".join(f"{s:.2f}" for s in r["hits"]) or "-") + f") | {r['mean']:.3f} |" for r in rows]
    for where in ("inside", "corners"):
        rs = [r for r in rows if r["z"] == where]
        lines.append(f"| all | {where} | | {sum(r['distinct'] for r in rs)} | {sum(len(r['hits']) for r in rs)} | "
                     f"{statistics.mean(r['mean'] for r in rs):.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
