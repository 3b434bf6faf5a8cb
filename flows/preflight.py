"""One validation pass before any work: params, model folders, task data, the endpoint's key.

The same for `run`, `dry-run` and the deployments' pipeline; nothing is created before it passes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from components.data import split_task
from components.errors import ConfigError, TaskDataError
from components.params import Params
from components.preflight import input_problems
from flows.settings import EMBEDDED_MODEL, PARAMS, load_params, source_name
from tasks.data import load_task


def preflight(params_path: Path = PARAMS, overrides: Mapping[str, Any] | None = None) -> Params:
    """The validated params, once everything checkable offline is fine.

    Raises:
        ConfigError: naming the file (and overrides), each bad key and its value.
        TaskDataError: naming the task file, line or field.
    """
    from prefect.settings import PREFECT_API_URL  # a profile may set it too

    params = load_params(params_path, overrides)
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value() or ""}
    if problems := input_problems(params, env, EMBEDDED_MODEL):
        raise ConfigError(f"{source_name(params_path, overrides)}:\n" + "\n".join(f"  {p}" for p in problems))
    if "://" not in (params.data.location or ""):  # a URL is read once, by the prepare step
        data = params.data
        split_task(load_task.fn(data), data.n_exemplars, data.n_validation, data.n_test, data.seed)
    return params


def stage_main(stage: Callable[[], object]) -> None:
    """A dvc.yaml stage's command: bad input exits 2 with one message before the flow starts."""
    try:
        preflight()
    except (ConfigError, TaskDataError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    stage()
