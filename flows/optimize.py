"""Stage `optimize`: projection setup -> generator loading -> the BO loop over z.

Each trial: z -> soft prompt -> instruction (generator) -> zero-shot validation score (black
box). The study lives in SQLite and the black box's answers in a response cache, so a killed
run started again resumes without paying twice.
"""

from __future__ import annotations

import os
from pathlib import Path

from prefect import flow, get_run_logger
from tqdm import tqdm

from components.blackbox import CallStats
from components.budget import Budget
from components.errors import BudgetError
from flows.settings import (
    CANDIDATES,
    METRICS,
    PARAMS,
    PLOTS,
    PREPARED,
    PROJECTION,
    RUN_INFO,
    SERVER_LOG,
    STUDY_DB,
    TRIALS,
    artifact_root,
    blackbox_price,
    database_url,
    load_params,
    local_model,
    response_store,
    study_name,
    study_storage,
    tracking_uri,
)
from flows.timing import Stopwatch
from tasks.blackbox import evaluate, open_blackbox
from tasks.data import read_split, split_digest
from tasks.files import write_json
from tasks.generator import load_generator, make_prompt, proposer, setup_projection
from tasks.study import (
    ask,
    best_evaluations,
    heartbeats,
    known_evaluations,
    n_complete,
    open_study,
    settle,
    snapshot_study,
    trial_records,
)
from tasks.tracking import convergence_plot, failed_on_error, log_results, log_table, log_trials, start_run

RUN_ID_ATTR, USAGE_ATTR = "mlflow_run_id", "blackbox_usage"


@flow(name="optimize-instruction")
def optimize(params_path: Path = PARAMS) -> None:
    params = load_params(params_path)
    logger = get_run_logger()
    split, metric = read_split(PREPARED)
    model, tokenizer = load_generator(params.generator)
    projection = setup_projection(params.projection, model, PROJECTION)
    prompt = make_prompt(tokenizer, params.generator, split.exemplars)
    propose = proposer(params.bo.sampler, model, tokenizer, prompt, projection, params.generator, params.bo.seed)

    name = study_name(params)
    study = open_study(study_storage(), name, params.bo.sampler, params.bo.n_startup_trials, params.bo.seed,
                       shared=database_url() is not None)
    run_id = start_run(
        tracking_uri(), artifact_root(), params.tracking.experiment, name, params.model_dump(),
        tags={"task": params.data.task, "optimizer": params.bo.sampler, "data_version": split_digest(PREPARED),
              "generator": params.generator.model, "study": name},
        run_id=study.user_attrs.get(RUN_ID_ATTR),
    )
    study.set_user_attr(RUN_ID_ATTR, run_id)
    with failed_on_error(tracking_uri(), run_id):
        known = known_evaluations(study)
        clock = Stopwatch()
        budget = Budget(params.budget.max_calls, params.budget.max_tokens, params.budget.max_cost,
                        blackbox_price(params) or (0.0, 0.0))
        stopped_by_budget = False
        api_key = os.environ.get("OPENAI_API_KEY")
        with (
            open_blackbox(params.blackbox, api_key, local_model(params), response_store(), SERVER_LOG) as blackbox,
            tqdm(total=params.bo.n_instructions, initial=min(len(known), params.bo.n_instructions), unit="instruction",
                 desc=params.data.task, disable=None, leave=False) as progress,  # a bar on a terminal only
            heartbeats(study) as hold,
        ):
            blackbox.stats = CallStats.from_dict(study.user_attrs.get(USAGE_ATTR, {}))  # this study's spending so far
            logger.info("study %s: %d/%d instructions scored in %d trials; black box %s",
                        name, len(known), params.bo.n_instructions, n_complete(study), blackbox.model)
            # The budget is distinct instructions: a z that repeats a scored one is told its score
            # for free and the loop asks again; trials are only a safety cap.
            while len(known) < params.bo.n_instructions and (done := n_complete(study)) < params.bo.n_trials:
                with clock("bo"):
                    n = min(params.bo.batch_size, params.bo.n_instructions - len(known), params.bo.n_trials - done)
                    trials, z = ask(study, n, projection.intrinsic_dim)
                    hold(trials)  # alive while generated and scored (a shared study's heartbeat)
                with clock("generator"):
                    instructions = propose(trials, z)
                new = list(dict.fromkeys(v for v in instructions if v not in known))
                fits = budget.affordable(blackbox.stats, len(split.validation), len(new))
                if fits < len(new):  # score what fits, then stop
                    stopped_by_budget = True
                    logger.warning("budget reached after %d black-box calls: scoring %d of %d new instructions, then "
                                   "stopping with the best so far", blackbox.stats.calls, fits, len(new))
                with clock("blackbox"):
                    evaluations = evaluate(blackbox, new[:fits], split.validation, metric) if fits else []
                known.update((e.instruction, e) for e in evaluations if e is not None)
                study.set_user_attr(USAGE_ATTR, blackbox.stats.as_dict())
                settle(study, trials, instructions, known, unpaid=new[fits:])
                if None in evaluations:
                    logger.warning("%d instructions had black-box calls that failed after %d retries (%s): their "
                                   "trials are failed and asked again once", evaluations.count(None),
                                   params.blackbox.max_retries, blackbox.last_error)
                records = trial_records(study)
                numbers = {t.number for t in trials}
                log_trials(tracking_uri(), run_id, [r for r in records if r["number"] in numbers])
                ranked = best_evaluations(study, 1)  # empty while every trial so far had failed calls
                best = f"{ranked[0].mean:.3f} {ranked[0].instruction!r}" if ranked else "none yet"
                progress.update(min(len(known), params.bo.n_instructions) - progress.n)
                progress.set_postfix(best=best[:5])
                logger.info("instructions %d/%d (trials %d) | best %s | %d new", len(known), params.bo.n_instructions,
                            len(records), best, len(evaluations))
                if stopped_by_budget:
                    break

        records = trial_records(study)
        top = best_evaluations(study)  # every distinct instruction, ranked: evaluate takes its eval.top_k
        if not top:
            raise BudgetError(f"the budget ({params.budget.model_dump(exclude={'prices'})}) allowed no trial at all")
        write_json(TRIALS, records)
        write_json(CANDIDATES, [{"instruction": e.instruction, "val_score": e.mean, "val_scores": list(e.scores)}
                                for e in top])
        write_json(PLOTS / "convergence.json",
                   [{k: r[k] for k in ("trial", "val_score", "best_val_score")} for r in records])
        summary = {
            "best_val_score": top[0].mean,
            "n_trials": len(records),
            "n_distinct_instructions": len(known),
            "stopped_by_budget": int(stopped_by_budget),
            **{f"blackbox_{k}": v for k, v in blackbox.stats.as_dict().items()},
            **{f"seconds_{k}": round(v, 2) for k, v in clock.seconds.items()},
        }
        write_json(METRICS / "optimize.json", summary)
        png = convergence_plot(records, f"{params.data.task}: {params.bo.sampler}", PLOTS / "convergence.png")
        log_results(tracking_uri(), run_id, summary, files=[png, TRIALS, CANDIDATES])
        log_table(tracking_uri(), run_id, records, "trial_table.json",
                  ("trial", "instruction", "val_score", "best_val_score"))
        if database_url():  # the study lives in a shared database: dvc.yaml tracks a copy
            snapshot_study(study_storage(), name, STUDY_DB)
        write_json(RUN_INFO, {"mlflow_run_id": run_id, "study": name})
        logger.info("best validation score %.3f: %r (%s)", top[0].mean, top[0].instruction,
                    ", ".join(f"{k} {v:.0f}s" for k, v in clock.seconds.items()))


if __name__ == "__main__":
    from flows.preflight import stage_main

    stage_main(optimize)
