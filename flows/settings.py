"""The project's fixed layout (shared with dvc.yaml) and the one params.yaml parse."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml

from components.budget import price_for
from components.errors import ConfigError
from components.params import Params, parse_params

PARAMS = Path("params.yaml")
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
TRACKING_URI = f"sqlite:///{MLRUNS}/mlflow.db"


def load_params(path: Path = PARAMS) -> Params:
    """Read and validate params.yaml (errors name the file and the bad keys)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err})") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err
    return parse_params(raw, str(path))


def study_name(params: Params) -> str:
    """Names the study after everything that shapes its trials, but not the trial budget,
    so raising ``bo.n_trials`` continues a study instead of starting over."""
    keys = params.model_dump(include={"data", "projection", "generator", "blackbox", "bo"})
    keys["bo"].pop("n_trials")
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
