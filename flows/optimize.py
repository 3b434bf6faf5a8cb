"""Stage `optimize`: the search over z, in this process or over `scale.workers` flow runs.

Each trial: z -> soft prompt -> instruction (generator) -> zero-shot validation score (black
box); the loop is :class:`components.search.Search`. The study lives in SQLite (or a shared
database) and the black box's answers in a response cache, so a killed run started again resumes
without paying twice. With ``scale.workers`` > 1 the search runs in that many `optimize-worker`
flow runs on the work pool, all on one study; this flow waits for them and writes the same
outputs as one process would.
"""

from __future__ import annotations

import os
from contextlib import closing
from dataclasses import asdict
from pathlib import Path

import optuna
from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from tqdm import tqdm

from components.blackbox import ResponseCache
from components.budget import Budget
from components.errors import BudgetError
from components.generator import InstructionWriter
from components.params import Params
from components.search import Search, search_rules, study_wants_more
from components.study import (
    best_evaluations,
    book_unreported,
    fail_waiting,
    known_evaluations,
    n_complete,
    n_running,
    open_study,
    payer,
    snapshot_study,
    spent_by_all,
    stop_for_budget,
    stopped_by_budget,
    trial_records,
)
from flows.settings import (
    HERE,
    Workspace,
    blackbox_price,
    cpu_threads,
    database_url,
    load_params,
    local_model,
    study_name,
)
from tasks.blackbox import open_blackbox
from tasks.data import read_split, split_digest
from tasks.files import write_json
from tasks.generator import load_generator, make_prompt, setup_projection, torch_threads
from tasks.search import PipelineOperations
from tasks.tracking import convergence_plot, failed_on_error, log_results, log_splits, log_table, start_run
from tasks.workers import Watch, run_flows

RUN_ID_ATTR = "mlflow_run_id"
IN_PROCESS = "main"  # the worker name of a run in one process
WORKER_ENTRYPOINT = "flows.optimize.optimize_worker"


@flow(name="optimize-instruction")
def optimize(workspace: Workspace = HERE) -> None:
    params = load_params(workspace.params)
    read_split(workspace.prepared)  # (the prepare stage has run)
    name = study_name(params)
    study = _open_study(params, name, workspace)
    run_id = start_run(
        workspace.tracking_uri(), workspace.artifact_root(), params.tracking.experiment, name, params.model_dump(),
        tags={"task": params.data.task, "optimizer": params.bo.sampler,
              "data_version": split_digest(workspace.prepared),
              "generator": params.generator.model, "study": name},
        run_id=study.user_attrs.get(RUN_ID_ATTR),
    )
    study.set_user_attr(RUN_ID_ATTR, run_id)
    log_splits(workspace.tracking_uri(), run_id, workspace.prepared, params.data.task)
    payer(study)  # (named before any worker books a call)
    stop_for_budget(study, False)  # a raised budget continues the study
    calls_before = spent_by_all(study)[0].calls
    with failed_on_error(workspace.tracking_uri(), run_id), torch_threads(cpu_threads(params)):
        if params.scale.workers == 1:
            run_search(params, study, IN_PROCESS, workspace)
        else:
            workers = {f"{name}-worker-{i}": {"workspace": asdict(workspace.absolute())}
                       for i in range(params.scale.workers)}
            run_flows(WORKER_ENTRYPOINT, name, params.scale.work_pool, Path.cwd(), workers, _watch(params, study),
                      need_one=True)
        finish(params, study, run_id, name, workspace, calls_before)


@flow(name="optimize-worker")
def optimize_worker(workspace: Workspace) -> None:
    """One of the ``scale.workers`` flow runs of an optimisation on a shared study (started by
    `optimize`, in its project directory)."""
    params = load_params(workspace.params)
    with torch_threads(cpu_threads(params)):
        run_search(params, _open_study(params, study_name(params), workspace), str(flow_run.id), workspace)


def _watch(params: Params, study: optuna.Study) -> Watch:
    """The launcher's view of its workers' search: done once the study needs no more trials,
    alive while a trial has a fresh heartbeat (stale ones are failed, as a worker would)."""
    goal, scale = params.bo.n_instructions, params.scale

    def alive() -> bool:
        optuna.storages.fail_stale_trials(study)
        return n_running(study) > 0

    return Watch(lambda: f"{len(known_evaluations(study))}/{goal} instructions scored", scale.claim_timeout,
                 scale.grace, lambda: not study_wants_more(study, goal, params.bo.n_trials), alive)


def _open_study(params: Params, name: str, workspace: Workspace) -> optuna.Study:
    workspace.outputs.mkdir(parents=True, exist_ok=True)  # (a SQLite study's folder)
    return open_study(workspace.study_storage(), name, params.bo.sampler, params.bo.n_startup_trials, params.bo.seed,
                      shared=database_url() is not None, heartbeat=params.scale.heartbeat, grace=params.scale.grace,
                      lengthscale=params.bo.lengthscale)


def run_search(params: Params, study: optuna.Study, worker: str, workspace: Workspace) -> None:
    """Load the generator, open the black box and run :class:`Search` as ``worker`` on ``study``."""
    logger = get_run_logger()
    split, metric = read_split(workspace.prepared)
    model, tokenizer = load_generator(params.generator)
    projection = setup_projection(params.projection, model, workspace.projection)
    prompt = make_prompt(tokenizer, params.generator, split.exemplars)
    rules = search_rules(params.bo, projection.intrinsic_dim, len(split.validation), split.exemplars,
                         params.scale.workers, min(params.scale.heartbeat, 2))
    budget = Budget(params.budget.max_calls, params.budget.max_tokens, params.budget.max_cost,
                    blackbox_price(params) or (0.0, 0.0))
    known, goal = len(known_evaluations(study)), params.bo.n_instructions
    with (
        open_blackbox(params.blackbox, os.environ.get("OPENAI_API_KEY"), local_model(params),
                      workspace.response_store(), workspace.server_log, payer(study)) as blackbox,
        tqdm(total=goal, initial=min(known, goal), unit="instruction", desc=params.data.task, disable=None,
             leave=False) as bar,  # a bar on a terminal only
    ):
        if worker == IN_PROCESS:  # (no other worker is scoring)
            book_unreported(study, blackbox.cache.paid(payer(study)))
        logger.info("study %s: %d/%d instructions scored in %d trials; black box %s",
                    study.study_name, known, goal, n_complete(study), blackbox.model)
        writer = InstructionWriter(params.bo.sampler, model, tokenizer, prompt, projection, params.generator,
                                   params.bo.seed)
        operations = PipelineOperations(writer, blackbox, split.validation, metric, workspace.tracking_uri(),
                                        study.user_attrs[RUN_ID_ATTR], goal, logger, bar)
        Search(study, worker, rules, budget, operations, logger).run()


def finish(params: Params, study: optuna.Study, run_id: str, name: str, workspace: Workspace,
           calls_before: int = 0) -> None:
    """The run's outputs from the study, whichever workers filled it: trials, ranked candidates,
    metrics (the study's black-box calls, and this run's: those beyond ``calls_before``), the
    convergence plot, the MLflow summary, and (for a shared study) its SQLite copy. Retries no
    worker took any more are failed."""
    logger = get_run_logger()
    fail_waiting(study)
    with closing(ResponseCache(workspace.response_store())) as cache:
        book_unreported(study, cache.paid(payer(study)))
    records = trial_records(study)
    top = best_evaluations(study)  # every distinct instruction, ranked: evaluate takes its eval.top_k
    if not top:
        raise BudgetError(f"the budget ({params.budget.model_dump(exclude={'prices'})}) allowed no trial at all")
    usage, seconds = spent_by_all(study)
    write_json(workspace.trials, records)
    write_json(workspace.candidates, [{"instruction": e.instruction, "val_score": e.mean,
                                       "val_scores": list(e.scores)} for e in top])
    write_json(workspace.plots / "convergence.json",
               [{k: r[k] for k in ("trial", "val_score", "best_val_score")} for r in records])
    summary = {
        "best_val_score": top[0].mean,
        "n_trials": len(records),
        "n_distinct_instructions": len(known_evaluations(study)),
        "n_empty_instructions": sum(not r["instruction"] for r in records),  # told 0, not scored
        "stopped_by_budget": int(stopped_by_budget(study)),
        **{f"blackbox_{k}": v for k, v in usage.as_dict().items()},
        "blackbox_calls_this_run": usage.calls - calls_before,
        **{f"seconds_{k}": round(v, 2) for k, v in seconds.items()},
    }
    write_json(workspace.metrics / "optimize.json", summary)
    png = convergence_plot(records, f"{params.data.task}: {params.bo.sampler}", workspace.plots / "convergence.png")
    log_results(workspace.tracking_uri(), run_id, summary, files=[png, workspace.trials, workspace.candidates])
    log_table(workspace.tracking_uri(), run_id, records, "trial_table.json",
              ("trial", "instruction", "val_score", "best_val_score"))
    if database_url():  # the study lives in a shared database: dvc.yaml tracks a copy
        snapshot_study(workspace.study_storage(), name, workspace.study_db)
    write_json(workspace.run_info, {"mlflow_run_id": run_id, "study": name})
    logger.info("best validation score %.3f: %r (%s)", top[0].mean, top[0].instruction,
                ", ".join(f"{k} {v:.0f}s" for k, v in seconds.items()))


if __name__ == "__main__":
    from flows.preflight import stage_main

    stage_main(optimize)
