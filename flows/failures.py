"""How a run that fails for a reason the user can act on ends: one message, exit 1, no traceback.

Prefect logs a failing flow's exception with its traceback at every level of nesting; for the
errors the entry points turn into one message (bad input, the black box, the budget, workers, a
database gone away) that traceback says nothing more, so it is left out unless asked for
(``--debug``). Any other exception keeps its traceback: it is a bug to report.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from optuna.exceptions import StorageInternalError

from components.errors import BlackBoxError, BudgetError, ConfigError, TaskDataError, WorkerError

DATABASE_ERRORS = (StorageInternalError, sa.exc.DBAPIError)  # Optuna's wrapper, SQLAlchemy's (psycopg's within)
KNOWN = (ConfigError, TaskDataError, BlackBoxError, BudgetError, WorkerError, *DATABASE_ERRORS)


def database_failure(err: BaseException) -> str:
    """One line on a database (the study's, the response cache's) that failed mid-run."""
    cause = err.__cause__ if isinstance(err, StorageInternalError) and err.__cause__ else err
    reason = str(getattr(cause, "orig", None) or cause).strip().splitlines()[0]
    return (f"the database failed mid-run ({type(cause).__name__}: {reason}); the study keeps its trials and the "
            "cache its answers: once the database is back, run the same command again to resume")


class _WithoutTraceback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], KNOWN):
            record.exc_info, record.exc_text = None, None
        return True


def quiet_known_failures(debug: bool = False) -> None:
    """Prefect's flow and task logs keep no traceback of a :data:`KNOWN` error (unless ``debug``)."""
    if not debug:
        for name in ("prefect.flow_runs", "prefect.task_runs"):
            logging.getLogger(name).addFilter(_WithoutTraceback())
