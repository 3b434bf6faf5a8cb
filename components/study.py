"""The Optuna study: opening (and resuming) it, asking z batches, telling evaluations, and what
each worker spent."""

from __future__ import annotations

import threading
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna

from components.blackbox import CallStats, Evaluation
from components.samplers import make_sampler
from components.seeds import RETRY_OF, derive_seed
from components.tables import create_racing

INSTRUCTION, OUTPUTS, SCORES = "instruction", "outputs", "scores"
USAGE, SECONDS = "blackbox_usage/", "seconds/"  # + a worker's name: what each worker spent (its own key)
STOPPED = "stopped_by_budget"  # a study attribute: a worker found the budget spent
PAYER = "payer"  # a study attribute: the name its calls are booked under in the response store's ledger
UNREPORTED = "unreported"  # the "worker" holding answered calls no worker reported (killed, or stopped mid-batch)
FIXED = "fixed_params"  # Optuna's system attribute: the z an enqueued trial is asked with
OWNER = "owner"  # a trial's system attribute: the search that opened it (written with its row)


# Heartbeats with ask-and-tell, on purpose (Optuna's own are for Study.optimize).
warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used with Study.optimize")
warnings.filterwarnings("ignore", r"(Argument ``heartbeat_interval``|optuna\.storages\._heartbeat\.fail_stale_trials)",
                        optuna.exceptions.ExperimentalWarning)
HEARTBEAT_SECONDS, GRACE_SECONDS = 30, 120  # shared studies: a trial silent for GRACE_SECONDS is stale


def open_study(
    storage: str, name: str, sampler: str, n_startup_trials: int, seed: int, shared: bool = False,
    heartbeat: int = HEARTBEAT_SECONDS, grace: int = GRACE_SECONDS, lengthscale: float = 0.5,
) -> optuna.Study:
    """Create or load the study. A trial left RUNNING by a dead run is failed and asked again
    with the same z (so it regenerates the same instruction, whose answers are cached): at
    once in a study of one process (``shared=False``: every RUNNING trial is dead), after
    ``grace`` seconds without a heartbeat (:func:`heartbeats`) in a ``shared`` one, where
    other processes' trials are alive."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rdb = create_racing(lambda: optuna.storages.RDBStorage(  # (workers, or sweep cells, start together)
        storage, heartbeat_interval=heartbeat, grace_period=grace, heartbeat_stale_trial_callback=_retry,
    )) if shared else storage
    study = optuna.create_study(
        storage=rdb, study_name=name, direction="maximize", load_if_exists=True,
        sampler=make_sampler(sampler, n_startup_trials, seed, lengthscale),
    )
    if shared:
        optuna.storages.fail_stale_trials(study)
    else:
        abandon(study)
    return study


def abandon(study: optuna.Study, owner: str | None = None) -> None:
    """Fail the running trials (those ``owner`` opened: a stopped search's) and ask each z
    again: the retry regenerates the same instruction and finds its answered calls cached (a
    trial that had no z yet is only failed)."""
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if owner is None or trial.system_attrs.get(OWNER) == owner:
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            _retry(study, trial)


@contextmanager
def heartbeats(study: optuna.Study) -> Iterator[Callable[[list[optuna.Trial]], None]]:
    """While the body runs, tell a shared study every ``heartbeat_interval`` that the trials in
    hand are alive; the body names them (the batch it is generating and scoring) by calling
    the yielded function, which beats at once. Nothing to do for a study of one process."""
    storage: Any = study._storage  # open_study's RDBStorage, behind Optuna's cache (both private)
    interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
    if interval is None:
        yield lambda trials: None
        return
    in_hand: list[optuna.Trial] = []
    stop = threading.Event()

    def beat() -> None:
        for trial in list(in_hand):
            storage.record_heartbeat(trial._trial_id)

    def hold(trials: list[optuna.Trial]) -> None:
        in_hand[:] = trials
        beat()

    def keep_beating() -> None:
        while not stop.wait(interval):
            with suppress(Exception):  # (the database away for a moment: the next beat tries again)
                beat()

    thread = threading.Thread(target=keep_beating, daemon=True)
    thread.start()
    try:
        yield hold
    finally:
        stop.set()
        thread.join()


def _retry(study: optuna.Study, trial: optuna.Trial | optuna.trial.FrozenTrial) -> None:
    """Ask a dead trial's z again (suggested, or fixed when it was asked: a retry that died
    before its z was suggested), once per trial it descends from; a trial with no z is not."""
    fixed = trial.system_attrs.get(FIXED) if isinstance(trial, optuna.trial.FrozenTrial) else None
    if z := trial.params or fixed:
        study.enqueue_trial(z, user_attrs={RETRY_OF: trial.user_attrs.get(RETRY_OF, trial.number)})


def snapshot_study(storage: str, name: str, path: Path) -> None:
    """Copy the study from a shared database to a SQLite file (what dvc.yaml tracks), whole."""
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    optuna.copy_study(from_study_name=name, from_storage=storage, to_storage=f"sqlite:///{partial}")
    partial.replace(path)


def spent(study: optuna.Study, worker: str) -> tuple[CallStats, dict[str, float]]:
    """What ``worker`` spent on this study so far: black-box usage, and seconds per part."""
    attrs = study.user_attrs
    return CallStats.from_dict(attrs.get(USAGE + worker, {})), attrs.get(SECONDS + worker, {})


def record_spending(study: optuna.Study, worker: str, usage: CallStats, seconds: dict[str, float]) -> None:
    """``worker``'s own totals (each worker writes only its key, so none overwrites another's)."""
    study.set_user_attr(USAGE + worker, usage.as_dict())
    study.set_user_attr(SECONDS + worker, {k: round(v, 2) for k, v in seconds.items()})


def spent_by_all(study: optuna.Study, but: str | None = None) -> tuple[CallStats, dict[str, float]]:
    """What every worker (except ``but``) spent on this study, summed."""
    usage, seconds = CallStats(), dict[str, float]()
    for key in study.user_attrs:
        if key.startswith(USAGE) and key.removeprefix(USAGE) != but:
            theirs, their_seconds = spent(study, key.removeprefix(USAGE))
            usage = usage + theirs
            seconds = {k: seconds.get(k, 0.0) + their_seconds.get(k, 0.0) for k in {*seconds, *their_seconds}}
    return usage, seconds


def payer(study: optuna.Study) -> str:
    """The name this study's calls are booked under: its own (a new study with the same settings,
    and so the same name, books apart)."""
    if PAYER not in study.user_attrs:
        study.set_user_attr(PAYER, f"{study.study_name}/{uuid.uuid4().hex[:12]}")
    return str(study.user_attrs[PAYER])


def book_unreported(study: optuna.Study, paid: CallStats) -> None:
    """Count as spent, under :data:`UNREPORTED`, the calls answered for this study (``paid``: the
    response store's ledger) that no worker reported, so that the budget and the metrics hold
    what the endpoint answered. Only while no worker is scoring (their batches are in the ledger
    before they report them)."""
    reported = spent_by_all(study, but=UNREPORTED)[0]
    record_spending(study, UNREPORTED, CallStats(
        calls=max(0, paid.calls - reported.calls), prompt_tokens=max(0, paid.prompt_tokens - reported.prompt_tokens),
        completion_tokens=max(0, paid.completion_tokens - reported.completion_tokens)), {})


def stop_for_budget(study: optuna.Study, stopped: bool = True) -> None:
    """Mark the study stopped by the budget (every worker then stops asking), or, with
    ``stopped=False``, free to go on (a raised budget continues it)."""
    study.set_user_attr(STOPPED, stopped)


def stopped_by_budget(study: optuna.Study) -> bool:
    return bool(study.user_attrs.get(STOPPED))


def n_complete(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def n_running(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)))


def reserve(study: optuna.Study, n: int, cap: int, goal: int | None = None, *, owner: str) -> list[optuna.Trial]:
    """Ask ``n`` trials (their numbers, no z yet; dead trials' retries come first), each marked
    as ``owner``'s, and keep those that fit, counted in trial order on one snapshot of the study,
    so that workers asking at the same moment never overshoot: at most ``cap``
    complete-or-running trials, and at most one running trial per instruction still missing
    from ``goal`` scored ones. The others are failed (not retried)."""
    trials = [_ask(study, owner) for _ in range(n)]
    snapshot = study.get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING))
    allowed = set(sorted(t.number for t in snapshot)[:cap])
    if goal is not None:
        complete = [t for t in snapshot if t.state == optuna.trial.TrialState.COMPLETE]
        missing = goal - len({t.user_attrs[INSTRUCTION] for t in complete if INSTRUCTION in t.user_attrs})
        allowed &= set(sorted(t.number for t in snapshot if t.state == optuna.trial.TrialState.RUNNING)[:missing])
    fail(study, [t for t in trials if t.number not in allowed])
    return [t for t in trials if t.number in allowed]


def _ask(study: optuna.Study, owner: str) -> optuna.Trial:
    """``study.ask()``, the trial marked as ``owner``'s, so that a stop (:func:`abandon` with
    ``owner``) finds every trial it leaves behind. A new trial has the mark in the transaction
    that writes its row; a waiting trial (a retry) gets it just after it is taken (marking it
    before could overwrite the mark of a rival taking it at the same moment). A stop between
    the two leaves that retry running until the next run opens the study, or the heartbeat's
    grace ends in a shared one; it is asked again then."""
    study._thread_local.cached_all_trials = None  # (what ask does: samplers read the study anew)
    storage = study._storage
    for waiting in storage.get_all_trials(study._study_id, deepcopy=False, states=(optuna.trial.TrialState.WAITING,)):
        with suppress(optuna.exceptions.UpdateFinishedTrialError):  # (a rival took it and finished it)
            if storage.set_trial_state_values(waiting._trial_id, state=optuna.trial.TrialState.RUNNING):
                storage.set_trial_system_attr(waiting._trial_id, OWNER, owner)
                return optuna.Trial(study, waiting._trial_id)
    opening = optuna.trial.FrozenTrial(
        number=-1, state=optuna.trial.TrialState.RUNNING, value=None, datetime_start=datetime.now(),
        datetime_complete=None, params={}, distributions={}, user_attrs={}, system_attrs={OWNER: owner},
        intermediate_values={}, trial_id=-1)
    return optuna.Trial(study, storage.create_new_trial(study._study_id, template_trial=opening))


def z_name(i: int) -> str:
    return f"z{i:02d}"


def suggest(study: optuna.Study, trials: list[optuna.Trial], dim: int, points: Sequence[list[float]] = (),
            ) -> tuple[list[optuna.Trial], list[list[float]]]:
    """Give reserved trials their z: a retry its dead trial's, the first others ``points`` (the
    pool's picks, as if enqueued), the rest the sampler's, one trial after the other so that it
    sees the earlier ones as pending points. Returns the trials (as their z fixes them) and z."""
    given, fixed = list(points), []
    for trial in trials:
        fixed.append(_fix(study, trial, given.pop(0)) if given and RETRY_OF not in trial.user_attrs else trial)
    return fixed, [[t.suggest_float(z_name(i), -1.0, 1.0) for i in range(dim)] for t in fixed]


def _fix(study: optuna.Study, trial: optuna.Trial, point: list[float]) -> optuna.Trial:
    """``trial`` with ``point`` as its z: Optuna's enqueued-trial attribute, read when a Trial opens."""
    study._storage.set_trial_system_attr(  # (Study.enqueue_trial's attribute, on a trial already asked)
        trial._trial_id, FIXED, {z_name(i): x for i, x in enumerate(point)})
    return optuna.Trial(study, trial._trial_id)


def trial_seed(trial: optuna.Trial, seed: int) -> int:
    """A seed of the trial's own (the one it retries, for a retry), never of the process's history."""
    return derive_seed(seed, trial.user_attrs.get(RETRY_OF, trial.number))


def known_evaluations(study: optuna.Study) -> dict[str, Evaluation]:
    """Evaluations already paid for, by instruction: identical instructions are scored once."""
    known = {}
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if INSTRUCTION in t.user_attrs:
            a = t.user_attrs
            known[a[INSTRUCTION]] = Evaluation(a[INSTRUCTION], tuple(a[OUTPUTS]), tuple(a[SCORES]))
    return known


def fail_waiting(study: optuna.Study) -> None:
    """Fail the trials still waiting to be asked (retries of dead trials the finished study no
    longer needs), so that none waits for good."""
    for _ in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)):
        study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)  # asking takes a waiting trial first


def fail(study: optuna.Study, trials: list[optuna.Trial]) -> None:
    """Close trials that will not be scored (e.g. the budget ran out)."""
    for trial in trials:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)


def fail_and_retry(study: optuna.Study, trial: optuna.Trial) -> None:
    """Fail a trial whose instruction could not be scored (black-box calls failed after every
    retry) and ask its z again once: the retry regenerates the same instruction and pays only
    for the calls that failed."""
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    if RETRY_OF not in trial.user_attrs:
        _retry(study, trial)


def settle(
    study: optuna.Study, trials: list[optuna.Trial], instructions: list[str], known: dict[str, Evaluation],
    unpaid: list[str],
) -> None:
    """Close a scored batch: a trial whose instruction has a score is told it; one the budget
    left ``unpaid`` is failed; one whose calls failed is failed and asked again once."""
    for trial, instruction in zip(trials, instructions, strict=True):
        if instruction in known:
            tell(study, trial, known[instruction])
        elif instruction in unpaid:
            fail(study, [trial])
        else:
            fail_and_retry(study, trial)


def close_unwritten(
    study: optuna.Study, trials: list[optuna.Trial], instructions: list[str]
) -> tuple[list[optuna.Trial], list[str]]:
    """Tell each trial whose z wrote no instruction (``""``) the floor score, 0, without a call:
    there is nothing to run, and it is no candidate (no instruction attribute), yet the sampler
    learns to leave its z and it counts against ``bo.n_trials``. Returns the other trials and
    their instructions."""
    kept = []
    for trial, instruction in zip(trials, instructions, strict=True):
        if instruction:
            kept.append((trial, instruction))
        else:
            study.tell(trial, 0.0)
    return [t for t, _ in kept], [v for _, v in kept]


def tell(study: optuna.Study, trial: optuna.Trial, evaluation: Evaluation) -> None:
    trial.set_user_attr(INSTRUCTION, evaluation.instruction)
    trial.set_user_attr(OUTPUTS, list(evaluation.outputs))
    trial.set_user_attr(SCORES, list(evaluation.scores))
    study.tell(trial, evaluation.mean)


def trial_records(study: optuna.Study) -> list[dict[str, Any]]:
    """Completed trials in order: z, instruction, score, best score so far, and the black box's
    outputs and per-example scores."""
    records, best = [], float("-inf")
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    for index, t in enumerate(complete, start=1):
        assert t.value is not None  # a complete single-objective trial has one
        best = max(best, t.value)
        records.append({
            "trial": index, "number": t.number, "instruction": t.user_attrs.get(INSTRUCTION, ""),
            "val_score": t.value, "best_val_score": best,
            "z": [t.params[k] for k in sorted(t.params)],
            "outputs": t.user_attrs.get(OUTPUTS, []), "scores": t.user_attrs.get(SCORES, []),
        })
    return records


def best_evaluations(study: optuna.Study, k: int | None = None) -> list[Evaluation]:
    """The ``k`` best (default: all) distinct instructions by validation score (earliest first
    on ties)."""
    ranked = sorted(known_evaluations(study).values(), key=lambda e: -e.mean)
    return ranked[:k]
