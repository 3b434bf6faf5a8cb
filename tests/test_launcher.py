"""tasks/workers.py: how the launcher follows its flow runs, on a fake Prefect client (the real
path, a killed worker and a pool without workers, is in tests/test_workers.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from uuid import UUID, uuid4

import pytest
from prefect.client.schemas.objects import State
from prefect.states import Completed, Running, Scheduled

import tasks.workers
from components.errors import WorkerError
from tasks.workers import Watch, _follow

LOG = logging.getLogger("test-launcher")


@dataclass
class FlowRun:
    state: State


class FakeClient:
    """Flow runs whose states follow a script: ``script[k]`` maps a run to its state at poll k."""

    def __init__(self, script: list[dict[str, State]]) -> None:
        self.script, self.polls = script, 0
        self.ids = {run: uuid4() for run in script[0]}
        self.cancelled: dict[UUID, str] = {}

    def read_flow_run(self, flow_run_id: UUID) -> FlowRun:
        if flow_run_id in self.cancelled:
            return FlowRun(State(type="CANCELLED", name="Cancelled", message=self.cancelled[flow_run_id]))
        run = next(r for r, i in self.ids.items() if i == flow_run_id)
        return FlowRun(self.script[min(self.polls, len(self.script) - 1)][run])

    def set_flow_run_state(self, flow_run_id: UUID, state: State, force: bool = False) -> None:
        assert force
        self.cancelled[flow_run_id] = state.message or ""


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch):
    monkeypatch.setattr(tasks.workers, "POLL_SECONDS", 0.01)


def follow(client: FakeClient, **watch: object) -> dict[str, State | None]:
    def tick() -> str:
        client.polls += 1
        return f"poll {client.polls}"

    return _follow(client, client.ids, Watch(tick, **{"claim_timeout": 60, "grace": 0.05, **watch}), LOG)


def test_the_launcher_returns_once_every_run_has_ended():
    client = FakeClient([{"a": Running(), "b": Running()}, {"a": Completed(), "b": Running()},
                         {"a": Completed(), "b": Completed()}])
    states = follow(client)
    assert all(s is not None and s.is_completed() for s in states.values()) and not client.cancelled


def test_once_the_work_is_done_a_run_still_running_is_cancelled_after_the_grace():
    client = FakeClient([{"a": Completed(), "dead": Running()}])  # its worker died: Running for ever
    states = follow(client, done=lambda: True)
    assert states["a"].is_completed() and states["dead"].is_cancelled()
    assert list(client.cancelled) == [client.ids["dead"]]


def test_runs_no_worker_takes_are_cancelled_and_the_launcher_says_to_start_one():
    client = FakeClient([{"a": Scheduled(), "b": Scheduled()}])
    with pytest.raises(WorkerError, match=r"no worker took a flow run in 0 s: start one"):
        follow(client, claim_timeout=0.05)
    assert set(client.cancelled) == set(client.ids.values())


def test_running_runs_with_no_sign_of_life_are_cancelled_before_the_work_is_done():
    client = FakeClient([{"a": Running(), "b": Running()}])
    with pytest.raises(WorkerError, match="no sign of life"):
        follow(client, alive=lambda: False)
    assert set(client.cancelled) == set(client.ids.values())


def test_live_runs_are_followed_however_long_they_take():
    client = FakeClient([{"a": Running()}] * 30 + [{"a": Completed()}])
    assert follow(client, alive=lambda: True, claim_timeout=0.01)["a"].is_completed() and not client.cancelled
