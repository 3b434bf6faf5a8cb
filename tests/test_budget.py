import pytest

from components.blackbox import CallStats
from components.budget import Budget, cost, next_batch, plan_run, price_for
from components.data import Example
from components.errors import ConfigError
from components.params import parse_params
from flows.settings import blackbox_price
from tests.conftest import small_params


def test_cost_and_prices():
    assert cost(CallStats(calls=2, prompt_tokens=1_000_000, completion_tokens=500_000), (0.15, 0.60)) == 0.45
    assert price_for("gpt-4o-mini", {}) == (0.15, 0.60)
    assert price_for("gpt-4o-mini", {"gpt-4o-mini": [1, 2]}) == (1.0, 2.0)
    assert price_for("my-model", {}) is None


def test_budget_allows_up_to_each_limit():
    used = CallStats(calls=10, prompt_tokens=900, completion_tokens=100)  # 100 tokens a call
    assert Budget(max_calls=15).allows(used, 5) and not Budget(max_calls=15).allows(used, 6)
    assert Budget(max_tokens=1500).allows(used, 5) and not Budget(max_tokens=1500).allows(used, 6)
    priced = Budget(max_cost=1.0, price=(1_000.0, 1_000.0))  # US$1.0 spent so far, US$0.1 a call
    assert priced.allows(used, 0) and not priced.allows(used, 1)
    assert Budget().allows(used, 10**9)


def test_a_batch_shrinks_to_what_fits():
    used = CallStats(calls=10, prompt_tokens=900, completion_tokens=100)
    assert Budget(max_calls=33).affordable(used, 5, 8) == 4  # 4 x 5 calls fit in the 23 left
    assert Budget(max_calls=14).affordable(used, 5, 8) == 0
    assert Budget().affordable(used, 5, 8) == 8


def test_one_process_asks_whole_batches():
    assert [next_batch(4, r, running=4, mine=m, workers=1) for r, m in [(20, 0), (20, 4), (3, 4), (0, 4), (-2, 4)]] \
        == [4, 4, 3, 0, 0]


def test_a_worker_starts_with_one_trial_and_doubles():
    assert [next_batch(4, 100, running=4, mine=m, workers=4) for m in (0, 1, 2, 3, 4)] == [1, 2, 4, 4, 4]


def test_workers_keep_their_share_of_the_tail_even():
    assert next_batch(4, 8, running=16, mine=4, workers=4) == 2  # 24 outstanding: 6 each
    assert next_batch(4, 8, running=13, mine=1, workers=4) == 2  # (at most twice its own)
    assert next_batch(4, 8, running=14, mine=2, workers=4) == 4
    assert next_batch(4, 1, running=8, mine=4, workers=4) == 0  # the others have less to do
    assert next_batch(4, 2, running=10, mine=1, workers=4) == 2
    assert next_batch(4, 0, running=10, mine=0, workers=4) == 0


def test_plan_is_an_upper_bound():
    val, test = [Example("abcd", ("a",))] * 4, [Example("abcd", ("a",))] * 10
    plan = plan_run(val, test, n_instructions=5, test_instructions=3, max_tokens=8, instruction_tokens=10,
                    price=(1.0, 2.0))
    assert (plan.validation_calls, plan.test_calls, plan.calls) == (20, 30, 50)
    assert plan.completion_tokens == 50 * 8 and plan.prompt_tokens > 50 * 10
    assert plan.cost == pytest.approx((plan.prompt_tokens + 2 * plan.completion_tokens) / 1e6)


def test_max_cost_needs_a_price_for_a_remote_model():
    params = parse_params(small_params(blackbox={"base_url": "http://h/v1", "model": "mystery"},
                                       budget={"max_cost": 1.0}), "p")
    with pytest.raises(ConfigError, match=r"no price is known for model 'mystery': add budget.prices.mystery"):
        blackbox_price(params)
    assert blackbox_price(parse_params(small_params(), "p")) == (0.0, 0.0)  # the local server


def test_dry_run_prints_the_plan(monkeypatch):
    from flows.dry_run import dry_run
    from tests.conftest import ROOT

    monkeypatch.chdir(ROOT)
    text = dry_run()
    assert "At most 900 calls: 400 validation (20 distinct instructions" in text and "Budget limits: none" in text
    assert "+ 500 test (3 best + the empty instruction and the reference x 100 examples)" in text.replace("\n", " ")
