"""Stage `source`: the task data's content hash, so that `dvc repro` re-runs `prepare` when the
data changes. DVC runs it on every repro (always_changed): a user's file, folder or URL can
change outside DVC; an unchanged hash leaves `prepare` and everything after it skipped.
"""

from __future__ import annotations

from components.data import task_digest
from flows.settings import HERE, Workspace, load_params
from tasks.data import load_task
from tasks.files import write_json


def record_source(workspace: Workspace = HERE) -> dict:
    """Read the task as `prepare` will and write where it came from and its hash to data/source.json."""
    params = load_params(workspace.params).data
    data = load_task.fn(params)
    record = {"source": params.source, "task": params.task, "location": params.location,
              "pool": len(data.pool), "test": len(data.test), "sha256": task_digest(data)}
    write_json(workspace.source, record)
    return record


if __name__ == "__main__":
    from flows.preflight import stage_main

    stage_main(record_source)
