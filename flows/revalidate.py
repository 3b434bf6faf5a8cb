"""Re-validation: re-score each task's production instruction on its test set with today's
black box (possibly a new model or endpoint), log the drift and flag instructions that dropped."""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from components.errors import BlackBoxError
from components.params import BlackBoxParams, DataParams
from flows.settings import HERE, PARAMS, load_params, local_model
from tasks.blackbox import open_blackbox, score_instructions
from tasks.data import load_task, split_and_write, split_digest
from tasks.tracking import log_results, log_table, production_prompts, start_run, tag_prompt_version


@flow(name="revalidate-prompts")
def revalidate(
    params_path: Path = PARAMS, tasks: list[str] | None = None, base_url: str | None = None,
    model: str | None = None, tolerance: float = 0.05,
) -> list[dict[str, Any]]:
    """Score the production version of each task's prompt (or of ``tasks``) on the test split it
    was registered with, using params.yaml's black box or ``base_url``/``model``. Answers are
    never taken from the response cache: the point is to see what the endpoint says today.
    An instruction whose test score fell by more than ``tolerance`` is flagged ``dropped``.
    Results go to an MLflow run (metrics and a table) and to tags on each prompt version."""
    params = load_params(params_path)
    update = {k: v for k, v in (("base_url", base_url), ("model", model)) if v is not None}
    box = BlackBoxParams.model_validate({**params.blackbox.model_dump(), **update})
    params = params.model_copy(update={"blackbox": box})
    logger = get_run_logger()
    versions = production_prompts(HERE.tracking_uri(), tasks)
    if not versions:
        logger.warning("no production prompt in the registry at %s%s", HERE.tracking_uri(),
                       f" for tasks {tasks}" if tasks else "")
        return []
    rows = []
    with tempfile.TemporaryDirectory() as tmp, open_blackbox(
        box, os.environ.get("OPENAI_API_KEY"), local_model(params), Path(tmp) / "responses.db",
        Path(tmp) / "server.log",
    ) as blackbox:
        for version in versions:
            tags = version.tags
            data = DataParams.model_validate_json(tags["data"])
            split = split_and_write.fn(load_task.fn(data), data, Path(tmp) / version.name)
            scored = score_instructions(blackbox, [tags["instruction"]], split.test, tags["metric"])
            (evaluation,) = scored.evaluations
            if evaluation is None:
                raise BlackBoxError(f"{version.name}: test calls failed after {box.max_retries} retries "
                                    f"({scored.last_error}); nothing is recorded")
            before = float(tags["test_score"])
            row: dict[str, Any] = {
                "prompt": version.name, "version": int(version.version), "task": data.task,
                "instruction": tags["instruction"], "registered_test_score": before,
                "test_score": evaluation.mean, "drift": evaluation.mean - before,
                "dropped": evaluation.mean < before - tolerance,
                "blackbox_model": blackbox.model, "registered_blackbox_model": tags.get("blackbox_model", ""),
                "data_changed": split_digest(Path(tmp) / version.name) != tags.get("data_version"),
                "n_test": len(split.test),
            }
            rows.append(row)
            log = logger.warning if row["dropped"] else logger.info
            log("%s v%d: test %.3f -> %.3f (drift %+.3f)%s", version.name, row["version"], before,
                row["test_score"], row["drift"], " DROPPED" if row["dropped"] else "")
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for version, row in zip(versions, rows, strict=True):
        tag_prompt_version(HERE.tracking_uri(), version, {
            "revalidated_at": now, "revalidated_test_score": f"{row['test_score']:.6f}",
            "revalidated_drift": f"{row['drift']:+.6f}", "revalidated_blackbox_model": row["blackbox_model"],
            "dropped": str(row["dropped"]).lower()})
    run_id = start_run(HERE.tracking_uri(), HERE.artifact_root(), f"{params.tracking.experiment}-revalidation",
                       f"revalidate-{now}", {"blackbox": box.model_dump(), "tolerance": tolerance},
                       tags={"kind": "revalidation"})
    log_results(HERE.tracking_uri(), run_id, {
        **{f"{r['task']}.test_score": r["test_score"] for r in rows},
        **{f"{r['task']}.drift": r["drift"] for r in rows},
        "n_dropped": sum(r["dropped"] for r in rows)}, status="FINISHED")
    log_table(HERE.tracking_uri(), run_id, rows, "revalidation.json")
    return rows


if __name__ == "__main__":
    revalidate()
