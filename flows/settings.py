"""The project's fixed layout (shared with dvc.yaml) and the one params.yaml parse."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from components.budget import price_for
from components.errors import ConfigError
from components.params import Params, apply_overrides, parse_params
from tasks.files import write_atomic

PARAMS = Path("params.yaml")
SOURCE = Path("data/source.json")
PREPARED = Path("data/prepared")
MODELS = Path("models")
EMBEDDED_MODEL = MODELS / "smollm2-135m-instruct"
OUTPUTS = Path("outputs")
PROJECTION = OUTPUTS / "projection.pt"
STUDY_DB = OUTPUTS / "optuna.db"
RESPONSE_CACHE = OUTPUTS / "responses.db"
SERVER_LOG = OUTPUTS / "model_server.log"
TRIALS = OUTPUTS / "trials.json"
CANDIDATES = OUTPUTS / "candidates.json"
RUN_INFO = OUTPUTS / "run.json"
METRICS = Path("metrics")
PLOTS = Path("plots")
MLRUNS = Path("mlruns")


DATABASE_URL = "INSTRUCTZERO_DATABASE_URL"  # the environment variable (it may hold a password)


def database_url() -> str | None:
    """One database for the Optuna study and the response cache that several workers share
    (e.g. ``postgresql+psycopg://user:pw@host/db``), from $INSTRUCTZERO_DATABASE_URL only:
    never from params, never logged. Unset: SQLite files under outputs/."""
    return os.environ.get(DATABASE_URL) or None


def study_storage() -> str:
    return database_url() or f"sqlite:///{STUDY_DB}"


def response_store() -> Path | str:
    return database_url() or RESPONSE_CACHE


def tracking_uri() -> str:
    """Where runs and prompts go: $MLFLOW_TRACKING_URI (e.g. a shared tracking server), else
    the project's SQLite file, by absolute path (MLflow caches a store per URI, so a relative
    one would keep pointing at the first directory it was used from)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(MLRUNS / 'mlflow.db').resolve()}"


def artifact_root() -> Path | None:
    """Artifacts next to a SQLite store (mlruns/artifacts); a tracking server keeps its own."""
    uri = tracking_uri()
    return Path(uri.removeprefix("sqlite:///")).parent / "artifacts" if uri.startswith("sqlite:///") else None


@contextmanager
def in_workspace(params_path: Path, overrides: Mapping[str, Any], workspace: Path | None = None) -> Iterator[Path]:
    """Work in ``workspace`` (default runs/<task>) with its own params.yaml (``params_path`` with
    ``overrides``), data, outputs and study, so that runs of different tasks keep apart. It sees
    the project's models; MLflow stays the project's unless $MLFLOW_TRACKING_URI says otherwise."""
    raw = apply_overrides(read_yaml(params_path), overrides)
    params = parse_params(raw, source_name(params_path, overrides))  # validated before anything is created
    location = params.data.location
    if location and "://" not in location:
        raw["data"]["location"] = str(Path(location).resolve())
    root, env, uri = Path.cwd(), os.environ.get("MLFLOW_TRACKING_URI"), tracking_uri()
    directory = workspace_dir(params, workspace).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    write_atomic(directory / PARAMS, yaml.safe_dump(raw, sort_keys=False))
    if not (directory / MODELS).exists() and (root / MODELS).is_dir():
        (directory / MODELS).symlink_to(root / MODELS)
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.chdir(directory)
    try:
        yield directory
    finally:
        os.chdir(root)
        if env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)


def read_yaml(path: Path) -> Any:
    """A YAML file's content (errors name the file)."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror or err})") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err


def workspace_dir(params: Params, workspace: Path | None = None) -> Path:
    return workspace or Path("runs") / params.data.task


def load_params(path: Path = PARAMS, overrides: Mapping[str, Any] | None = None) -> Params:
    """Read and validate params.yaml, with dotted-key ``overrides`` (errors name the file and
    the bad keys)."""
    return parse_params(apply_overrides(read_yaml(path), overrides or {}), source_name(path, overrides))


def source_name(path: Path, overrides: Mapping[str, Any] | None) -> str:
    """How error messages name parameters: the file, and the overrides if any."""
    return f"{path} with {dict(overrides)}" if overrides else str(path)


def study_name(params: Params) -> str:
    """Names the study after everything that shapes its trials, but not the trial budget,
    so raising ``bo.n_instructions`` (or ``bo.n_trials``) continues a study instead of starting over."""
    keys = params.model_dump(include={"data", "projection", "generator", "blackbox", "bo"})
    keys["bo"].pop("n_trials")
    keys["bo"].pop("n_instructions")
    keys["blackbox"] = {k: keys["blackbox"][k] for k in ("base_url", "model", "max_tokens")}
    digest = hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:12]
    return f"{params.data.task}-{params.bo.sampler}-{digest}"


def local_model(params: Params) -> Path:
    """The model the local black-box server serves when no base_url is given."""
    return Path(params.blackbox.model) if params.blackbox.model else EMBEDDED_MODEL


def blackbox_price(params: Params) -> tuple[float, float] | None:
    """US$ per million (prompt, completion) tokens of the black box; the local server is free.

    Raises:
        ConfigError: when ``budget.max_cost`` is set and the model has no known price.
    """
    if params.blackbox.base_url is None:
        return 0.0, 0.0
    price = price_for(params.blackbox.model or "", params.budget.prices)
    if price is None and params.budget.max_cost is not None:
        raise ConfigError(
            f"budget.max_cost is set but no price is known for model {params.blackbox.model!r}: "
            f"add budget.prices.{params.blackbox.model}: [prompt, completion] (US$ per million tokens)"
        )
    return price
