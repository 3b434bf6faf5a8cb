"""Do nearby z score alike? (whether any model of H(z) can beat random z on this generator)

At params.yaml's generator and projection, per task: n random z in [-1, 1]^d -> instructions ->
validation scores (the paper's metric, the local model server). Then around the best random z
(the centres, those scoring above 0), m neighbours at each distance r (z + r u, u a random unit
vector, clipped to the cube): the share that write the centre's instruction again, and the mean
score of the neighbours that write a new one, next to the mean score of the random z. A GP's
lengthscale prior (Gamma(3, 6), mean 0.5 of the unit cube) puts r = 1 at about one lengthscale:
if new neighbours there score no better than random z, the GP has no structure to use.
For the random z it also reports the partial credit the GP would see (``bo.partial_credit``):
mean token F1 of the answers, and the share of z scoring 0 with an F1 above 0 (where the credit
gives a signal the score does not). With ``--temperatures``, all of it per sampling temperature
(``generator.temperature``): lower ones make nearby z write alike, and fewer different, instructions.
Writes benchmarks/results/<--out>.{json,md}.

    .venv/bin/python -m benchmarks.locality --tasks implicatures navigate --n 32 --centres 2 \\
        --neighbours 6 --radii 0.1 0.3 1
    .venv/bin/python -m benchmarks.locality --tasks implicatures navigate --n 48 --centres 3 \\
        --neighbours 6 --radii 0.1 0.3 1 --temperatures 0.25 0.5 1 --out locality_temperature
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
from functools import partial
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

import flows  # noqa: F401  (runtime defaults: offline hub, no telemetry)
from benchmarks.tasks import ROOT, embedded_model, load, local_blackbox, write_results
from components.blackbox import BlackBox, evaluate_instructions
from components.data import Split, split_task
from components.generator import (
    GenerationPrompt,
    build_prompt,
    clean_instruction,
    generate_texts,
    load_generator,
    model_projection,
)
from components.metrics import metric_for_task
from components.params import GeneratorParams
from components.projection import Projection
from flows.settings import load_params


def neighbours(centre: torch.Tensor, radius: float, m: int, seed: int) -> torch.Tensor:
    """``m`` points at distance ``radius`` from ``centre`` in random directions, clipped to the cube."""
    u = torch.randn(m, centre.shape[0], generator=torch.Generator().manual_seed(seed))
    return (centre + radius * u / u.norm(dim=1, keepdim=True)).clamp(-1, 1)


def instructions_and_scores(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, projection: Projection,
                            gen: GeneratorParams, box: BlackBox, prompt: GenerationPrompt, split: Split, metric: str,
                            z: torch.Tensor) -> tuple[list[str], list[float], list[float]]:
    """Each z's instruction (as the pipeline writes it), its validation score and mean token F1
    (0 if a call failed)."""
    texts = generate_texts(model, tokenizer, prompt, projection.soft_prompts(z), gen.max_new_tokens,
                           gen.response_prefix, temperature=gen.temperature, max_batch=gen.max_batch, points=z)
    instructions = [clean_instruction(t) for t in texts]
    distinct = list(dict.fromkeys(instructions))
    scored = evaluate_instructions(box, distinct, split.validation, metric).evaluations
    by = {v: e for v, e in zip(distinct, scored, strict=True) if e is not None}
    found = [by.get(v) for v in instructions]
    return instructions, [e.mean if e else 0.0 for e in found], [e.partial_mean if e else 0.0 for e in found]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["implicatures", "navigate"])
    parser.add_argument("--n", type=int, default=32, help="random z per task")
    parser.add_argument("--centres", type=int, default=2, help="best random z (scoring above 0) to look around")
    parser.add_argument("--neighbours", type=int, default=6, help="neighbours per centre and radius")
    parser.add_argument("--radii", nargs="+", type=float, default=[0.1, 0.3, 1.0])
    parser.add_argument("--n-val", type=int, default=20)
    parser.add_argument("--budget", type=int, default=20, help="distinct instructions a run scores (for the odds "
                        "of meeting a scoring one)")
    parser.add_argument("--temperatures", nargs="+", type=float, help="sampling temperatures (default: params.yaml's)")
    parser.add_argument("--out", default="locality", help="results file name under benchmarks/results/")
    args = parser.parse_args()
    params = load_params(ROOT / "params.yaml")
    args.temperatures = args.temperatures or [params.generator.temperature]
    model, tokenizer = load_generator(str(embedded_model()))
    projection = model_projection(params.projection, model, tokenizer)
    d = params.projection.intrinsic_dim
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp, local_blackbox(Path(tmp), params.blackbox) as (_, box):
        for task, temperature in itertools.product(args.tasks, args.temperatures):
            gen = params.generator.model_copy(update={"temperature": temperature})
            split = split_task(load(task), 5, args.n_val, 1, 0)
            prompt = build_prompt(tokenizer, gen.prompt, split.exemplars, gen.response_prefix, gen.soft_prompt_position)
            score = partial(instructions_and_scores, model, tokenizer, projection, gen, box, prompt, split,
                            metric_for_task(task))
            z = torch.rand(args.n, d, generator=torch.Generator().manual_seed(0)) * 2 - 1
            random_v, random_s, random_f1 = score(z)
            order = sorted(range(args.n), key=lambda i: -random_s[i])
            centres = [i for i in order[: args.centres] if random_s[i] > 0]
            hits = sum(s > 0 for s in random_s) / args.n
            row = {"task": task, "temperature": temperature, "n": args.n, "distinct": len(set(random_v)),
                   "random_mean": statistics.mean(random_s), "random_hits": hits,
                   "hit_in_budget": 1 - (1 - hits) ** args.budget, "random_best": max(random_s),
                   "random_f1": statistics.mean(random_f1),
                   "random_credit_only": sum(s == 0 < f for s, f in zip(random_s, random_f1, strict=True)) / args.n,
                   "centres": [{"score": random_s[i], "instruction": random_v[i]} for i in centres], "radii": {}}
            for radius in args.radii if centres else ():  # (no hit: nothing to look around)
                same, new, above = [], [], []
                for c, i in enumerate(centres):
                    around = neighbours(z[i], radius, args.neighbours, seed=1000 * c + int(radius * 100))
                    near_v, near_s, _ = score(around)
                    same += [v == random_v[i] for v in near_v]
                    fresh = [s for v, s in zip(near_v, near_s, strict=True) if v != random_v[i]]
                    new += fresh
                    above += [s > random_s[i] for s in fresh]
                row["radii"][str(radius)] = {"same": statistics.mean(same) if same else None,
                                             "new_mean": statistics.mean(new) if new else None,
                                             "new_hits": sum(s > 0 for s in new) / len(new) if new else None,
                                             "new_above_centre": statistics.mean(above) if above else None,
                                             "n_new": len(new)}
                print(f"{task} T={temperature:g} r={radius}: same {row['radii'][str(radius)]['same']} new mean "
                      f"{row['radii'][str(radius)]['new_mean']} (random {row['random_mean']:.3f})", flush=True)
            rows.append(row)
    write_results(args.out, rows, markdown(rows, args))


def markdown(rows: list[dict], args: argparse.Namespace) -> str:
    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    lines = [f"# Do nearby z score alike? ({args.n} random z, {args.centres} best as centres, {args.neighbours} "
             f"neighbours per centre and radius, {args.n_val} validation examples)", "",
             "Command: `.venv/bin/python -m benchmarks.locality --tasks " + " ".join(args.tasks)
             + f" --n {args.n} --centres {args.centres} --neighbours {args.neighbours} --radii "
             + " ".join(f"{r:g}" for r in args.radii)
             + " --temperatures " + " ".join(f"{t:g}" for t in args.temperatures)
             + (f" --out {args.out}`" if args.out != "locality" else "`"), "",
             f"| task | temperature | random z: distinct of {args.n} | mean score | best | share above 0 | odds of one "
             f"above 0 in {args.budget} | mean token F1 | share scoring 0 with F1 above 0 |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {row['task']} | {row['temperature']:g} | {row['distinct']} | {row['random_mean']:.3f} | "
              f"{row['random_best']:.2f} | {row['random_hits']:.2f} | {row['hit_in_budget']:.2f} | "
              f"{row['random_f1']:.3f} | {row['random_credit_only']:.2f} |" for row in rows]
    if not any(row["radii"] for row in rows):
        return "\n".join(lines)
    lines += ["", "| task | temperature | random z: share above 0 | centres' scores | radius | same instruction as "
              "the centre | new instructions: mean score | new: share above 0 | new: share above their centre |",
              "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        for radius, r in row["radii"].items():
            lines.append(f"| {row['task']} | {row['temperature']:g} | {row['random_hits']:.2f} | "
                         + ", ".join(f"{c['score']:.2f}" for c in row["centres"])
                         + f" | {radius} | {num(r['same'])} | {num(r['new_mean'])} | {num(r['new_hits'])} | "
                         f"{num(r['new_above_centre'])} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
