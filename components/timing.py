"""Wall time spent per part of a run."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager


class Stopwatch:
    """Adds up wall time per named part: ``with clock("generator"): ...``."""

    def __init__(self, seconds: Mapping[str, float] | None = None) -> None:
        """``seconds``: time already spent per part (the stopwatch adds to it)."""
        self.seconds: defaultdict[str, float] = defaultdict(float, seconds or {})

    @contextmanager
    def __call__(self, part: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[part] += time.perf_counter() - start
