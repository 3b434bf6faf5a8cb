"""prefect.yaml's deployments: registered on their work pool, or served from this process.

`register` does what `prefect deploy --all` does (code pulled from this directory by a
set_working_directory step), from the same prefect.yaml that `serve` reads, without the
command's interactive prompts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import Flow, serve
from prefect.deployments.runner import RunnerDeployment
from prefect.flows import load_flow_from_entrypoint
from prefect.schedules import Cron

from components.errors import ConfigError
from flows.settings import read_yaml

PREFECT_YAML = Path("prefect.yaml")


def _spec(path: Path) -> list[dict[str, Any]]:
    spec = read_yaml(path)
    if not isinstance(spec, dict) or not isinstance(spec.get("deployments"), list):
        raise ConfigError(f"{path}: expected a 'deployments' list")
    return spec["deployments"]


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
