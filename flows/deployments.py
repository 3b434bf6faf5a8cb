"""prefect.yaml's deployments: registered on their work pool, or served from this process.

`register` does what `prefect deploy --all` does (code pulled from this directory by a
set_working_directory step), from the same prefect.yaml that `serve` reads, without the
command's interactive prompts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from prefect import Flow, serve
from prefect.deployments.runner import RunnerDeployment
from prefect.flows import load_flow_from_entrypoint
from prefect.schedules import Cron

PREFECT_YAML = Path("prefect.yaml")


def _spec(path: Path) -> list[dict[str, Any]]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))["deployments"]


def deployments(path: Path = PREFECT_YAML, source: Path | None = None) -> list[RunnerDeployment]:
    """prefect.yaml's deployments; with ``source``, their code is pulled from that directory."""
    found = []
    for d in _spec(path):
        flow = (load_flow_from_entrypoint(d["entrypoint"]) if source is None
                else Flow.from_source(str(source), d["entrypoint"]))
        assert isinstance(flow, Flow)  # called from sync code
        deployment = flow.to_deployment(
            name=d["name"], description=d.get("description"), parameters=d.get("parameters"),
            tags=d.get("tags"), schedules=[Cron(s["cron"], timezone=s.get("timezone")) for s in d.get("schedules", [])],
        )
        assert isinstance(deployment, RunnerDeployment)  # called from sync code
        found.append(deployment)
    return found


def register(path: Path = PREFECT_YAML) -> list[str]:
    """Register prefect.yaml's deployments on their work pools; returns their names."""
    names = []
    for spec, deployment in zip(_spec(path), deployments(path, source=path.resolve().parent), strict=True):
        deployment.apply(work_pool_name=spec["work_pool"]["name"])
        names.append(f"{deployment.flow_name}/{deployment.name}")
    return names


def serve_deployments(path: Path = PREFECT_YAML, limit: int | None = None) -> None:
    """Register the deployments and run their scheduled (and triggered) runs until stopped."""
    serve(*deployments(path), limit=limit)
