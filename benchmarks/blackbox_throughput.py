"""Black-box throughput against the local model server: calls/s and server RSS per concurrency.

Each setting sends distinct zero-shot prompts (no cache hits) of a task's inputs with its
hand-written instruction (``--task first_letter``: one-word inputs, one-letter answers;
``--task sentiment``: sentence inputs, answers up to ``--max-tokens``) after a warm-up; prints calls/s
(and the speed-up over one call at a time), seconds per instruction evaluated (20 validation
examples) and the server's resident memory. Then the share of a full BO run's wall time spent on
the black box, the generator and the GP, from the pipeline's last run (metrics/optimize.json).

    .venv/bin/python -m benchmarks.blackbox_throughput --concurrency 1 4 16 32 --calls 64
    .venv/bin/python -m benchmarks.blackbox_throughput --task sentiment --concurrency 1 4 16 32 --calls 64
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import psutil

import flows  # noqa: F401  (runtime defaults: offline hub, no telemetry)
from benchmarks.tasks import HANDWRITTEN, embedded_model, load
from components.blackbox import BlackBox, ResponseCache, zero_shot_prompt
from components.local_server import local_model_server
from flows.settings import load_params


def server_rss_gb() -> float:
    procs = [p for p in psutil.Process().children(recursive=True) if "serve" in " ".join(p.cmdline())]
    return sum(p.memory_info().rss for p in procs) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 4, 16, 32])
    parser.add_argument("--calls", type=int, default=64, help="calls per setting")
    parser.add_argument("--cache-blocks", type=int, default=None, help="default: params.yaml")
    parser.add_argument("--max-batch-tokens", type=int, default=None, help="default: params.yaml")
    parser.add_argument("--task", default="first_letter", choices=sorted(HANDWRITTEN), help="whose inputs")
    parser.add_argument("--max-tokens", type=int, default=None, help="per answer; default: params.yaml")
    args = parser.parse_args()
    bb = load_params().blackbox
    data = load(args.task)
    words = list(dict.fromkeys(e.input for e in (*data.pool, *data.test)))
    instruction, max_tokens = HANDWRITTEN[args.task], args.max_tokens or bb.max_tokens
    assert len(words) >= 16 + args.calls * len(args.concurrency), f"{args.task}: too few distinct inputs"
    model = embedded_model()
    with tempfile.TemporaryDirectory() as tmp, local_model_server(
        model, Path(tmp) / "server.log", cache_blocks=args.cache_blocks or bb.server_cache_blocks,
        block_size=bb.server_block_size, max_batch_tokens=args.max_batch_tokens or bb.server_max_batch_tokens,
    ) as url:
        cache = ResponseCache(Path(tmp) / "cache.db")
        offset = 0

        def run(concurrency: int, n: int) -> tuple[float, float]:
            """Seconds for ``n`` new calls at ``concurrency``, and their mean answer in tokens."""
            nonlocal offset
            box = BlackBox(base_url=url, model=str(model), api_key="local", cache=cache,
                           concurrency=concurrency, max_tokens=max_tokens)
            prompts = [zero_shot_prompt(instruction, w) for w in words[offset : offset + n]]
            offset += n
            start = time.perf_counter()
            done = box.complete(prompts)
            return time.perf_counter() - start, done.stats.completion_tokens / max(1, done.stats.calls)

        run(8, 16)  # warm-up
        print(f"{args.task}: inputs of {sum(len(w.split()) for w in words) / len(words):.1f} words on average, "
              f"answers of at most {max_tokens} tokens")
        print(f"{'concurrency':>11s} {'calls/s':>8s} {'speed-up':>9s} {'s/instruction(20)':>18s} "
              f"{'server RSS GB':>14s} {'answer tokens':>14s}")
        first = None
        for concurrency in args.concurrency:
            seconds, tokens = run(concurrency, args.calls)
            rate = args.calls / seconds
            first = first or rate
            print(f"{concurrency:11d} {rate:8.2f} {rate / first:8.1f}x {20 / rate:18.1f} {server_rss_gb():14.2f} "
                  f"{tokens:14.1f}", flush=True)
    metrics = Path("metrics/optimize.json")
    if metrics.exists():
        parts = {k: json.loads(metrics.read_text())[f"seconds_{k}"] for k in ("blackbox", "generator", "bo")}
        total = sum(parts.values())
        print(f"BO loop of the last pipeline run ({metrics}, {total:.0f} s): " + ", ".join(
            f"{name} {parts[key] / total:.0%}" for key, name in
            (("blackbox", "black box"), ("generator", "generator"), ("bo", "GP/acquisition"))))


if __name__ == "__main__":
    main()
