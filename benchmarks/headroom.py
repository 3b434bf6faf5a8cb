"""Where does an instruction matter on this black box? Per task: the empty instruction vs one
hand-written instruction (benchmarks/tasks.py), on the same test examples, under the paper's
metric and under `contains` (both with the paper's normalisation: first line, first sentence).

Writes benchmarks/results/headroom.{json,md} after every task; run again, it skips the tasks
saved there. Uses the local model server (the embedded
default black box) unless --base-url/--model name another endpoint (key: $OPENAI_API_KEY).

    .venv/bin/python -m benchmarks.headroom --n-test 30
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from contextlib import nullcontext
from pathlib import Path

import flows  # noqa: F401  (runtime defaults: offline hub, no telemetry)
from benchmarks.tasks import HANDWRITTEN, RESULTS, ROOT, all_tasks, embedded_model, load
from components.blackbox import BlackBox, ResponseCache, evaluate_instructions
from components.data import split_task
from components.local_server import local_model_server
from components.metrics import metric_for_task
from flows.settings import load_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=None, help="default: every task")
    parser.add_argument("--n-test", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--base-url", default=None)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    bb = load_params(ROOT / "params.yaml").blackbox
    path = RESULTS / "headroom.json"
    rows = [r for r in json.loads(path.read_text()) if r["n_test"] <= args.n_test] if path.exists() else []
    todo = [t for t in args.tasks or all_tasks() if t not in {r["task"] for r in rows}]
    model = embedded_model()
    with tempfile.TemporaryDirectory() as tmp:
        server = nullcontext(args.base_url) if args.base_url else local_model_server(
            model, Path(tmp) / "server.log", cache_blocks=bb.server_cache_blocks,
            block_size=bb.server_block_size, max_batch_tokens=bb.server_max_batch_tokens)
        with server as url:
            box = BlackBox(base_url=url, model=args.model or str(model),
                           api_key=os.environ.get("OPENAI_API_KEY", "local"),
                           cache=ResponseCache(Path(tmp) / "cache.db"), max_tokens=bb.max_tokens)
            print(f"{'task':24s} {'metric':11s} {'empty':>6s} {'hand':>6s} {'empty(c)':>8s} {'hand(c)':>8s}")
            for task in todo:
                split = split_task(load(task), 5, 20, args.n_test, args.seed)
                row: dict = {"task": task, "metric": metric_for_task(task), "n_test": len(split.test),
                             "instruction": HANDWRITTEN[task]}
                for label, metric in (("paper", row["metric"]), ("contains", "contains")):
                    empty, hand = evaluate_instructions(box, ["", HANDWRITTEN[task]], split.test, metric).evaluations
                    assert empty is not None and hand is not None, f"{task}: black-box calls failed"
                    row[f"empty_{label}"], row[f"hand_{label}"] = round(empty.mean, 3), round(hand.mean, 3)
                    row.setdefault("example_answer", hand.outputs[0])
                rows.append(row)
                RESULTS.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(rows, indent=2) + "\n")
                print(f"{task:24s} {row['metric']:11s} {row['empty_paper']:6.2f} {row['hand_paper']:6.2f} "
                      f"{row['empty_contains']:8.2f} {row['hand_contains']:8.2f}", flush=True)
    command = "`.venv/bin/python -m benchmarks.headroom " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None and k != "tasks") + "`"
    lines = [f"# Headroom: empty vs one hand-written instruction (test, n <= {args.n_test}, seed {args.seed})", "",
             f"Command: {command}. Black box: {args.model or 'the embedded SmolLM2-135M-Instruct'}. "
             "Paper metric and `contains`, both after the paper's normalisation (first line, first sentence).", "",
             "| task | paper metric | empty | hand-written | gain | empty (contains) | hand-written (contains) | "
             "gain (contains) | a hand-written answer |", "|---|---|---|---|---|---|---|---|---|"]
    order = all_tasks()
    for r in sorted(rows, key=lambda r: order.index(r["task"]) if r["task"] in order else len(order)):
        lines.append(f"| {r['task']} | {r['metric']} | {r['empty_paper']:.2f} | {r['hand_paper']:.2f} | "
                     f"{r['hand_paper'] - r['empty_paper']:+.2f} | {r['empty_contains']:.2f} | "
                     f"{r['hand_contains']:.2f} | {r['hand_contains'] - r['empty_contains']:+.2f} | "
                     f"{r['example_answer'][:50]!r} |")
    (RESULTS / "headroom.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
