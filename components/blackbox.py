"""The black-box LLM behind an OpenAI-compatible endpoint: concurrent, cached, zero-shot."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import openai
import sqlalchemy as sa
from openai.types.chat import ChatCompletion
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from components.data import Example
from components.errors import BlackBoxError
from components.metrics import score
from components.ratelimit import RateLimiter
from components.tables import create_racing

ZERO_SHOT = "Instruction: {instruction}\n\nInput: {input}\nOutput:"
TEMPERATURE = 0.0  # the black box is greedy
MAX_BACKOFF = 60.0  # seconds, before jitter
CHARS_PER_TOKEN = 4  # the usual rough ratio, for limits and plans made before any response


def zero_shot_prompt(instruction: str, text: str) -> str:
    return ZERO_SHOT.format(instruction=instruction, input=text)


class ResponseCache:
    """Responses in a database, keyed by endpoint, model, prompt and decoding parameters: a
    SQLite file (a ``Path``) or a database URL (e.g. ``postgresql+psycopg://...``) that several
    workers share. Each response is committed as soon as it arrives, so a killed run loses none
    it paid for; the first answer stored for a key stays (insert-if-absent). With it goes a
    ledger row naming who paid for the call (:meth:`paid`): what a killed worker spent is
    counted even though it never reported it."""

    def __init__(self, where: Path | str) -> None:
        if isinstance(where, Path):
            where.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{where}" if isinstance(where, Path) else where
        sqlite = url.startswith("sqlite")
        self._engine = sa.create_engine(url, connect_args={"check_same_thread": False} if sqlite else {})
        if sqlite:
            with self._engine.connect() as db:
                db.exec_driver_sql("PRAGMA journal_mode=WAL")
        create_racing(lambda: _TABLES.create_all(self._engine))  # (workers start together)
        self._insert = (sqlite_insert if sqlite else postgresql_insert)(_RESPONSES).on_conflict_do_nothing()

    @staticmethod
    def key(base_url: str, model: str, prompt: str, params: dict[str, object]) -> str:
        blob = json.dumps([base_url.rstrip("/"), model, prompt, params], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def get(self, key: str) -> str | None:
        with self._engine.connect() as db:
            return db.execute(sa.select(_RESPONSES.c.text).where(_RESPONSES.c.key == key)).scalar()

    def put(self, key: str, text: str, payer: str = "", cost: CallStats | None = None) -> None:
        """Store an answer; a ``payer`` also books the call's ``cost`` in the ledger."""
        with self._engine.begin() as db:
            db.execute(self._insert.values(key=key, text=text))
            if payer:
                cost = cost or CallStats(calls=1)
                db.execute(_PAID.insert().values(payer=payer, prompt_tokens=cost.prompt_tokens,
                                                 completion_tokens=cost.completion_tokens))

    def paid(self, payer: str) -> CallStats:
        """The calls booked to ``payer`` and their tokens."""
        query = sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(_PAID.c.prompt_tokens), 0),
                          sa.func.coalesce(sa.func.sum(_PAID.c.completion_tokens), 0)).where(_PAID.c.payer == payer)
        with self._engine.connect() as db:
            calls, prompt_tokens, completion_tokens = db.execute(query).one()
        return CallStats(calls=calls, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)

    def close(self) -> None:
        self._engine.dispose()


_TABLES = sa.MetaData()
_RESPONSES = sa.Table("responses", _TABLES, sa.Column("key", sa.String(64), primary_key=True),
                      sa.Column("text", sa.Text, nullable=False))
_PAID = sa.Table("paid_calls", _TABLES, sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                 sa.Column("payer", sa.String(256), nullable=False, index=True),
                 sa.Column("prompt_tokens", sa.Integer, nullable=False),
                 sa.Column("completion_tokens", sa.Integer, nullable=False))


class BadResponse(Exception):
    """A 200 answer without a usable completion (no choices, no content)."""


@dataclass
class CallStats:
    """What the black box cost so far, and the faults it absorbed.

    ``calls`` counts answered requests; each fault counter counts failed attempts of that kind
    (retried, or given up after ``max_retries``); ``failed`` counts calls given up.
    """

    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    timeouts: int = 0
    connection_errors: int = 0
    bad_responses: int = 0
    failed: int = 0

    @property
    def faults(self) -> int:
        return self.rate_limited + self.server_errors + self.timeouts + self.connection_errors + self.bad_responses

    def as_dict(self) -> dict[str, int]:
        return {**self.__dict__, "faults": self.faults}

    @classmethod
    def from_dict(cls, data: dict[str, int]) -> CallStats:
        return cls(**{k: int(v) for k, v in data.items() if k in cls.__dataclass_fields__})

    def __add__(self, other: CallStats) -> CallStats:
        return CallStats(**{k: getattr(self, k) + getattr(other, k) for k in self.__dataclass_fields__})


@dataclass(frozen=True)
class Completions:
    """What one :meth:`BlackBox.complete` got: an answer per prompt (``None``: a call that failed
    after every retry), what it cost, and its last fault (empty if none)."""

    answers: list[str | None]
    stats: CallStats
    last_error: str = ""


@dataclass
class _Tally:
    """The cost and faults of one :meth:`BlackBox.complete` (its calls run concurrently)."""

    stats: CallStats
    last_error: str = ""


@dataclass
class BlackBox:
    """Zero-shot, greedy chat completions with bounded concurrency, rate limits, retries and a
    response cache. Holds no results: each :meth:`complete` returns its own.

    ``cache_url`` names the endpoint in cache keys (it defaults to ``base_url``; a local server
    on a new port each run uses a fixed name so that its answers stay cached). Rate limits (429),
    server errors, timeouts, dropped connections and unusable answers are retried with
    exponential backoff and jitter (honouring Retry-After); a call still failing after
    ``max_retries`` retries is answered ``None`` and not cached. Configuration errors (key,
    model, request) raise at once. After :meth:`stop` no call starts; those in flight get
    ``grace`` seconds to answer (and be cached), then are cancelled and answered ``None``.
    """

    base_url: str
    model: str
    api_key: str = field(repr=False)
    cache: ResponseCache
    concurrency: int = 16
    max_tokens: int = 32
    timeout: float = 120.0
    max_retries: int = 4
    backoff: float = 1.0
    cache_url: str = ""
    limiter: RateLimiter = field(default_factory=RateLimiter)
    shared_limit: Callable[[], Awaitable[object]] | None = None  # awaited before each request (all processes' limit)
    grace: float = 5.0
    payer: str = ""  # books each answered call in the cache's ledger under this name (a study's)
    stopping: threading.Event = field(default_factory=threading.Event, repr=False)
    _fetching: int = field(default=0, repr=False)  # batches of calls under way
    _idle: threading.Condition = field(default_factory=threading.Condition, repr=False)

    def stop(self) -> None:
        """Start no more calls (from any thread) and wait until those in flight have answered or
        been cancelled (at most ``grace`` seconds and a little): the run is being stopped."""
        self.stopping.set()
        with self._idle:
            self._idle.wait_for(lambda: not self._fetching, timeout=self.grace + 2)

    @property
    def _params(self) -> dict[str, object]:
        """The decoding parameters, as sent and as keyed in the cache."""
        return {"temperature": TEMPERATURE, "max_tokens": self.max_tokens}

    def complete(self, prompts: Sequence[str], progress: Callable[[int], object] | None = None) -> Completions:
        """Answer every prompt (duplicates and cached ones cost nothing), in order; ``None``
        for a call that failed after every retry. ``progress(n)`` hears of the prompts answered
        (the cached ones first). Raises BlackBoxError if no call got through and none was cached
        (the endpoint is unusable; a batch of a few calls left to pay for, e.g. a retry's, may
        just have been unlucky)."""
        keys = [ResponseCache.key(self.cache_url or self.base_url, self.model, p, self._params) for p in prompts]
        answers: dict[str, str | None] = {k: self.cache.get(k) for k in set(keys)}
        tally = _Tally(CallStats(cache_hits=sum(answers[k] is not None for k in keys)))
        missing = {k: p for k, p in zip(keys, prompts, strict=True) if answers[k] is None}
        if progress is not None:
            progress(tally.stats.cache_hits)
        if missing:
            # The calls run on a thread of their own: a Ctrl-C or SIGTERM raised in this one while
            # it waits stops them with their grace instead of tearing down their event loop.
            with ThreadPoolExecutor(1, thread_name_prefix="blackbox") as thread:
                fetching = thread.submit(self._fetch_all, missing, progress, tally)
                try:
                    wait([fetching])
                except BaseException:
                    self.stop()
                    raise
                fetched = fetching.result()
            if all(text is None for text in fetched.values()) and not tally.stats.cache_hits \
                    and not self.stopping.is_set():
                raise BlackBoxError(f"blackbox.base_url {self.base_url!r}: all {len(fetched)} calls failed after "
                                    f"{self.max_retries} retries; last error: {tally.last_error}")
            answers.update(fetched)
        return Completions([answers[k] for k in keys], tally.stats, tally.last_error)

    def _fetch_all(
        self, prompts: dict[str, str], progress: Callable[[int], object] | None, tally: _Tally
    ) -> dict[str, str | None]:
        with self._idle:
            self._fetching += 1
        try:
            return asyncio.run(self._fetch(prompts, progress, tally))
        finally:
            with self._idle:
                self._fetching -= 1
                self._idle.notify_all()

    async def _fetch(
        self, prompts: dict[str, str], progress: Callable[[int], object] | None, tally: _Tally
    ) -> dict[str, str | None]:
        # A client per event loop: an AsyncOpenAI client must not outlive the loop it ran on.
        async with openai.AsyncOpenAI(
            base_url=self.base_url, api_key=self.api_key, timeout=self.timeout, max_retries=0
        ) as client:
            gate = asyncio.Semaphore(self.concurrency)

            async def one(key: str, prompt: str) -> str | None:
                async with gate:
                    answer = await self._call(client, prompt, tally)
                if answer is not None:
                    self.cache.put(key, answer[0], self.payer, answer[1])
                if progress is not None:
                    progress(1)
                return None if answer is None else answer[0]

            calls = {key: asyncio.create_task(one(key, prompt)) for key, prompt in prompts.items()}
            await self._until_done_or_stopped(set(calls.values()))
            return {key: None if call.cancelled() else call.result() for key, call in calls.items()}

    async def _until_done_or_stopped(self, calls: set[asyncio.Task[str | None]], poll: float = 0.2) -> None:
        """Wait for every call; once stopped, for ``grace`` seconds more, then cancel the rest."""
        while calls and not self.stopping.is_set():
            _, calls = await asyncio.wait(calls, timeout=poll)
        if calls:
            _, calls = await asyncio.wait(calls, timeout=self.grace)
            for call in calls:
                call.cancel()
            await asyncio.gather(*calls, return_exceptions=True)

    async def _call(self, client: openai.AsyncOpenAI, prompt: str, tally: _Tally) -> tuple[str, CallStats] | None:
        """The answer and its cost (``None``: given up, or stopped)."""
        tokens = len(prompt) // CHARS_PER_TOKEN + self.max_tokens
        for attempt in range(self.max_retries + 1):
            if self.stopping.is_set():
                return None
            await asyncio.sleep(self.limiter.reserve(tokens))
            if self.shared_limit is not None:
                await self.shared_limit()
            try:
                text, cost = _answer(await client.chat.completions.create(
                    model=self.model, messages=[{"role": "user", "content": prompt}],
                    temperature=TEMPERATURE, max_tokens=self.max_tokens,  # as in _params (typed here)
                ))
                tally.stats = tally.stats + cost
                return text, cost
            except openai.AuthenticationError as err:
                raise BlackBoxError(f"{self.base_url}: the API key (OPENAI_API_KEY) was refused") from err
            except openai.NotFoundError as err:
                raise BlackBoxError(f"{self.base_url}: model {self.model!r} not served there ({err})") from err
            except (openai.BadRequestError, openai.PermissionDeniedError, openai.UnprocessableEntityError) as err:
                raise BlackBoxError(f"{self.base_url} refused the request for model {self.model!r}: {err}") from err
            except (openai.APIError, BadResponse, ValueError) as err:  # ValueError: a body that is not JSON
                told = _count_fault(err, tally)
            if attempt < self.max_retries:
                delay = min(MAX_BACKOFF, self.backoff * 2**attempt) * random.uniform(0.5, 1.0)
                if told is not None:
                    self.limiter.pause(told)  # every request waits, not only this one
                await asyncio.sleep(max(delay, told or 0.0))
        tally.stats.failed += 1
        return None


def _answer(response: ChatCompletion) -> tuple[str, CallStats]:
    """The answer's text and what it cost."""
    if not response.choices or response.choices[0].message.content is None:
        raise BadResponse("an answer without content")
    usage = response.usage
    cost = CallStats(calls=1, prompt_tokens=usage.prompt_tokens if usage else 0,
                     completion_tokens=usage.completion_tokens if usage else 0)
    return response.choices[0].message.content.strip(), cost


def _count_fault(err: Exception, tally: _Tally) -> float | None:
    """Count a retryable failure by kind; return the server's Retry-After in seconds, if any."""
    tally.last_error = f"{type(err).__name__}: {err}"
    stats = tally.stats
    if isinstance(err, openai.APITimeoutError):
        stats.timeouts += 1
    elif isinstance(err, openai.APIConnectionError):
        stats.connection_errors += 1
    elif isinstance(err, openai.RateLimitError):
        stats.rate_limited += 1
    elif isinstance(err, openai.APIStatusError) and err.status_code >= 500:
        stats.server_errors += 1
    else:
        stats.bad_responses += 1
    if isinstance(err, openai.APIStatusError):
        return retry_after(err.response.headers)
    return None


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a ``retry-after-ms`` or ``retry-after`` (seconds) header, capped at MAX_BACKOFF."""
    for name, unit in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        try:
            return min(MAX_BACKOFF, max(0.0, float(headers[name]) * unit))
        except (KeyError, ValueError):
            continue
    return None


@dataclass(frozen=True)
class Evaluation:
    """An instruction's black-box outputs and per-example scores on a set of examples."""

    instruction: str
    outputs: tuple[str, ...]
    scores: tuple[float, ...]

    @property
    def mean(self) -> float:
        return sum(self.scores) / len(self.scores) if self.scores else 0.0


@dataclass(frozen=True)
class Scored:
    """What one :func:`evaluate_instructions` got: an evaluation per instruction (``None``: one
    with a call that failed after every retry), what the calls cost, and the last fault."""

    evaluations: list[Evaluation | None]
    stats: CallStats
    last_error: str = ""


def evaluate_instructions(
    blackbox: BlackBox, instructions: Sequence[str], examples: Sequence[Example], metric: str,
    progress: Callable[[int], object] | None = None,
) -> Scored:
    """Score each instruction zero-shot on ``examples``; all calls go out as one batch
    (``progress`` as for :meth:`BlackBox.complete`).

    An instruction with a call that failed after every retry gets ``None``, never a score: its
    answered calls are cached, so evaluating it again pays only for the failed ones.
    """
    prompts = [zero_shot_prompt(v, e.input) for v in instructions for e in examples]
    done = blackbox.complete(prompts, progress)
    outputs, n = done.answers, len(examples)
    results: list[Evaluation | None] = []
    for i, instruction in enumerate(instructions):
        outs = outputs[i * n : (i + 1) * n]
        if any(o is None for o in outs):
            results.append(None)
            continue
        texts = tuple(o or "" for o in outs)
        scores = tuple(score(o, e.outputs, metric, e.choices) for o, e in zip(texts, examples, strict=True))
        results.append(Evaluation(instruction, texts, scores))
    return Scored(results, done.stats, done.last_error)
