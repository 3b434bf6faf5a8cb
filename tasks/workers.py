"""One piece of work fanned out to flow runs on a Prefect work pool, and waited for."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import Flow, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.workers.process import ProcessWorker

from components.errors import WorkerError
from tasks.log import run_logger

POLL_SECONDS, UNCLAIMED_SECONDS = 2.0, 60.0


@task(cache_policy=NO_CACHE)
def run_flows(
    entrypoint: str, name: str, pool: str, workspace: Path, runs: dict[str, dict[str, Any]],
    progress: Callable[[], str], need_one: bool = False,
) -> dict[str, bool]:
    """Register the flow at ``entrypoint`` (a module path) as deployment ``name`` on the work
    pool ``pool`` (a process pool, created if missing), its code and working directory
    ``workspace``; start one flow run per entry of ``runs`` (run name -> parameters) and wait
    until every one has ended, logging ``progress()`` as it changes. Returns which completed.

    Raises:
        WorkerError: if ``need_one`` and no flow run completed.
    """
    logger = run_logger()
    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(
                name=pool, type="process", base_job_template=ProcessWorker.get_default_base_job_template()))
            logger.info("created the process work pool %r", pool)
        flow = Flow.from_source(str(workspace), entrypoint)
        assert isinstance(flow, Flow)  # called from sync code
        deployment_id = flow.to_deployment(name=name).apply(work_pool_name=pool)  # type: ignore[union-attr]
        assert isinstance(deployment_id, UUID)  # called from sync code
        started_runs = {run: run_deployment(deployment_id, parameters=parameters, timeout=0, flow_run_name=run)
                        for run, parameters in runs.items()}
        logger.info("%d flow runs of %s/%s on work pool %r: workers take them (`prefect worker start --pool %s`, "
                    "with this project's environment: database URL, keys)", len(runs), flow.name, name, pool, pool)
        started, said, warned = time.monotonic(), "", False
        while True:
            states = [client.read_flow_run(r.id).state for r in started_runs.values()]  # type: ignore[union-attr]
            if (now := progress()) != said:
                logger.info("%s; flow runs: %s", now, _count(s.name if s else "?" for s in states))
                said = now
            if all(s is not None and s.is_final() for s in states):
                break
            if not warned and time.monotonic() - started > UNCLAIMED_SECONDS and all(
                    s is not None and s.is_scheduled() for s in states):
                logger.warning("no worker has taken a flow run in %.0f s: is one running on pool %r?",
                               UNCLAIMED_SECONDS, pool)
                warned = True
            time.sleep(POLL_SECONDS)
    completed = {run: s is not None and s.is_completed() for run, s in zip(started_runs, states, strict=True)}
    for run, state in zip(started_runs, states, strict=True):
        if not completed[run]:
            logger.warning("flow run %s: %s (%s)", run, state.name if state else "?",
                           (state.message if state else "") or "see its logs in Prefect")
    if need_one and not any(completed.values()):
        raise WorkerError(f"none of the {len(runs)} flow runs of {flow.name}/{name} completed")
    return completed


def _count(names: Any) -> str:
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
