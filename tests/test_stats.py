"""components/stats.py: a paired bootstrap interval of a score gain."""

import pytest

from components.stats import paired_bootstrap


def test_a_clear_gain_has_an_interval_above_0_and_no_gain_one_around_it():
    better = paired_bootstrap([1.0] * 60 + [0.0] * 40, [0.0] * 80 + [1.0] * 20)  # 0.6 vs 0.2 on 100 examples
    assert better.mean == pytest.approx(0.4) and 0.2 < better.low < better.mean < better.high < 0.6
    same = paired_bootstrap([1.0, 0.0] * 50, [0.0, 1.0] * 50)
    assert same.mean == 0.0 and same.low < 0 < same.high
    assert paired_bootstrap([0.5] * 10, [0.5] * 10) == paired_bootstrap([0.5] * 10, [0.5] * 10, seed=1)


def test_unpaired_scores_are_refused():
    with pytest.raises(ValueError, match="equally long"):
        paired_bootstrap([1.0], [1.0, 0.0])


def test_the_summary_says_in_words_whether_the_instruction_beats_none():
    from flows.report import verdict

    assert verdict(0.3, 0.2, 0.4, 100).startswith("On 100 held-out test examples it beats no instruction by 0.300")
    below = verdict(-0.2, -0.3, -0.1, 100)
    assert "scores below no instruction" in below and "bo.n_instructions" in below
    unclear = verdict(-0.02, -0.07, 0.03, 100)
    assert "not shown better than no instruction (-0.020, 95% interval -0.070 to +0.030)" in unclear
