from components.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _send_all(limiter: RateLimiter, n: int, tokens: int = 1) -> list[float]:
    """Send times of ``n`` requests booked at once."""
    clock = limiter.clock
    return [clock() + limiter.reserve(tokens) for _ in range(n)]


def test_requests_per_minute_allow_one_second_of_burst_then_the_rate():
    clock = Clock()
    times = _send_all(RateLimiter(requests_per_minute=610, clock=clock), 1300)
    assert times[:11] == [100.0] * 11  # 10 per second, plus the first
    gaps = [b - a for a, b in zip(times[11:], times[12:], strict=False)]
    assert all(abs(g - 0.1) < 1e-9 for g in gaps)
    assert max(sum(t < start + 59.999 for t in times[i:]) for i, start in enumerate(times)) == 610  # per minute


def test_tokens_per_minute_weigh_requests_by_their_tokens():
    clock = Clock()
    limiter = RateLimiter(tokens_per_minute=6100, clock=clock)  # 100 tokens per second
    times = _send_all(limiter, 4, tokens=200)
    assert [round(t, 9) for t in times] == [100.0, 101.0, 103.0, 105.0]


def test_no_limits_means_no_wait_and_the_limiter_refills_over_time():
    clock = Clock()
    assert _send_all(RateLimiter(clock=clock), 100) == [100.0] * 100
    limiter = RateLimiter(requests_per_minute=61, clock=clock)
    assert _send_all(limiter, 3) == [100.0, 100.0, 101.0]
    clock.now += 10.0  # idle time refills
    assert limiter.reserve(1) == 0.0 and limiter.reserve(1) == 0.0


def test_pause_holds_every_request():
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    limiter.pause(2.5)
    limiter.pause(1.0)  # a shorter pause does not shorten the longer one
    assert limiter.reserve(1) == 2.5
    clock.now += 3
    assert limiter.reserve(1) == 0.0
