"""Stage `prepare`: load the task, split it with a fixed seed, write the split files."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from flows.settings import PARAMS, PREPARED, load_params
from tasks.data import load_task, split_and_write


@flow(name="prepare-data")
def prepare(params_path: Path = PARAMS) -> None:
    params = load_params(params_path).data
    split = split_and_write(load_task(params), params, PREPARED)
    get_run_logger().info(
        "task %r: %d exemplars, %d validation, %d test examples -> %s",
        params.task, len(split.exemplars), len(split.validation), len(split.test), PREPARED,
    )


if __name__ == "__main__":
    prepare()
