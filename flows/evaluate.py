"""Stage `evaluate`: the best instructions (and the empty one) scored on the test set."""

from __future__ import annotations

import os

from prefect import flow, get_run_logger

from components.blackbox import ZERO_SHOT
from components.data import Split
from components.errors import BlackBoxError, ConfigError
from components.params import Params
from components.progress import ProgressLog
from components.stats import paired_bootstrap
from flows.settings import HERE, Workspace, load_params, local_model, reference_instruction
from tasks.blackbox import open_blackbox, score_instructions
from tasks.data import read_split, split_digest
from tasks.files import read_json, write_json
from tasks.tracking import failed_on_error, log_results, log_test_evaluation, register_instruction

EMPTY = ""  # the baseline: no instruction at all


def require_run_outputs(workspace: Workspace = HERE) -> None:
    """What evaluating needs from an optimisation run, or a ConfigError saying to run one."""
    if not (workspace.candidates.exists() and workspace.run_info.exists() and workspace.prepared.exists()):
        raise ConfigError(f"nothing to evaluate in {workspace.root.resolve()}: {workspace.candidates} or "
                          f"{workspace.run_info} is missing; run the optimisation first (python -m flows run, or "
                          "dvc repro)")


@flow(name="evaluate-instruction")
def evaluate_test(workspace: Workspace = HERE) -> dict:
    params = load_params(workspace.params)
    require_run_outputs(workspace)
    split, metric = read_split(workspace.prepared)
    candidates = read_json(workspace.candidates)[: params.eval.top_k]
    run_id = read_json(workspace.run_info)["mlflow_run_id"]
    with failed_on_error(workspace.tracking_uri(), run_id):
        return _score_and_register(params, workspace, split, metric, candidates, run_id)


def _score_and_register(
    params: Params, workspace: Workspace, split: Split, metric: str, candidates: list[dict], run_id: str
) -> dict:
    """Score the candidates, the empty instruction and the reference, register the best (its
    scoring an MLflow evaluation on the run), close the MLflow run."""
    reference = reference_instruction(params)
    baselines = [EMPTY, reference] if reference else [EMPTY]
    instructions = list(dict.fromkeys([c["instruction"] for c in candidates] + baselines))
    with open_blackbox(params.blackbox, os.environ.get("OPENAI_API_KEY"), local_model(params),
                       workspace.response_store(), workspace.server_log) as blackbox:
        logger = get_run_logger()
        logger.info("scoring %d instructions (the top %d, %s) on %d test examples", len(instructions),
                    len(candidates), "the empty one and the reference" if reference else "the empty one",
                    len(split.test))
        progress = ProgressLog(logger.info, "test set", len(instructions) * len(split.test))
        scored = score_instructions(blackbox, instructions, split.test, metric, progress)
    evaluations = scored.evaluations
    if None in evaluations:
        raise BlackBoxError(
            f"{evaluations.count(None)} of {len(instructions)} instructions have test calls that failed after "
            f"{params.blackbox.max_retries} retries ({scored.last_error}); no test score is written. Run again: "
            "the answered calls are cached, only the failed ones are sent again")
    test = {e.instruction: e.mean for e in evaluations if e is not None}
    best = candidates[0]
    per_example = {e.instruction: e.scores for e in evaluations if e is not None}
    gain = paired_bootstrap(per_example[best["instruction"]], per_example[EMPTY])
    # on the same test examples, with their 95% paired bootstrap intervals
    comparisons = {"gain_over_empty": gain.mean, "gain_low": gain.low, "gain_high": gain.high}
    if reference:
        over = paired_bootstrap(per_example[best["instruction"]], per_example[reference])
        comparisons |= {"reference_test_score": test[reference], "gain_over_reference": over.mean,
                        "reference_gain_low": over.low, "reference_gain_high": over.high}
    result = {
        "task": params.data.task,
        "metric": metric,
        "best_instruction": best["instruction"],
        "best_val_score": best["val_score"],
        "best_test_score": test[best["instruction"]],
        "empty_instruction_test_score": test[EMPTY],
        "reference_instruction": reference,
        **comparisons,
        "n_test": len(split.test),
        "top": [{"instruction": c["instruction"], "val_score": c["val_score"], "test_score": test[c["instruction"]]}
                for c in candidates],
        "mlflow_run_id": run_id,
    }
    result["registered"] = register_instruction(
        workspace.tracking_uri(), params.data.task,
        ZERO_SHOT.format(instruction=best["instruction"], input="{{input}}"), result["best_test_score"],
        {"instruction": best["instruction"], "val_score": f"{best['val_score']:.6f}", "metric": metric,
         "blackbox_model": blackbox.model, "generator": params.generator.model, "optimizer": params.bo.sampler,
         "data_version": split_digest(workspace.prepared), "data": params.data.model_dump_json(),
         "mlflow_run_id": run_id},
    )
    registered = f"prompts:/{result['registered']['prompt']}/{result['registered']['version']}"
    [scoring] = [e for e in evaluations if e is not None and e.instruction == best["instruction"]]
    log_test_evaluation(workspace.tracking_uri(), run_id, registered, metric, params.data.task,
                        workspace.prepared / "test.jsonl", split.test, scoring)
    write_json(workspace.metrics / "test.json", result)
    log_results(
        workspace.tracking_uri(), run_id,
        {"test_score": result["best_test_score"], "empty_instruction_test_score": test[EMPTY], **comparisons,
         **{f"test_score_top{i + 1}": row["test_score"] for i, row in enumerate(result["top"])},
         **{f"test_blackbox_{k}": v for k, v in scored.stats.as_dict().items()}},
        files=[workspace.metrics / "test.json"], texts={"best_instruction.txt": best["instruction"] + "\n"},
        status="FINISHED",
    )
    return result


if __name__ == "__main__":
    from flows.preflight import stage_main

    stage_main(evaluate_test)
