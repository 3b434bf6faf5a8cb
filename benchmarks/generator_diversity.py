"""How varied and how good are the generator's candidates? (tunes projection.scale and the prompt)

For each task x projection scale x prompt: n random z in [-1, 1]^d -> instructions; prints the
number of distinct instructions and the best / mean validation score of the distinct ones,
next to the empty instruction. Uses the local model server as the black box.

    .venv/bin/python -m benchmarks.generator_diversity --tasks parity first_letter --scales 0.5 1 3
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

import flows  # noqa: F401  (runtime defaults: offline hub, no telemetry)
from components.blackbox import BlackBox, ResponseCache, evaluate_instructions
from components.builtin_tasks import BUILTIN_TASKS, builtin_task
from components.data import TaskData, parse_instruction_induction, read_text, split_task
from components.generator import build_prompt, embedding_std, generate_instructions, load_generator
from components.local_server import local_model_server
from components.metrics import metric_for_task
from components.projection import make_projection
from flows.settings import EMBEDDED_MODEL, load_params

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "instruction-induction"

PROMPTS = {
    "params": None,  # generator.prompt / response_prefix from params.yaml
    "ape": ("I gave a friend an instruction and five inputs. The friend read the instruction and "
            "wrote an output for every one of the inputs. Here are the input-output pairs:\n\n{exemplars}",
            "The instruction was to"),
    "write": ("Here are input-output pairs of a task:\n\n{exemplars}\n\n"
              "What instruction turns each input into its output? Reply with the instruction only.",
              "The instruction is to write"),
    "answer": ("Here are input-output pairs of a task:\n\n{exemplars}\n\n"
               "What instruction turns each input into its output? Reply with the instruction only.",
               "The instruction is to answer"),
    "fewshot": ("Input: cat\nOutput: CAT\n\nInput: tree\nOutput: TREE\n\n"
                "Instruction: Write the word in capital letters.\n\n"
                "Input: 2, 5\nOutput: 7\n\nInput: 10, 3\nOutput: 13\n\n"
                "Instruction: Add the two numbers.\n\n{exemplars}\n\n", "Instruction:"),
    "short": ("{exemplars}\n\nWrite a one-sentence instruction that turns each input into its output.",
              "Instruction:"),
}


def load(task: str) -> TaskData:
    if task in BUILTIN_TASKS:
        return builtin_task(task)
    induce, execute = (str(SHARED / "raw" / s / f"{task}.json") for s in ("induce", "execute"))
    return TaskData(task, parse_instruction_induction(read_text(induce), induce),
                    parse_instruction_induction(read_text(execute), execute))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["parity", "first_letter", "sentiment", "antonyms"])
    parser.add_argument("--scales", nargs="+", type=float, default=[0.5, 1.0, 3.0])
    parser.add_argument("--prompts", nargs="+", default=list(PROMPTS), choices=list(PROMPTS))
    parser.add_argument("--n", type=int, default=16, help="random z per setting")
    parser.add_argument("--metric", default=None, help="override the task's metric (e.g. contains)")
    args = parser.parse_args()

    params = load_params()
    model, tokenizer = load_generator(str(EMBEDDED_MODEL))
    std = embedding_std(model)
    print(f"{'task':16s} {'prompt':7s} {'scale':>5s} {'distinct':>8s} {'best':>5s} {'mean':>5s} {'empty':>5s} "
          f"{'gen s':>5s}  best instruction")
    with tempfile.TemporaryDirectory() as tmp, \
            local_model_server(EMBEDDED_MODEL, Path(tmp) / "server.log") as url:
        cache = ResponseCache(Path(tmp) / "cache.db")
        blackbox = BlackBox(base_url=url, model=str(EMBEDDED_MODEL), api_key="local", cache=cache)
        for task in args.tasks:
            split = split_task(load(task), 5, 20, 1, 0)
            metric = args.metric or metric_for_task(task)
            empty = evaluate_instructions(blackbox, [""], split.validation, metric)[0].mean
            for name in args.prompts:
                template, prefix = PROMPTS[name] or (params.generator.prompt, params.generator.response_prefix)
                prompt = build_prompt(tokenizer, template, split.exemplars, prefix)
                for scale in args.scales:
                    projection = make_projection(10, 5, model.config.hidden_size, std, scale, 0)
                    z = torch.rand(args.n, 10, generator=torch.Generator().manual_seed(0)) * 2 - 1
                    start = time.perf_counter()
                    texts = generate_instructions(model, tokenizer, prompt, projection.soft_prompts(z), 32, prefix)
                    seconds = time.perf_counter() - start
                    distinct = list(dict.fromkeys(texts))
                    results = evaluate_instructions(blackbox, distinct, split.validation, metric)
                    best = max(results, key=lambda e: e.mean)
                    mean = sum(e.mean for e in results) / len(results)
                    print(f"{task:16s} {name:7s} {scale:5.1f} {len(distinct):4d}/{args.n:<3d} {best.mean:5.2f} "
                          f"{mean:5.2f} {empty:5.2f} {seconds:5.1f}  {best.instruction[:70]!r}", flush=True)


if __name__ == "__main__":
    main()
