import json
from pathlib import Path

import pytest

from components.builtin_tasks import BUILTIN_TASKS, builtin_task
from components.data import (
    Example,
    TaskData,
    parse_bigbench,
    parse_instruction_induction,
    parse_pairs,
    read_text,
    split_task,
    task_digest,
)
from components.errors import TaskDataError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
II = SHARED / "instruction-induction" / "raw"


def _task(n: int, test: int = 0) -> TaskData:
    pool = tuple(Example(f"in{i}", (f"out{i}",)) for i in range(n))
    return TaskData("t", pool, tuple(Example(f"t{i}", ("x",)) for i in range(test)))


def test_split_is_deterministic_and_disjoint():
    a, b = split_task(_task(100), 5, 20, 50, seed=3), split_task(_task(100), 5, 20, 50, seed=3)
    assert a == b
    assert split_task(_task(100), 5, 20, 50, seed=4) != a
    inputs = [e.input for e in a.exemplars + a.validation + a.test]
    assert len(inputs) == len(set(inputs)) == 75


def test_split_uses_the_task_test_set_and_caps_it():
    split = split_task(_task(30, test=200), 5, 20, 100, seed=0)
    assert len(split.test) == 100 and all(e.input.startswith("t") for e in split.test)


def test_a_small_task_validates_on_what_is_left_and_a_tiny_one_names_the_task():
    small = split_task(_task(17), 5, 20, 100, seed=0)  # the paper's min(20, what is left)
    assert (len(small.exemplars), len(small.validation), len(small.test)) == (5, 11, 1)
    with_test = split_task(_task(12, test=30), 5, 20, 100, seed=0)
    assert (len(with_test.validation), len(with_test.test)) == (7, 30)
    with pytest.raises(TaskDataError, match=r"task 't': 6 distinct examples, need at least 7"):
        split_task(_task(6), 5, 20, 100, seed=0)


def test_duplicates_count_once_and_the_test_set_never_overlaps():
    rows = tuple(Example(f"in{i % 30}", (f"out{i % 30}",)) for i in range(60)) + (Example("in0", ("other",)),)
    split = split_task(TaskData("t", rows), 5, 10, 100, seed=0)
    inputs = [e.input for e in split.exemplars + split.validation + split.test]
    assert len(inputs) == len(set(inputs)) == 30 and split.n_duplicates == 31
    merged = next(e for e in split.exemplars + split.validation + split.test if e.input == "in0")
    assert merged.outputs == ("out0", "other")  # a repeated input keeps every answer
    shared = TaskData("t", _task(30).pool, _task(30).pool[:20] + (Example("new", ("x",)),))
    split = split_task(shared, 5, 10, 100, seed=0)
    assert {e.input for e in split.test}.isdisjoint(e.input for e in split.exemplars + split.validation)
    assert "new" in {e.input for e in split.test}


def test_task_digest_follows_the_content():
    assert task_digest(_task(10)) == task_digest(_task(10))
    assert task_digest(_task(10)) != task_digest(_task(11))
    assert task_digest(_task(10)) != task_digest(_task(10, test=1))


def test_instruction_induction_sentiment_from_shared_data():
    path = II / "induce" / "sentiment.json"
    examples = parse_instruction_induction(read_text(str(path)), str(path))
    assert len(examples) == json.loads(path.read_text())["metadata"]["num_examples"]
    assert examples[0].outputs[0] in {"positive", "negative"}


def test_instruction_induction_special_formats():
    cause = parse_instruction_induction(read_text(str(II / "execute/cause_and_effect.json")), "c")
    assert cause[0].input.startswith("Sentence 1: ") and cause[0].outputs[0] in cause[0].input
    assert cause[0].choices[0] == cause[0].outputs[0] and cause[0].choices[1] in cause[0].input  # cause, effect
    concept = parse_instruction_induction(read_text(str(II / "execute/common_concept.json")), "c")
    assert len(concept[0].outputs) >= 1 and ", " in concept[0].input
    translation = parse_instruction_induction(read_text(str(II / "execute/translation_en-de.json")), "t")
    assert any(len(e.outputs) > 1 for e in translation)


def test_bigbench_multiple_choice_answers():
    path = SHARED / "bigbench-ii" / "snarks" / "task.json"
    examples = parse_bigbench(read_text(str(path)), str(path))
    assert examples[0].outputs == ("(b)",) and examples[0].choices == ("(a)", "(b)")


def test_a_label_task_gives_its_examples_the_labels_as_choices_and_they_survive_the_files():
    pool = tuple(Example(f"w{i}", ("positive" if i % 3 else "negative",)) for i in range(30))
    split = split_task(TaskData("t", pool, (Example("w0", ("negative",)), Example("w99", ("positive",)))), 5, 10, 5, 0)
    assert {e.choices for e in split.exemplars + split.validation + split.test} == {("negative", "positive")}
    assert all(Example.from_json(e.to_json()) == e for e in split.validation)
    assert all(not e.choices for e in split_task(_task(100), 5, 20, 50, seed=3).test)  # open-ended answers
    assert "choices" not in _task(1).pool[0].to_json()  # (a file without choices is as before)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.json", "{not json", r"bad.json: not valid JSON \(line 1"),
        ("empty_examples.json", '{"examples": {}}', "empty_examples.json: expected a non-empty object"),
        ("no_output.json", '{"examples": {"1": {"input": "a"}}}',
         r"no_output.json: example '1': row needs 'input' and 'output'"),
        ("blank.json", '{"examples": {"1": {"input": "", "output": "b"}}}', "blank.json: example '1': field 'input'"),
    ],
)
def test_bad_instruction_induction_file_names_the_file(name, text, message):
    with pytest.raises(TaskDataError, match=message):
        parse_instruction_induction(text, name)


def test_missing_and_empty_files_name_the_file(tmp_path):
    with pytest.raises(TaskDataError, match=r"nope.json: cannot read"):
        read_text(str(tmp_path / "nope.json"))
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(TaskDataError, match=r"empty.jsonl: task file is empty"):
        read_text(str(tmp_path / "empty.jsonl"))


def test_files_with_a_byte_order_mark_read_as_the_user_sees_them(tmp_path):
    """Spreadsheets save "CSV UTF-8" with a byte-order mark; some editors do the same for JSONL."""
    (tmp_path / "t.csv").write_bytes("input,output\nhello,world\n".encode("utf-8-sig"))
    (tmp_path / "t.jsonl").write_bytes('{"input": "a", "output": "b"}\n'.encode("utf-8-sig"))
    assert parse_pairs(read_text(str(tmp_path / "t.csv")), "t.csv") == (Example("hello", ("world",)),)
    assert parse_pairs(read_text(str(tmp_path / "t.jsonl")), "t.jsonl") == (Example("a", ("b",)),)


def test_pairs_jsonl_and_csv():
    jsonl = '{"input": "a", "output": "b"}\n\n{"input": "c", "output": ["d", "e"]}\n'
    assert parse_pairs(jsonl, "my.jsonl") == (Example("a", ("b",)), Example("c", ("d", "e")))
    csv_text = "input,output\nhello,world\n"
    assert parse_pairs(csv_text, "my.csv") == (Example("hello", ("world",)),)


def test_pairs_errors_name_file_and_line():
    with pytest.raises(TaskDataError, match=r"my.jsonl:2: row needs a non-empty 'input' and 'output'"):
        parse_pairs('{"input": "a", "output": "b"}\n{"input": "c"}\n', "my.jsonl")
    with pytest.raises(TaskDataError, match=r"my.jsonl:1: not valid JSON"):
        parse_pairs("{oops\n", "my.jsonl")
    with pytest.raises(TaskDataError, match=r"my.csv:3: row needs"):
        parse_pairs("input,output\na,b\nc,\n", "my.csv")
    with pytest.raises(TaskDataError, match=r"my.csv: CSV header lacks column\(s\) \['output'\]"):
        parse_pairs("input,label\na,b\n", "my.csv")


@pytest.mark.parametrize("name", BUILTIN_TASKS)
def test_builtin_tasks_are_deterministic_and_consistent(name):
    a, b = builtin_task(name), builtin_task(name)
    assert a == b and len(a.pool) == 600
    assert len({e.input for e in a.pool}) == 600


def test_builtin_answers_are_right():
    assert all(e.outputs[0] == ("even" if int(e.input) % 2 == 0 else "odd") for e in builtin_task("parity").pool)
    assert all(e.outputs[0] == e.input[0] for e in builtin_task("first_letter").pool)
    assert all(e.outputs[0] == max(e.choices, key=int) and ", ".join(e.choices) == e.input
               for e in builtin_task("larger_number").pool)
    walks = builtin_task("back_to_start").pool
    assert all(e.outputs[0] == str(_ends_at_start(e.input)) for e in walks)
    assert 0.4 < sum(e.outputs[0] == "True" for e in walks) / len(walks) < 0.6
    sentiment = builtin_task("word_sentiment").pool
    labels = {e.input: e.outputs[0] for e in sentiment}
    assert labels["willingness"] == "positive" and labels["humiliation"] == "negative"
    assert 0.4 < sum(label == "positive" for label in labels.values()) / len(labels) < 0.6  # no label to game
    with pytest.raises(ValueError, match="unknown built-in task 'nope'"):
        builtin_task("nope")


def _ends_at_start(walk: str) -> bool:
    """Follow a walk's sentences on a grid (turns to the left counted in quarter turns)."""
    x = y = facing = 0
    ways = {"forward": 0, "left": 1, "backward": 2, "right": 3}
    for move in walk.rstrip(".").split(". "):
        words = move.split()
        if words[0] == "Turn":
            facing = (facing + {"left": 1, "around": 2, "right": 3}[words[1]]) % 4
        elif words[0] == "Take":
            way = (ways[words[3]] if len(words) > 3 else facing) % 4
            dx, dy = [(0, 1), (-1, 0), (0, -1), (1, 0)][way]
            x, y = x + int(words[1]) * dx, y + int(words[1]) * dy
    return x == y == 0


def test_instruction_induction_from_a_url(monkeypatch):
    """The loader reads a URL as it reads a directory (a real HTTP server on 127.0.0.1)."""
    import functools
    import http.server
    import threading

    from components.params import DataParams
    from tasks.data import load_task

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(II.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        params = DataParams(source="instruction_induction", task="antonyms", location=url)
        remote = load_task.fn(params)
        local = load_task.fn(DataParams(source="instruction_induction", task="antonyms", location=str(II.parent)))
        assert remote == local and len(remote.test) == 100
        with pytest.raises(TaskDataError, match=r"raw/induce/nope.json: cannot read task file"):
            load_task.fn(DataParams(source="instruction_induction", task="nope", location=url))
    finally:
        server.shutdown()
        server.server_close()


def test_empty_alternative_answers_are_dropped_and_a_row_without_any_is_refused():
    doc = {"examples": {"1": {"input": "cat", "output": "Katze", "possible_translations": ["", "Kater"]},
                        "2": {"input": "dog", "output": ["", "Hund"]}}}
    rows = parse_instruction_induction(json.dumps(doc), "t.json")
    assert [e.outputs for e in rows] == [("Katze", "Kater"), ("Hund",)]
    doc["examples"]["3"] = {"input": "x", "output": ["", " "]}
    with pytest.raises(TaskDataError, match=r"t.json: example '3': field 'output' has no non-empty answer"):
        parse_instruction_induction(json.dumps(doc), "t.json")
