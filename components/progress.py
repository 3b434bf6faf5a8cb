"""Progress of long work as log lines, not only a terminal bar: a deployment's or CI's log shows it too."""

from __future__ import annotations

import time
from collections.abc import Callable


class ProgressLog:
    """Counts work done (``progress(n)``: n more) and logs ``label: done/total calls`` at every
    tenth of ``total``, and at least every ``every`` seconds while work goes on."""

    def __init__(self, log: Callable[[str], object], label: str, total: int, every: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.log, self.label, self.total, self.every, self.clock = log, label, total, every, clock
        self.done, self.tenths, self.said_at = 0, 0, clock()

    def __call__(self, n: int) -> None:
        self.done += n
        tenths = self.done * 10 // max(self.total, 1)
        if tenths > self.tenths or self.clock() - self.said_at >= self.every:
            self.log(f"{self.label}: {self.done}/{self.total} calls")
            self.tenths, self.said_at = tenths, self.clock()
