"""The schema of params.yaml: every knob, validated once at the flow entry."""

from __future__ import annotations

import argparse
import copy
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from components.errors import ConfigError
from components.metrics import METRICS


class _Section(BaseModel):
    # strict: no bool for a number, no float for an int, no number for a string; finite floats only
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)


_TASK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")  # a file and folder name, never a path


class DataParams(_Section):
    source: Literal["builtin", "instruction_induction", "bigbench", "pairs"] = "builtin"
    task: str = Field("first_letter", min_length=1)
    location: str | None = None  # directory or URL (instruction_induction, bigbench), file (pairs)
    metric: str | None = "contains"  # None: the paper's per-task metric
    n_exemplars: int = Field(5, ge=1, le=50)
    n_validation: int = Field(20, ge=1, le=1000)
    n_test: int = Field(100, ge=1, le=10000)
    seed: int = Field(0, ge=0, le=2**32 - 1)

    @model_validator(mode="after")
    def _check(self) -> DataParams:
        if not _TASK_NAME.fullmatch(self.task):
            raise ValueError(f"data.task must be a plain name (letters, digits, _ . + -), got {self.task!r}")
        if self.source != "builtin" and not self.location:
            raise ValueError(f"data.location is required when data.source is {self.source!r}")
        if self.metric is not None and self.metric not in METRICS:
            raise ValueError(f"data.metric must be one of {sorted(METRICS)}, got {self.metric!r}")
        return self


class ProjectionParams(_Section):
    intrinsic_dim: int = Field(10, ge=1, le=1000)
    n_soft_tokens: int = Field(10, ge=1, le=100)
    scale: float = Field(1.0, gt=0)  # spread of A z, relative to the token embeddings' spread
    seed: int = Field(0, ge=0, le=2**32 - 1)


GENERATOR_PROMPT = """Here are input-output pairs of a task:

{exemplars}

What instruction turns each input into its output? Reply with the instruction only."""


class GeneratorParams(_Section):
    model: str = Field("models/smollm2-135m-instruct", min_length=1)  # HF folder or hub id
    prompt: str = Field(GENERATOR_PROMPT, min_length=1)  # needs {exemplars}; the soft prompt goes before the chat
    response_prefix: str = "The instruction is to"  # start of the reply the instruction continues
    max_new_tokens: int = Field(48, ge=4, le=512)
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"  # auto: a GPU if there is one
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # auto: bfloat16/float16 on a GPU, else float32
    max_batch: int = Field(16, ge=1, le=1024)  # soft prompts generated together (memory)
    temperature: float = Field(0.5, ge=0, le=5)  # z-based samplers: 0 greedy, > 0 sampled with noise drawn from z
    ape_temperature: float = Field(1.0, gt=0, le=5)  # sampling temperature of the APE baseline

    @model_validator(mode="after")
    def _check(self) -> GeneratorParams:
        if "{exemplars}" not in self.prompt:
            raise ValueError("generator.prompt must contain the placeholder {exemplars}")
        try:
            self.prompt.format(exemplars="")
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(f"generator.prompt does not format: {err!r} (write a literal brace as {{{{ or }}}})") \
                from err
        return self


class BlackBoxParams(_Section):
    base_url: str | None = None  # None: start the local model server on 127.0.0.1
    model: str | None = None  # None with base_url None: the generator's model
    concurrency: int = Field(16, ge=1, le=1024)
    max_tokens: int = Field(32, ge=1, le=4096)
    timeout: float = Field(120.0, gt=0)
    max_retries: int = Field(4, ge=0, le=20)
    backoff: float = Field(1.0, gt=0, le=60)  # first retry delay in seconds, doubled each retry
    grace: float = Field(5.0, ge=0, le=60)  # seconds the calls in flight get to answer when the run is stopped
    requests_per_minute: int | None = Field(None, ge=1)  # None: no limit
    tokens_per_minute: int | None = Field(None, ge=1)
    shared_rate_limit: bool = False  # requests_per_minute over every run on this endpoint (a Prefect limit)
    # The local server's KV cache (continuous batching): bounded, or it takes most of the RAM.
    server_cache_blocks: int = Field(256, ge=8)
    server_block_size: int = Field(32, ge=8)
    server_max_batch_tokens: int = Field(1024, ge=64)

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        url = urlparse(value) if value is not None else None
        if url is not None and (url.scheme not in ("http", "https") or not url.netloc):
            raise ValueError("must be an http:// or https:// URL with a host")
        return value

    @model_validator(mode="after")
    def _check(self) -> BlackBoxParams:
        if self.base_url is not None and not self.model:
            raise ValueError("blackbox.model is required when blackbox.base_url is set")
        if self.server_cache_blocks * self.server_block_size < self.server_max_batch_tokens:
            raise ValueError(f"blackbox.server_cache_blocks x server_block_size ({self.server_cache_blocks} x "
                             f"{self.server_block_size}) must hold server_max_batch_tokens "
                             f"({self.server_max_batch_tokens}): the local server's KV cache could not take a batch")
        if self.shared_rate_limit and self.requests_per_minute is None:
            raise ValueError("blackbox.shared_rate_limit needs blackbox.requests_per_minute (the shared limit)")
        if self.tokens_per_minute is not None and self.tokens_per_minute < self.max_tokens:
            raise ValueError(f"blackbox.tokens_per_minute ({self.tokens_per_minute}) is below one call's "
                             f"max_tokens ({self.max_tokens}): no call could ever be sent")
        return self


class BOParams(_Section):
    # instructzero: the paper's; random: "Uniform"; ape: no soft prompt, sampled instructions
    sampler: Literal["instructzero", "botorch", "gp", "tpe", "random", "ape"] = "instructzero"
    n_instructions: int = Field(20, ge=1, le=10000)  # distinct instructions scored: the black-box budget
    n_trials: int = Field(200, ge=1, le=100000)  # a safety cap: a repeated instruction costs a trial, no call
    n_startup_trials: int = Field(8, ge=1, le=10000)
    lengthscale: float = Field(0.5, gt=0, le=2)  # instructzero: the prior mean of the GP's lengthscales on z
    batch_size: int = Field(4, ge=1, le=256)  # trials asked (and generated) together
    pool: int = Field(16, ge=0, le=4096)  # extra random z per batch: new ones naming an answer go first (not ape)
    seed: int = Field(0, ge=0, le=2**32 - 1)


_Price = Annotated[float, Field(ge=0)]


class BudgetParams(_Section):
    """Hard limits on the black box during optimisation (null: none)."""

    max_calls: int | None = Field(None, ge=1)
    max_tokens: int | None = Field(None, ge=1)
    max_cost: float | None = Field(None, gt=0)  # US$, priced with `prices` or the built-in table
    prices: dict[str, tuple[_Price, _Price]] = {}  # model -> US$ per million (prompt, completion) tokens

    @field_validator("prices", mode="before")
    @classmethod
    def _pairs(cls, value: Any) -> Any:
        """YAML writes a pair as a list."""
        return {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()} if isinstance(value, dict) \
            else value


class EvalParams(_Section):
    top_k: int = Field(3, ge=1, le=100)  # best instructions scored on the test set
    # an instruction to compare the found one with on the test set (say, the one in use now);
    # None: a built-in task's own reference, none for other tasks
    reference: str | None = Field(None, min_length=1, pattern=r"\S")


class ScaleParams(_Section):
    """One optimisation over several Prefect flow runs on a work pool, sharing one study."""

    workers: int = Field(1, ge=1, le=256)  # flow runs scoring at once; >1 needs a shared database
    work_pool: str = Field("instructzero", min_length=1, pattern=r"^[\w.-]+$")  # a process work pool
    heartbeat: int = Field(30, ge=1, le=3600)  # seconds between a live trial's heartbeats
    grace: int = Field(120, ge=2, le=86400)  # a trial silent this long is failed and asked again
    claim_timeout: int = Field(300, ge=1, le=86400)  # seconds flow runs may wait for a worker before giving up
    threads: int | None = Field(None, ge=1, le=1024)  # CPU threads per flow run; None: half the cores beside a
    # black box on this machine, else all

    @model_validator(mode="after")
    def _check(self) -> ScaleParams:
        if self.grace <= self.heartbeat:
            raise ValueError(f"scale.grace ({self.grace}) must be longer than scale.heartbeat ({self.heartbeat})")
        return self


class TrackingParams(_Section):
    experiment: str = Field("instructzero", min_length=1, pattern=r"\S")


class Params(_Section):
    data: DataParams = DataParams()
    projection: ProjectionParams = ProjectionParams()
    generator: GeneratorParams = GeneratorParams()
    blackbox: BlackBoxParams = BlackBoxParams()
    bo: BOParams = BOParams()
    budget: BudgetParams = BudgetParams()
    eval: EvalParams = EvalParams()
    scale: ScaleParams = ScaleParams()
    tracking: TrackingParams = TrackingParams()

    @model_validator(mode="after")
    def _check(self) -> Params:
        if self.budget.max_tokens is not None and self.budget.max_tokens < self.data.n_validation:
            raise ValueError(f"budget.max_tokens ({self.budget.max_tokens}) is below one instruction's validation "
                             f"({self.data.n_validation} calls of at least one token each): nothing could be scored")
        if self.budget.max_calls is not None and self.budget.max_calls < self.data.n_validation:
            raise ValueError(f"budget.max_calls ({self.budget.max_calls}) is below one instruction's validation "
                             f"({self.data.n_validation} calls, data.n_validation): nothing could be scored")
        return self


def parse_params(raw: Any, source: str) -> Params:
    """Validate ``raw`` (the loaded YAML) or raise a ConfigError naming each bad key."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            key = ".".join(str(p) for p in e["loc"]) or "(top level)"
            got = "" if e["type"] == "missing" or isinstance(e["input"], dict) else f" (got {e['input']!r})"
            problems.append(f"  {key}: {e['msg'].removeprefix('Value error, ')}{got}")
        raise ConfigError(f"{source}: invalid parameters\n" + "\n".join(problems)) from err


def override_argument(text: str) -> tuple[str, str]:
    """A command line's ``KEY=VALUE`` as (key, value), for :func:`apply_overrides`."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. bo.n_trials=20), got {text!r}")
    return key, value


def apply_overrides(raw: Any, overrides: Mapping[str, Any]) -> Any:
    """A copy of ``raw`` with dotted keys set (``{"bo.n_trials": 8}``); string values are read
    as YAML (``"8"`` -> 8, ``"null"`` -> None), as on a command line. Unknown keys, and a
    ``raw`` that is not a mapping, are left for :func:`parse_params` to name."""
    if not isinstance(raw, Mapping):
        return raw
    result = copy.deepcopy(dict(raw))
    for key, value in overrides.items():
        *sections, last = key.split(".")
        node = result
        for part in sections:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key!r}: {part!r} is a value, not a section")
        node[last] = _yaml_value(value) if isinstance(value, str) else value
    return result


def _yaml_value(text: str) -> Any:
    """``text`` read as YAML, or kept as a string when it is not YAML (``[tpe``) or reads as a
    mapping without braces (``Instruction: ``)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return text if isinstance(value, dict) and not text.lstrip().startswith("{") else value
