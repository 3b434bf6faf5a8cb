"""Bad input, as a careless user gives it: exit 2, a message naming the key, file or line and
the value, no traceback, and nothing created. In-process and fast: no server, no generator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from flows.__main__ import main
from tests.conftest import small_params

ROOT = Path(__file__).resolve().parents[1]

GOOD_ROWS = "".join(json.dumps({"input": f"word{i}", "output": f"w{i}"}) + "\n" for i in range(40))


def _write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def _folder(path: Path, *files: str) -> str:
    path.mkdir(parents=True)
    for name in files:
        (path / name).write_text("{}")
    return str(path)


def _pairs(path: Path, text: str) -> list[str]:
    return ["--set", "data.source=pairs", "--set", f"data.location={_write(path, text)}"]


def _induction(root: Path, induce: str) -> list[str]:
    _write(root / "raw" / "induce" / "t.json", induce)
    _write(root / "raw" / "execute" / "t.json", induce)
    return ["--set", "data.source=instruction_induction", "--set", f"data.location={root}", "--set", "data.task=t"]


def _bigbench(root: Path, task_json: str) -> list[str]:
    _write(root / "t" / "task.json", task_json)
    return ["--set", "data.source=bigbench", "--set", f"data.location={root}", "--set", "data.task=t"]


def _remote(**blackbox: str) -> list[str]:
    return [a for k, v in blackbox.items() for a in ("--set", f"blackbox.{k}={v}")]


# (case id, argv builder (tmp dir -> argv), text the message must contain)
CASES = [
    # the params file
    ("empty params file", lambda t: ["run", "--params", _write(t / "p.yaml", "")], "p.yaml: expected a mapping"),
    ("params a list", lambda t: ["run", "--params", _write(t / "p.yaml", "- a\n- b\n")], "got list"),
    ("params a scalar", lambda t: ["run", "--params", _write(t / "p.yaml", "42\n")], "got int"),
    ("params malformed YAML", lambda t: ["run", "--params", _write(t / "p.yaml", "data: [1,\n")], "not valid YAML"),
    ("params file missing", lambda t: ["run", "--params", str(t / "nope.yaml")], "nope.yaml: cannot read"),
    ("unknown section", lambda t: ["run", "--set", "optimiser.n=1"], "optimiser"),
    ("unknown key", lambda t: ["run", "--set", "bo.n_trails=5"], "bo.n_trails"),
    ("bool for an int", lambda t: ["run", "--set", "bo.n_instructions=true"], "bo.n_instructions"),
    ("float for an int", lambda t: ["run", "--set", "bo.batch_size=2.5"], "bo.batch_size"),
    ("string for a number", lambda t: ["run", "--set", "bo.seed=abc"], "bo.seed"),
    ("NaN", lambda t: ["run", "--set", "projection.scale=.nan"], "projection.scale"),
    ("infinity", lambda t: ["run", "--set", "blackbox.timeout=.inf"], "blackbox.timeout"),
    ("negative count", lambda t: ["run", "--set", "data.n_validation=-1"], "data.n_validation"),
    ("zero scale", lambda t: ["run", "--set", "projection.scale=0"], "projection.scale"),
    ("negative seed", lambda t: ["run", "--set", "data.seed=-3"], "data.seed"),
    ("unclosed list for a choice", lambda t: ["run", "--set", "bo.sampler=[tpe"], "bo.sampler"),
    ("grace within a heartbeat", lambda t: ["run", "--set", "scale.heartbeat=60", "--set", "scale.grace=30"],
     "scale.grace (30) must be longer than scale.heartbeat (60)"),
    ("workers without a database", lambda t: ["run", "--set", "scale.workers=3"],
     "scale.workers is 3: INSTRUCTZERO_DATABASE_URL is not set"),
    ("shared limit without a rate", lambda t: ["run", "--set", "blackbox.shared_rate_limit=true"],
     "blackbox.shared_rate_limit needs blackbox.requests_per_minute"),
    ("sweep of a bad task", lambda t: ["sweep", "--tasks", "first_letter", "nope"], "'nope' is not a built-in task"),
    ("unknown sampler", lambda t: ["run", "--set", "bo.sampler=cmaes"], "'cmaes'"),
    ("unknown metric", lambda t: ["run", "--set", "data.metric=bleu"], "data.metric"),
    ("a retired knob", lambda t: ["run", "--set", "bo.trust_region=0.1"], "bo.trust_region: Extra inputs"),
    ("prompt without {exemplars}", lambda t: ["run", "--set", "generator.prompt=Write it."], "{exemplars}"),
    ("prompt with another placeholder", lambda t: ["run", "--set", "generator.prompt={exemplars} {input}"],
     "does not format"),
    ("task name a path", lambda t: ["run", "--set", "data.task=../etc"], "data.task"),
    ("budget below one instruction", lambda t: ["run", "--set", "budget.max_calls=3"], "budget.max_calls"),
    ("token rate below one call", lambda t: ["run", "--set", "blackbox.tokens_per_minute=10"],
     "blackbox.tokens_per_minute"),
    ("KV cache smaller than a batch", lambda t: ["run", "--set", "blackbox.server_cache_blocks=8"],
     "blackbox.server_cache_blocks"),
    ("token budget below one instruction", lambda t: ["run", "--set", "budget.max_tokens=3"], "budget.max_tokens"),
    ("negative price", lambda t: ["run", "--set", "budget.prices={m: [-1, 2]}"], "budget.prices.m"),
    ("price not a pair", lambda t: ["run", "--set", "budget.prices={m: [1]}"], "budget.prices.m"),
    ("blank experiment name", lambda t: ["run", "--set", "tracking.experiment=' '"], "tracking.experiment"),
    ("blank reference instruction", lambda t: ["run", "--set", "eval.reference=' '"], "eval.reference"),
    ("override into a value", lambda t: ["run", "--set", "data.task.name=x"], "'task' is a value"),
    ("dry-run with a bad key", lambda t: ["dry-run", "--set", "bo.n_trails=5"], "bo.n_trails"),
    # model folders
    ("generator model missing", lambda t: ["run", "--set", f"generator.model={t / 'nope'}"], "generator.model"),
    ("generator model not on this machine", lambda t: ["run", "--set", "generator.model=org/model-x"],
     "HF_HUB_OFFLINE"),
    ("generator folder without config", lambda t: ["run", "--set", f"generator.model={_folder(t / 'm')}"],
     "no config.json"),
    ("generator folder without weights",
     lambda t: ["run", "--set", f"generator.model={_folder(t / 'm', 'config.json')}"], "holds no weights"),
    ("generator model a file", lambda t: ["run", "--set", f"generator.model={_write(t / 'm.gguf', 'x')}"],
     "is a file"),
    ("black-box model folder missing", lambda t: ["run", "--set", f"blackbox.model={t / 'nope'}"],
     "blackbox.model"),
    # the black box
    ("base_url without a scheme", lambda t: ["run", *_remote(base_url="localhost:8000/v1", model="m")],
     "blackbox.base_url"),
    ("base_url with another scheme", lambda t: ["run", *_remote(base_url="ftp://h/v1", model="m")],
     "blackbox.base_url"),
    ("base_url without a model", lambda t: ["run", *_remote(base_url="http://h/v1")], "blackbox.model"),
    ("base_url without a key", lambda t: ["run", *_remote(base_url="http://h/v1", model="m")], "OPENAI_API_KEY"),
    # the task
    ("unknown built-in task", lambda t: ["run", "--set", "data.task=sentiment"], "'sentiment' is not a built-in"),
    ("suite without location", lambda t: ["run", "--set", "data.source=bigbench"], "data.location"),
    ("suite location missing", lambda t: ["run", "--set", "data.source=bigbench", "--set",
                                          f"data.location={t / 'nope'}"], "is not a directory"),
    ("suite task missing", lambda t: ["run", "--set", "data.source=instruction_induction", "--set",
                                      f"data.location={_folder(t / 'ii')}"], "not found in"),
    ("data URL with another scheme", lambda t: ["run", "--set", "data.source=pairs", "--set",
                                                "data.location=ftp://h/t.jsonl"], "data.location"),
    ("pairs file missing", lambda t: ["run", "--set", "data.source=pairs", "--set", f"data.location={t / 'x.jsonl'}"],
     "is not a file"),
    ("JSONL bad line", lambda t: ["run", *_pairs(t / "t.jsonl", GOOD_ROWS + "{oops\n")], "t.jsonl:41"),
    ("JSONL row without output", lambda t: ["run", *_pairs(t / "t.jsonl", GOOD_ROWS + '{"input": "x"}\n')],
     "t.jsonl:41"),
    ("JSONL output not text", lambda t: ["run", *_pairs(t / "t.jsonl", '{"input": "x", "output": {"a": 1}}\n')],
     "t.jsonl:1"),
    ("CSV without output column", lambda t: ["run", *_pairs(t / "t.csv", "input,answer\na,b\n")], "['output']"),
    ("CSV empty output cell", lambda t: ["run", *_pairs(t / "t.csv", "input,output\na,b\nc,\n")], "t.csv:3"),
    ("too few distinct rows", lambda t: ["run", *_pairs(t / "t.jsonl", GOOD_ROWS.splitlines(True)[0] * 40)],
     "1 distinct examples"),
    ("Instruction Induction not JSON", lambda t: ["run", *_induction(t / "ii", "{")], "not valid JSON"),
    ("Instruction Induction row without output",
     lambda t: ["run", *_induction(t / "ii", '{"examples": {"1": {"input": "a"}}}')], "example '1'"),
    ("BIG-bench without examples", lambda t: ["run", *_bigbench(t / "bb", '{"examples": []}')], "'examples'"),
    ("BIG-bench row without target", lambda t: ["run", *_bigbench(t / "bb", '{"examples": [{"input": "a"}]}')],
     "example 0"),
    # the command line
    ("workspace a file", lambda t: ["run", "--workspace", _write(t / "ws", "x"), "--set", "bo.seed=1"],
     "--workspace"),
    ("prefect file missing", lambda t: ["deploy", "--prefect-file", str(t / "nope.yaml")], "nope.yaml"),
    ("prefect file without deployments", lambda t: ["deploy", "--prefect-file", _write(t / "p.yaml", "a: 1\n")],
     "'deployments'"),
    ("revalidate endpoint without model", lambda t: ["revalidate", "--base-url", "http://h/v1"], "--model"),
    ("evaluate before any run", lambda t: ["evaluate"], "nothing to evaluate"),
]


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A project directory with a valid params.yaml (and no model yet, as in a fresh clone)."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "params.yaml").write_text(yaml.safe_dump(small_params()))
    monkeypatch.chdir(project)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def no_work(*args, **kwargs):
        raise AssertionError("bad input reached the pipeline")

    monkeypatch.setattr("flows.pipeline.pipeline", no_work)
    return project


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_enough_cases():
    assert len(CASES) >= 40
    assert len({name for name, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize(("argv", "needle"), [pytest.param(a, n, id=i) for i, a, n in CASES])
def test_bad_input_exits_2_naming_it(project, capsys, argv, needle):
    args = argv(project.parent)  # files the case needs go beside the project
    before = _tree(project)
    try:
        code = main(args)
    except SystemExit as exit:  # argparse
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert needle in err
    assert "Traceback" not in err
    assert _tree(project) == before  # no workspace, outputs, study or MLflow store


def test_a_good_input_passes_the_same_checks(project, capsys):
    with pytest.raises(AssertionError, match="reached the pipeline"):
        main(["run", *_pairs(project.parent / "t.jsonl", GOOD_ROWS)])


@pytest.mark.parametrize(("url", "needle"), [
    ("not a url", "INSTRUCTZERO_DATABASE_URL is not a database URL"),
    ("postgres+psycopg://me:s3cret@127.0.0.1:5432/db", "'postgres+psycopg' is not a database this project uses"),
    ("postgresql+psycopg://me:s3cret@127.0.0.1:1/db", "cannot connect"),  # no server on that port
])
def test_a_bad_database_url_exits_2_naming_the_variable_never_the_password(project, capsys, monkeypatch, url,
                                                                          needle):
    monkeypatch.setenv("INSTRUCTZERO_DATABASE_URL", url)
    before = _tree(project)
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert needle in err and "INSTRUCTZERO_DATABASE_URL" in err
    assert "s3cret" not in err and "Traceback" not in err
    assert _tree(project) == before
