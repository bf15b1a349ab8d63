"""The reply format: a whole file comes back whole, whatever fences, fields or edit markers it holds."""

from __future__ import annotations

from pathlib import Path

from harness import edits

SEED = (Path(__file__).resolve().parent.parent / "agent.py").read_text()


def test_agent_py_sent_whole_comes_back_whole_with_its_own_fences_fields_and_markers():
    assert "<<<<<<< SEARCH" in SEED and "DESCRIPTION:" in SEED  # what used to cut or hijack the reply
    source = SEED + 'EXAMPLE = """\n```python\nx = 1\n```\n"""\n'
    fence = edits.fence_for(source)
    reply = f"DESCRIPTION: a new agent\nNOTES: keep going\n{fence}python\n{source}{fence}\nThat is all.\n"
    said = edits.parse(reply, len(SEED))
    assert said.whole == source and said.blocks == ()
    assert (said.description, said.notes) == ("a new agent", "keep going")


def test_a_three_backtick_line_inside_a_shorter_fence_ends_it_as_markdown_says():
    said = edits.parse("DESCRIPTION: d\n```python\na = 1\n```\nb = 2\n```\n", 4)
    assert said.whole == "a = 1\n"


def test_edit_blocks_wrapped_in_a_fence_are_still_edit_blocks():
    reply = "DESCRIPTION: d\n```\n<<<<<<< SEARCH\nX = 1\n=======\nX = 2\n>>>>>>> REPLACE\n```\n"
    said = edits.parse(reply, 100)
    assert said.blocks == (("X = 1", "X = 2"),) and said.whole is None


def test_a_fence_left_open_by_a_cut_reply_holds_no_file():
    assert edits.parse("DESCRIPTION: d\n```python\nX = 1\n", 2).whole is None


def test_the_fence_for_a_text_is_longer_than_any_run_of_backticks_in_it():
    assert edits.fence_for("no fences") == "```"
    assert edits.fence_for("a\n`````\nb") == "``````"
