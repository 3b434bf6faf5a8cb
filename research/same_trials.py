"""Does a change alter what a run does? The same fixed-seed run of two checkouts on the stub
black box, trial by trial: number, z (6 digits), instruction and score.

Each checkout runs its own `flows.prepare` and `flows.optimize` (with its own params.yaml, on a
small budget: 10 validation and test examples, 12 instructions, 4 start-up trials) against
`tests.openai_stub` answering deterministically from the instruction and the input, so that
scores differ. Prints the trials that differ (none: "same trials") and the stub's call counts.

    .venv/bin/python -m research.same_trials BEFORE_CHECKOUT AFTER_CHECKOUT --task word_sentiment
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from benchmarks.tasks import embedded_model
from tests.openai_stub import last_input, stub_server


def answer(task: str):  # type: ignore[no-untyped-def]
    """A deterministic answer that depends on the instruction's length and the input."""
    def reply(prompt: str) -> str:
        instruction = prompt.split("Instruction: ")[1].split("\n")[0] if "Instruction: " in prompt else ""
        word = last_input(prompt)
        if task != "first_letter":
            return ["positive", "negative", word[0]][(len(instruction) + len(word)) % 3]
        return word[0] if (len(instruction) + len(word)) % 3 else f"The word is {word}."
    return reply


def trials(code: Path, task: str, out: Path) -> tuple[list[str], int]:
    """The run of checkout ``code`` in ``out``: one line per trial, and the calls it made."""
    (out / "models").mkdir(parents=True)
    (out / "models" / "smollm2-135m-instruct").symlink_to(embedded_model())
    raw = yaml.safe_load((code / "params.yaml").read_text())
    raw["data"].update(n_validation=10, n_test=10, task=task)
    raw["bo"].update(n_instructions=12, n_trials=40, n_startup_trials=4)
    with stub_server(answer(task)) as server:
        raw["blackbox"].update(base_url=server.base_url, model="stub")
        (out / "params.yaml").write_text(yaml.safe_dump(raw))
        env = {**os.environ, "OPENAI_API_KEY": "stub", "PYTHONPATH": str(code)}
        for stage in ("prepare", "optimize"):
            subprocess.run([sys.executable, "-m", f"flows.{stage}"], cwd=out, env=env, check=True,
                           capture_output=True)
        calls = len(server.requests)
    rows = json.loads((out / "outputs" / "trials.json").read_text())
    return [f"{t['number']} {[round(x, 6) for x in t['z']]} {t['instruction']!r} {t['val_score']}" for t in rows], calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="a checkout of the code before the change")
    parser.add_argument("after", type=Path, help="a checkout of the code after it")
    parser.add_argument("--task", default="first_letter", help="a built-in task (word_sentiment: the pool runs)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        before, calls_before = trials(args.before.resolve(), args.task, Path(tmp) / "before")
        after, calls_after = trials(args.after.resolve(), args.task, Path(tmp) / "after")
    differ = [(b, a) for b, a in zip(before, after, strict=False) if b != a]
    print(f"{args.task}: {len(before)} trials before, {len(after)} after; calls {calls_before} / {calls_after}")
    print("same trials" if not differ and len(before) == len(after) else
          "\n".join(f"- {b}\n+ {a}" for b, a in differ) or "different numbers of trials")


if __name__ == "__main__":
    main()
