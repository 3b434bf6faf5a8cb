"""One way every entry point stops on Ctrl-C (SIGINT) and SIGTERM.

The first signal raises in the main thread: KeyboardInterrupt for SIGINT, Prefect's
TerminationSignal for SIGTERM (what Prefect's own engine raises inside a flow run, where it
handles SIGTERM itself). The run then unwinds through its context managers: the search fails
the trials in hand and asks their z again, the black box starts no call and gives those in
flight their grace (what they answer is cached), the local model server and Prefect's
temporary server stop, the MLflow run is marked KILLED and Prefect marks the flow run Crashed.
The entry point prints one line and exits 130 or 143. A second signal kills every child
process and exits at once.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import FrameType

import psutil
from prefect.exceptions import TerminationSignal

NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}
STOPS = (KeyboardInterrupt, TerminationSignal)  # what a stop signal raises


def signal_number(stop: BaseException) -> int:
    """The signal that raised ``stop`` (one of :data:`STOPS`)."""
    return signal.SIGTERM if isinstance(stop, TerminationSignal) else signal.SIGINT


def exit_code(stop: BaseException) -> int:
    """The shell's code for a process stopped by the signal: 130 (SIGINT), 143 (SIGTERM)."""
    return 128 + signal_number(stop)


def stopped_message(stop: BaseException, resume: str) -> str:
    """The one line a stopped run prints: what was kept and how to go on."""
    return (f"stopped by {NAMES[signal.Signals(signal_number(stop))]}: the answered black-box calls are cached and "
            f"the study keeps its scored trials; `{resume}` resumes without paying for them again")


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """While the body runs, the first SIGINT or SIGTERM raises (see the module's docstring) and a
    second one ends the process and its children at once."""

    def first(signum: int, frame: FrameType | None) -> None:
        for number in NAMES:
            signal.signal(number, at_once)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise TerminationSignal(signal=signum)

    previous = {number: signal.signal(number, first) for number in NAMES}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def at_once(signum: int, frame: FrameType | None) -> None:
    """Kill this process's children (servers included) and exit with the signal's code."""
    for child in psutil.Process().children(recursive=True):
        with suppress(psutil.Error):
            child.kill()
    os._exit(128 + signum)
