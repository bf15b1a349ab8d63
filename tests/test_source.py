"""Constants of the mutable file: read, and rewritten with comments and layout intact."""

import pytest

from harness.source import literal, read_constants, set_constants

SOURCE = '''"""Doc."""
import os

LEARNING_RATE = 3e-3   # peak learning rate
DEPTH = 4              # layers
NAME: str = "gpt"      # annotated


def f():
    DEPTH = 99  # a local, not the constant
    return DEPTH
'''


def test_reads_top_level_literals_only():
    assert read_constants(SOURCE) == {"LEARNING_RATE": 0.003, "DEPTH": 4, "NAME": "gpt"}


def test_rewrite_keeps_comments_and_alignment():
    new = set_constants(SOURCE, {"LEARNING_RATE": 0.0012345678, "DEPTH": 6})
    assert "LEARNING_RATE = 0.001235   # peak learning rate\n" in new
    assert "DEPTH = 6              # layers\n" in new
    assert "    DEPTH = 99  # a local, not the constant\n" in new
    assert new.replace("0.001235", "3e-3").replace("DEPTH = 6 ", "DEPTH = 4 ") == SOURCE


def test_rewrite_of_a_missing_constant_names_it():
    with pytest.raises(KeyError, match="WIDTH"):
        set_constants(SOURCE, {"WIDTH": 3})


@pytest.mark.parametrize(
    ("value", "text"), [(1e-4, "0.0001"), (2.0, "2.0"), (1.5e-7, "1.5e-7"), (7, "7"), (True, "True")]
)
def test_literals_are_short_and_exact_enough(value, text):
    assert literal(value) == text
    assert eval(text) == pytest.approx(value, rel=1e-3)
