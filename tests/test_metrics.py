import pytest

from components.metrics import contains, exact_match, exact_set, f1, metric_for_task, normalize, score


def test_normalize_drops_case_punctuation_articles():
    assert normalize("  The Cat, a DOG!  ") == "cat dog"


def test_exact_match():
    assert exact_match("Positive.", "positive") == 1.0
    assert exact_match("positive review", "positive") == 0.0


def test_f1_partial_overlap():
    assert f1("red big ball", "big red car") == pytest.approx(2 / 3)
    assert f1("", "x") == 0.0
    assert f1("same words", "words same") == 1.0


def test_exact_set_ignores_order_only():
    assert exact_set("the bat ball", "ball bat") == 1.0
    assert exact_set("ball", "ball bat") == 0.0


def test_contains_whole_words():
    assert contains("I think it is positive.", "positive") == 1.0
    assert contains("nonpositive", "positive") == 0.0


def test_score_takes_best_accepted_answer_and_rejects_unknown_metric():
    assert score("hola", ["hello", "hola"], "exact_match") == 1.0
    assert score("x", [], "exact_match") == 0.0
    with pytest.raises(ValueError, match="unknown metric 'bleu'"):
        score("x", ["x"], "bleu")


def test_paper_metric_per_task():
    assert metric_for_task("common_concept") == "f1"
    assert metric_for_task("orthography_starts_with") == "exact_set"
    assert metric_for_task("synonyms") == "contains"
    assert metric_for_task("sentiment") == "exact_match"
