"""Shared fixtures: one Prefect test harness per session, the embedded model, a work dir."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import flows  # noqa: F401  (runtime defaults: offline hub, no telemetry)

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=None):  # flows/__init__.py's timeout
        yield


@pytest.fixture(scope="session")
def embedded_model() -> Path:
    """The embedded generator as an HF folder (converted once, shared with `make run`)."""
    from flows.settings import EMBEDDED_MODEL
    from tasks.generator import convert_embedded_model

    return convert_embedded_model.fn(ROOT / EMBEDDED_MODEL)


def _postgres_binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None)
    if found is None:
        pytest.fail(f"PostgreSQL's {name} is not installed (make test installs the Debian package)")
    return found


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server in a temporary directory on a free port, for the session.
    initdb refuses to run as root: then the server runs as the postgres user."""
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
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    try:
        import psycopg

        deadline = time.monotonic() + 60
        while True:
            try:
                psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def small_params(**overrides: dict) -> dict:
    """The repository's params.yaml on a small budget, with per-section overrides."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"].update(n_validation=5, n_test=6)
    raw["generator"].update(max_new_tokens=16)
    raw["bo"].update(n_instructions=4, n_trials=4, n_startup_trials=2, batch_size=2)
    for section, values in overrides.items():
        raw[section].update(values)
    return raw


@pytest.fixture
def workdir(tmp_path, monkeypatch, embedded_model) -> Path:
    """A fresh project directory (params.yaml + the model) as the current directory."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / embedded_model.name).symlink_to(embedded_model)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(small_params()))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path
