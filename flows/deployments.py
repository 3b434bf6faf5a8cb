"""prefect.yaml's deployments, served from this process (for users without a work pool)."""

from __future__ import annotations

from pathlib import Path

import yaml
from prefect import serve
from prefect.deployments.runner import RunnerDeployment
from prefect.flows import load_flow_from_entrypoint
from prefect.schedules import Cron

PREFECT_YAML = Path("prefect.yaml")


def deployments(path: Path = PREFECT_YAML) -> list[RunnerDeployment]:
    """The deployments that ``prefect deploy --all`` would register, as runner deployments."""
    found = []
    for d in yaml.safe_load(path.read_text(encoding="utf-8"))["deployments"]:
        deployment = load_flow_from_entrypoint(d["entrypoint"]).to_deployment(
            name=d["name"], description=d.get("description"), parameters=d.get("parameters"),
            tags=d.get("tags"), schedules=[Cron(s["cron"], timezone=s.get("timezone")) for s in d.get("schedules", [])],
        )
        assert isinstance(deployment, RunnerDeployment)  # called from sync code
        found.append(deployment)
    return found


def serve_deployments(path: Path = PREFECT_YAML, limit: int | None = None) -> None:
    """Register the deployments and run their scheduled (and triggered) runs until stopped."""
    serve(*deployments(path), limit=limit)
