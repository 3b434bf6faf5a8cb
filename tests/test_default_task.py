"""The default-task benchmark's table: seeds count as wins only when the gain's interval is above 0."""

from benchmarks.default_task import constant_score, markdown, out_of_the_running
from components.stats import mean_sd


def run(seed: int, test: float, empty: float, low: float, reference_low: float) -> dict:
    return {"seed": seed, "seconds": 300.0, "instruction": "Write it.", "val": 0.5, "test": test, "empty": empty,
            "reference": 0.4, "gain_low": low, "gain_high": low + 0.2, "gain_over_reference": test - 0.4,
            "reference_gain_low": reference_low, "reference_gain_high": reference_low + 0.2}


def test_the_table_counts_a_seed_as_a_win_only_when_its_interval_is_above_zero():
    runs = {"word_sentiment:exact_match": [run(0, 0.5, 0.0, 0.4, -0.1), run(1, 0.1, 0.05, -0.01, -0.3)],
            "parity:contains": []}
    table = markdown(runs, "cmd")
    [row] = [line for line in table.splitlines() if line.startswith("| word_sentiment")]
    constant = mean_sd([constant_score("word_sentiment", seed) for seed in (0, 1)])
    assert row.split(" | ")[1:] == ["exact_match", "2", "0.300 ± 0.283", "0.025 ± 0.035", "0.400 ± 0.000", constant,
                                    "+0.275 (+0.050)", "1 of 2", "0 of 2", "300 |"]
    assert "parity" not in table  # a candidate without runs has no row


def test_a_candidate_is_out_once_it_has_failed_to_beat_empty_in_two_seeds_or_is_too_slow():
    baseline = [run(0, 0.0, 0.0, 0.0, 0.0)]  # (300 s)
    assert not out_of_the_running([run(0, 0.5, 0.0, 0.4, 0.1), run(1, 0.0, 0.0, 0.0, -0.1)], baseline)
    assert out_of_the_running([run(0, 0.0, 0.0, 0.0, 0.1), run(1, 0.1, 0.05, -0.01, -0.3)], baseline)
    slow = run(0, 0.5, 0.0, 0.4, 0.1) | {"seconds": 451.0}
    assert out_of_the_running([slow], baseline) and not out_of_the_running([slow], [])


def test_the_best_constant_answer_is_the_share_of_the_most_common_test_answer():
    share = constant_score("parity", 0)
    assert 0.5 <= share < 0.7  # even and odd, about half each
    assert constant_score("first_letter", 0) < 0.2  # 26 letters
