"""Real services for tests and benchmarks, started in temporary directories on free ports."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _postgres_binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None)
    if found is None:
        raise FileNotFoundError(f"PostgreSQL's {name} is not installed (make test installs the Debian package)")
    return found


@contextmanager
def temporary_postgres() -> Iterator[str]:
    """A PostgreSQL server in a temporary directory on a free port; yields its SQLAlchemy URL.
    initdb refuses to run as root: then the server runs as the postgres user."""
    import psycopg

    root = Path(tempfile.mkdtemp(prefix="instructzero-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_user, _postgres_binary("initdb"), "-D", str(root / "data"), "-U", "postgres",
                    "--auth=trust", "-E", "UTF8"], check=True, capture_output=True)
    port = free_port()
    server = subprocess.Popen(
        [*as_user, _postgres_binary("postgres"), "-D", str(root / "data"), "-p", str(port), "-h", "127.0.0.1",
         "-k", str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.3)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def new_database(postgres_url: str, name: str) -> str:
    """A new, empty database ``name`` on the server of ``postgres_url``; returns its URL."""
    import psycopg

    with psycopg.connect(postgres_url.replace("+psycopg", ""), autocommit=True) as db:
        db.execute(f"DROP DATABASE IF EXISTS {name}")
        db.execute(f"CREATE DATABASE {name}")
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"


def wait_for(url: str, seconds: float = 120) -> None:
    """Until ``url`` answers (a server started in a subprocess is up)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


STOP_GRACE = 5


@contextmanager
def background() -> Iterator[Callable[..., subprocess.Popen]]:
    """A function ``start(*cmd, env=..., cwd=...)`` that starts a command in its own process
    group (output discarded); every group started is stopped on exit, latest first: SIGTERM, and
    SIGKILL if it still runs after ``STOP_GRACE`` seconds (a Prefect worker's graceful stop can
    take minutes of its own housekeeping after its flow runs are done; the test has ended)."""
    started: list[subprocess.Popen] = []

    def start(*cmd: str, env: dict[str, str], cwd: Path) -> subprocess.Popen:
        started.append(subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True))
        return started[-1]

    try:
        yield start
    finally:
        for process in reversed(started):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=STOP_GRACE)


def prefect_and_mlflow_servers(start: Callable[..., subprocess.Popen], env: dict[str, str], mlflow_store: str,
                               artifacts: Path) -> dict[str, str]:
    """A Prefect server (its home: ``env``'s PREFECT_HOME) and an MLflow tracking server
    (``mlflow_store`` its backend), started with ``start`` (see :func:`background`) and
    answering; returns ``env`` with both servers' addresses."""
    prefect_port, mlflow_port = free_port(), free_port()
    start("prefect", "server", "start", "--host", "127.0.0.1", "--port", str(prefect_port), env=env,
          cwd=artifacts.parent)
    start("mlflow", "server", "--backend-store-uri", mlflow_store, "--artifacts-destination", str(artifacts),
          "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1", env=env, cwd=artifacts.parent)
    wait_for(f"http://127.0.0.1:{prefect_port}/api/health")
    wait_for(f"http://127.0.0.1:{mlflow_port}/health")
    return {**env, "PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api",
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{mlflow_port}"}
