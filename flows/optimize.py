"""Stage `optimize`: the BO loop over z, in this process or over `scale.workers` flow runs.

Each trial: z -> soft prompt -> instruction (generator) -> zero-shot validation score (black
box). The study lives in SQLite (or a shared database) and the black box's answers in a response
cache, so a killed run started again resumes without paying twice. With ``scale.workers`` > 1
the loop runs in that many `optimize-worker` flow runs on the work pool, all on one study; this
flow waits for them and writes the same outputs as one process would.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import optuna
import torch
from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run
from tqdm import tqdm

from components.blackbox import CallStats, Evaluation, Scored
from components.budget import Budget, next_batch
from components.errors import BudgetError
from components.params import Params
from components.pool import answer_labels, finalist, named_picks, pool_quota
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
from flows.timing import Stopwatch
from tasks.blackbox import evaluate, open_blackbox
from tasks.data import read_split, split_digest
from tasks.files import write_json
from tasks.generator import generate, load_generator, make_prompt, proposer, setup_projection, torch_threads
from tasks.study import (
    ask,
    best_evaluations,
    close_unwritten,
    count_screened,
    enqueue,
    fail,
    heartbeats,
    known_evaluations,
    n_complete,
    n_running,
    n_screened,
    open_study,
    prune,
    record_spending,
    settle,
    snapshot_study,
    spent,
    spent_by_all,
    trial_records,
    trim,
)
from tasks.tracking import convergence_plot, failed_on_error, log_results, log_table, log_trials, start_run
from tasks.workers import run_flows

RUN_ID_ATTR, BUDGET_ATTR = "mlflow_run_id", "stopped_by_budget"
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
    study.set_user_attr(BUDGET_ATTR, False)  # a raised budget continues the study
    with failed_on_error(workspace.tracking_uri(), run_id), torch_threads(cpu_threads(params)):
        if params.scale.workers == 1:
            search(params, study, IN_PROCESS, workspace)
        else:
            workers = {f"{name}-worker-{i}": {"workspace": asdict(workspace.absolute())}
                       for i in range(params.scale.workers)}
            run_flows(WORKER_ENTRYPOINT, name, params.scale.work_pool, Path.cwd(), workers,
                      lambda: f"{len(known_evaluations(study))}/{params.bo.n_instructions} instructions scored",
                      need_one=True)
        finish(params, study, run_id, name, workspace)


@flow(name="optimize-worker")
def optimize_worker(workspace: Workspace) -> None:
    """One of the ``scale.workers`` flow runs of an optimisation on a shared study (started by
    `optimize`, in its project directory)."""
    params = load_params(workspace.params)
    with torch_threads(cpu_threads(params)):
        search(params, _open_study(params, study_name(params), workspace), str(flow_run.id), workspace)


def _open_study(params: Params, name: str, workspace: Workspace) -> optuna.Study:
    workspace.outputs.mkdir(parents=True, exist_ok=True)  # (a SQLite study's folder)
    return open_study(workspace.study_storage(), name, params.bo.sampler, params.bo.n_startup_trials, params.bo.seed,
                      shared=database_url() is not None, heartbeat=params.scale.heartbeat, grace=params.scale.grace,
                      trust_region=params.bo.trust_region, partial_credit=params.bo.partial_credit,
                      lengthscale=params.bo.lengthscale, flat=params.bo.flat)


def search(params: Params, study: optuna.Study, worker: str, workspace: Workspace) -> None:
    """ask -> propose -> score -> settle, batch after batch, until the study holds
    ``bo.n_instructions`` scored distinct instructions (whoever scored them) or ``bo.n_trials``
    complete trials, or the budget is spent. While a batch is scored (in the background), the
    next one is asked (the scored one pending) and generated; its scoring starts as soon as the
    scored one is told (logging it comes after), so the black box waits only for the tell. A z
    that repeats a scored instruction is told its score for free, one that writes none 0 (also
    free); a batch shrinks to what the budget still allows. With several workers, a worker's
    batches grow from 1 trial and shrink at the end so that all finish together (``next_batch``).
    With ``bo.pool``, each batch first generates that many random z more, and those writing a new
    instruction that names one of the exemplars' answers take the batch's first trials (at most
    ``bo.pool_share`` of them, rounded up; the sampler proposes the rest).
    With ``bo.screen``, the batch's new instructions and the pool's are scored on that many
    validation examples first and only the best goes on to all of them (a pool's on a new
    trial); the other trials are pruned. The run then spends ``bo.n_instructions`` x
    n_validation calls in all, screening included."""
    logger = get_run_logger()
    split, metric = read_split(workspace.prepared)
    model, tokenizer = load_generator(params.generator)
    projection = setup_projection(params.projection, model, tokenizer, workspace.projection)
    prompt = make_prompt(tokenizer, params.generator, split.exemplars)
    propose = proposer(params.bo.sampler, model, tokenizer, prompt, projection, params.generator, params.bo.seed)
    usage, seconds = spent(study, worker)
    clock = Stopwatch(seconds)
    n_val, screen = len(split.validation), params.bo.screen
    allowance = params.bo.n_instructions * n_val if screen else None  # screening spends calls, not instructions
    budget = Budget(min((c for c in (params.budget.max_calls, allowance) if c is not None), default=None),
                    params.budget.max_tokens, params.budget.max_cost, blackbox_price(params) or (0.0, 0.0))
    goal, cap = params.bo.n_instructions, params.bo.n_trials
    known = known_evaluations(study)
    labels = answer_labels(split.exemplars) if params.bo.pool else ()  # (none: the pool has nothing to rank)
    with (
        open_blackbox(params.blackbox, os.environ.get("OPENAI_API_KEY"), local_model(params),
                      workspace.response_store(), workspace.server_log) as blackbox,
        tqdm(total=goal, initial=min(len(known), goal), unit="instruction", desc=params.data.task, disable=None,
             leave=False) as progress,  # a bar on a terminal only
        heartbeats(study) as hold,
    ):
        logger.info("study %s: %d/%d instructions scored in %d trials; black box %s",
                    study.study_name, len(known), goal, n_complete(study), blackbox.model)

        def spent_by_everyone() -> CallStats:
            """The black-box usage of this worker (as it stands) and of every other one (as recorded)."""
            return spent_by_all(study, but=worker)[0] + usage

        def start_scoring(trials: list[optuna.Trial], instructions: list[str], known: dict[str, Evaluation],
                          ) -> Scoring:
            """Score the batch's instructions not in ``known`` in the background, as many as the budget allows."""
            new = list(dict.fromkeys(v for v in instructions if v not in known))
            used = spent_by_everyone()
            fits = budget.affordable(used, n_val, len(new))
            if fits < len(new):  # score what fits, then stop
                study.set_user_attr(BUDGET_ATTR, True)
                logger.warning("budget reached after %d black-box calls: scoring %d of %d new instructions, then "
                               "stopping with the best so far", used.calls, fits, len(new))
            future = evaluate.submit(blackbox, new[:fits], split.validation, metric) if fits else None
            return Scoring(trials, instructions, new, fits, future)

        def settle_scored(batch: Scoring) -> dict[str, Evaluation]:
            """Tell the batch's trials their scores (failed calls: failed and asked again once);
            returns every scored instruction's evaluation."""
            nonlocal usage
            with clock("blackbox"):  # the wait for the black box that generating did not hide
                scored = batch.future.result() if batch.future is not None else Scored([], CallStats())
            evaluations, usage = scored.evaluations, usage + scored.stats
            known = known_evaluations(study)
            known.update((e.instruction, e) for e in evaluations if e is not None)
            record_spending(study, worker, usage, clock.seconds)
            settle(study, batch.trials, batch.instructions, known, unpaid=batch.new[batch.fits:])
            if None in evaluations:
                logger.warning("%d instructions had black-box calls that failed after %d retries (%s): their "
                               "trials are failed and asked again once", evaluations.count(None),
                               params.blackbox.max_retries, scored.last_error)
            return known

        def report(batch: Scoring, known: dict[str, Evaluation]) -> None:
            """The settled batch in MLflow, the progress bar and the log (``known``: every scored instruction)."""
            numbers = {t.number for t in batch.trials}
            log_trials(workspace.tracking_uri(), study.user_attrs[RUN_ID_ATTR],
                       [r for r in trial_records(study) if r["number"] in numbers])
            ranked = best_evaluations(study, 1)  # empty while every trial so far had failed calls
            best = f"{ranked[0].mean:.3f} {ranked[0].instruction!r}" if ranked else "none yet"
            progress.update(min(len(known), goal) - progress.n)
            progress.set_postfix(best=best[:5])
            logger.info("instructions %d/%d (trials %d) | best %s | %d new | %d calls", len(known), goal,
                        n_complete(study), best, batch.fits, spent_by_everyone().calls)

        def draw_pool(n: int, exclude: list[str]) -> dict[tuple[float, ...], str]:
            """``bo.pool`` random z's new instructions, by their z: with ``bo.screen`` all of them,
            else up to ``n`` naming an answer."""
            draw = torch.Generator().manual_seed(params.bo.seed * 1_000_003 + len(study.get_trials(deepcopy=False)))
            points = (torch.rand(params.bo.pool, projection.intrinsic_dim, generator=draw) * 2 - 1).tolist()
            instructions = generate(model, tokenizer, prompt, projection, points, params.generator, params.bo.seed)
            picks = named_picks(points, instructions, None if screen else labels, exclude, len(points) if screen else n)
            return {tuple(z): v for z, v in picks}

        def screened(trials: list[optuna.Trial], instructions: list[str], pooled: dict[tuple[float, ...], str],
                     repeats: set[str], held: int) -> tuple[list[optuna.Trial], list[str]]:
            """The batch after screening its new instructions and the pool's on the first ``bo.screen``
            validation examples (as many as the budget allows beside ``held`` calls in flight): the
            trials repeating a scored instruction (``repeats``) and the best new one's (a new trial on a
            pool's z); the other trials are pruned (failed if not screened). One this worker screened
            before is not screened again: it lost then, and its trial is pruned with those scores."""
            nonlocal usage
            new = list(dict.fromkeys(v for v in [*instructions, *pooled.values()]
                                     if v not in repeats and v not in screenings))
            used = spent_by_everyone()
            fits = budget.affordable(used, screen, len(new), beside=held + n_val)  # (room for the finalist)
            if new and not fits:
                study.set_user_attr(BUDGET_ATTR, True)
                logger.info("%d black-box calls spent (with screening: bo.n_instructions x n_validation, or the "
                            "budget): stopping with the best so far", used.calls)
            scored = evaluate(blackbox, new[:fits], split.validation[:screen], metric) if fits else None
            results = dict(zip(new[:fits], scored.evaluations, strict=True)) if scored else {}
            if scored:
                usage = usage + scored.stats
                count_screened(study, worker, fits)
                screenings.update((v, e) for v, e in results.items() if e is not None)
            best, kept = finalist(results), []
            for t, v in zip(trials, instructions, strict=True):
                if v in repeats or v == best:
                    kept.append((t, v))
                elif (evaluation := screenings.get(v)) is not None:
                    prune(study, t, evaluation)
                else:  # not screened (the budget) or its calls failed
                    fail(study, [t])
            if best is not None and best not in instructions:  # a pool's: its own trial
                enqueue(study, [next(list(z) for z, v in pooled.items() if v == best)])
                kept += [(t, best) for t in trim(study, *ask(study, 1, projection.intrinsic_dim), cap)[0]]
            return [t for t, _ in kept], [v for _, v in kept]

        def written(trials: list[optuna.Trial], z: list[list[float]], pooled: dict[tuple[float, ...], str],
                    ) -> list[str]:
            """The trials' instructions: a pooled z's as the pool wrote it, the others generated now."""
            fresh = [i for i, point in enumerate(z) if tuple(point) not in pooled]
            made = iter(propose([trials[i] for i in fresh], [z[i] for i in fresh]) if fresh else [])
            return [pooled[tuple(point)] if tuple(point) in pooled else next(made) for point in z]

        screenings: dict[str, Evaluation] = {}  # what this worker screened: a repeat is not screened again
        scoring: Scoring | None = None
        while True:
            asked = None
            wanted = (len(known := known_evaluations(study)) < goal and (done := n_complete(study)) < cap
                      and not study.user_attrs.get(BUDGET_ATTR))  # (any worker's) budget spent
            mine = len(scoring.trials) if scoring else 0  # (this worker's running trials)
            if wanted and (n := next_batch(params.bo.batch_size, min(goal - len(known), cap - done)
                                           - (running := n_running(study)), running, mine, params.scale.workers)) > 0:
                pooled: dict[tuple[float, ...], str] = {}
                in_flight = scoring.instructions if scoring else []
                if labels or (screen and params.bo.pool):
                    with clock("generator"):
                        pooled = draw_pool(pool_quota(n, params.bo.pool_share), [*known, *in_flight])
                    if not screen:
                        enqueue(study, [list(point) for point in pooled])
                with clock("bo"):
                    trials, z = trim(study, *ask(study, n, projection.intrinsic_dim), cap)
                hold([*(scoring.trials if scoring else []), *trials])  # alive (a shared study's heartbeat)
                if trials:
                    with clock("generator"):
                        instructions = written(trials, z, {} if screen else pooled)
                    kept = close_unwritten(study, trials, instructions)
                    if unwritten := len(trials) - len(kept[0]):
                        logger.info("%d of %d trials' z wrote no instruction: told 0, no call", unwritten, len(trials))
                    asked = kept if kept[0] else None
                if screen:
                    with clock("screen"):
                        kept = screened(*(asked or ([], [])), pooled, {*known, *in_flight},
                                        scoring.fits * n_val if scoring else 0)
                    asked = kept if kept[0] else None
            elif scoring is None:
                if not wanted:
                    break
                optuna.storages.fail_stale_trials(study)  # other workers hold the rest: wait for them
                time.sleep(min(params.scale.heartbeat, 2))
                continue
            settled, scoring = scoring, None
            known = settle_scored(settled) if settled is not None else known_evaluations(study)
            if asked is not None:  # the next batch's scoring starts before the settled one is reported
                scoring = start_scoring(*asked, known)
            if settled is not None:
                report(settled, known)


@dataclass(frozen=True)
class Scoring:
    """A batch of trials whose new instructions are being scored."""

    trials: list[optuna.Trial]
    instructions: list[str]  # one per trial
    new: list[str]  # the distinct ones not scored before
    fits: int  # how many of ``new`` the budget allows (scored); the rest go unpaid
    future: PrefectFuture[Scored] | None


def finish(params: Params, study: optuna.Study, run_id: str, name: str, workspace: Workspace) -> None:
    """The run's outputs from the study, whichever workers filled it: trials, ranked candidates,
    metrics, the convergence plot, the MLflow summary, and (for a shared study) its SQLite copy."""
    logger = get_run_logger()
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
        "n_screened_instructions": n_screened(study),
        "stopped_by_budget": int(bool(study.user_attrs.get(BUDGET_ATTR))),
        **{f"blackbox_{k}": v for k, v in usage.as_dict().items()},
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
