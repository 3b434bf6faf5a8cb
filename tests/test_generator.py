import pytest

from components.data import Example
from components.generator import clean_instruction, format_exemplars


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("The instruction is to write the first letter. Then more.", "Write the first letter."),
        ('  "reverse the word"\nsecond line', "Reverse the word."),
        ("Instruction: add one to the number using str.join() twice", "Add one to the number using str.join() twice."),
        ("\n\n", ""),
    ],
)
def test_clean_instruction(raw, clean):
    assert clean_instruction(raw) == clean


def test_exemplars_show_the_first_accepted_answer():
    text = format_exemplars([Example("a", ("b", "c")), Example("d", ("e",))])
    assert text == "Input: a\nOutput: b\n\nInput: d\nOutput: e"
