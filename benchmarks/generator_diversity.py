"""Do different z give different, usable instructions? (chooses the generator's defaults)

For each setting of the grid (soft-prompt position x projection kind (linear, or mixtures of k word
embeddings) x scale x soft tokens x prompt x max_new_tokens x temperature: 0 greedy, else sampled
with noise fixed per run or drawn from each z) and each task: n
random z in [-1, 1]^d -> instructions. Reports the distinct instructions per n z, the share of
them that are usable (non-empty, at least three words, not a copy of an exemplar, a whole
sentence rather than one cut off by max_new_tokens) and, with --score, the best and mean
validation score of the distinct ones on the local model server (the paper's metric), next to
the empty instruction. Results are saved after every setting
(benchmarks/results/generator_diversity.{json,md}); run again, it skips what is saved.

    .venv/bin/python -m benchmarks.generator_diversity --positions start user reply --scales 1 10 30 \\
        --tokens 5 --n 32
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import torch

import flows  # noqa: F401  (runtime defaults: offline hub, no telemetry)
from benchmarks.tasks import RESULTS, ROOT, embedded_model, load, local_blackbox
from components.blackbox import evaluate_instructions
from components.data import Split, split_task
from components.generator import build_prompt, clean_instruction, generate_texts, is_complete, model_projection
from components.metrics import metric_for_task
from components.params import ProjectionParams
from flows.settings import load_params

TASKS = ["sentiment", "negation", "antonyms", "first_word_letter", "singular_to_plural", "larger_animal"]
KEYS = ("position", "kind", "atoms", "scale", "tokens", "prompt", "max_new_tokens", "temperature", "noise")
DEFAULTS = {"temperature": 0.0, "kind": "linear", "atoms": 0, "noise": "fixed"}  # rows saved before a key existed
PROMPTS = {
    "params": None,  # generator.prompt / response_prefix from params.yaml
    "ape": ("I gave a friend an instruction and five inputs. The friend read the instruction and "
            "wrote an output for every one of the inputs. Here are the input-output pairs:\n\n{exemplars}",
            "The instruction was to"),
    "short": ("{exemplars}\n\nWrite a one-sentence instruction that turns each input into its output.",
              "Instruction:"),
}


def usable(instruction: str, raw: str, split: Split) -> bool:
    copies = {e.input.lower() for e in split.exemplars} | {e.outputs[0].lower() for e in split.exemplars}
    text = instruction.lower().rstrip(".")
    return len(text.split()) >= 3 and text not in copies and is_complete(raw)


def run_setting(setting: dict, tasks: list[str], n: int, model, tokenizer, params, blackbox, n_val: int,
                metric: str | None) -> list[dict]:
    rows = []
    template, prefix = PROMPTS[setting["prompt"]] or (params.generator.prompt, params.generator.response_prefix)
    atoms = {"mixture_atoms": setting["atoms"]} if setting["kind"] == "mixture" else {}
    projection = model_projection(ProjectionParams(intrinsic_dim=10, n_soft_tokens=setting["tokens"],
                                                   scale=setting["scale"], kind=setting["kind"], seed=0, **atoms),
                                  model, tokenizer)
    z = torch.rand(n, 10, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for task in tasks:
        split = split_task(load(task), 5, n_val, 1, 0)
        prompt = build_prompt(tokenizer, template, split.exemplars, prefix, setting["position"])
        start = time.perf_counter()
        raws = generate_texts(model, tokenizer, prompt, projection.soft_prompts(z), setting["max_new_tokens"], prefix,
                              temperature=setting["temperature"], points=z if setting["noise"] == "z" else None)
        seconds = time.perf_counter() - start
        first_raw: dict[str, str] = {}
        for raw in raws:
            first_raw.setdefault(clean_instruction(raw), raw)
        distinct = list(first_raw)
        row = {**setting, "task": task, "distinct": len(distinct), "n": n, "n_val": n_val,
               "usable": round(sum(usable(v, first_raw[v], split) for v in distinct) / len(distinct), 2),
               "seconds": round(seconds, 1), "example": max(distinct, key=lambda v: usable(v, first_raw[v], split))}
        if blackbox is not None:
            empty, *scored = evaluate_instructions(blackbox, ["", *distinct], split.validation,
                                                   metric or metric_for_task(task)).evaluations
            means = [e.mean for e in scored if e is not None]
            best = max((e for e in scored if e is not None), key=lambda e: e.mean)
            row.update(best=round(best.mean, 3), mean=round(statistics.mean(means), 3),
                       empty=round(empty.mean if empty else 0.0, 3), example=best.instruction)
        rows.append(row)
        print(f"{setting['position']:5s} {setting['kind']} {setting['atoms']} scale {setting['scale']:5.1f} "
              f"tokens {setting['tokens']:2d} {setting['prompt']:6s} max {setting['max_new_tokens']:3d} "
              f"T {setting['temperature']:.1f} {setting['noise']} {task:20s} "
              f"distinct {len(distinct):2d}/{n} "
              f"usable {row['usable']:.2f}" + (f" best {row['best']:.2f} mean {row['mean']:.2f} empty "
                                               f"{row['empty']:.2f}" if 'best' in row else "")
              + f" {seconds:5.1f}s {row['example'][:60]!r}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=TASKS)
    parser.add_argument("--positions", nargs="+", default=["user"], choices=["start", "user", "reply"])
    parser.add_argument("--kinds", nargs="+", default=["linear"], choices=["linear", "mixture"])
    parser.add_argument("--atoms", nargs="+", type=int, default=[8], help="word embeddings per soft token (mixture)")
    parser.add_argument("--scales", nargs="+", type=float, default=[1.0],
                        help="linear: the soft prompt's spread relative to the embeddings'; mixture: the logits' std")
    parser.add_argument("--tokens", nargs="+", type=int, default=[5], help="soft tokens")
    parser.add_argument("--prompts", nargs="+", default=["params"], choices=list(PROMPTS))
    parser.add_argument("--max-new-tokens", nargs="+", type=int, default=[32])
    parser.add_argument("--temperatures", nargs="+", type=float, default=[0.0],
                        help="0: greedy; else sampled with the Gumbel noise fixed per run (seed 0)")
    parser.add_argument("--noise", nargs="+", default=["fixed"], choices=["fixed", "z"],
                        help="sampled: the Gumbel noise fixed per run, or drawn from each z's direction")
    parser.add_argument("--n", type=int, default=32, help="random z per setting and task")
    parser.add_argument("--score", action="store_true", help="score the distinct instructions (local server)")
    parser.add_argument("--n-val", type=int, default=20, help="validation examples scored")
    parser.add_argument("--metric", default=None, help="one metric for every task (default: the paper's per task)")
    parser.add_argument("--out", default="generator_diversity", help="results file name under benchmarks/results")
    args = parser.parse_args()

    from components.generator import load_generator

    params = load_params(ROOT / "params.yaml")
    model, tokenizer = load_generator(str(embedded_model()))
    path = RESULTS / f"{args.out}.json"
    rows: list[dict] = json.loads(path.read_text()) if path.exists() else []
    grid = [dict(zip(KEYS, values, strict=True))
            for values in itertools.product(args.positions, args.kinds, args.atoms, args.scales, args.tokens,
                                            args.prompts, args.max_new_tokens, args.temperatures, args.noise)]
    grid = [dict(s) for s in dict.fromkeys(tuple({**s, "atoms": s["atoms"] if s["kind"] == "mixture" else 0,
                                                  "noise": s["noise"] if s["temperature"] > 0 else "fixed"}.items())
                                           for s in grid)]  # (linear: no atoms; greedy: no noise)
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        blackbox = None
        if args.score:
            blackbox = stack.enter_context(local_blackbox(Path(tmp), params.blackbox))[1]
        for setting in grid:
            done = {r["task"] for r in rows if _matches(r, setting)
                    and r["n"] == args.n and (r.get("n_val") == args.n_val and "best" in r or not args.score)}
            todo = [t for t in args.tasks if t not in done]
            if todo:
                rows = [r for r in rows if not (_matches(r, setting) and r["task"] in todo)]
                rows += run_setting(setting, todo, args.n, model, tokenizer, params, blackbox, args.n_val, args.metric)
                RESULTS.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(rows, indent=1) + "\n")
    (RESULTS / f"{args.out}.md").write_text(markdown(rows) + "\n")
    print(markdown(rows))


def _value(row: dict, key: str) -> object:
    return row.get(key, DEFAULTS.get(key))


def _matches(row: dict, setting: dict) -> bool:
    return all(_value(row, k) == v for k, v in setting.items())


def markdown(rows: list[dict]) -> str:
    """One line per setting: distinct (min over tasks and mean), usable share, scores."""
    settings = list(dict.fromkeys(tuple(_value(r, k) for k in KEYS) for r in rows))
    lines = ["| position | kind | atoms | scale | soft tokens | prompt | max_new_tokens | temperature | noise | "
             "tasks | distinct of n (min / mean) | usable share (mean) | best val (mean over tasks) | mean val | "
             "empty val |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in settings:
        rs = [r for r in rows if tuple(_value(r, k) for k in KEYS) == s]
        scored = [r for r in rs if "best" in r]

        def avg(key: str, rs: list[dict] = scored) -> str:
            return f"{statistics.mean(r[key] for r in rs):.3f}" if rs else "-"
        lines.append(" | ".join(["", *map(str, s), str(len(rs)),
                                 f"{min(r['distinct'] for r in rs)} / {statistics.mean(r['distinct'] for r in rs):.1f}"
                                 f" of {rs[0]['n']}", avg("usable", rs), avg("best"), avg("mean"), avg("empty"), ""])
                     .strip())
    return "\n".join(lines)


if __name__ == "__main__":
    main()
