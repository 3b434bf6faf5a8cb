"""Black-box tasks: the endpoint (local server or remote) and instruction evaluation."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
from prefect.concurrency.asyncio import rate_limit
from prefect.exceptions import ObjectNotFound

from components.blackbox import BlackBox, ResponseCache, Scored, evaluate_instructions
from components.data import Example
from components.errors import BlackBoxError
from components.local_server import local_model_server
from components.params import BlackBoxParams
from components.ratelimit import RateLimiter
from tasks.log import run_logger

LOCAL_API_KEY = "local"  # the local server checks no key


@contextmanager
def open_blackbox(
    params: BlackBoxParams, api_key: str | None, local_model: Path, cache: Path | str, log_path: Path,
    payer: str = "",
) -> Iterator[BlackBox]:
    """A BlackBox on ``params.base_url``, or on a local model server started for the duration;
    its answers cached in ``cache`` (a SQLite file or a database URL), each call booked to
    ``payer`` if one is named. On the way out (a stop, an error) its calls still in flight get
    their grace before the local server stops."""
    store = ResponseCache(cache)
    try:
        if params.base_url is None:
            logger = run_logger()
            logger.info("starting the local model server for %s (log: %s) ...", local_model, log_path.resolve())
            start = time.monotonic()
            with local_model_server(
                local_model, log_path, cache_blocks=params.server_cache_blocks,
                block_size=params.server_block_size, max_batch_tokens=params.server_max_batch_tokens,
            ) as base_url:
                logger.info("local model server ready after %.0f s", time.monotonic() - start)
                # The cache key names the model, not the port, so a restarted server hits it.
                with _stopped(_blackbox(params, "http://127.0.0.1/local/v1", str(local_model), LOCAL_API_KEY, store,
                                        base_url, payer)) as blackbox:
                    yield blackbox
        else:
            if not api_key:
                raise BlackBoxError(
                    f"blackbox.base_url is {params.base_url!r}: set the API key in the environment "
                    "variable OPENAI_API_KEY"
                )
            with _stopped(_blackbox(params, params.base_url, params.model or "", api_key, store,
                                    params.base_url, payer)) as blackbox:
                yield blackbox
    finally:
        store.close()


@contextmanager
def _stopped(blackbox: BlackBox) -> Iterator[BlackBox]:
    """``blackbox``, stopped on exit: no scoring left in the background outlives the run."""
    try:
        yield blackbox
    finally:
        blackbox.stop()


def _blackbox(
    params: BlackBoxParams, cache_url: str, model: str, key: str, cache: ResponseCache, url: str, payer: str
) -> BlackBox:
    limiter = RateLimiter(params.requests_per_minute, params.tokens_per_minute)
    shared = None
    if params.shared_rate_limit:
        assert params.requests_per_minute is not None  # checked by BlackBoxParams
        name = shared_limit_name(cache_url)
        ensure_rate_limit(name, params.requests_per_minute)
        limiter = RateLimiter(None, params.tokens_per_minute)  # the shared limit counts the requests

        def shared() -> Awaitable[None]:
            return rate_limit(name, occupy=1, strict=True)

    return BlackBox(
        base_url=url, cache_url=cache_url, model=model, api_key=key, cache=cache,
        concurrency=params.concurrency, max_tokens=params.max_tokens, timeout=params.timeout,
        max_retries=params.max_retries, backoff=params.backoff, grace=params.grace, payer=payer, limiter=limiter,
        shared_limit=shared,
    )


def shared_limit_name(endpoint: str) -> str:
    """The Prefect global concurrency limit of an endpoint: every run calling it shares it."""
    return f"blackbox-{hashlib.sha256(endpoint.rstrip('/').encode()).hexdigest()[:12]}"


def ensure_rate_limit(name: str, requests_per_minute: int) -> None:
    """The global concurrency limit ``name`` as a rate limit: ``requests_per_minute`` spread over
    the minute (a slot frees every 60/rpm seconds), at most one second's worth at once."""
    per_second = requests_per_minute / 60
    limit = GlobalConcurrencyLimitCreate(name=name, limit=max(1, math.ceil(per_second)),
                                         slot_decay_per_second=per_second)
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
            client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(
                limit=limit.limit, slot_decay_per_second=limit.slot_decay_per_second))
        except ObjectNotFound:
            client.create_global_concurrency_limit(limit)


@task(cache_policy=NO_CACHE)
def score_instructions(
    blackbox: BlackBox, instructions: list[str], examples: tuple[Example, ...], metric: str,
    progress: Callable[[int], object] | None = None,
) -> Scored:
    """Score instructions zero-shot on examples (one concurrent batch of calls): an evaluation
    each (``None`` for one with calls that failed after every retry), their cost and last fault;
    ``progress(n)`` hears of the calls answered."""
    return evaluate_instructions(blackbox, instructions, examples, metric, progress)
