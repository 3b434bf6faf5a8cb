import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from components.blackbox import BlackBox, ResponseCache, evaluate_instructions, retry_after, zero_shot_prompt
from components.data import Example
from components.errors import BlackBoxError
from components.ratelimit import RateLimiter
from tests.openai_stub import last_input, stub_server


def _blackbox(url: str, cache: ResponseCache, model: str = "stub", **options: object) -> BlackBox:
    settings: dict = {"concurrency": 4, "max_retries": 0, **options}
    return BlackBox(base_url=url, model=model, api_key="sk-test", cache=cache, **settings)


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
        scored = evaluate_instructions(blackbox, ["Write it in upper case.", "Reverse it."], examples, "exact_match")
        results = scored.evaluations
        assert [r.mean for r in results] == [1.0, 0.0]
        assert results[1].outputs == ("ba", "dc", "fe")
        assert len(server.requests) == 6 and scored.stats.calls == 6 and scored.last_error == ""
        assert all(r["temperature"] == 0 for r in server.requests)
        # Same prompts again, from a new client on the same cache file: no request at all.
        again = evaluate_instructions(_blackbox(server.base_url, ResponseCache(tmp_path / "c.db")), ["Reverse it."],
                                      examples, "exact_match")
        assert [r.mean for r in again.evaluations] == [0.0]
        assert len(server.requests) == 6 and again.stats.cache_hits == 3 and again.stats.calls == 0


def test_answers_in_sentences_score_0_under_exact_match(tmp_path):
    examples = (Example("good film", ("positive",)), Example("dull", ("negative",)))
    with stub_server(lambda prompt: "The sentiment is positive.") as server:
        scored = evaluate_instructions(_blackbox(server.base_url, ResponseCache(tmp_path / "c.db")),
                                       ["Classify it."], examples, "exact_match")
    [evaluation] = scored.evaluations
    assert evaluation.scores == (0.0, 0.0) and evaluation.outputs == ("The sentiment is positive.",) * 2


def test_under_contains_an_answer_naming_every_choice_scores_0(tmp_path):
    labels = ("positive", "negative")
    examples = (Example("good film", ("positive",), labels), Example("dull", ("negative",), labels))
    answers = {"Classify it.": "It is positive.", "Hedge.": "Positive or negative."}
    with stub_server(lambda prompt: answers[prompt.split("\n")[0].removeprefix("Instruction: ")]) as server:
        scored = evaluate_instructions(_blackbox(server.base_url, ResponseCache(tmp_path / "c.db")),
                                       list(answers), examples, "contains")
    assert [e.scores for e in scored.evaluations] == [(1.0, 0.0), (0.0, 0.0)]


def test_concurrent_completions_each_report_their_own_cost(tmp_path):
    def slow(prompt: str) -> str:
        time.sleep(0.05)  # both batches in flight at once
        return _echo(prompt)

    batches = [[zero_shot_prompt("Shout.", f"{k}{i}") for i in range(n)] for k, n in (("a", 12), ("b", 5))]
    with stub_server(slow) as server:
        blackbox = _blackbox(server.base_url, ResponseCache(tmp_path / "c.db"), concurrency=4)
        with ThreadPoolExecutor(2) as pool:
            done = list(pool.map(blackbox.complete, batches))
    assert [d.stats.calls for d in done] == [12, 5] and len(server.requests) == 17
    assert done[1].answers == [f"B{i}" for i in range(5)]


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
    with pytest.raises(BlackBoxError, match=r"blackbox.base_url 'http://127.0.0.1:\d+/v1': all 1 calls failed "
                       r"after 0 retries; last error: APIConnectionError"):
        _blackbox(url, cache).complete(["hi"])


def _echo(prompt: str) -> str:
    return last_input(prompt).upper()


def test_every_kind_of_fault_is_retried_counted_and_absorbed(tmp_path):
    faults = {"rate_limit": 0.08, "server_error": 0.08, "hang": 0.04, "malformed": 0.08, "empty": 0.08,
              "disconnect": 0.08}
    prompts = [zero_shot_prompt("Shout.", f"word{i}") for i in range(80)]
    with stub_server(_echo, faults=faults, seed=3, hang_seconds=2.0, retry_after=0.05) as server:
        blackbox = _blackbox(server.base_url, ResponseCache(tmp_path / "c.db"), concurrency=16, max_retries=10,
                             backoff=0.01, timeout=1.0)
        done = blackbox.complete(prompts)
    assert done.answers == [f"WORD{i}" for i in range(80)]  # same as a clean server
    stats, injected = done.stats, server.injected
    assert set(injected) == set(faults) and stats.failed == 0 and stats.calls == 80
    assert stats.faults == sum(injected.values()) == len(server.requests) - 80
    assert (stats.rate_limited, stats.server_errors, stats.timeouts, stats.connection_errors, stats.bad_responses) == (
        injected["rate_limit"], injected["server_error"], injected["hang"], injected["disconnect"],
        injected["malformed"] + injected["empty"])


def test_calls_failing_after_every_retry_are_not_scored_and_not_cached(tmp_path):
    examples = tuple(Example(f"w{i}", (f"W{i}",)) for i in range(6))
    instructions = [f"Shout {k}." for k in range(8)]
    with stub_server(_echo, faults={"server_error": 0.15}, seed=1) as server:
        flaky = _blackbox(server.base_url, ResponseCache(tmp_path / "c.db"))
        scored = evaluate_instructions(flaky, instructions, examples, "exact_match")
    stats, results = scored.stats, scored.evaluations
    assert stats.failed == stats.server_errors > 0 and stats.calls == 48 - stats.failed
    assert scored.last_error.startswith("InternalServerError")
    failed = [v for v, r in zip(instructions, results, strict=True) if r is None]
    assert failed and all(r.mean == 1.0 for r in results if r is not None)  # a failure is never a wrong answer
    with stub_server(_echo) as clean:
        again = _blackbox(clean.base_url, ResponseCache(tmp_path / "c.db"), cache_url=server.base_url)  # same endpoint
        assert all(r is not None and r.mean == 1.0
                   for r in evaluate_instructions(again, instructions, examples, "exact_match").evaluations)
    assert len(clean.requests) == stats.failed  # only the failed calls are paid again


def test_retry_after_is_honoured_and_parsed():
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) is None
    assert retry_after({"retry-after": "100000"}) == 60.0


def test_rate_limited_endpoint_is_waited_for(tmp_path):
    with stub_server(_echo, faults={"rate_limit": 1.0}, retry_after=0.4) as server:
        blackbox = _blackbox(server.base_url, ResponseCache(tmp_path / "c.db"), max_retries=2, backoff=0.001)
        start = time.monotonic()
        with pytest.raises(BlackBoxError, match="all 1 calls failed after 2 retries; last error: RateLimitError"):
            blackbox.complete(["hi"])
    assert time.monotonic() - start >= 0.8 and len(server.requests) == 3


def test_requests_per_minute_are_kept_over_http(tmp_path):
    prompts = [f"p{i}" for i in range(25)]
    with stub_server(_echo) as server:
        blackbox = _blackbox(server.base_url, ResponseCache(tmp_path / "c.db"), concurrency=16,
                             limiter=RateLimiter(requests_per_minute=600))
        start = time.monotonic()
        blackbox.complete(prompts)
    times = sorted(r["time"] - start for r in server.requests)
    interval = 61 / 600  # 1 s worth at once, then one every interval: never more than 600 a minute
    assert len(times) == 25 and all(t >= k * interval - 1.0 for k, t in enumerate(times)), times
    assert times[-1] >= 1.4


def test_a_batch_with_cached_answers_is_not_stopped_by_its_few_failed_calls(tmp_path):
    prompts = [zero_shot_prompt("Shout.", w) for w in ("ab", "cd", "ef")]
    with stub_server(_echo) as server:
        _blackbox(server.base_url, ResponseCache(tmp_path / "c.db")).complete(prompts[:2])
        url = server.base_url
    with stub_server(_echo, faults={"server_error": 1.0}) as failing:
        retry = _blackbox(failing.base_url, ResponseCache(tmp_path / "c.db"), cache_url=url).complete(prompts)
        assert retry.answers == ["AB", "CD", None] and retry.stats.failed == 1  # (a retried trial's call)
        with pytest.raises(BlackBoxError, match="all 1 calls failed"):  # nothing cached: the endpoint is unusable
            _blackbox(failing.base_url, ResponseCache(tmp_path / "d.db")).complete(prompts[2:])


def test_the_stub_answers_on_its_own_from_the_command_line(tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    stub = subprocess.Popen([sys.executable, "-m", "tests.openai_stub", "--seed", "1"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert stub.stdout is not None
        url = stub.stdout.readline().split()[1]  # "serving URL -> ..."
        done = _blackbox(url, ResponseCache(tmp_path / "c.db")).complete([zero_shot_prompt("Repeat it.", "hello")])
        assert done.answers == ["hello"]
    finally:
        stub.terminate()
        stub.wait(timeout=30)


def test_a_stopped_black_box_starts_no_call_and_keeps_what_was_answered_within_its_grace(tmp_path):
    def slow(prompt: str) -> str:
        time.sleep(0.5 if last_input(prompt).startswith("quick") else 30)
        return "ok"

    prompts = [zero_shot_prompt("Say ok.", f"quick{i}") for i in range(2)] + \
        [zero_shot_prompt("Say ok.", f"slow{i}") for i in range(2)] + \
        [zero_shot_prompt("Say ok.", f"later{i}") for i in range(8)]
    with stub_server(slow) as server:
        blackbox = _blackbox(server.base_url, ResponseCache(tmp_path / "c.db"), concurrency=4, grace=1.0)
        with ThreadPoolExecutor(1) as pool:
            scoring = pool.submit(blackbox.complete, prompts)  # (as the search scores in the background)
            while len(server.requests) < 4:
                time.sleep(0.05)
            began = time.monotonic()
            blackbox.stop()  # returns once the calls in flight answered or were cancelled
            stopped_after = time.monotonic() - began
            done = scoring.result(timeout=5)
        assert stopped_after < 3
        assert done.answers == ["ok", "ok"] + [None] * 10  # the quick ones answered in the grace, the rest not
        assert len(server.requests) == 4 and done.stats.calls == 2 and done.stats.failed == 0  # none started after
        again = _blackbox(server.base_url, ResponseCache(tmp_path / "c.db")).complete(prompts[:2])
        assert again.stats.cache_hits == 2  # kept for the re-run


def test_each_answered_call_is_booked_to_its_payer_with_its_tokens(tmp_path):
    prompts = [zero_shot_prompt("Shout.", w) for w in ("ab", "cd", "ef")]
    with stub_server(_echo) as server:
        cache = ResponseCache(tmp_path / "c.db")
        done = _blackbox(server.base_url, cache, payer="study-a").complete(prompts)
        _blackbox(server.base_url, cache, payer="study-a").complete(prompts)  # cached: nothing booked
        _blackbox(server.base_url, cache).complete([zero_shot_prompt("Whisper.", "gh")])  # no payer
    booked = cache.paid("study-a")
    assert (booked.calls, booked.prompt_tokens, booked.completion_tokens) == (
        3, done.stats.prompt_tokens, done.stats.completion_tokens) and booked.prompt_tokens > 0
    assert cache.paid("study-b").calls == 0
