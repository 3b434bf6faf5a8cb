"""What can be checked before a run spends anything: model folders, task files, the endpoint's
key. Reads the file system and the environment only (no network, no model loading)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from huggingface_hub import try_to_load_from_cache

from components.builtin_tasks import BUILTIN_TASKS
from components.params import Params

WEIGHTS = ("*.safetensors", "*.bin")


def input_problems(params: Params, env: Mapping[str, str], convertible: Path) -> list[str]:
    """Every problem found, one line each naming the key and the value (empty: all good).
    ``convertible`` is a model folder a run writes itself (the embedded model), so it may be
    missing yet."""
    problems = [
        _model_problem("generator.model", params.generator.model, env, convertible),
        _data_problem(params),
    ]
    if params.blackbox.base_url is None:
        if params.blackbox.model is not None:
            problems.append(_model_problem("blackbox.model", params.blackbox.model, env, convertible))
    elif not env.get("OPENAI_API_KEY"):
        problems.append(f"blackbox.base_url is {params.blackbox.base_url!r} but the environment variable "
                        "OPENAI_API_KEY (the endpoint's key) is not set")
    if params.scale.workers > 1:
        problems += [f"scale.workers is {params.scale.workers}: {need} is not set ({why})"
                     for need, why in (("INSTRUCTZERO_DATABASE_URL", "the workers share the study in a database"),
                                       ("PREFECT_API_URL", "the workers take their runs from a Prefect server"))
                     if not env.get(need)]
    return [p for p in problems if p]


def _model_problem(key: str, ref: str, env: Mapping[str, str], convertible: Path) -> str | None:
    """A model is a Hugging Face folder with a config and weights, or a hub id in the local cache
    (or anywhere, when downloads are allowed: HF_HUB_OFFLINE=0)."""
    path = Path(ref)
    if path.is_dir():
        if not (path / "config.json").is_file():
            return f"{key}: {ref} has no config.json (not a Hugging Face model folder)"
        if not any(next(path.glob(pattern), None) for pattern in WEIGHTS):
            return f"{key}: {ref} holds no weights (*.safetensors or *.bin)"
        return None
    if path.exists():
        return f"{key}: {ref} is a file, expected a model folder"
    if path.resolve() == convertible.resolve():
        return None
    hub_id = ref.count("/") == 1 and not ref.startswith((".", "/", "~"))
    offline = env.get("HF_HUB_OFFLINE", "1").lower() not in ("0", "false", "no")
    if hub_id and (not offline or isinstance(try_to_load_from_cache(ref, "config.json"), str)):
        return None
    return (f"{key}: {ref!r} is neither a model folder nor a model in the local Hugging Face cache"
            + (" (downloads are off: HF_HUB_OFFLINE=1)" if hub_id and offline else ""))


def _data_problem(params: Params) -> str | None:
    """The task's name (built in) or its file or folder (a URL is read later, when loading)."""
    data = params.data
    if data.source == "builtin":
        if data.task not in BUILTIN_TASKS:
            return (f"data.task: {data.task!r} is not a built-in task (built in: {', '.join(BUILTIN_TASKS)}; "
                    "for a task of a suite set data.source and data.location)")
        return None
    assert data.location is not None  # checked by DataParams
    if "://" in data.location:
        scheme = data.location.split("://", 1)[0]
        return None if scheme in ("http", "https") else \
            f"data.location: {data.location!r}: only http:// and https:// URLs can be read"
    location = Path(data.location)
    if data.source == "pairs":
        return None if location.is_file() else f"data.location: {data.location} is not a file (a .jsonl or .csv)"
    if not location.is_dir():
        return f"data.location: {data.location} is not a directory"
    needed = ((location / "raw" / "induce" / f"{data.task}.json", location / "raw" / "execute" / f"{data.task}.json")
              if data.source == "instruction_induction" else (location / data.task / "task.json",))
    if missing := [str(p) for p in needed if not p.is_file()]:
        return f"data.task: {data.task!r} not found in {data.location} (missing {', '.join(missing)})"
    return None
