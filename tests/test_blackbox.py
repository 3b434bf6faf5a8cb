import pytest

from components.blackbox import BlackBox, ResponseCache, evaluate_instructions, zero_shot_prompt
from components.data import Example
from components.errors import BlackBoxError
from tests.openai_stub import last_input, stub_server


def _blackbox(url: str, cache: ResponseCache, model: str = "stub") -> BlackBox:
    return BlackBox(base_url=url, model=model, api_key="sk-test", cache=cache, concurrency=4, max_retries=0)


def test_zero_shot_prompt_format():
    assert zero_shot_prompt("Say hi.", "x") == "Instruction: Say hi.\n\nInput: x\nOutput:"


def test_evaluation_scores_over_http_and_pays_each_prompt_once(tmp_path):
    examples = tuple(Example(w, (w.upper(),)) for w in ["ab", "cd", "ef"])
    cache = ResponseCache(tmp_path / "c.db")

    def answer(prompt: str) -> str:
        word = last_input(prompt)
        return word.upper() if "upper" in prompt else word[::-1]

    with stub_server(answer) as server:
        blackbox = _blackbox(server.base_url, cache)
        results = evaluate_instructions(blackbox, ["Write it in upper case.", "Reverse it."], examples, "exact_match")
        assert [r.mean for r in results] == [1.0, 0.0]
        assert results[1].outputs == ("ba", "dc", "fe")
        assert len(server.requests) == 6 and blackbox.stats.calls == 6
        assert all(r["temperature"] == 0 for r in server.requests)
        # Same prompts again, from a new client on the same cache file: no request at all.
        again = _blackbox(server.base_url, ResponseCache(tmp_path / "c.db"))
        assert [r.mean for r in evaluate_instructions(again, ["Reverse it."], examples, "exact_match")] == [0.0]
        assert len(server.requests) == 6 and again.stats.cache_hits == 3 and again.stats.calls == 0


def test_cache_key_depends_on_endpoint_model_prompt_and_decoding():
    key = ResponseCache.key("http://a/v1", "m", "p", {"max_tokens": 8})
    assert key == ResponseCache.key("http://a/v1/", "m", "p", {"max_tokens": 8})
    assert len({key, ResponseCache.key("http://b/v1", "m", "p", {"max_tokens": 8}),
                ResponseCache.key("http://a/v1", "n", "p", {"max_tokens": 8}),
                ResponseCache.key("http://a/v1", "m", "q", {"max_tokens": 8}),
                ResponseCache.key("http://a/v1", "m", "p", {"max_tokens": 9})}) == 5


def test_unknown_model_and_unreachable_endpoint_are_clear_errors(tmp_path):
    cache = ResponseCache(tmp_path / "c.db")
    with stub_server(lambda p: "x") as server:
        with pytest.raises(BlackBoxError, match="model 'gpt-9' not served there"):
            _blackbox(server.base_url, cache, model="gpt-9").complete(["hi"])
        url = server.base_url
    with pytest.raises(BlackBoxError, match=r"blackbox.base_url 'http://127.0.0.1:\d+/v1': cannot connect"):
        _blackbox(url, cache).complete(["hi"])
