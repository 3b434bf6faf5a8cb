"""Which generated instructions a batch pays for first (bo.pool) and which goes on after screening (bo.screen)."""

from __future__ import annotations

from components.blackbox import Evaluation
from components.data import Example
from components.pool import answer_labels, finalist, named_picks, names_an_answer, pool_quota, rank_candidates


def _exemplars(*answers: str) -> list[Example]:
    return [Example(f"input {i}", (a,)) for i, a in enumerate(answers)]


def test_the_exemplars_answers_are_labels_only_when_they_form_a_label_set():
    assert answer_labels(_exemplars("positive", "negative", "positive")) == ("positive", "negative")
    assert answer_labels(_exemplars("Yes", "yes.", "No")) == ("Yes", "yes.", "No")  # repeats after normalising
    assert answer_labels(_exemplars("hot", "small", "dark")) == ()  # open-ended: every answer differs
    assert answer_labels(_exemplars("74", "61", "74", "78", "35")) == ()  # open-ended: one repeat by chance
    assert answer_labels(_exemplars("valid", "invalid", "unsure", "valid", "invalid")) == ("valid", "invalid", "unsure")
    assert answer_labels(_exemplars("It is not raining today.", "It is not raining today.")) == ()  # sentences
    assert answer_labels(_exemplars("a", "b", "a")) == ()  # a letter would be found in any instruction
    assert answer_labels([]) == ()


def test_an_instruction_names_an_answer_as_whole_words_only():
    labels = ("positive", "negative")
    assert names_an_answer('Label the review "Positive" or not.', labels)
    assert not names_an_answer("Think positively about each input.", labels)
    assert not names_an_answer("Write the word.", ())


def test_new_instructions_naming_an_answer_are_picked_first_with_the_first_z_that_wrote_them():
    points = [[0.0], [0.1], [0.2], [0.3], [0.4], [0.5]]
    instructions = ["Say positive.", "Repeat it.", "Say negative.", "Say positive.", "Answer yes.", "Known positive."]
    picks = named_picks(points, instructions, ("positive", "negative"), exclude={"Known positive."}, n=5)
    assert picks == [([0.0], "Say positive."), ([0.2], "Say negative.")]  # a repeat keeps the first z
    assert named_picks(points, instructions, ("positive", "negative"), (), n=1) == [([0.0], "Say positive.")]
    assert named_picks(points, instructions, (), (), n=4) == []  # no labels: nothing is picked
    anything = named_picks(points, instructions, None, exclude={"Known positive."}, n=9)  # (screening: any new one)
    assert [v for _, v in anything] == list(dict.fromkeys(v for v in instructions if v and v != "Known positive."))


def test_the_finalist_is_the_best_screened_the_earliest_on_ties_never_one_whose_calls_failed():
    def screened(*scores: float) -> Evaluation:
        return Evaluation("", ("",) * len(scores), scores)

    assert finalist({"a": screened(0, 0), "b": screened(1, 0), "c": screened(0, 1), "d": None}) == "b"
    assert finalist({"a": None, "b": screened(0, 0)}) == "b"
    assert finalist({"a": None}) is None and finalist({}) is None


def test_ranking_keeps_the_pools_order_within_each_group_and_drops_empty_and_known_ones():
    ranked = rank_candidates(["a", "", "Say yes.", "b", "Say no.", "a"], ("yes", "no"), exclude={"b"})
    assert ranked == ["Say yes.", "Say no.", "a"]


def test_the_pools_quota_is_its_share_of_the_batch_rounded_up_without_float_error():
    assert [pool_quota(4, 1.0), pool_quota(4, 0.5), pool_quota(4, 0.25), pool_quota(1, 0.5)] == [4, 2, 1, 1]
    assert [pool_quota(10, 0.3), pool_quota(10, 0.7), pool_quota(10, 0.31)] == [3, 7, 4]
