"""One Prefect API for every flow of a command: ``python -m flows.prefect_api dvc repro``.

A process that runs a flow with no ``PREFECT_API_URL`` starts Prefect's temporary server of its
own (5-15 s on 2 cores), so `dvc repro`'s four stage processes would start four. Wrapped in this
command they share one: Prefect's own temporary server (same database in ``PREFECT_HOME``, same
start-up timeout) started once and given to every child as ``PREFECT_API_URL``. With a Prefect
API already configured (``PREFECT_API_URL``, a profile, a test harness), that one is used.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

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
    server.start()  # waits up to $PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS
    try:
        yield server.api_url
    finally:
        server.stop()


def main(argv: Sequence[str]) -> int:
    if not argv:
        print("usage: python -m flows.prefect_api COMMAND [ARG ...]", file=sys.stderr)
        return 2
    with shared_api() as url:
        return subprocess.run(list(argv), env={**os.environ, "PREFECT_API_URL": url}, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
