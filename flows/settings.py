"""The project's fixed layout (shared with dvc.yaml) and the one params.yaml parse."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from components.budget import price_for
from components.builtin_tasks import REFERENCES
from components.errors import ConfigError
from components.params import Params, apply_overrides, parse_params
from tasks.files import write_atomic

PARAMS = Path("params.yaml")
EMBEDDED_MODEL = Path("models") / "smollm2-135m-instruct"
DATABASE_URL = "INSTRUCTZERO_DATABASE_URL"  # the environment variable (it may hold a password)


def database_url() -> str | None:
    """One database for the Optuna study and the response cache that several workers share
    (e.g. ``postgresql+psycopg://user:pw@host/db``), from $INSTRUCTZERO_DATABASE_URL only:
    never from params, never logged. Unset: SQLite files under outputs/."""
    return os.environ.get(DATABASE_URL) or None


@dataclass(frozen=True)
class Workspace:
    """Where one run keeps its files, every path under ``root`` (the layout dvc.yaml names):
    its parameter file (``params_file``, default root/params.yaml), data, outputs, study,
    metrics and plots. It logs to the MLflow store in ``mlruns_dir`` (default root/mlruns)
    unless $MLFLOW_TRACKING_URI names another. The stages take one and pass it down: nothing
    changes the process's working directory, so runs in other workspaces can share a process."""

    root: Path = Path(".")
    params_file: Path | None = None
    mlruns_dir: Path | None = None

    def absolute(self) -> Workspace:
        """The same workspace by absolute paths (for a flow run in another directory)."""
        return Workspace(self.root.resolve(), self.params.resolve(), self.mlruns.resolve())

    @property
    def params(self) -> Path:
        return self.params_file or self.root / PARAMS

    @property
    def source(self) -> Path:
        return self.root / "data" / "source.json"

    @property
    def prepared(self) -> Path:
        return self.root / "data" / "prepared"

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    @property
    def projection(self) -> Path:
        return self.outputs / "projection.pt"

    @property
    def study_db(self) -> Path:
        return self.outputs / "optuna.db"

    @property
    def server_log(self) -> Path:
        return self.outputs / "model_server.log"

    @property
    def trials(self) -> Path:
        return self.outputs / "trials.json"

    @property
    def candidates(self) -> Path:
        return self.outputs / "candidates.json"

    @property
    def run_info(self) -> Path:
        return self.outputs / "run.json"

    @property
    def mlruns(self) -> Path:
        return self.mlruns_dir or self.root / "mlruns"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    def study_storage(self) -> str:
        return database_url() or f"sqlite:///{self.study_db}"

    def response_store(self) -> Path | str:
        return database_url() or self.outputs / "responses.db"

    def tracking_uri(self) -> str:
        """Where runs and prompts go: $MLFLOW_TRACKING_URI (e.g. a shared tracking server), else
        the SQLite file in ``mlruns_dir``, by absolute path (MLflow caches a store per URI, so a
        relative one would keep pointing at the first directory it was used from)."""
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(self.mlruns / 'mlflow.db').resolve()}"

    def artifact_root(self) -> Path | None:
        """Artifacts next to a SQLite store (mlruns/artifacts); a tracking server keeps its own."""
        uri = self.tracking_uri()
        return Path(uri.removeprefix("sqlite:///")).parent / "artifacts" if uri.startswith("sqlite:///") else None


HERE = Workspace()  # the project directory itself: what dvc.yaml's stages and the deployments use


def open_workspace(params_path: Path, overrides: Mapping[str, Any], directory: Path | None = None) -> Workspace:
    """The workspace a run happens in (``run_workspace``); unless that is the project itself, its
    own params.yaml is written there (``params_path`` with ``overrides``, a relative data location
    made absolute)."""
    raw = apply_overrides(read_yaml(params_path), overrides)
    params = parse_params(raw, source_name(params_path, overrides))  # validated before anything is created
    workspace = run_workspace(params, params_path, overrides, directory)
    if workspace.params_file is not None:  # the project itself, on its own params file
        return workspace
    location = params.data.location
    if location and "://" not in location:
        raw["data"]["location"] = str(Path(location).resolve())
    workspace.root.mkdir(parents=True, exist_ok=True)
    write_atomic(workspace.params, yaml.safe_dump(raw, sort_keys=False))
    return workspace


def read_yaml(path: Path) -> Any:
    """A YAML file's content (errors name the file)."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror or err})") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err


def run_workspace(
    params: Params, params_path: Path, overrides: Mapping[str, Any] | None, directory: Path | None = None
) -> Workspace:
    """Where a run of ``params_path`` happens: the project itself, unless ``overrides`` or a
    ``directory`` are given; then ``directory`` (default runs/<task>), with its own params.yaml,
    data, outputs and study, so that runs of different tasks keep apart, logging to this
    project's MLflow store."""
    if not overrides and directory is None:
        return Workspace(params_file=params_path)
    return Workspace(directory or Path("runs") / params.data.task, mlruns_dir=Path("mlruns").resolve())


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


def reference_instruction(params: Params) -> str | None:
    """The instruction the found one is compared with on the test set: ``eval.reference``, else a
    built-in task's own reference; None for other tasks."""
    if params.eval.reference:
        return params.eval.reference
    return REFERENCES.get(params.data.task) if params.data.source == "builtin" else None


def local_model(params: Params) -> Path:
    """The model the local black-box server serves when no base_url is given."""
    return Path(params.blackbox.model) if params.blackbox.model else EMBEDDED_MODEL


def cpu_threads(params: Params) -> int | None:
    """CPU threads for this process's torch (generator, GP): ``scale.threads``, else half the
    cores when the black box runs on this machine (the local model server, or any endpoint on
    a loopback address), which answers while the next batch is generated and would otherwise
    fight it for every core, else all (None)."""
    if params.scale.threads is not None:
        return params.scale.threads
    url = params.blackbox.base_url
    host = (urlsplit(url).hostname or "") if url else "localhost"
    try:
        here = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        here = False
    return max(1, (os.cpu_count() or 2) // 2) if here else None


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
