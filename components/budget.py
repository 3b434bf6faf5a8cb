"""Black-box spending: hard limits, cost from a price table, the plan of a run, a worker's next batch."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from components.blackbox import CHARS_PER_TOKEN, CallStats, zero_shot_prompt
from components.data import Example

# US$ per million (prompt, completion) tokens; params.yaml's budget.prices adds or overrides.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-3.5-turbo": (0.50, 1.50),
}


def cost(stats: CallStats, price: tuple[float, float]) -> float:
    """US$ spent for the tokens in ``stats`` at ``price`` per million (prompt, completion)."""
    return (stats.prompt_tokens * price[0] + stats.completion_tokens * price[1]) / 1e6


@dataclass(frozen=True)
class Budget:
    """Hard limits on the black box; ``None`` means no limit."""

    max_calls: int | None = None
    max_tokens: int | None = None
    max_cost: float | None = None
    price: tuple[float, float] = (0.0, 0.0)

    def allows(self, used: CallStats, more_calls: int) -> bool:
        """Whether ``more_calls`` further calls stay within every limit; their tokens and cost
        are estimated from the average call so far (or not at all before the first call)."""
        calls = used.calls + more_calls
        growth = calls / used.calls if used.calls else 1.0  # usage scales with the calls made
        tokens = (used.prompt_tokens + used.completion_tokens) * growth
        spend = cost(used, self.price) * growth
        return (
            (self.max_calls is None or calls <= self.max_calls)
            and (self.max_tokens is None or tokens <= self.max_tokens)
            and (self.max_cost is None or spend <= self.max_cost)
        )

    def affordable(self, used: CallStats, calls_each: int, n: int) -> int:
        """How many of ``n`` further instructions, ``calls_each`` calls apiece, stay within every
        limit: a batch shrinks to this instead of being dropped."""
        return next((k for k in range(n, 0, -1) if self.allows(used, k * calls_each)), 0)


def next_batch(batch_size: int, remaining: int, running: int, mine: int, workers: int) -> int:
    """How many trials a worker asks next: ``remaining`` are still to be asked for by someone,
    ``running`` are being generated or scored by all, ``mine`` of them by this worker. One
    process: ``batch_size`` (or what remains). Several ``workers`` on one study: a batch is at most
    twice the one this worker is scoring (1 when it has none: at its start its black box waits for
    one generation, not a batch's, while the next batch is generated), and at most what keeps
    this worker's share of all the work outstanding even, so they finish together instead of one
    scoring a whole batch alone at the end."""
    if workers == 1:
        return max(0, min(batch_size, remaining))
    share = math.ceil((remaining + running) / workers) - mine
    return max(0, min(batch_size, remaining, share, 2 * mine or 1))


def price_for(model: str, overrides: Mapping[str, Sequence[float]]) -> tuple[float, float] | None:
    """The (prompt, completion) price of ``model``: an override, else the default table."""
    if model in overrides:
        prompt, completion = overrides[model]
        return float(prompt), float(completion)
    return DEFAULT_PRICES.get(model)


@dataclass(frozen=True)
class Plan:
    """The most a run can spend: every answer ``max_tokens`` long, no answer cached."""

    validation_calls: int
    test_calls: int
    prompt_tokens: int
    completion_tokens: int
    cost: float | None

    @property
    def calls(self) -> int:
        return self.validation_calls + self.test_calls


def plan_run(
    validation: Sequence[Example], test: Sequence[Example], n_instructions: int, test_instructions: int,
    max_tokens: int, instruction_tokens: int, price: tuple[float, float] | None,
) -> Plan:
    """Upper bounds of a run's calls, tokens and cost (duplicates and cache hits only lower them),
    ``test_instructions`` of them scored on the test set."""
    filler = "x" * (instruction_tokens * CHARS_PER_TOKEN)

    def prompt_tokens(examples: Sequence[Example]) -> int:
        return sum(len(zero_shot_prompt(filler, e.input)) for e in examples) // CHARS_PER_TOKEN

    val_calls, test_calls = n_instructions * len(validation), test_instructions * len(test)
    prompt = n_instructions * prompt_tokens(validation) + test_instructions * prompt_tokens(test)
    completion = (val_calls + test_calls) * max_tokens
    spend = None if price is None else cost(CallStats(prompt_tokens=prompt, completion_tokens=completion), price)
    return Plan(val_calls, test_calls, prompt, completion, spend)
