import pytest

from components.data import Example
from components.generator import build_prompt, clean_instruction, format_exemplars, is_complete


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


def test_a_reply_cut_off_mid_sentence_is_not_complete():
    assert is_complete("The instruction is to add one. Then")
    assert is_complete("Write the word\nbackwards")
    assert not is_complete("The instruction is to convert the input into a word that")
    assert not is_complete("  \n")


@pytest.mark.parametrize("position", ["start", "user", "reply"])
def test_the_soft_prompt_goes_where_asked(embedded_model, position):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(embedded_model)
    prompt = build_prompt(tokenizer, "Pairs:\n{exemplars}", [Example("a", ("b",))], "The instruction is", position)
    before = tokenizer.decode(prompt.prefix_ids)
    after = tokenizer.decode(prompt.suffix_ids)
    assert after.endswith("The instruction is")
    if position == "start":
        assert before == "" and after.startswith("<|im_start|>")
    elif position == "user":
        assert before.endswith("<|im_start|>user\n") and after.startswith("Pairs:")
    else:
        assert "Pairs:" in before and before.endswith("<|im_start|>assistant\n") and after == "The instruction is"
    with pytest.raises(ValueError, match="position must be one of"):
        build_prompt(tokenizer, "{exemplars}", [], "", "middle")
