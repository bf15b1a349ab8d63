"""program.md: defaults, validation with file and line, CLI overrides."""

from pathlib import Path

import pytest

from harness.config import override
from harness.errors import ProgramError
from harness.program import load, parse


def test_defaults_without_front_matter():
    program = parse("# Just text\nDo good research.\n")
    assert program.config.mutable == "train.py"
    assert program.config.metric == "val_bpb"
    assert program.config.direction == "minimize"
    assert program.config.budget == 300 and program.config.timeout == 360  # budget + the 60 s grace
    assert "Do good research." in program.text


def test_front_matter_values_and_search_space():
    program = parse(
        "---\nbudget: 60\ndirection: maximize\nmin_delta: 0.01\n"
        "search:\n  LEARNING_RATE: {low: 1.0e-4, high: 1.0e-2, log: true}\n  DEPTH: {low: 2, high: 8}\n---\nGo.\n"
    )
    c = program.config
    assert (c.budget, c.timeout, c.direction, c.min_delta) == (60, 120, "maximize", 0.01)
    lr, depth = c.search
    assert lr.name == "LEARNING_RATE" and lr.log and not lr.integer
    assert depth.name == "DEPTH" and depth.integer and (depth.low, depth.high) == (2, 8)
    assert program.text.strip() == "Go."


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("---\nbudget: 60\nbudjet: 3\n---\n", "program.md:3: unknown key 'budjet' (did you mean 'budget'?)"),
        ("---\nbudget: sixty\n---\n", "program.md:2: 'budget' must be a number, not 'sixty'"),
        ("---\ndirection: up\n---\n", "program.md:2: 'direction' must be minimize or maximize"),
        ("---\nbudget: 60\ntimeout: 30\n---\n", "must be at least the 'budget'"),
        ("---\nsearch:\n  LR: {low: 1, high: 0}\n---\n", "low (1) must be below high (0)"),
        ("---\nprotected: [train.py]\n---\n", "'protected' covers the mutable file 'train.py'"),
        ("---\nbudget: 60\n", "never closed"),
    ],
)
def test_mistakes_name_the_line_and_the_problem(text, message):
    with pytest.raises(ProgramError) as err:
        parse(text)
    assert message in str(err.value)
    assert str(err.value).startswith("program.md:")


def test_broken_yaml_names_a_line():
    with pytest.raises(ProgramError, match=r"program.md:\d+: invalid YAML"):
        parse("---\nbudget: 60\nsearch: {a: [\n---\n")


def test_missing_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ProgramError, match="not found"):
        load(tmp_path / "program.md")


def test_flags_override_front_matter_and_are_checked():
    config = parse("---\nbudget: 60\n---\n").config
    assert override(config, budget=10, timeout=None).budget == 10
    assert override(config, budget=900).timeout == 960  # the timeout follows the budget: budget + grace
    with pytest.raises(ProgramError, match="command line"):
        override(config, budget=-1)


def test_sha_changes_with_the_text():
    assert parse("a\n").sha != parse("b\n").sha
