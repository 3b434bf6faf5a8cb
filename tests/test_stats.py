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


def test_the_summary_says_in_words_whether_the_instruction_beats_none_and_the_reference():
    from flows.report import in_words

    def test_json(empty: tuple[float, float, float], reference: tuple[float, float, float] | None = None) -> dict:
        result = {"n_test": 100, "gain_over_empty": empty[0], "gain_low": empty[1], "gain_high": empty[2],
                  "reference_instruction": None}
        if reference:
            result |= {"reference_instruction": "Write the first letter.", "gain_over_reference": reference[0],
                       "reference_gain_low": reference[1], "reference_gain_high": reference[2]}
        return result

    assert in_words(test_json((0.3, 0.2, 0.4))) == [
        "On 100 held-out test examples it beats no instruction by 0.300 (+0.300, 95% interval +0.200 to +0.400)."]
    below = in_words(test_json((-0.2, -0.3, -0.1)))
    assert "it scores below no instruction" in below[0] and "bo.n_instructions" in below[-1]
    unclear = in_words(test_json((-0.02, -0.07, 0.03)))
    assert "not shown better than no instruction (-0.020, 95% interval -0.070 to +0.030)" in unclear[0]
    beats_one = in_words(test_json((0.3, 0.2, 0.4), (-0.1, -0.2, -0.05)))
    assert beats_one[1] == ("It scores below the reference instruction 'Write the first letter.' (-0.100, 95% "
                            "interval -0.200 to -0.050).")
    assert "bo.n_instructions" in beats_one[-1]  # not better than the reference: what to try
    assert len(in_words(test_json((0.3, 0.2, 0.4), (0.1, 0.05, 0.2)))) == 2  # beats both: nothing to try
