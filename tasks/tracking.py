"""MLflow logging with an explicit run id (MlflowClient): safe from any thread."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import mlflow
from matplotlib.figure import Figure
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param
from mlflow.entities.model_registry import PromptVersion
from mlflow.exceptions import MlflowException
from mlflow.genai.scorers import Scorer, scorer
from mlflow.tracking import MlflowClient
from mlflow.tracking._tracking_service.utils import _use_tracking_uri
from prefect import task
from prefect.exceptions import TerminationSignal

from components.blackbox import Evaluation
from components.data import Example
from components.metrics import score
from tasks.data import SPLITS


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"bo": {"seed": 0}}`` -> ``{"bo.seed": "0"}``."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


EXPERIMENT_KIND = "mlflow.experimentKind"  # read by the MLflow UI


@task
def start_run(
    tracking_uri: str, artifact_root: Path | None, experiment: str, run_name: str, params: Mapping[str, Any],
    tags: Mapping[str, str], run_id: str | None = None,
) -> str:
    """Create the pipeline's MLflow run (logging every param), or reopen ``run_id``."""
    client = MlflowClient(tracking_uri)
    if run_id is not None:
        client.update_run(run_id, status="RUNNING")
        return run_id
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(
        experiment, artifact_location=artifact_root.resolve().as_uri() if artifact_root else None
    )
    # The UI then opens on the runs table (it takes an untagged experiment for a GenAI one: traces).
    client.set_experiment_tag(experiment_id, EXPERIMENT_KIND, "custom_model_development")
    run = client.create_run(experiment_id, run_name=run_name, tags=dict(tags))
    client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in flatten(params).items()])
    return run.info.run_id


DATASET_CONTEXT = "mlflow.data.context"  # read by the MLflow UI
SPLIT_SCHEMA = json.dumps({"mlflow_colspec": [
    {"type": "string", "name": "input", "required": True},
    {"type": "array", "items": {"type": "string"}, "name": "outputs", "required": True},
    {"type": "array", "items": {"type": "string"}, "name": "choices", "required": False}]})


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@task
def log_splits(tracking_uri: str, run_id: str, prepared: Path, task_name: str) -> None:
    """The prepared splits as the run's MLflow datasets (the UI's Dataset column and Datasets
    view): ``<task>-<split>``, its digest the md5 of its file (DVC's content hash of it), its
    context the split's name. Logging them again (a resumed run) adds nothing."""
    datasets = []
    for split in SPLITS:
        path = prepared / f"{split}.jsonl"
        data = path.read_bytes()
        dataset = Dataset(f"{task_name}-{split}", _md5(data), "local",
                          json.dumps({"uri": path.resolve().as_uri()}), SPLIT_SCHEMA,
                          json.dumps({"num_rows": data.count(b"\n")}))
        datasets.append(DatasetInput(dataset, [InputTag(DATASET_CONTEXT, split)]))
    MlflowClient(tracking_uri).log_inputs(run_id, datasets)


def task_scorer(metric: str) -> Scorer:
    """The task's metric as an MLflow scorer: the output against the expected response (one
    accepted answer, or a list of them) and the example's ``choices``, when it has any."""
    def scored(outputs: Any, expectations: dict[str, Any]) -> float:
        answers = expectations["expected_response"]
        return score(str(outputs), answers if isinstance(answers, list) else [answers], metric,
                     expectations.get("choices", ()))

    return scorer(scored, name=metric)


# mlflow.genai.evaluate and prompt linking work on MLflow's process-wide tracking URI: one at a time.
_FLUENT = threading.Lock()


@contextmanager
def process_tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's process-wide tracking URI set to ``uri`` for the body (one body at a time), then
    put back, $MLFLOW_TRACKING_URI with it: MLflow's own setter writes the variable and, going
    back to no URI, deletes it, so a tracking server the user named would be forgotten."""
    saved = os.environ.get("MLFLOW_TRACKING_URI")
    with _FLUENT:
        try:
            with _use_tracking_uri(uri):
                yield
        finally:
            if saved is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = saved


@task
def log_test_evaluation(tracking_uri: str, run_id: str, prompt_uri: str, metric: str, task_name: str,
                        test_file: Path, examples: Sequence[Example], evaluation: Evaluation) -> None:
    """The registered prompt's test-set scoring as an MLflow GenAI evaluation on the run (the
    UI's Evaluation runs), the prompt version linked to the run. The test split is an MLflow
    evaluation dataset (the UI's Datasets), ``<task>-test-<md5 of test_file>`` (made once, its
    records the inputs, accepted answers and choices); the evaluation has a trace per example with its
    input, the black box's answer and the accepted answers, judged by the task's metric as a
    scorer (the run's ``<metric>/mean``). Nothing is asked of the black box: predict_fn returns
    the answers scored. MLflow's console summary and progress bar stay out of the run's output."""
    answers = dict(zip((e.input for e in examples), evaluation.outputs, strict=True))
    name = f"{task_name}-test-{_md5(test_file.read_bytes())[:8]}"
    quiet = io.StringIO()
    with process_tracking_uri(tracking_uri):  # (the registry finds the run there too)
        client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
        client.link_prompt_version_to_run(run_id, prompt_uri)
        try:
            dataset = mlflow.genai.datasets.get_dataset(name=name)
        except MlflowException:
            dataset = mlflow.genai.datasets.create_dataset(
                name=name, experiment_id=client.get_run(run_id).info.experiment_id)
            dataset.merge_records([{"inputs": {"input": e.input}, "expectations": {
                "expected_response": list(e.outputs)} | ({"choices": list(e.choices)} if e.choices else {})}
                for e in examples])
        with mlflow.start_run(run_id=run_id), redirect_stdout(quiet), redirect_stderr(quiet):
            mlflow.genai.evaluate(data=dataset, predict_fn=lambda input: answers[input],  # noqa: A006
                                  scorers=[task_scorer(metric)])  # (``input``: the records' key)
        mlflow.flush_trace_async_logging()  # (to this store: after the block, MLflow's default is ./mlflow.db)


@contextmanager
def failed_on_error(tracking_uri: str, run_id: str) -> Iterator[None]:
    """Close the run FAILED (KILLED on Ctrl-C or SIGTERM), the error as its ``error`` tag, when the body
    raises; a re-run reopens it (``start_run``) and resumes."""
    try:
        yield
    except BaseException as err:
        client = MlflowClient(tracking_uri)
        client.set_tag(run_id, "error", f"{type(err).__name__}: {err}"[:5000])
        client.set_terminated(run_id, "KILLED" if isinstance(err, (KeyboardInterrupt, TerminationSignal)) else "FAILED")
        raise


@task
def log_trials(tracking_uri: str, run_id: str, trials: Iterable[Mapping[str, Any]]) -> None:
    """Per-trial metrics (step = the Optuna trial number, whatever order trials finish in) and
    each trial's record as an artifact."""
    client = MlflowClient(tracking_uri)
    metrics, records = [], list(trials)
    for t in records:
        for key in ("val_score", "best_val_score"):
            metrics.append(Metric(key, t[key], 0, t["number"]))
    client.log_batch(run_id, metrics=metrics)
    for t in records:
        client.log_dict(run_id, dict(t), f"trials/trial_{t['number']:04d}.json")


@task
def log_results(
    tracking_uri: str, run_id: str, metrics: Mapping[str, float], files: Iterable[Path] = (),
    texts: Mapping[str, str] | None = None, status: str | None = None,
) -> None:
    """Final metrics, files and text artifacts; optionally close the run with ``status``."""
    client = MlflowClient(tracking_uri)
    client.log_batch(run_id, metrics=[Metric(k, float(v), 0, 0) for k, v in metrics.items()])
    for path in files:
        client.log_artifact(run_id, str(path))
    for name, text in (texts or {}).items():
        client.log_text(run_id, text, name)
    if status:
        client.set_terminated(run_id, status)


def _save(fig: Figure, path: Path) -> Path:
    """Write the figure as a PNG, whole or not at all."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".png", delete=False) as tmp:
        fig.savefig(tmp.name, dpi=110)
    plt.close(fig)
    Path(tmp.name).replace(path)
    return path


@task
def convergence_plot(points: list[dict[str, Any]], title: str, path: Path) -> Path:
    """Per-trial validation score and best-so-far, as a PNG."""
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.scatter([p["trial"] for p in points], [p["val_score"] for p in points], s=14, label="trial score")
    ax.step([p["trial"] for p in points], [p["best_val_score"] for p in points], where="post", label="best so far")
    ax.set(xlabel="trial", ylabel="validation score", title=title, ylim=(-0.02, 1.02))
    ax.legend(loc="lower right")
    return _save(fig, path)


@task
def sweep_plot(rows: list[dict[str, Any]], title: str, path: Path) -> Path:
    """Each run's test score (and the empty instruction's), one column per task x model, as a PNG."""
    groups = list(dict.fromkeys((r["task"], r["model"]) for r in rows))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(groups)), 4))
    for x, group in enumerate(groups):
        runs = [r for r in rows if (r["task"], r["model"]) == group and r.get("test") is not None]
        ax.scatter([x] * len(runs), [r["test"] for r in runs], color="C0", label="test score" if x == 0 else None)
        ax.scatter([x] * len(runs), [r["empty"] for r in runs], color="C1", marker="x",
                   label="empty instruction" if x == 0 else None)
    ax.set_xticks(range(len(groups)), [f"{t}\n{m}" for t, m in groups], fontsize=8)
    ax.set(ylabel="test score", title=title, ylim=(-0.02, 1.02))
    ax.legend(loc="upper right")
    return _save(fig, path)


@task
def log_table(tracking_uri: str, run_id: str, rows: list[dict[str, Any]], name: str,
              columns: Iterable[str] | None = None) -> None:
    """Rows as an MLflow table artifact (the UI shows it as a table and compares it across runs)."""
    keys = list(columns or (rows[0] if rows else []))
    MlflowClient(tracking_uri).log_table(run_id, {k: [r[k] for r in rows] for k in keys}, name)


PRODUCTION = "production"
PROMPT_PREFIX = "instructzero-"


@task
def register_instruction(
    tracking_uri: str, task_name: str, template: str, test_score: float, tags: Mapping[str, str]
) -> dict[str, Any]:
    """Register ``template`` as a new version of the task's prompt in the MLflow Prompt Registry,
    tagged with ``tags`` and its test score. The ``production`` alias moves to it only when its
    test score beats the current production version's."""
    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    name = f"{PROMPT_PREFIX}{task_name}"
    version = client.register_prompt(
        name, template, commit_message=f"test score {test_score:.3f}",
        tags={**tags, "test_score": f"{test_score:.6f}"},
    )
    try:
        current = float(client.get_prompt_version_by_alias(name, PRODUCTION).tags["test_score"])
    except MlflowException:
        current = None
    promoted = current is None or test_score > current
    if promoted:
        client.set_prompt_alias(name, PRODUCTION, version.version)
    return {"prompt": name, "version": int(version.version), "production": promoted}


@task
def production_prompts(tracking_uri: str, tasks: list[str] | None = None) -> list[PromptVersion]:
    """The ``production`` version of every task's prompt (or of ``tasks`` only)."""
    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    names = sorted(p.name for p in client.search_prompts(max_results=1000) if p.name.startswith(PROMPT_PREFIX))
    found = []
    for name in names:
        if tasks is not None and name.removeprefix(PROMPT_PREFIX) not in tasks:
            continue
        try:
            found.append(client.get_prompt_version_by_alias(name, PRODUCTION))
        except MlflowException:
            continue  # registered, never promoted
    return found


@task
def tag_prompt_version(tracking_uri: str, version: PromptVersion, tags: Mapping[str, str]) -> None:
    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    for key, value in tags.items():
        client.set_prompt_version_tag(version.name, version.version, key, value)
