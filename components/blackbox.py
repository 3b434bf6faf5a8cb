"""The black-box LLM behind an OpenAI-compatible endpoint: concurrent, cached, zero-shot."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import openai

from components.data import Example
from components.errors import BlackBoxError
from components.metrics import score

ZERO_SHOT = "Instruction: {instruction}\n\nInput: {input}\nOutput:"
TEMPERATURE = 0.0  # the black box is greedy


def zero_shot_prompt(instruction: str, text: str) -> str:
    return ZERO_SHOT.format(instruction=instruction, input=text)


class ResponseCache:
    """Responses on disk (SQLite), keyed by endpoint, model, prompt and decoding parameters.

    Each response is committed as soon as it arrives, so a killed run loses none it paid for.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, text TEXT NOT NULL)")

    @staticmethod
    def key(base_url: str, model: str, prompt: str, params: dict[str, object]) -> str:
        blob = json.dumps([base_url.rstrip("/"), model, prompt, params], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT text FROM responses WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def put(self, key: str, text: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?)", (key, text))

    def close(self) -> None:
        self._db.close()


@dataclass
class CallStats:
    """What the black box cost so far."""

    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, int]) -> CallStats:
        return cls(**{k: int(v) for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class BlackBox:
    """Zero-shot, greedy chat completions with bounded concurrency and a response cache.

    ``cache_url`` names the endpoint in cache keys (it defaults to ``base_url``; a local server
    on a new port each run uses a fixed name so that its answers stay cached).
    """

    base_url: str
    model: str
    api_key: str = field(repr=False)
    cache: ResponseCache
    concurrency: int = 16
    max_tokens: int = 32
    timeout: float = 120.0
    max_retries: int = 4
    cache_url: str = ""
    stats: CallStats = field(default_factory=CallStats)

    @property
    def _params(self) -> dict[str, object]:
        """The decoding parameters, as sent and as keyed in the cache."""
        return {"temperature": TEMPERATURE, "max_tokens": self.max_tokens}

    def complete(self, prompts: Sequence[str]) -> list[str]:
        """Answer every prompt (duplicates and cached ones cost nothing), in order."""
        keys = [ResponseCache.key(self.cache_url or self.base_url, self.model, p, self._params) for p in prompts]
        answers = {k: self.cache.get(k) for k in set(keys)}
        self.stats.cache_hits += sum(answers[k] is not None for k in keys)
        missing = {k: p for k, p in zip(keys, prompts, strict=True) if answers[k] is None}
        if missing:
            answers.update(asyncio.run(self._fetch(missing)))
        return [answers[k] or "" for k in keys]

    async def _fetch(self, prompts: dict[str, str]) -> dict[str, str]:
        # A client per event loop: an AsyncOpenAI client must not outlive the loop it ran on.
        async with openai.AsyncOpenAI(
            base_url=self.base_url, api_key=self.api_key, timeout=self.timeout, max_retries=self.max_retries
        ) as client:
            gate = asyncio.Semaphore(self.concurrency)

            async def one(key: str, prompt: str) -> tuple[str, str]:
                async with gate:
                    text = await self._call(client, prompt)
                self.cache.put(key, text)
                return key, text

            return dict(await asyncio.gather(*(one(k, p) for k, p in prompts.items())))

    async def _call(self, client: openai.AsyncOpenAI, prompt: str) -> str:
        try:
            response = await client.chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": prompt}],
                temperature=TEMPERATURE, max_tokens=self.max_tokens,
            )
        except openai.APIConnectionError as err:
            raise BlackBoxError(f"blackbox.base_url {self.base_url!r}: cannot connect ({err})") from err
        except openai.AuthenticationError as err:
            raise BlackBoxError(f"{self.base_url}: the API key (OPENAI_API_KEY) was refused") from err
        except openai.NotFoundError as err:
            raise BlackBoxError(f"{self.base_url}: model {self.model!r} not served there ({err})") from err
        except openai.BadRequestError as err:
            raise BlackBoxError(f"{self.base_url} refused the request for model {self.model!r}: {err.message}") from err
        self.stats.calls += 1
        if response.usage is not None:
            self.stats.prompt_tokens += response.usage.prompt_tokens
            self.stats.completion_tokens += response.usage.completion_tokens
        return (response.choices[0].message.content or "").strip()


@dataclass(frozen=True)
class Evaluation:
    """An instruction's black-box outputs and per-example scores on a set of examples."""

    instruction: str
    outputs: tuple[str, ...]
    scores: tuple[float, ...]

    @property
    def mean(self) -> float:
        return sum(self.scores) / len(self.scores) if self.scores else 0.0


def evaluate_instructions(
    blackbox: BlackBox, instructions: Sequence[str], examples: Sequence[Example], metric: str
) -> list[Evaluation]:
    """Score each instruction zero-shot on ``examples``; all calls go out as one batch."""
    prompts = [zero_shot_prompt(v, e.input) for v in instructions for e in examples]
    outputs = blackbox.complete(prompts)
    n = len(examples)
    results = []
    for i, instruction in enumerate(instructions):
        outs = tuple(outputs[i * n : (i + 1) * n])
        scores = tuple(score(o, e.outputs, metric) for o, e in zip(outs, examples, strict=True))
        results.append(Evaluation(instruction, outs, scores))
    return results
