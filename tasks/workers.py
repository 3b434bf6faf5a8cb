"""One piece of work fanned out to flow runs on a Prefect work pool, and waited for."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import Flow
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import State
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.states import Cancelled
from prefect.workers.process import ProcessWorker

from components.errors import WorkerError
from tasks.log import Logger, run_logger

POLL_SECONDS = 2.0


@dataclass(frozen=True)
class Watch:
    """How the launcher sees the work its flow runs do, besides their states."""

    progress: Callable[[], str]  # a line on the work done so far
    claim_timeout: float  # seconds the flow runs may wait for a worker before the launcher gives up
    grace: float  # seconds a finished work waits for its runs to end, or an idle one for signs of life
    done: Callable[[], bool] = lambda: False  # the work is complete, whatever the runs' states say
    alive: Callable[[], bool] = lambda: True  # a running flow run is visibly working (e.g. a live trial)


def run_flows(
    entrypoint: str, name: str, pool: str, workspace: Path, runs: dict[str, dict[str, Any]], watch: Watch,
    need_one: bool = False,
) -> dict[str, State | None]:
    """Register the flow at ``entrypoint`` (a module path) as deployment ``name`` on the work
    pool ``pool`` (a process pool, created if missing), its code and working directory
    ``workspace``; start one flow run per entry of ``runs`` (run name -> parameters) and follow
    them, logging ``watch.progress()`` as it changes, until every one has ended, or the work is
    done (``watch.done``) and ``watch.grace`` seconds have passed (what is left is cancelled: a
    flow run whose worker died stays Running in Prefect). Ctrl-C cancels the flow runs.
    Returns their last states, by run name.

    Raises:
        WorkerError: if no worker takes a flow run within ``watch.claim_timeout`` seconds, if
            the running flow runs show no sign of life (``watch.alive``) for ``watch.grace``
            seconds before the work is done, or if ``need_one`` and none completed; the flow
            runs left are cancelled first.
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
        logger.info("%d flow runs of %s/%s on work pool %r: workers take them (`prefect worker start --pool %s "
                    "--limit 1`, with this project's environment: database URL, keys)", len(runs), flow.name, name,
                    pool, pool)
        ids = {run: r.id for run, r in started_runs.items()}  # type: ignore[union-attr]
        try:
            states = _follow(client, ids, watch, logger)
        except BaseException:
            _cancel(client, ids, "the launcher stopped")
            raise
    for run, state in states.items():
        if state is None or not state.is_completed():
            logger.warning("flow run %s: %s", run, failure(state))
    if need_one and not any(s is not None and s.is_completed() for s in states.values()):
        raise WorkerError(f"none of the {len(runs)} flow runs of {flow.name}/{name} completed")
    return states


def failure(state: State | None) -> str:
    """Why a flow run did not complete, as its state says."""
    if state is None:
        return "never ran"
    return f"{state.name} ({state.message or 'see its logs in Prefect'})"


def _follow(client: SyncPrefectClient, ids: dict[str, UUID], watch: Watch, logger: Logger) -> dict[str, State | None]:
    """Poll the flow runs until they have all ended or the work is done (then cancel the rest);
    their last states, by run name."""
    started, said = time.monotonic(), ""
    done_at = idle_at = None
    while True:
        states = {run: client.read_flow_run(i).state for run, i in ids.items()}
        if (now := watch.progress()) != said:
            logger.info("%s; flow runs: %s", now, _count(s.name if s else "?" for s in states.values()))
            said = now
        if all(s is not None and s.is_final() for s in states.values()):
            return states
        clock = time.monotonic()
        if watch.done():
            done_at = done_at or clock
            if clock - done_at > watch.grace:  # the work is done; what is left is no worker's any more
                _cancel(client, ids, "the work was done without it (its worker stopped?)")
                return {run: client.read_flow_run(i).state for run, i in ids.items()}
        elif all(s is None or s.is_scheduled() or s.is_pending() for s in states.values()):
            if clock - started > watch.claim_timeout:
                _cancel(client, ids, "no worker took it")
                raise WorkerError(f"no worker took a flow run in {watch.claim_timeout:.0f} s: start one on the work "
                                  f"pool (prefect worker start --pool POOL --limit 1) and run again")
        elif watch.alive():
            idle_at = None
        else:
            idle_at = idle_at or clock
            if clock - idle_at > watch.grace:
                _cancel(client, ids, "no sign of life from its worker")
                raise WorkerError(f"the flow runs showed no sign of life for {watch.grace:.0f} s (their workers "
                                  "died?): start workers and run again to resume")
        time.sleep(POLL_SECONDS)


def _cancel(client: SyncPrefectClient, ids: dict[str, UUID], why: str) -> None:
    """Cancel the flow runs that have not ended (forced: a dead worker's run cannot answer)."""
    for i in ids.values():
        state = client.read_flow_run(i).state
        if state is None or not state.is_final():
            client.set_flow_run_state(i, Cancelled(message=f"cancelled by the launcher: {why}"), force=True)


def _count(names: Any) -> str:
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
