import pytest

from components.metrics import contains, exact_match, exact_set, f1, label_set, metric_for_task, normalize, score


def test_normalize_is_the_papers():
    assert normalize("  The Cat, a DOG!  ") == "the cat a dog"  # articles stay
    assert normalize("Positive. It is a good movie.") == "positive"  # cut at the first "."
    assert normalize("Negative\nbecause the plot is weak") == "negative"  # first line only
    assert normalize("Sentence 1: rock and roll") == "rock roll"
    assert normalize("Well-known") == "well known"


def test_exact_match():
    assert exact_match("Positive.", "positive") == 1.0
    assert exact_match("positive review", "positive") == 0.0
    assert exact_match("A", "a") == 1.0  # the gold answer "a" can be matched
    assert exact_match("The answer is positive. Yes.", "positive") == 0.0


def test_an_empty_prediction_never_scores():
    for metric in (exact_match, f1, exact_set, contains):
        assert metric("", "") == 0.0
        assert metric("...", "x") == 0.0
    assert exact_match(" . ", ".") == 0.0


def test_f1_partial_overlap():
    assert f1("red big ball", "big red car") == pytest.approx(2 / 3)
    assert f1("", "x") == 0.0
    assert f1("same words", "words same") == 1.0


def test_exact_set_ignores_order_only():
    assert exact_set("bat, ball", "ball bat") == 1.0
    assert exact_set("ball", "ball bat") == 0.0


def test_contains_whole_words_in_the_first_sentence():
    assert contains("I think it is positive.", "positive") == 1.0
    assert contains("nonpositive", "positive") == 0.0
    assert contains("It is hard to say. Maybe positive.", "positive") == 0.0  # not in the first sentence
    assert contains("The letter is a", "a") == 1.0
    assert contains("anything", "...") == 0.0  # an answer that normalises to nothing is never contained


def test_score_takes_best_accepted_answer_and_rejects_unknown_metric():
    assert score("hola", ["hello", "hola"], "exact_match") == 1.0
    assert score("x", [], "exact_match") == 0.0
    with pytest.raises(ValueError, match="unknown metric 'bleu'"):
        score("x", ["x"], "bleu")


def test_contains_refuses_an_answer_that_also_names_a_wrong_choice():
    labels = ("positive", "negative")
    assert score("Positive or negative.", ["positive"], "contains", labels) == 0.0  # the hedge
    assert score("The word is positive.", ["positive"], "contains", labels) == 1.0
    assert score("Output: 903, 428", ["903"], "contains", ("903", "428")) == 0.0  # both numbers echoed
    assert score("The larger is 903.", ["903"], "contains", ("903", "428")) == 1.0
    assert score("nonnegative, so positive", ["positive"], "contains", labels) == 1.0  # whole words only
    assert score("The answer is a", ["a"], "contains", ("a", "b")) == 1.0  # one letter: also an article
    assert score("positive, not negative", ["positive", "negative"], "contains", labels) == 1.0  # both accepted
    # the other metrics and a prediction without the answer are as before
    assert score("Positive or negative.", ["positive"], "f1", labels) == 0.5
    assert score("Negative.", ["positive"], "contains", labels) == 0.0


def test_label_set_is_a_few_short_repeated_answers():
    assert label_set(["even", "odd", "odd", "even"]) == ("even", "odd")
    assert label_set(["a", "b", "a"]) == ()  # one letter
    assert label_set([str(n % 12) + "0" for n in range(60)]) == ()  # more than ten distinct answers
    assert label_set(["cats", "dogs", "mice"]) == ()  # every answer differs
    assert label_set([]) == ()


def test_paper_metric_per_task():
    assert metric_for_task("common_concept") == "f1"
    assert metric_for_task("orthography_starts_with") == "exact_set"
    assert metric_for_task("synonyms") == "contains"
    assert metric_for_task("sentiment") == "exact_match"
