"""Black-box throughput of one optimisation over 1, 2 and 4 workers, against a fixed-latency black box.

Per worker count N: a fresh project (built-in task, the embedded generator) optimised with
``scale.workers`` N on a real stack: a study on PostgreSQL, a Prefect server with N process
workers (``prefect worker start --limit 1``), an MLflow tracking server, and an OpenAI-compatible
stub that answers every call after ``--latency`` seconds, so the black box, not this CPU, is the
limit; each flow run gets cores / N CPU threads (``scale.threads``). N = 1 is today's single
process (no work pool). The clock starts once the N workers are online, as a user's standing
workers are (runs before ``scaling_online`` also counted the workers' own start-up). Reports the
optimize stage's wall time, black-box calls per second, the speedup over one worker and its ratio
to linear scaling, the ratio of wall times (an instruction two workers wrote at once is paid
twice: those calls add to calls/s, not to the wall-time speedup); the same for the search alone
(first call to last answer, without the start-up: deployment, worker pick-up, imports, model
load), and the share of the search's wall time with no call in flight. Results
go to benchmarks/results/OUT.{json,md,png} (``--out``, default scaling).

    .venv/bin/python -m benchmarks.scaling --workers 1 2 4 --instructions 120 --latency 2.0
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import matplotlib
import yaml

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import flows  # noqa: E402, F401  (runtime defaults: offline hub, no telemetry)
from benchmarks.tasks import RESULTS, ROOT, embedded_model  # noqa: E402
from flows.settings import DATABASE_URL, EMBEDDED_MODEL  # noqa: E402
from tests.openai_stub import stub_server  # noqa: E402
from tests.services import background, new_database, prefect_and_mlflow_servers, temporary_postgres  # noqa: E402


def idle_share(intervals: list[tuple[float, float]]) -> float:
    """The share of [first start, last end] covered by no interval."""
    if not intervals:
        return 1.0
    intervals = sorted(intervals)
    busy, (start, end) = 0.0, intervals[0]
    for s, e in intervals[1:]:
        if s > end:
            busy += end - start
            start, end = s, e
        else:
            end = max(end, e)
    busy += end - start
    span = max(e for _, e in intervals) - intervals[0][0]
    return 1 - busy / span if span > 0 else 0.0


def wait_for_workers(api_url: str, pool: str, n: int, seconds: float = 300) -> None:
    """Until ``n`` workers of work pool ``pool`` are online (started and polling), so the clock
    measures the optimisation, not the workers' own start-up: a user's workers stand waiting."""
    deadline = time.monotonic() + seconds
    while True:
        request = urllib.request.Request(f"{api_url}/work_pools/{pool}/workers/filter", data=b"{}", method="POST",
                                         headers={"Content-Type": "application/json"})
        with contextlib.suppress(urllib.error.HTTPError):  # (404 until the first worker has made the pool)
            with urllib.request.urlopen(request, timeout=10) as response:
                if sum(w["status"] == "ONLINE" for w in json.load(response)) >= n:
                    return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{n} workers on pool {pool!r} not online after {seconds:.0f} s")
        time.sleep(1)


def run(n: int, args: argparse.Namespace, postgres: str, tmp: Path) -> dict:
    """One optimisation with ``n`` workers; its wall time, calls and idle share."""
    calls: list[tuple[float, float]] = []
    lock = threading.Lock()

    def answer(prompt: str) -> str:
        start = time.monotonic()
        time.sleep(args.latency)
        with lock:
            calls.append((start, time.monotonic()))
        return prompt.split("Input: ")[-1].split()[0][:1]  # a short answer

    project = tmp / f"workers-{n}"
    (project / "models").mkdir(parents=True)
    (project / EMBEDDED_MODEL).symlink_to(embedded_model())
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PREFECT_HOME": str(tmp / f"prefect-{n}"), "OPENAI_API_KEY": "sk-bench",
           "PREFECT_WORKER_QUERY_SECONDS": "2",  # (default 10: a worker picks its flow run up later)
           DATABASE_URL: new_database(postgres, f"scaling_{n}")}
    pool = f"scaling-{n}"
    with stub_server(answer) as blackbox, background() as start:
        params = yaml.safe_load((ROOT / "params.yaml").read_text())
        params["data"].update(source="builtin", task=args.task, n_validation=args.n_validation)
        params["blackbox"].update(base_url=blackbox.base_url, model="stub", concurrency=args.concurrency)
        params["bo"].update(n_instructions=args.instructions, n_trials=10 * args.instructions)
        params["scale"].update(workers=n, work_pool=pool, threads=max(1, (os.cpu_count() or 1) // n))
        (project / "params.yaml").write_text(yaml.safe_dump(params))
        env = prefect_and_mlflow_servers(start, env, new_database(postgres, f"scaling_mlflow_{n}"), tmp / f"art-{n}")
        subprocess.run([sys.executable, "-m", "flows.prepare"], cwd=project, env=env, check=True,
                       capture_output=True)
        if n > 1:
            for _ in range(n):
                start("prefect", "worker", "start", "--pool", pool, "--type", "process", "--limit", "1",
                      env=env, cwd=ROOT)
            wait_for_workers(env["PREFECT_API_URL"], pool, n)
        began = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "flows.optimize"], cwd=project, env=env, capture_output=True,
                              text=True, check=False)
        seconds = time.monotonic() - began
    if done.returncode != 0:
        raise RuntimeError(f"optimize with {n} workers failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    metrics = json.loads((project / "metrics" / "optimize.json").read_text())
    first, last = min(s for s, _ in calls), max(e for _, e in calls)
    return {"workers": n, "seconds": round(seconds, 1), "calls": len(calls),
            "to_first_call_s": round(first - began, 1), "search_s": round(last - first, 1),
            "search_calls_per_s": round(len(calls) / (last - first), 3),
            "calls_per_s": round(len(calls) / seconds, 3), "idle_share": round(idle_share(calls), 3),
            "instructions": metrics["n_distinct_instructions"], "trials": metrics["n_trials"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2, 4])
    parser.add_argument("--instructions", type=int, default=40, help="distinct instructions scored per run")
    parser.add_argument("--n-validation", type=int, default=20)
    parser.add_argument("--latency", type=float, default=1.0, help="seconds per black-box call")
    parser.add_argument("--concurrency", type=int, default=4, help="calls in flight per worker")
    parser.add_argument("--task", default="first_letter", help="a built-in task")
    parser.add_argument("--out", default="scaling", help="results name under benchmarks/results")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, temporary_postgres() as postgres:
        for n in args.workers:
            row = run(n, args, postgres, Path(tmp))
            rows.append(row)
            print(f"{n} workers: {row['calls']} calls in {row['seconds']:.0f} s = {row['calls_per_s']:.2f} calls/s, "
                  f"idle {row['idle_share']:.0%}", flush=True)
    base, search_base = rows[0]["calls_per_s"], rows[0]["search_calls_per_s"]
    for row in rows:
        row["speedup"] = round(row["calls_per_s"] / base, 2)
        row["wall_speedup"] = round(rows[0]["seconds"] / row["seconds"], 2)  # (calls paid twice count nothing)
        row["of_linear"] = round(row["speedup"] / (row["workers"] / rows[0]["workers"]), 2)
        row["search_speedup"] = round(row["search_calls_per_s"] / search_base, 2)
    command = "python -m benchmarks.scaling " + " ".join(sys.argv[1:])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps({"command": command, "settings": vars(args), "rows": rows},
                                                     indent=2) + "\n")
    table = markdown(rows, command, args)
    (RESULTS / f"{args.out}.md").write_text(table + "\n")
    print(table)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([r["workers"] for r in rows], [r["speedup"] for r in rows], "o-", label="measured")
    ax.plot([r["workers"] for r in rows], [r["workers"] / rows[0]["workers"] for r in rows], "--", label="linear")
    ax.set(xlabel="workers", ylabel="speedup (black-box calls/s)", title=f"latency {args.latency:g} s per call")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / f"{args.out}.png", dpi=120)


def markdown(rows: list[dict], command: str, args: argparse.Namespace) -> str:
    lines = [f"`{command}`", "",
             f"{args.instructions} instructions x {args.n_validation} validation calls, {args.latency:g} s per call, "
             f"{args.concurrency} calls in flight per worker; the clock starts once the workers are online.", "",
             "| workers | wall s | calls | calls/s | speedup | of linear | wall-time speedup | start-up s | search s "
             "| search calls/s | search speedup | idle share of search (no call in flight) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['workers']} | {r['seconds']:.0f} | {r['calls']} | {r['calls_per_s']:.2f} | {r['speedup']:.2f} | "
              f"{r['of_linear']:.2f} | {r['wall_speedup']:.2f} | {r['to_first_call_s']:.0f} | {r['search_s']:.0f} | "
              f"{r['search_calls_per_s']:.2f} | {r['search_speedup']:.2f} | {r['idle_share']:.0%} |" for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
