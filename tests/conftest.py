"""Shared fixtures: one Prefect test harness per session, the embedded model, a work dir."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import flows  # noqa: F401  (runtime defaults: offline hub, no telemetry)
from tests.services import free_port, temporary_postgres, wait_for  # noqa: F401  (tests import them here)

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


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server in a temporary directory on a free port, for the session."""
    with temporary_postgres() as url:
        yield url


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
