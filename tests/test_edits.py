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


# --- the edit loop loses nothing ---------------------------------------------------------------------------------

FILE = "".join(f"def f{i}():\n    return {i}\n\n\n" for i in range(120))


def test_closest_ranks_by_sequence_not_by_the_characters_a_window_holds():
    # A stale SEARCH of the lines near the top: same characters, in the same order, as lines 1-2 plus a changed
    # value. A window that merely holds the same characters in another order must not win.
    content = "LR = 0.003\nWD = 0.1\n" + "\n".join(f"# {i}" for i in range(200)) + "\n1D = W.0\n400.0 = LR\n"
    found = edits.closest("LR = 0.004\nWD = 0.1", content)
    assert found.startswith("The closest lines in the file (1-2) are:\nLR = 0.003\nWD = 0.1")


def test_a_search_with_trailing_whitespace_or_a_shifted_indent_applies_at_its_one_place():
    content = "def f():\n    if x:\n        y = 1\n    return y\n"
    trailing = (("    if x:   \n        y = 1 ", "    if x:\n        y = 2"),)
    assert edits.apply(trailing, content, "t.py") == (content.replace("y = 1", "y = 2"), 1, None)
    shifted = (("if x:\n    y = 1", "if x:\n    y = 2\n    z = 3"),)  # indented 4 less than the file
    new, _, miss = edits.apply(shifted, content, "t.py")
    assert miss is None and new == "def f():\n    if x:\n        y = 2\n        z = 3\n    return y\n"


def test_view_file_line_numbers_are_set_aside_in_search_and_replace():
    content = "A = 1\nB = 2\nC = 3\n"
    numbered = (("    2  B = 2\n    3  C = 3", "    2  B = 20\n    3  C = 3"),)
    assert edits.apply(numbered, content, "t.py")[0] == "A = 1\nB = 20\nC = 3\n"


def test_a_loose_match_in_two_places_is_ambiguous_not_a_guess():
    content = "def f():\n    x = 1\n\n\ndef g():\n        x = 1\n"
    _, applied, miss = edits.apply((("x = 1 ", "x = 2"),), content, "t.py")
    assert applied == 0 and miss is not None and miss.kind == "ambiguous" and miss.count == 2


def test_a_unified_diff_is_read_as_its_hunks_and_applies():
    reply = (
        "DESCRIPTION: lower f3\nHere is the diff:\n```diff\n--- a/t.py\n+++ b/t.py\n@@ -9,3 +9,3 @@\n"
        " def f2():\n-    return 2\n+    return -2\n\n@@ -13,2 +13,2 @@ def f3\n def f3():\n-    return 3\n"
        "+    return 30\n```\n"
    )
    said = edits.parse(reply, len(FILE))
    assert said.whole is None and said.description == "lower f3"
    assert said.blocks == (("def f2():\n    return 2", "def f2():\n    return -2"),
                           ("def f3():\n    return 3", "def f3():\n    return 30"))  # fmt: skip
    new, applied, miss = edits.apply(said.blocks, FILE, "t.py")
    assert miss is None and applied == 2 and "return -2\n" in new and "return 30\n" in new


def test_an_ellipsis_comment_that_drops_code_is_lazy_and_one_the_file_already_had_is_not():
    old = "import os\n\n\ndef main():\n    a = 1\n    b = 2\n    return a + b\n"
    assert edits.lazy(old, "import os\n\n\ndef main():\n    # ... rest unchanged\n") == "# ... rest unchanged"
    assert edits.lazy(old, "import sys\n# the rest of the file is the same\n") == "# the rest of the file is the same"
    assert edits.lazy(old, old.replace("b = 2", "b = 3")) == ""  # nothing dropped
    commented = "# ... unchanged below\n" + old
    assert edits.lazy(commented, commented.replace("a = 1\n", "")) == ""  # the file had that comment
