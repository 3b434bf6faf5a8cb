import pytest

from components.data import Example
from components.generator import build_prompt, clean_instruction, format_exemplars


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("The instruction is to write the first letter. Then more.", "Write the first letter."),
        ('  "reverse the word"\nsecond line', "Reverse the word."),
        ("Instruction: add one to the number using str.join() twice", "Add one to the number using str.join() twice."),
        ("\n\n", ""),
    ],
)
def test_clean_instruction(raw, clean):
    assert clean_instruction(raw) == clean


def test_exemplars_show_the_first_accepted_answer():
    text = format_exemplars([Example("a", ("b", "c")), Example("d", ("e",))])
    assert text == "Input: a\nOutput: b\n\nInput: d\nOutput: e"


@pytest.mark.slow  # (the embedded model)
def test_the_soft_prompt_goes_before_the_chat_and_the_prefix_opens_the_reply(embedded_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(embedded_model)
    prompt = build_prompt(tokenizer, "Pairs:\n{exemplars}", [Example("a", ("b",))], "The instruction is")
    after = tokenizer.decode(prompt.suffix_ids)
    assert tokenizer.decode(prompt.prefix_ids) == "" and after.startswith("<|im_start|>")
    assert "Pairs:\nInput: a\nOutput: b" in after and after.endswith("<|im_start|>assistant\nThe instruction is")


@pytest.mark.slow  # (the embedded model)
def test_the_generator_runs_in_bfloat16_in_batches_of_at_most_max_batch(embedded_model):
    import torch

    from components.generator import generate_texts, load_generator, resolve_device
    from components.projection import make_projection

    assert resolve_device("cpu", "auto") == ("cpu", torch.float32)
    model, tokenizer = load_generator(str(embedded_model), device="cpu", dtype="bfloat16")
    assert model.dtype == torch.bfloat16 and model.device.type == "cpu"
    prompt = build_prompt(tokenizer, "Pairs:\n{exemplars}\nThe instruction?", [Example("cat", ("c",))], "It is to")
    soft = make_projection(4, 2, model.config.hidden_size, 0.05, 1.0, 0).soft_prompts(torch.rand(3, 4) * 2 - 1)
    whole = generate_texts(model, tokenizer, prompt, soft, 8, "It is to")
    assert len(whole) == 3 and all(t.startswith("It is to") and len(t) > len("It is to ") for t in whole)
    calls = []
    model.generate = lambda generate=model.generate, **kw: calls.append(len(kw["inputs_embeds"])) or generate(**kw)
    split = generate_texts(model, tokenizer, prompt, soft, 8, "It is to", max_batch=2)
    assert calls == [2, 1] and len(split) == 3  # (bfloat16 answers may differ with the batch's shape)


@pytest.mark.slow  # (the embedded model)
def test_sampling_is_fixed_by_its_seed_whatever_else_is_in_the_batch(embedded_model):
    import torch

    from components.generator import generate_texts, load_generator

    model, tokenizer = load_generator(str(embedded_model), device="cpu", dtype="float32")
    prompt = build_prompt(tokenizer, "Pairs:\n{exemplars}\nThe instruction?", [Example("cat", ("c",))], "It is to")
    soft = torch.randn(3, 2, model.config.hidden_size, generator=torch.Generator().manual_seed(0)) * 0.5

    def sample(rows: torch.Tensor, seed: int) -> list[str]:
        return generate_texts(model, tokenizer, prompt, rows, 12, "It is to", temperature=1.0, seed=seed)

    alone, together = sample(soft[:1], 5), sample(soft, 5)
    assert alone[0] == together[0] and sample(soft[:1], 5) == alone  # a retried trial writes the same instruction
    assert len({sample(soft[:1], seed)[0] for seed in range(4)}) > 1  # another seed, another sample
    greedy = generate_texts(model, tokenizer, prompt, soft[:1], 12, "It is to")
    assert greedy == generate_texts(model, tokenizer, prompt, soft[:1], 12, "It is to")


def test_a_flow_run_keeps_to_scale_threads_and_gives_them_back():
    import torch

    from tasks.generator import torch_threads

    before = torch.get_num_threads()  # (an earlier flow in this process may have set it)
    try:
        torch.set_num_threads(2)
        with torch_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(KeyError), torch_threads(1):
            raise KeyError("a failed search")
        assert torch.get_num_threads() == 2
        with torch_threads(None):
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_beside_the_local_model_server_the_generator_takes_half_the_cores(monkeypatch):
    import os

    from components.params import parse_params
    from flows.settings import cpu_threads
    from tests.conftest import small_params

    monkeypatch.setattr(os, "cpu_count", lambda: 8)

    def threads(**sections: dict) -> int | None:
        return cpu_threads(parse_params(small_params(**sections), "params.yaml"))

    assert threads() == 4  # the local server (base_url null) answers while the next batch is generated
    for here in ("http://127.0.0.1:8000/v1", "http://localhost:9/v1", "http://[::1]:8000/v1"):
        assert threads(blackbox={"base_url": here, "model": "m"}) == 4
    for there in ("https://api.example.com/v1", "http://192.0.2.7:8000/v1"):
        assert threads(blackbox={"base_url": there, "model": "m"}) is None  # all cores
    assert threads(scale={"threads": 3}) == threads(scale={"threads": 3}, blackbox={"base_url": None}) == 3
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert threads() == 1


def test_noise_drawn_from_z_is_gumbel_per_row_and_decided_by_z_alone():
    import torch

    from components.generator import GumbelNoise

    z = torch.rand(5, 10, generator=torch.Generator().manual_seed(0)) * 2 - 1
    scores = torch.zeros(5, 2000)
    no_tokens = torch.zeros(5, 0, dtype=torch.long)

    def noise(points: torch.Tensor, seed: int = 7) -> torch.Tensor:
        return GumbelNoise(1.0, seed, 4, points)(no_tokens[: len(points)], scores[: len(points)])

    batch = noise(z)
    assert torch.allclose(noise(z[2:3]), batch[2:3], atol=1e-5)  # a row's noise: its z, whatever the batch
    assert torch.allclose(noise(3 * z[:2]), batch[:2], atol=1e-5)  # (the direction of z)
    assert not torch.allclose(noise(z, seed=8), batch)
    assert batch.mean().item() == pytest.approx(0.5772, abs=0.03)  # Gumbel(0, 1): mean Euler's gamma, var pi^2/6
    assert batch.var().item() == pytest.approx(1.6449, rel=0.06)
    assert batch.argmax(dim=1).unique().numel() == 5  # different z, different samples
    close = noise(torch.stack([z[0], z[0] + 0.01 * z[1]]))
    assert torch.corrcoef(close)[0, 1] > 0.99 > torch.corrcoef(batch[:2])[0, 1]


@pytest.mark.slow  # (the embedded model)
def test_sampling_steered_by_z_gives_each_z_its_own_instruction_in_any_batch(embedded_model, tmp_path):
    import torch

    from components.generator import load_generator, write_instructions
    from components.params import GeneratorParams, ProjectionParams
    from tasks.generator import setup_projection

    model, tokenizer = load_generator(str(embedded_model), device="cpu", dtype="float32")
    params = GeneratorParams(prompt="Pairs:\n{exemplars}\nThe instruction?", response_prefix="It is to",
                             max_new_tokens=12, temperature=1.0, max_batch=2)
    projection = setup_projection.fn(ProjectionParams(intrinsic_dim=4, n_soft_tokens=2), model, tmp_path / "p.pt")
    prompt = build_prompt(tokenizer, params.prompt, [Example("cat", ("c",))], params.response_prefix)
    z = (torch.rand(5, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1).tolist()
    batch = write_instructions(model, tokenizer, prompt, projection, z, params, 0)
    assert write_instructions(model, tokenizer, prompt, projection, z[3:4], params, 0) == batch[3:4]  # z alone decides
    assert len(set(batch)) >= 4  # different z, different samples
    assert write_instructions(model, tokenizer, prompt, projection, z, params, 1) != batch  # another run's noise
