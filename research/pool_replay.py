"""Can a model choose better than chance among a pool of generated instructions? (replayed offline)

Deliverable 3 of issue 10 suggests generating a pool of z per batch and letting the acquisition
choose among the distinct, unscored instructions. Whether that can beat Uniform depends only on
how the choice is made, so this measures the choice on a fixed pool, many times over:

1. ``--build``: per task, n random z (seed 0) at params.yaml's generator and projection ->
   instructions (as the pipeline writes them) -> every distinct one scored on the validation set
   (the paper's metric, the local model server). Saved as research/results/pool_replay_pool.json.
2. replay (always): per task and policy, ``--replays`` runs that each pick ``--budget`` distinct
   instructions from the pool (``--startup`` at random, then batches of ``--batch``), seeing the
   scores of what they picked. Reports the best score found (the optimiser's job: maximise the
   validation score), the share of runs that found any instruction scoring above 0, and paired
   wins / losses against Uniform (same replay seed, same random start-up).
3. ``--score-test K`` (once the pools exist): every instruction of a pool scoring above 0 on
   validation, and K random ones scoring 0, scored on the test split (``--n-test`` examples, the
   comparison's seed-0 split). The replay then reports the test score of each run's choice (its
   best validation score, the earliest picked on ties, as the pipeline chooses), a choice without
   a test score counting as the mean test score of the scored zeros; and, per task, the test
   score of the pool's best validation instruction (the mean over ties): what a perfect optimiser
   of the validation score would get on test, the most any search over these candidates can win.

Policies: ``uniform`` (random z, as the paper's Uniform: an instruction many z write is likelier),
``z_gp`` (the instruction-coupled GP on z, qLogEI over the pool), ``emb_gp`` (the same GP on the
generator's embedding of each instruction's text, reduced by PCA), ``emb_far`` (no model: the
pool instruction farthest in embedding from every one picked), ``named`` (the pipeline's
``bo.pool`` rule: instructions naming one of the exemplars' answers first, components/pool.py,
then the rest, each in the run's random order), ``named_z_gp`` (named ones first, then the GP on
z), ``screen`` (no model: the same budget in calls, ``budget x n_val``, spent on scoring the run's
random instructions on the first ``--screen`` validation examples and then the ``--finalists``
best of them on the rest; the best finalist wins) and ``named_screen`` (the same over the named
ones first). The GP policies pick the farthest instruction while all scores so far are equal
(nothing to fit). The named rule was written after looking at the pools of sentiment, negation, implicatures
and navigate: read its rows on those tasks as in-sample; causal_judgment and word_sentiment (two
other tasks with a label set) were built afterwards to check it (``--out pool_replay_heldout``).

    .venv/bin/python -m research.pool_replay --build --tasks sentiment negation implicatures navigate --n 96
    .venv/bin/python -m research.pool_replay --replays 40
    .venv/bin/python -m research.pool_replay --build --tasks causal_judgment word_sentiment --n 96 \
        --out pool_replay_heldout
    .venv/bin/python -m research.pool_replay --score-test 12 --tasks sentiment negation implicatures navigate \
        word_sentiment --policies uniform z_gp named named_z_gp --out pool_replay_test
    .venv/bin/python -m research.pool_replay --tasks sentiment negation implicatures navigate word_sentiment \
        --policies uniform named screen named_screen --screen 5 --finalists 5 --out pool_replay_screen
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from botorch.acquisition.logei import qLogExpectedImprovement
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.transforms.outcome import Standardize
from botorch.optim import optimize_acqf_discrete
from gpytorch.kernels import ScaleKernel
from gpytorch.mlls import ExactMarginalLogLikelihood
from gpytorch.priors import GammaPrior

import flows  # noqa: F401  (runtime defaults: offline hub, no telemetry)
from benchmarks.tasks import ROOT, embedded_model, load, local_blackbox
from components.blackbox import evaluate_instructions
from components.data import split_task
from components.generator import build_prompt, clean_instruction, generate_texts, load_generator, model_projection
from components.kernel import InstructionCoupledKernel, output_similarity
from components.metrics import metric_for_task, score
from components.pool import answer_labels, names_an_answer
from flows.settings import load_params

RESULTS = ROOT / "research" / "results"
POOL = RESULTS / "pool_replay_pool.json"
POLICIES = ("uniform", "z_gp", "emb_gp", "emb_far", "named", "named_z_gp", "screen", "named_screen")



def rank_candidates(candidates: list[str], labels: tuple[str, ...], exclude: tuple[str, ...] = ()) -> list[str]:
    """The distinct, non-empty ``candidates`` not in ``exclude``: those naming one of ``labels``
    first, each group in the pool's order."""
    fresh = [v for v in dict.fromkeys(candidates) if v and v not in exclude]
    return sorted(fresh, key=lambda v: not names_an_answer(v, labels))

def build(tasks: list[str], n: int, n_val: int) -> None:
    params = load_params(ROOT / "params.yaml")
    gen = params.generator
    model, tokenizer = load_generator(str(embedded_model()))
    projection = model_projection(params.projection, model)
    pools = json.loads(POOL.read_text()) if POOL.exists() else {}
    with tempfile.TemporaryDirectory() as tmp, local_blackbox(Path(tmp), params.blackbox) as (_, box):
        for task in tasks:
            split = split_task(load(task), 5, n_val, 1, 0)
            prompt = build_prompt(tokenizer, gen.prompt, split.exemplars, gen.response_prefix)
            z = torch.rand(n, params.projection.intrinsic_dim, generator=torch.Generator().manual_seed(0)) * 2 - 1
            texts = generate_texts(model, tokenizer, prompt, projection.soft_prompts(z), gen.max_new_tokens,
                                   gen.response_prefix, temperature=gen.temperature, max_batch=gen.max_batch,
                                   points=z)
            instructions = [clean_instruction(t) for t in texts]
            distinct = list(dict.fromkeys(instructions))
            scored = evaluate_instructions(box, distinct, split.validation, metric_for_task(task)).evaluations
            pools[task] = {"z": z.tolist(), "instructions": instructions,
                           "scored": {e.instruction: {"score": e.mean, "outputs": list(e.outputs)}
                                      for e in scored if e is not None}}
            hits = sum(e.mean > 0 for e in scored if e is not None)
            print(f"{task}: {len(distinct)} distinct of {n}, {hits} score above 0", flush=True)
            POOL.write_text(json.dumps(pools) + "\n")


def score_test(tasks: list[str], n_val: int, n_test: int, zeros: int) -> None:
    """Each pool's validation hits and ``zeros`` random validation zeros, scored on the test split."""
    params = load_params(ROOT / "params.yaml")
    pools = json.loads(POOL.read_text())
    with tempfile.TemporaryDirectory() as tmp, local_blackbox(Path(tmp), params.blackbox) as (_, box):
        for task in tasks:
            pool, split = pools[task], split_task(load(task), 5, n_val, n_test, 0)
            hits = [v for v, e in pool["scored"].items() if e["score"] > 0]
            scored_zero = sorted(v for v, e in pool["scored"].items() if e["score"] == 0)
            zero = random.Random(0).sample(scored_zero, min(zeros, len(scored_zero)))  # (all, in a pool of hits)
            tested = pool.setdefault("test", {})
            todo = [v for v in hits + zero if v not in tested]
            tested.update((e.instruction, e.mean) for e in
                          evaluate_instructions(box, todo, split.test, metric_for_task(task)).evaluations if e)
            print(f"{task}: {len(hits)} hits and {len(zero)} zeros on {len(split.test)} test examples", flush=True)
            POOL.write_text(json.dumps(pools) + "\n")


def test_scores(pool: dict, distinct: list[str]) -> list[float] | None:
    """Each distinct instruction's test score, the mean of the scored validation zeros where it
    has none; None before ``--score-test``."""
    tested = pool.get("test")
    if not tested:
        return None
    zeros = [s for v, s in tested.items() if pool["scored"][v]["score"] == 0]
    return [tested.get(v, statistics.mean(zeros)) for v in distinct]


@torch.no_grad()
def embeddings(texts: list[str]) -> torch.Tensor:
    """The generator's last hidden state, averaged over each text's tokens (``n x hidden``)."""
    model, tokenizer = load_generator(str(embedded_model()))
    rows = []
    for text in texts:
        ids = tokenizer(text, return_tensors="pt").input_ids
        rows.append(model(input_ids=ids, output_hidden_states=True).hidden_states[-1][0].mean(0))
    return torch.stack(rows).double()


def pca_unit(x: torch.Tensor, k: int) -> torch.Tensor:
    """The top-``k`` principal components of ``x``, scaled into the unit cube."""
    centred = x - x.mean(0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    low = centred @ v[:k].T
    return (low - low.min(0).values) / (low.max(0).values - low.min(0).values).clamp_min(1e-9)


def farthest(features: torch.Tensor, picked: list[int], left: list[int], q: int) -> list[int]:
    """Greedily, ``q`` of ``left`` each farthest from everything picked so far."""
    chosen: list[int] = []
    for _ in range(min(q, len(left))):
        pool = [i for i in left if i not in chosen]
        near = torch.cdist(features[pool], features[picked + chosen]).min(1).values
        chosen.append(pool[int(near.argmax())])
    return chosen


def gp_choice(features: torch.Tensor, picked: list[int], scores: list[float], outputs: list[list[str]],
              left: list[int], q: int) -> list[int]:
    """``q`` of ``left`` by qLogEI (sequential greedy) under the instruction-coupled GP."""
    x, y = features[picked], torch.tensor(scores, dtype=torch.float64).unsqueeze(-1)
    if len(set(scores)) < 2:
        return farthest(features, picked, left, q)
    kernel = ScaleKernel(InstructionCoupledKernel(x, output_similarity(outputs)),
                         outputscale_prior=GammaPrior(2.0, 0.15))
    model = SingleTaskGP(x, y, covar_module=kernel, outcome_transform=Standardize(m=1))
    fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    acqf = qLogExpectedImprovement(model, best_f=y.max())
    choices = features[left]
    chosen, _ = optimize_acqf_discrete(acqf, q=min(q, len(left)), choices=choices, unique=True)
    return [left[int(torch.cdist(row[None], choices).argmin())] for row in chosen]


def screened(candidates: list[int], examples: list[list[float]], args: argparse.Namespace) -> int:
    """The choice of ``screen``: as many of ``candidates`` as the budget allows scored on the first
    ``args.screen`` validation examples, the ``args.finalists`` best of them on all; the best wins
    (the earliest on ties, at both steps)."""
    k, rest = args.screen, args.n_val - args.screen
    seen = candidates[:(args.budget * args.n_val - args.finalists * rest) // k]
    finalists = sorted(seen, key=lambda i: -sum(examples[i][:k]))[:args.finalists]
    return max(finalists, key=lambda i: sum(examples[i]))


def replay(policy: str, order: list[int], distinct: list[str], pool: dict, features: dict[str, torch.Tensor],
           labels: tuple[str, ...], examples: list[list[float]], args: argparse.Namespace) -> int:
    """One run: which distinct instruction it chooses (the best validation score among the
    ``args.budget`` ones ``policy`` picks, the earliest picked on ties; ``examples``: each one's
    score per validation example)."""
    shuffled = [pool["instructions"][i] for i in order]
    if policy.startswith("named"):  # those naming an answer first (each group in the run's random order)
        shuffled = rank_candidates(shuffled, labels)
    if policy.endswith("screen"):
        return screened([distinct.index(v) for v in dict.fromkeys(shuffled)], examples, args)
    size = args.budget if policy in ("uniform", "named") else args.startup
    picked = [distinct.index(v) for v in dict.fromkeys(shuffled)][:size]  # the start-up (or the whole run)
    named = {i for i, v in enumerate(distinct) if names_an_answer(v, labels)}
    val = [pool["scored"].get(v, {"score": 0.0})["score"] for v in distinct]
    outputs = [pool["scored"].get(v, {"outputs": [""] * args.n_val})["outputs"] for v in distinct]
    choose: Callable[[list[int], list[int], int], list[int]] = {
        "z_gp": lambda p, left, q: gp_choice(features["z"], p, [val[i] for i in p], [outputs[i] for i in p], left, q),
        "emb_gp": lambda p, left, q: gp_choice(features["emb"], p, [val[i] for i in p], [outputs[i] for i in p],
                                               left, q),
        "emb_far": lambda p, left, q: farthest(features["emb"], p, left, q),
        "named_z_gp": lambda p, left, q: gp_choice(features["z"], p, [val[i] for i in p], [outputs[i] for i in p],
                                                   [i for i in left if i in named] or left, q),
    }.get(policy, lambda p, left, q: [])
    while len(picked) < min(args.budget, len(distinct)):
        left = [i for i in range(len(distinct)) if i not in picked]
        picked += choose(picked, left, min(args.batch, args.budget - len(picked)))
    return max(picked, key=lambda i: val[i])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", action="store_true", help="generate and score the pools first")
    parser.add_argument("--tasks", nargs="+", default=["sentiment", "negation", "implicatures", "navigate"])
    parser.add_argument("--n", type=int, default=96, help="random z per task (--build)")
    parser.add_argument("--n-val", type=int, default=20)
    parser.add_argument("--replays", type=int, default=40)
    parser.add_argument("--budget", type=int, default=20, help="distinct instructions scored per run")
    parser.add_argument("--startup", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--pca", type=int, default=8, help="embedding dimensions the GP sees")
    parser.add_argument("--screen", type=int, default=5, help="validation examples each instruction is screened on")
    parser.add_argument("--finalists", type=int, default=5, help="screened instructions scored on all of them")
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=POLICIES)
    parser.add_argument("--score-test", type=int, metavar="K",
                        help="score each pool's hits and K random zeros on the test split first")
    parser.add_argument("--n-test", type=int, default=40)
    parser.add_argument("--out", default="pool_replay")
    args = parser.parse_args()
    if args.build:
        build(args.tasks, args.n, args.n_val)
    if args.score_test is not None:
        score_test(args.tasks, args.n_val, args.n_test, args.score_test)
    pools = json.loads(POOL.read_text())
    rows = []
    for task in args.tasks:
        pool = pools[task]
        distinct = list(dict.fromkeys(pool["instructions"]))
        first = {v: pool["instructions"].index(v) for v in distinct}
        z = torch.tensor([pool["z"][first[v]] for v in distinct], dtype=torch.float64)
        features = {"z": (z + 1) / 2}
        if any(p.startswith("emb") for p in args.policies):
            features["emb"] = pca_unit(embeddings(distinct), args.pca)
        split = split_task(load(task), 5, args.n_val, 1, 0)
        labels, metric = answer_labels(split.exemplars), metric_for_task(task)
        examples = [[score(o, e.outputs, metric, e.choices)
                     for o, e in zip(pool["scored"][v]["outputs"], split.validation, strict=True)]
                    if v in pool["scored"] else [0.0] * args.n_val for v in distinct]
        chosen: dict[str, list[int]] = {p: [] for p in args.policies}
        for r in range(args.replays):
            order = random.Random(r).sample(range(len(pool["instructions"])), len(pool["instructions"]))
            torch.manual_seed(r)
            for policy in args.policies:
                chosen[policy].append(replay(policy, order, distinct, pool, features, labels, examples, args))
        val = [pool["scored"].get(v, {"score": 0.0})["score"] for v in distinct]
        test = test_scores(pool, distinct)
        named = [e["score"] for v, e in pool["scored"].items() if names_an_answer(v, labels)]
        row = {"task": task, "distinct": len(distinct), "hits": sum(s > 0 for s in val), "pool_best": max(val),
               "labels": list(labels), "named": len(named), "named_hits": sum(s > 0 for s in named), "policies": {}}
        if test is not None:
            row["perfect_test"] = statistics.mean(t for s, t in zip(val, test, strict=True) if s == max(val))
            row["tested_zeros"] = sum(pool["scored"][v]["score"] == 0 for v in pool["test"])
        for policy, picks in chosen.items():
            values, base = [val[i] for i in picks], [val[i] for i in chosen.get("uniform", picks)]
            row["policies"][policy] = {
                "mean_best": statistics.mean(values), "found_hit": sum(v > 0 for v in values) / len(values),
                "wins": sum(a > b for a, b in zip(values, base, strict=True)),
                "losses": sum(a < b for a, b in zip(values, base, strict=True))}
            if test is not None:
                row["policies"][policy]["mean_test"] = statistics.mean(test[i] for i in picks)
            print(f"{task} {policy}: mean best {statistics.mean(values):.3f}, "
                  f"found a hit in {row['policies'][policy]['found_hit']:.0%}", flush=True)
        rows.append(row)
    command = "python -m research.pool_replay " + " ".join(
        f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in vars(args).items() if k not in ("build", "score_test", "out") and v is not None)
    (RESULTS / f"{args.out}.json").write_text(json.dumps({"command": command, "rows": rows}, indent=2) + "\n")
    table = markdown(rows, command, args)
    (RESULTS / f"{args.out}.md").write_text(table + "\n")
    print(table)


def markdown(rows: list[dict], command: str, args: argparse.Namespace) -> str:
    tested = all("perfect_test" in row for row in rows)
    lines = [f"Pools: {args.n} random z per task (seed 0, params.yaml's generator at the time), built by "
             "`python -m research.pool_replay --build` (the commands in its docstring). Replay:", "",
             f"`{command}`", "",
             f"Each run picks {args.budget} distinct instructions of the task's pool ({args.startup} at random, then "
             f"batches of {args.batch}); {args.replays} runs per policy, paired with Uniform by seed. The screen "
             f"policies spend the same {args.budget * args.n_val} calls on the run's instructions in the same random "
             f"order: {args.screen} validation examples each, then all {args.n_val} for the {args.finalists} best.", "",
             "| task | distinct in pool | scoring above 0 | naming an answer (of them above 0) | pool best | policy "
             "| mean best found | runs finding one above 0 | wins / losses vs Uniform |"
             + (" mean test of the choice | test of the pool's best |" if tested else ""),
             "|---|---|---|---|---|---|---|---|---|" + ("---|---|" if tested else "")]
    for row in rows:
        for policy, p in row["policies"].items():
            lines.append(f"| {row['task']} | {row['distinct']} | {row['hits']} | {row['named']} ({row['named_hits']}) "
                         f"| {row['pool_best']:.2f} | {policy} | {p['mean_best']:.3f} | {p['found_hit']:.0%} | "
                         f"{p['wins']} / {p['losses']} |"
                         + (f" {p['mean_test']:.3f} | {row['perfect_test']:.3f} |" if tested else ""))
    if tested:
        lines += ["", f"Test: the split's {args.n_test} test examples (seed 0, as the comparison's seed 0), for every "
                  "instruction scoring above 0 on validation and a random sample of those scoring 0 ("
                  + ", ".join(f"{r['task']} {r['tested_zeros']}" for r in rows) + "; `--score-test`), whose mean "
                  "counts for a chosen zero without a test score; the mean "
                  "over tasks of the test score of the pool's best validation instruction is "
                  f"{statistics.mean(r['perfect_test'] for r in rows):.3f}, of each policy's choice "
                  + ", ".join(f"{p} {statistics.mean(r['policies'][p]['mean_test'] for r in rows):.3f}"
                              for p in rows[0]["policies"]) + "."]
    lines += ["", "Answers an instruction can name (components/pool.py, from the exemplars): "
              + "; ".join(f"{row['task']} {', '.join(row['labels']) or 'none'}" for row in rows)]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
