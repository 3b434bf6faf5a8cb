"""Stage `prepare`: load the task, split it with a fixed seed, write the split files."""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows.settings import HERE, Workspace, load_params
from tasks.data import load_task, split_and_write


@flow(name="prepare-data")
def prepare(workspace: Workspace = HERE) -> None:
    params = load_params(workspace.params).data
    split = split_and_write(load_task(params), params, workspace.prepared)
    logger = get_run_logger()
    logger.info("task %r: %d exemplars, %d validation, %d test examples -> %s",
                params.task, len(split.exemplars), len(split.validation), len(split.test), workspace.prepared)
    if split.n_duplicates:
        logger.warning("dropped %d duplicate rows (a repeated input, or a test input also shown as an exemplar "
                       "or validation example)", split.n_duplicates)
    if len(split.validation) < params.n_validation:
        logger.warning("the task is small: %d validation examples instead of data.n_validation=%d",
                       len(split.validation), params.n_validation)


if __name__ == "__main__":
    from flows.preflight import stage_main

    stage_main(prepare)
