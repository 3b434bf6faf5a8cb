"""How many CPU threads the optimiser's process should take when the local model server shares
the machine: the optimize step (generating the next batch while the current one is scored) of
the default run, once per ``scale.threads`` setting, against one local model server, each with a
cold response cache. Prints wall time and its parts per setting, as a ratio to the first one,
and whether the run wrote the same instructions; writes research/results/threads.{json,md}.

    .venv/bin/python -m research.threads --threads 2 1 --instructions 12
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

import flows  # noqa: F401  (runtime defaults: offline hub, no telemetry)
from benchmarks.tasks import ROOT, embedded_model, local_blackbox
from components.params import BlackBoxParams
from flows.optimize import optimize
from flows.prepare import prepare
from flows.settings import Workspace


def run(directory: Path, base: dict, url: str, threads: int, instructions: int) -> dict:
    """One optimize step in its own workspace; its wall time, parts and instructions."""
    params = json.loads(json.dumps(base))
    model = str(embedded_model())
    params["generator"]["model"] = model
    params["blackbox"].update(base_url=url, model=model)
    params["bo"]["n_instructions"] = instructions
    params["scale"]["threads"] = threads
    directory.mkdir()
    workspace = Workspace(directory)
    workspace.params.write_text(yaml.safe_dump(params))
    prepare(workspace)
    start = time.perf_counter()
    optimize(workspace)
    seconds = time.perf_counter() - start
    opt = json.loads((workspace.metrics / "optimize.json").read_text())
    trials = json.loads(workspace.trials.read_text())
    return {"threads": threads, "seconds": round(seconds, 1), "calls": opt["blackbox_calls"],
            **{k: v for k, v in opt.items() if k.startswith("seconds_")},
            "instructions": [t["instruction"] for t in trials]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", nargs="+", type=int, default=[os.cpu_count() or 1, 1])
    parser.add_argument("--instructions", type=int, default=12, help="distinct instructions per run")
    parser.add_argument("--out", type=Path, default=ROOT / "research" / "results")
    args = parser.parse_args()
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    os.environ["OPENAI_API_KEY"] = "local"  # the local server checks no key
    with tempfile.TemporaryDirectory() as tmp, local_blackbox(
        Path(tmp), BlackBoxParams(**base["blackbox"]), "warm.db"
    ) as (url, warm):
        warm.complete([f"Say {i}." for i in range(16)])  # the server's first calls are slow
        rows = [run(Path(tmp) / f"threads-{n}", base, url, n, args.instructions) for n in args.threads]
    first = rows[0]
    lines = [f"Optimize step of the default run ({base['data']['task']}, {args.instructions} distinct instructions x "
             f"{base['data']['n_validation']} validation calls, local model server on the same "
             f"{os.cpu_count()}-core machine), per scale.threads", "",
             "Command: `.venv/bin/python -m research.threads " + " ".join(sys.argv[1:]) + "`", "",
             "| scale.threads | wall s | x first | generator s | bo s | black-box wait s | calls | same instructions |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['threads']} | {r['seconds']:.0f} | {r['seconds'] / first['seconds']:.2f} | "
                     f"{r.get('seconds_generator', 0):.0f} | {r.get('seconds_bo', 0):.0f} | "
                     f"{r.get('seconds_blackbox', 0):.0f} | {r['calls']} | "
                     f"{'yes' if r['instructions'] == first['instructions'] else 'no'} |")
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "threads.md").write_text(table + "\n")
    (args.out / "threads.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
