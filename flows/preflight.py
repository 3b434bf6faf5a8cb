"""One validation pass before any work: params, model folders, task data, the endpoint's key.

The same for `run`, `dry-run` and the deployments' pipeline; nothing is created before it passes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from components.data import split_task
from components.errors import BlackBoxError, BudgetError, ConfigError, TaskDataError, WorkerError
from components.params import Params
from components.preflight import input_problems
from flows.settings import DATABASE_URL, EMBEDDED_MODEL, PARAMS, database_url, load_params, source_name
from tasks.data import load_task

DIALECTS = ("postgresql", "sqlite")  # what the study and the response cache run on


def preflight(params_path: Path = PARAMS, overrides: Mapping[str, Any] | None = None) -> Params:
    """The validated params, once everything checkable offline is fine.

    Raises:
        ConfigError: naming the file (and overrides), each bad key and its value.
        TaskDataError: naming the task file, line or field.
    """
    from prefect.settings import PREFECT_API_URL  # a profile may set it too

    params = load_params(params_path, overrides)
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value() or ""}
    if problems := input_problems(params, env, EMBEDDED_MODEL):
        raise ConfigError(f"{source_name(params_path, overrides)}:\n" + "\n".join(f"  {p}" for p in problems))
    if (url := database_url()) and (problem := database_problem(url)):
        raise ConfigError(problem)
    if "://" not in (params.data.location or ""):  # a URL is read once, by the prepare step
        data = params.data
        split_task(load_task.fn(data), data.n_exemplars, data.n_validation, data.n_test, data.seed)
    return params


def database_problem(url: str, timeout: int = 5) -> str | None:
    """What is wrong with the database URL in $INSTRUCTZERO_DATABASE_URL, naming the variable and
    never the password, or None: it must parse, name PostgreSQL (or SQLite), and accept a
    connection within ``timeout`` seconds."""
    import sqlalchemy as sa

    example = "postgresql+psycopg://USER:PASSWORD@HOST:5432/DB"
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return f"{DATABASE_URL} is not a database URL: write it as {example}"
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() not in DIALECTS:
        return f"{DATABASE_URL} ({shown}): {parsed.drivername!r} is not a database this project uses: write it as " \
               f"{example}"
    connect_args = {"connect_timeout": timeout} if parsed.get_backend_name() == "postgresql" else {}
    try:
        engine = sa.create_engine(parsed, connect_args=connect_args)
    except sa.exc.NoSuchModuleError:
        return f"{DATABASE_URL} ({shown}): no driver {parsed.drivername!r}: write it as {example}"
    try:
        with engine.connect():
            return None
    except sa.exc.SQLAlchemyError as err:
        reason = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
        if parsed.password:
            reason = reason.replace(str(parsed.password), "***")
        return f"{DATABASE_URL} ({shown}): cannot connect ({reason}): is the server running there, and do the " \
               "user, password and database exist?"
    finally:
        engine.dispose()


def stage_main(stage: Callable[[], object]) -> None:
    """A dvc.yaml stage's command: bad input exits 2 with one message before the flow starts; a
    run that fails for a reason the user can act on exits 1 with its message last and no
    traceback (``INSTRUCTZERO_DEBUG=1`` shows it); Ctrl-C or SIGTERM stops it
    (:mod:`flows.shutdown`)."""
    from flows.failures import DATABASE_ERRORS, database_failure, quiet_known_failures
    from flows.prefect_api import using_shared_api
    from flows.shutdown import STOPS, exit_code, stop_on_signals, stopped_message

    quiet_known_failures(bool(os.environ.get("INSTRUCTZERO_DEBUG")))
    with stop_on_signals():
        try:
            preflight()
        except (ConfigError, TaskDataError) as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        try:
            with using_shared_api():
                stage()
        except (BlackBoxError, BudgetError, WorkerError) as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(1)
        except DATABASE_ERRORS as err:
            print(f"error: {database_failure(err)}", file=sys.stderr)
            sys.exit(1)
        except STOPS as stop:
            print(stopped_message(stop, "dvc repro"), file=sys.stderr)
            sys.exit(exit_code(stop))
