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


def test_a_rewrite_changes_only_the_constants_whose_value_changes_byte_for_byte():
    source = 'LOSS = "squared_error"  # the loss\nRATE = 1e-3\nDEPTH = 4\nNAME = "a"\n'
    assert set_constants(source, {"LOSS": "squared_error", "RATE": 0.001, "DEPTH": 4}) == source
    new = set_constants(source, {"LOSS": "huber", "RATE": 0.001, "DEPTH": 5, "NAME": 'say "hi"'})
    assert new == 'LOSS = "huber"  # the loss\nRATE = 1e-3\nDEPTH = 5\nNAME = \'say "hi"\'\n'


def test_a_night_commits_diffs_of_the_constants_it_changed_only(tmp_path):
    from harness.testing import TOY_TRAIN, cli, git, make_repo, toy_program

    train = TOY_TRAIN.replace("Y = 2    # an integer knob\n", 'Y = 2    # an integer knob\nLOSS = "squared_error"\n')
    search = '\n  X: {low: 0.0, high: 4.0}\n  Y: {low: 1, high: 8}\n  LOSS: {choices: ["squared_error", "huber"]}'
    repo = make_repo(tmp_path / "p", {"train.py": train, "program.md": toy_program(search=search)})
    out = cli(repo, "run", "--tag", "d", "--agent", "optuna", "--max-experiments", "6")
    assert out.returncode == 0, out.stderr
    shas = git(repo, "for-each-ref", "--format=%(objectname)", "refs/autoresearch/d", "refs/heads/autoresearch/d")
    for sha in set(shas.split()) - {git(repo, "rev-parse", "main")}:
        diff = git(repo, "show", "--format=", "-U0", sha, "--", "train.py")
        removed = [line[1:] for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
        added = [line[1:] for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
        assert removed and len(removed) == len(added)
        for old, new in zip(removed, added, strict=True):
            assert old != new and old.split("=")[0] == new.split("=")[0]  # a changed constant, on its own line
        assert "'squared_error'" not in diff and "'huber'" not in diff  # the file's own quotes
