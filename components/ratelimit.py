"""Per-endpoint request and token rate limits, and a shared pause after a 429."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

BURST_SECONDS = 1.0  # a limit per minute is spread over the minute: at most 1 s worth at once


@dataclass
class RateLimiter:
    """Generic cell-rate limits on requests and tokens per minute (``None``: no limit): at most
    ``BURST_SECONDS`` worth at once, and never more than the limit within a minute.

    ``reserve`` books a request and returns how long to wait before sending it; it never awaits,
    so one limiter serves any number of concurrent callers (and event loops) without a lock.
    """

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    clock: Callable[[], float] = time.monotonic
    _due: dict[str, float] = field(default_factory=dict, repr=False)  # theoretical arrival times
    _paused_until: float = field(default=float("-inf"), repr=False)

    def reserve(self, tokens: int) -> float:
        """Seconds to wait before sending a request of about ``tokens`` tokens."""
        now = self.clock()
        start = max(now, self._paused_until)
        limits = (("requests", self.requests_per_minute, 1), ("tokens", self.tokens_per_minute, tokens))
        for name, limit, cost in limits:
            if limit is None:
                continue
            due = max(self._due.get(name, now), now)
            start = max(start, due - BURST_SECONDS)
            self._due[name] = due + cost * (60.0 + BURST_SECONDS) / limit
        return start - now

    def pause(self, seconds: float) -> None:
        """Hold every request for ``seconds`` (the endpoint said Retry-After)."""
        self._paused_until = max(self._paused_until, self.clock() + seconds)
