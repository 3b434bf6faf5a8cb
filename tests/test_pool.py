"""Which generated instructions a batch pays for first (bo.pool)."""

from __future__ import annotations

from components.data import Example
from components.pool import answer_labels, named_picks, names_an_answer, random_points


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


def test_random_points_are_uniform_on_the_cube_and_decided_by_the_seed():
    points = random_points(3, 200, 4)
    assert points == random_points(3, 200, 4) and points != random_points(4, 200, 4)
    assert all(-1 <= x <= 1 for p in points for x in p) and len(points) == 200 and len(points[0]) == 4
    assert abs(sum(x for p in points for x in p) / 800) < 0.1
