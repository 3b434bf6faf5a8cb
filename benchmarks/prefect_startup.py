"""What Prefect's start-up costs a multi-stage run: N stage processes (the `prepare` stage, a
flow with almost no work of its own) one after the other, as `dvc repro` runs them.

Per arrangement: each process starting its own temporary Prefect server (what a bare `dvc
repro` does) vs one shared server for all of them (`python -m flows.prefect_api`, what `make
run` does); each with a new Prefect database (a fresh machine) and with the one it made (every
later run). Prints seconds and the ratio to the per-process arrangement; writes
benchmarks/results/prefect_startup.{json,md}.

    .venv/bin/python -m benchmarks.prefect_startup --stages 4
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _stages(project: Path, env: dict[str, str], n: int, shared: bool) -> float:
    """Seconds for ``n`` prepare processes, each with its own server or under one shared one."""
    stage = f"{sys.executable} -m flows.prepare"
    script = " && ".join([stage] * n)
    command = [sys.executable, "-m", "flows.prefect_api", "sh", "-c", script] if shared else ["sh", "-c", script]
    start = time.perf_counter()
    subprocess.run(command, cwd=project, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, default=4, help="stage processes per run (dvc repro: 4)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "params.yaml").write_text((ROOT / "params.yaml").read_text())
        base = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        base["PYTHONPATH"] = str(ROOT)
        for shared in (False, True):
            home = project / f"prefect-{'shared' if shared else 'own'}"
            env = {**base, "PREFECT_HOME": str(home)}
            for database in ("new", "existing"):  # the first run builds the database, the second reuses it
                seconds = _stages(project, env, args.stages, shared)
                rows.append({"server": "one shared" if shared else "one per process", "database": database,
                             "stages": args.stages, "seconds": round(seconds, 1)})
                print(f"{rows[-1]['server']:>16s} {database:>8s} database: {seconds:6.1f} s", flush=True)
    own = {r["database"]: r["seconds"] for r in rows if r["server"] == "one per process"}
    for row in rows:
        row["ratio_to_per_process"] = round(row["seconds"] / own[row["database"]], 2)
    lines = [f"# Prefect start-up for {args.stages} stage processes (`prepare`, one after the other)", "",
             f"Command: `.venv/bin/python -m benchmarks.prefect_startup --stages {args.stages}`", "",
             "| server | database | seconds | ratio to one per process |", "|---|---|---|---|"]
    lines += [f"| {r['server']} | {r['database']} | {r['seconds']} | {r['ratio_to_per_process']} |" for r in rows]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "prefect_startup.json").write_text(json.dumps(rows, indent=2) + "\n")
    (RESULTS / "prefect_startup.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[4:]))


if __name__ == "__main__":
    main()
