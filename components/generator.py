"""The open-source generator: soft prompt + exemplars -> one instruction per soft prompt."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from components.data import Example
from components.params import GeneratorParams, ProjectionParams
from components.projection import Projection, make_projection
from components.study import trial_seed


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Write a GGUF checkpoint as a plain Hugging Face folder (float32 safetensors)."""
    kwargs = {"gguf_file": gguf_path.name}
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), **kwargs)
    quantized = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), dtype=torch.float32, **kwargs)
    # GGUF-loaded models keep GGUF metadata; a model built from the config saves cleanly.
    model = AutoModelForCausalLM.from_config(quantized.config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict())
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str = "auto", dtype: str = "auto") -> tuple[str, torch.dtype]:
    """``auto``: a GPU when there is one (CUDA, else Apple's MPS), else the CPU; bfloat16 on a
    GPU that has it, float16 on other GPUs, float32 on the CPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if dtype != "auto":
        return device, DTYPES[dtype]
    if device == "cuda":
        return device, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return device, torch.float16 if device == "mps" else torch.float32


def load_generator(
    model_ref: str, device: str = "auto", dtype: str = "auto"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer (a local folder or a cached hub id), in eval mode, on
    ``device`` in ``dtype`` (see :func:`resolve_device`); on CUDA, a model too large for one GPU
    is spread over all of them (``device_map="auto"``)."""
    where, torch_dtype = resolve_device(device, dtype)
    tokenizer = AutoTokenizer.from_pretrained(model_ref)
    model = AutoModelForCausalLM.from_pretrained(
        model_ref, dtype=torch_dtype, device_map="auto" if where == "cuda" else where
    )
    model.eval()
    return model, tokenizer


def embedding_std(model: PreTrainedModel) -> float:
    """Per-coordinate standard deviation of the model's token embeddings."""
    return _embeddings(model).weight.float().std().item()


def model_projection(params: ProjectionParams, model: PreTrainedModel) -> Projection:
    """The seeded projection ``params`` describe for ``model``, scaled to its embeddings' spread."""
    return make_projection(params.intrinsic_dim, params.n_soft_tokens, model.config.hidden_size,
                           embedding_std(model), params.scale, params.seed)


def _embeddings(model: PreTrainedModel) -> torch.nn.Embedding:
    table = model.get_input_embeddings()
    if not isinstance(table, torch.nn.Embedding):
        raise ValueError(f"expected an nn.Embedding input table, got {type(table).__name__}")
    return table


def format_exemplars(exemplars: Sequence[Example]) -> str:
    return "\n\n".join(f"Input: {e.input}\nOutput: {e.outputs[0]}" for e in exemplars)


@dataclass(frozen=True)
class GenerationPrompt:
    """The chat prompt split around the soft prompt: ``prefix_ids``, soft prompt, ``suffix_ids``."""

    prefix_ids: torch.Tensor  # n_prefix
    suffix_ids: torch.Tensor  # n_suffix


def build_prompt(
    tokenizer: PreTrainedTokenizerBase, template: str, exemplars: Sequence[Example], response_prefix: str = "",
) -> GenerationPrompt:
    """Render ``template`` (with ``{exemplars}``) as the user turn of the model's chat template,
    ``response_prefix`` opening the reply, and the soft prompt before the whole chat (as the
    paper): the prefix is empty, the rendered chat is the suffix."""
    user = template.format(exemplars=format_exemplars(exemplars))
    text = tokenizer.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                         add_generation_prompt=True)
    assert isinstance(text, str)  # tokenize=False renders text

    def encode(part: str) -> torch.Tensor:
        return tokenizer(part, add_special_tokens=False, return_tensors="pt").input_ids[0]

    return GenerationPrompt(encode(""), encode(text + response_prefix))


class GumbelNoise(LogitsProcessor):
    """Sampling at ``temperature`` as greedy decoding of ``logits / temperature + g``, with Gumbel
    noise ``g`` fixed by ``seed`` per step: shared by every row of a batch (common random numbers:
    the same soft prompt and seed always give the same reply, whatever else is in its batch), or,
    with ``points`` (one z per row), drawn from each z's direction: g = G(Phi(B_step z / |z|)),
    B_step a seeded Gaussian (vocab x d). Either way each row's g is i.i.d. Gumbel over the
    vocabulary (an exact sample at ``temperature``); with ``points`` z alone decides the sample,
    different z draw different ones and z at a small angle tend to draw the same."""

    def __init__(self, temperature: float, seed: int, max_new_tokens: int, points: torch.Tensor | None = None) -> None:
        self.temperature, self.seed, self.max_new_tokens = temperature, seed, max_new_tokens
        self.directions = None if points is None else torch.nn.functional.normalize(points.float(), dim=1)
        self._noise: torch.Tensor | None = None  # (rows or 1) x steps x vocab

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._noise is None or self._noise.shape[-1] != scores.shape[-1]:
            self._noise = self._draw(scores.shape[-1])
        step = input_ids.shape[1]  # tokens generated so far (the prompt came as embeddings)
        noise = self._noise[:, step].to(scores.device, scores.dtype)  # rows (or 1) x vocab
        return scores / self.temperature + noise  # type: ignore[return-value]

    def _draw(self, vocab: int) -> torch.Tensor:
        seeded = torch.Generator().manual_seed(self.seed)
        if self.directions is None:
            uniform = torch.rand(1, self.max_new_tokens, vocab, generator=seeded, dtype=torch.float32)
        else:
            basis = torch.randn(self.max_new_tokens, vocab, self.directions.shape[1], generator=seeded,
                                dtype=torch.float32)
            uniform = torch.special.ndtr(torch.einsum("svd,rd->rsv", basis, self.directions))  # of N(0, 1)
        return -torch.log(-torch.log(uniform.clamp(1e-20, 1 - 1e-7)))


@torch.no_grad()
def generate_texts(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt: GenerationPrompt,
    soft_prompts: torch.Tensor,
    max_new_tokens: int,
    response_prefix: str = "",
    temperature: float = 0.0,
    seed: int = 0,
    max_batch: int = 16,
    points: torch.Tensor | None = None,
) -> list[str]:
    """The generator's raw replies (``response_prefix`` included; ``clean_instruction`` makes
    instructions of them), one per soft prompt (``b x n_tokens x hidden``), in batches of at
    most ``max_batch`` (memory): greedy, or, when ``temperature`` > 0, sampled with the noise
    fixed by ``seed``, and by each row's z when ``points`` (``b x d``) are given
    (:class:`GumbelNoise`). ``n_tokens`` may be 0 (no soft prompt)."""
    chunks = soft_prompts.split(max_batch)
    rows = points.split(max_batch) if points is not None else [None] * len(chunks)
    return [text for chunk, z in zip(chunks, rows, strict=True)
            for text in _generate_batch(model, tokenizer, prompt, chunk, max_new_tokens, response_prefix,
                                        temperature, seed, z)]


def _generate_batch(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompt: GenerationPrompt,
    soft_prompts: torch.Tensor, max_new_tokens: int, response_prefix: str, temperature: float, seed: int,
    points: torch.Tensor | None,
) -> list[str]:
    table = _embeddings(model)
    batch, device = soft_prompts.shape[0], table.weight.device
    embeds = torch.cat(
        [
            table(prompt.prefix_ids.to(device)).expand(batch, -1, -1),  # b x n_prefix x h
            soft_prompts.to(device, table.weight.dtype),  # b x n_tokens x h
            table(prompt.suffix_ids.to(device)).expand(batch, -1, -1),  # b x n_suffix x h
        ],
        dim=1,
    )
    noise = [GumbelNoise(temperature, seed, max_new_tokens, points)] if temperature > 0 else []
    output = model.generate(  # type: ignore[operator]  # nn.Module.__getattr__ hides GenerationMixin
        inputs_embeds=embeds,
        attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long, device=device),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        logits_processor=LogitsProcessorList(noise),
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
    )
    texts = tokenizer.batch_decode(output, skip_special_tokens=True)
    return [f"{response_prefix} {t.lstrip()}" if response_prefix else t for t in texts]


def write_instructions(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompt: GenerationPrompt, projection: Projection,
    z: Sequence[Sequence[float]], params: GeneratorParams, seed: int,
) -> list[str]:
    """One instruction per point z (a batch of ``len(z)`` soft prompts): greedy, or sampled at
    ``params.temperature`` with noise drawn from z (and ``seed``)."""
    points = torch.tensor(z, dtype=torch.float32)
    texts = generate_texts(model, tokenizer, prompt, projection.soft_prompts(points), params.max_new_tokens,
                           params.response_prefix, temperature=params.temperature, seed=seed,
                           max_batch=params.max_batch, points=points)
    return [clean_instruction(t) for t in texts]


def sample_instruction(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompt: GenerationPrompt, params: GeneratorParams,
    seed: int,
) -> str:
    """An APE candidate: one instruction sampled from the exemplars alone (no soft prompt) at
    ``params.ape_temperature``; the same ``seed`` samples the same one."""
    empty = torch.zeros(1, 0, model.config.hidden_size)  # 1 x 0 x hidden
    [text] = generate_texts(model, tokenizer, prompt, empty, params.max_new_tokens, params.response_prefix,
                            temperature=params.ape_temperature, seed=seed)
    return clean_instruction(text)


@dataclass(frozen=True)
class InstructionWriter:
    """The search's writing (``components.search.Operations.write`` and ``write_pool``): an
    instruction from each z's soft prompt, or, for the APE baseline (``sampler`` "ape"), one
    sample per trial without a soft prompt, seeded by the trial (a retry writes the same one)."""

    sampler: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    prompt: GenerationPrompt
    projection: Projection
    params: GeneratorParams
    seed: int

    def write(self, trials: Sequence[optuna.Trial], z: Sequence[Sequence[float]]) -> list[str]:
        if self.sampler == "ape":
            return [sample_instruction(self.model, self.tokenizer, self.prompt, self.params, trial_seed(t, self.seed))
                    for t in trials]
        return self.write_pool(z)

    def write_pool(self, z: Sequence[Sequence[float]]) -> list[str]:
        return write_instructions(self.model, self.tokenizer, self.prompt, self.projection, z, self.params, self.seed)


_LEAD = re.compile(r"^\s*(?:the\s+)?instruction\s*(?:is|was)?\s*(?:to)?\s*[:\-]?\s*", re.IGNORECASE)


def clean_instruction(text: str) -> str:
    """One clean instruction sentence: the first non-empty line, up to its first sentence end,
    without a leading 'The instruction is to' or quotes, capitalised and ending in a period."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = _LEAD.sub("", line).strip().strip("\"'` ")
    match = re.search(r"^(.+?[.!?])(?:\s|$)", line)
    sentence = (match.group(1) if match else line).strip().strip("\"'` ")
    if not sentence:
        return ""
    sentence = sentence[0].upper() + sentence[1:]
    return sentence if sentence[-1] in ".!?" else sentence + "."
