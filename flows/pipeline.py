"""The whole run as one flow: generator model -> data -> BO loop -> test-set evaluation.

`dvc repro` runs the same steps stage by stage; this flow is what the CLI's `run` and the
scheduled Prefect deployments call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from flows.evaluate import evaluate_test
from flows.model import convert_model
from flows.optimize import optimize
from flows.preflight import preflight
from flows.prepare import prepare
from flows.settings import PARAMS, open_workspace


@flow(name="instructzero-pipeline")
def pipeline(
    params_path: Path = PARAMS, overrides: dict[str, Any] | None = None, workspace: Path | None = None
) -> dict[str, Any]:
    """Optimise an instruction and test it. With ``overrides`` (dotted keys, e.g.
    ``{"data.task": "sentiment"}``) or a ``workspace``, the run happens in that directory
    (default runs/<task>) with its own params.yaml, outputs and study; MLflow stays shared.
    Bad input stops it before any work (flows/preflight.py)."""
    preflight(params_path, overrides)
    convert_model()
    run_in = open_workspace(params_path, overrides or {}, workspace)
    prepare(run_in)
    optimize(run_in)
    return evaluate_test(run_in)


if __name__ == "__main__":
    pipeline()
