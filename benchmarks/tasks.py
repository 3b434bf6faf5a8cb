"""The benchmark tasks: built-in ones and those of ../shared/data, by name, with one
hand-written instruction each (written once as a reference, never tuned on test data)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from components.blackbox import BlackBox, ResponseCache
from components.builtin_tasks import BUILTIN_TASKS, REFERENCES, builtin_task
from components.data import TaskData, parse_bigbench, parse_instruction_induction, read_text
from components.local_server import local_model_server
from components.params import BlackBoxParams
from flows.settings import EMBEDDED_MODEL
from tasks.generator import convert_embedded_model

ROOT = Path(__file__).resolve().parents[1]

SHARED = ROOT.parent / "shared" / "data"
INDUCTION = SHARED / "instruction-induction"
BIGBENCH = SHARED / "bigbench-ii"
RESULTS = ROOT / "benchmarks" / "results"


HANDWRITTEN: dict[str, str] = {
    **REFERENCES,  # built-in
    # Instruction Induction
    "active_to_passive": "Rewrite the sentence in the passive voice.",
    "antonyms": "Write the antonym of the word.",
    "cause_and_effect": "Of the two sentences, write the one that is the cause.",
    "common_concept": "Write what all the given things have in common.",
    "diff": "Subtract the second number from the first and write the result.",
    "first_word_letter": "Write the first letter of the first word.",
    "informal_to_formal": "Rewrite the sentence in formal English.",
    "larger_animal": "Write the name of the larger of the two animals.",
    "letters_list": "Write the letters of the word separated by spaces.",
    "negation": "Negate the sentence.",
    "object_counting": "Count the objects and write the number.",
    "odd_one_out": "Write the word that does not belong with the others.",
    "orthography_starts_with": "Write the words of the sentence that start with the letter in brackets.",
    "periodic_elements": "Write the name of the chemical element with this atomic number.",
    "sentence_similarity": "Rate how similar the two sentences are, from 0 - definitely not to 5 - perfectly.",
    "sentiment": "Classify the sentiment of the review as positive or negative.",
    "singular_to_plural": "Write the plural form of the word.",
    "translation_en-de": "Translate the word into German.",
    "translation_en-es": "Translate the word into Spanish.",
    "word_sorting": "Sort the words in alphabetical order.",
    # BIG-bench
    "causal_judgment": "Answer Yes or No: did the person cause the outcome?",
    "disambiguation_qa": "Explain which thing the pronoun in the sentence refers to.",
    "implicatures": "Does Speaker 2's answer mean yes or no?",
    "navigate": "Answer True if following these instructions returns you to the starting point, otherwise False.",
    "snarks": "Which statement is sarcastic, (a) or (b)?",
    "tense": "Rewrite the sentence in the tense it asks for.",
}


# Headroom: the better of the empty and the hand-written instruction scores at least this on the
# task's test examples (benchmarks/results/headroom.md), under the paper's metric, or under
# `contains` where the paper's metric leaves both below it. Below it every method ties at ~0.
HEADROOM = 0.10

# The task split (docs/README.md, "Task split", written 2026-12-07 before any run on it): knobs and
# defaults are chosen on the selection set only, the confirmation set (confirmation_tasks) reports
# them. The selection set holds USED_FOR_CHOICES, the tasks a committed measurement had used
# before that date, and the other tasks with headroom.
USED_FOR_CHOICES = ("first_letter", "word_sentiment", "antonyms", "first_word_letter", "larger_animal", "negation",
                    "sentiment", "singular_to_plural", "causal_judgment", "implicatures", "navigate")
CONFIRMATION_SIZE = 6


def headroom(row: dict) -> tuple[str, float] | None:
    """(metric, score of the better instruction) a headroom row (benchmarks/headroom.py) says to
    score its task with: the paper's metric if an instruction reaches HEADROOM under it, else
    ``contains`` if one does there, else None (no headroom)."""
    for metric, key in ((str(row["metric"]), "paper"), ("contains", "contains")):
        best = max(row[f"empty_{key}"], row[f"hand_{key}"])
        if best >= HEADROOM:
            return metric, best
    return None


def confirmation_tasks(rows: list[dict]) -> dict[str, str]:
    """{task: metric} of the confirmation set: of the ../shared/data tasks with headroom that no
    choice had used, the CONFIRMATION_SIZE whose better instruction scores highest."""
    fresh = {r["task"]: found for r in rows if r["task"] not in BUILTIN_TASKS and r["task"] not in USED_FOR_CHOICES
             and (found := headroom(r))}
    chosen = sorted(fresh, key=lambda t: (-fresh[t][1], t))[:CONFIRMATION_SIZE]
    return {t: fresh[t][0] for t in sorted(chosen)}


def all_tasks() -> list[str]:
    """Every task name: built-in, Instruction Induction, BIG-bench (in that order)."""
    return [*BUILTIN_TASKS, *sorted(p.stem for p in (INDUCTION / "raw" / "induce").glob("*.json")),
            *sorted(p.parent.name for p in BIGBENCH.glob("*/task.json"))]


def load(task: str) -> TaskData:
    """A task by name, from wherever it is."""
    if task in BUILTIN_TASKS:
        return builtin_task(task)
    if (BIGBENCH / task / "task.json").exists():
        path = str(BIGBENCH / task / "task.json")
        return TaskData(task, parse_bigbench(read_text(path), path))
    induce, execute = (str(INDUCTION / "raw" / s / f"{task}.json") for s in ("induce", "execute"))
    return TaskData(task, parse_instruction_induction(read_text(induce), induce),
                    parse_instruction_induction(read_text(execute), execute))


def embedded_model() -> Path:
    """The embedded model as an HF folder under this checkout (converted once, shared with
    `make run` and the tests), so a benchmark runs on a fresh machine too."""
    return convert_embedded_model.fn(ROOT / EMBEDDED_MODEL)


@contextmanager
def local_blackbox(tmp: Path, bb: BlackBoxParams, cache: str = "cache.db",
                   model: Path | None = None) -> Iterator[tuple[str, BlackBox]]:
    """``model`` (by default the embedded model) served on 127.0.0.1 as params.yaml's ``blackbox``
    sets the server (its log in ``tmp``), and a black box on it with a cold response cache
    ``tmp / cache``: (url, box). The server answers to ``str(model)`` only."""
    model = model or embedded_model()
    with local_model_server(model, tmp / "server.log", cache_blocks=bb.server_cache_blocks,
                            block_size=bb.server_block_size, max_batch_tokens=bb.server_max_batch_tokens) as url:
        yield url, BlackBox(base_url=url, model=str(model), api_key="local",
                            cache=ResponseCache(tmp / cache), max_tokens=bb.max_tokens)
