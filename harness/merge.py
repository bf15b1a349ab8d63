"""Three-way merge of one text file, line by line: an experiment's change carried onto a newer champion."""

from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class Merged:
    """The merged text, and how many places both sides changed differently (each resolved to the experiment's)."""

    text: str
    conflicts: int


def merge(base: str, champion: str, change: str) -> Merged:
    """`change` (an edit of `base`) carried onto `champion` (another edit of `base`): where only one side changed a
    region, that side's lines; where both changed it differently, the experiment's lines (`change`), counted as a
    conflict. The result is measured as a new experiment, so a conflict is a hypothesis to test, never an error."""
    b, ours, theirs = (text.splitlines(keepends=True) for text in (base, champion, change))
    to_ours, to_theirs = _kept(b, ours), _kept(b, theirs)
    out: list[str] = []
    conflicts = 0
    i = o = t = 0  # the next unmerged line of base, champion and change
    while True:
        # The next base line that both sides kept, and where each side has it: the end of an unstable region.
        j = next((k for k in range(i, len(b)) if k in to_ours and k in to_theirs), len(b))
        o_end = to_ours.get(j, len(ours))
        t_end = to_theirs.get(j, len(theirs))
        was, mine, yours = b[i:j], ours[o:o_end], theirs[t:t_end]
        if mine == was:
            out += yours
        elif yours in (was, mine):
            out += mine
        else:
            out += yours
            conflicts += 1
        if j == len(b):
            return Merged("".join(out), conflicts)
        out.append(b[j])  # kept by both: the same line on every side
        i, o, t = j + 1, o_end + 1, t_end + 1


def _kept(base: list[str], other: list[str]) -> dict[int, int]:
    """Base line -> its line in `other`, for the lines `other` left as they were (the longest matching blocks)."""
    matcher = difflib.SequenceMatcher(None, base, other, autojunk=False)
    return {a + k: b + k for a, b, size in matcher.get_matching_blocks() for k in range(size)}
