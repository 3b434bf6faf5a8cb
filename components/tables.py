"""Database tables that several processes may create at the same moment."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa

# Optuna's RDB storage imports the ORM lazily: threads opening studies at the same moment then
# import it together, and one can see it half-initialised (AttributeError in sqlalchemy.orm).
import sqlalchemy.orm  # noqa: F401  (loaded here, once, before any such thread)

T = TypeVar("T")


def create_racing(make: Callable[[], T], attempts: int = 5) -> T:
    """``make()``, which creates tables if they are absent, tried again when another process
    creating the same tables won the race (PostgreSQL then raises a unique-key or a
    duplicate-table error; on the next try the tables exist)."""
    for attempt in range(attempts):
        try:
            return make()
        except (sa.exc.IntegrityError, sa.exc.ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")
