"""Stage `evaluate`: the best instructions (and the empty one) scored on the test set."""

from __future__ import annotations

import os
from pathlib import Path

from prefect import flow, get_run_logger

from components.blackbox import ZERO_SHOT
from components.data import Split
from components.errors import BlackBoxError, ConfigError
from components.params import Params
from flows.settings import (
    CANDIDATES,
    METRICS,
    PARAMS,
    PREPARED,
    RUN_INFO,
    SERVER_LOG,
    load_params,
    local_model,
    response_store,
    tracking_uri,
)
from tasks.blackbox import evaluate, open_blackbox
from tasks.data import read_split, split_digest
from tasks.files import read_json, write_json
from tasks.tracking import failed_on_error, log_results, register_instruction

EMPTY = ""  # the baseline: no instruction at all


def require_run_outputs() -> None:
    """What evaluating needs from an optimisation run, or a ConfigError saying to run one."""
    if not (CANDIDATES.exists() and RUN_INFO.exists() and PREPARED.exists()):
        raise ConfigError(f"nothing to evaluate in {Path.cwd()}: {CANDIDATES} or {RUN_INFO} is missing; run the "
                          "optimisation first (python -m flows run, or dvc repro)")


@flow(name="evaluate-instruction")
def evaluate_test(params_path: Path = PARAMS) -> dict:
    params = load_params(params_path)
    require_run_outputs()
    split, metric = read_split(PREPARED)
    candidates = read_json(CANDIDATES)[: params.eval.top_k]
    run_id = read_json(RUN_INFO)["mlflow_run_id"]
    with failed_on_error(tracking_uri(), run_id):
        return _evaluate(params, split, metric, candidates, run_id)


def _evaluate(params: Params, split: Split, metric: str, candidates: list[dict], run_id: str) -> dict:
    """Score the candidates and the empty instruction, register the best, close the MLflow run."""
    instructions = list(dict.fromkeys([c["instruction"] for c in candidates] + [EMPTY]))
    with open_blackbox(params.blackbox, os.environ.get("OPENAI_API_KEY"), local_model(params),
                       response_store(), SERVER_LOG) as blackbox:
        get_run_logger().info("scoring %d instructions (the top %d and the empty one) on %d test examples",
                              len(instructions), len(candidates), len(split.test))
        scored = evaluate(blackbox, instructions, split.test, metric, bar="test set")
    evaluations = scored.evaluations
    if None in evaluations:
        raise BlackBoxError(
            f"{evaluations.count(None)} of {len(instructions)} instructions have test calls that failed after "
            f"{params.blackbox.max_retries} retries ({scored.last_error}); no test score is written. Run again: "
            "the answered calls are cached, only the failed ones are sent again")
    test = {e.instruction: e.mean for e in evaluations if e is not None}
    best = candidates[0]
    result = {
        "task": params.data.task,
        "metric": metric,
        "best_instruction": best["instruction"],
        "best_val_score": best["val_score"],
        "best_test_score": test[best["instruction"]],
        "empty_instruction_test_score": test[EMPTY],
        "n_test": len(split.test),
        "top": [{"instruction": c["instruction"], "val_score": c["val_score"], "test_score": test[c["instruction"]]}
                for c in candidates],
        "mlflow_run_id": run_id,
    }
    result["registered"] = register_instruction(
        tracking_uri(), params.data.task,
        ZERO_SHOT.format(instruction=best["instruction"], input="{{input}}"), result["best_test_score"],
        {"instruction": best["instruction"], "val_score": f"{best['val_score']:.6f}", "metric": metric,
         "blackbox_model": blackbox.model, "generator": params.generator.model, "optimizer": params.bo.sampler,
         "data_version": split_digest(PREPARED), "data": params.data.model_dump_json(), "mlflow_run_id": run_id},
    )
    write_json(METRICS / "test.json", result)
    log_results(
        tracking_uri(), run_id,
        {"test_score": result["best_test_score"], "empty_instruction_test_score": test[EMPTY],
         **{f"test_score_top{i + 1}": row["test_score"] for i, row in enumerate(result["top"])},
         **{f"test_blackbox_{k}": v for k, v in scored.stats.as_dict().items()}},
        files=[METRICS / "test.json"], texts={"best_instruction.txt": best["instruction"] + "\n"},
        status="FINISHED",
    )
    return result


if __name__ == "__main__":
    from flows.preflight import stage_main

    stage_main(evaluate_test)
