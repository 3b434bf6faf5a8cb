"""Shared fixtures: one PostgreSQL, Prefect server and MLflow server per session, the embedded
model, a work dir."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import flows  # noqa: F401  (runtime defaults: offline hub, no telemetry)
from tests.services import (  # noqa: F401  (tests import them here)
    background,
    free_port,
    new_database,
    prefect_and_mlflow_servers,
    temporary_postgres,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PREFECT_WORKER_QUERY_SECONDS", "1")  # the workers tests start poll every second, not 10

# The modules with the longest real-path tests, longest first: `make test` runs two test processes
# (`-n 2 --dist load --maxschedchunk 1`) that take them first and end together on the short ones.
LONGEST_FIRST = ("test_shutdown", "test_dvc", "test_workers", "test_sweep", "test_operations", "test_pipeline",
                 "test_deployments", "test_faults", "test_shared_stores", "test_prefect_api")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))


@pytest.fixture(scope="session")
def embedded_model() -> Path:
    """The embedded generator as an HF folder (converted once, shared with `make run`; one test
    process converts it while the others wait)."""
    from filelock import FileLock

    from flows.settings import EMBEDDED_MODEL
    from tasks.generator import convert_embedded_model

    folder = ROOT / EMBEDDED_MODEL
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(folder.with_name(folder.name + ".lock")):
        return convert_embedded_model.fn(folder)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server in a temporary directory on a free port, for the session."""
    with temporary_postgres() as url:
        yield url


@pytest.fixture(scope="session")
def servers(tmp_path_factory, postgres_url) -> Iterator[dict[str, str]]:
    """One Prefect server (`prefect server start`) and one MLflow tracking server (its backend a
    database on the session's PostgreSQL) for the session, as the environment that points at
    them. Tests sharing them keep apart by their own work pools, experiments and flow runs."""
    root = tmp_path_factory.mktemp("servers")
    env = {**os.environ, "PREFECT_HOME": str(root / "prefect"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    with background() as start:
        env = prefect_and_mlflow_servers(start, env, new_database(postgres_url, "mlflow"), root / "artifacts")
        yield {name: env[name] for name in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI")}


@pytest.fixture
def prefect_api(servers, monkeypatch) -> Iterator[str]:
    """The session's Prefect server for this process's flows (in every thread, as when a user sets
    PREFECT_API_URL before starting Python) and every process it starts."""
    import prefect.context

    monkeypatch.setenv("PREFECT_API_URL", servers["PREFECT_API_URL"])
    monkeypatch.setattr(prefect.context, "GLOBAL_SETTINGS_CONTEXT", prefect.context.root_settings_context())
    yield servers["PREFECT_API_URL"]


def small_params(**overrides: dict) -> dict:
    """The repository's params.yaml on a small budget, with per-section overrides."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"].update(n_validation=5, n_test=6)
    raw["generator"].update(max_new_tokens=16)
    raw["bo"].update(n_instructions=4, n_trials=4, n_startup_trials=2, batch_size=2)
    for section, values in overrides.items():
        raw[section].update(values)
    return raw


@pytest.fixture(scope="session")
def empty_tracking_store(tmp_path_factory) -> Path:
    """An MLflow SQLite store with its tables made (MLflow's migrations take seconds a store)."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def workdir(tmp_path, monkeypatch, embedded_model, empty_tracking_store) -> Path:
    """A fresh project directory (params.yaml, the model, an empty MLflow store) as the current
    directory."""
    (tmp_path / "mlruns").mkdir()
    shutil.copy(empty_tracking_store, tmp_path / "mlruns" / "mlflow.db")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / embedded_model.name).symlink_to(embedded_model)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(small_params()))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path
