"""The run's logger inside a Prefect flow or task, a plain one outside (tests, scripts)."""

from __future__ import annotations

import logging
from typing import Any

from prefect import get_run_logger
from prefect.exceptions import MissingContextError
from prefect.logging import get_logger

Logger = logging.Logger | logging.LoggerAdapter[Any]


def run_logger() -> Logger:
    try:
        return get_run_logger()
    except MissingContextError:
        return get_logger("instructzero")
