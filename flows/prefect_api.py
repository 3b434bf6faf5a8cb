"""One Prefect API for every flow of a command: ``python -m flows.prefect_api dvc repro``.

A process that runs a flow with no ``PREFECT_API_URL`` starts Prefect's temporary server of its
own (5-15 s on 2 cores), so `dvc repro`'s four stage processes would start four. Wrapped in this
command they share one: Prefect's own temporary server (same database in ``PREFECT_HOME``, same
start-up timeout) started once and given to every child as ``PREFECT_API_URL``. With a Prefect
API already configured (``PREFECT_API_URL``, a profile, a test harness), that one is used.

The temporary server ignores the terminal's Ctrl-C (it reaches every process of the command):
the run it serves stops first, reporting to it, and then stops it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

import flows  # noqa: F401  (runtime defaults, among them the server start-up timeout)


@contextmanager
def shared_api() -> Iterator[str]:
    """The URL of a Prefect API for child processes: the configured one, else a temporary
    server started here and stopped on exit."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL

    if url := PREFECT_API_URL.value():
        yield url
        return
    server = SubprocessASGIServer()
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # the server inherits the block
    try:
        server.start()  # waits up to $PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)  # (a Ctrl-C pressed meanwhile is raised now)
    try:
        yield server.api_url
    finally:
        _drain()
        server.stop()


def _drain(timeout: float = 5.0) -> None:
    """Send the logs and events still queued for the API (as Prefect's test harness does before
    stopping its server), or they would be retried against a stopped server at exit."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=timeout)


@contextmanager
def using_shared_api() -> Iterator[None]:
    """This process's flows report to :func:`shared_api`'s Prefect API."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with shared_api() as url, temporary_settings({PREFECT_API_URL: url}):
        yield


def main(argv: Sequence[str]) -> int:
    """Run ``argv`` with the shared API; a Ctrl-C reaches it from the terminal, a SIGTERM is passed
    on to it, and this process waits for it to stop before stopping the server."""
    if not argv:
        print("usage: python -m flows.prefect_api COMMAND [ARG ...]", file=sys.stderr)
        return 2
    with shared_api() as url:
        child = subprocess.Popen(list(argv), env={**os.environ, "PREFECT_API_URL": url})

        def pass_on(signum: int, frame: FrameType | None) -> None:
            if signum == signal.SIGTERM:
                child.send_signal(signum)

        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, pass_on)
        return child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
