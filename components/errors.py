"""The project's exceptions: each names the file, row or key at fault."""

from __future__ import annotations


class InstructZeroError(Exception):
    """Base class for errors a user can act on."""


class TaskDataError(InstructZeroError, ValueError):
    """A task file is missing, empty or malformed."""


class ConfigError(InstructZeroError, ValueError):
    """params.yaml has an unknown key, a wrong type or a value out of range."""


class BudgetError(InstructZeroError, RuntimeError):
    """The black-box budget does not allow what was asked."""


class BlackBoxError(InstructZeroError, RuntimeError):
    """The black-box endpoint cannot be used (unreachable, unknown model, missing key)."""


class WorkerError(InstructZeroError, RuntimeError):
    """The flow runs an optimisation was fanned out to all failed."""
