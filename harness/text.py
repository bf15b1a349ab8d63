"""Text from outside (agents, runs, servers) made safe to store and show: no control characters, bounded, one line."""

from __future__ import annotations

import re

DESCRIPTION_CHARS = 200  # a commit subject, a table cell
NOTES_CHARS = 4000  # an agent's memory across experiments: the end is what it wrote last, so the end is kept
REFLECTION_CHARS = 4000  # an agent's reflection on the night: sent back in every later task, so bounded like notes
REASON_CHARS = 500  # a reason or an error is one line; an agent's exception text must not become a page

# C0 and C1 controls but tab and newline, DEL, and the bidirectional overrides that can make a line read as another.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def clean(text: object) -> str:
    """`text` as a string with no terminal escapes or other control characters (tabs and newlines stay), and no
    unpaired surrogates (they cannot be written as UTF-8)."""
    s = text if isinstance(text, str) else str(text)
    s = _SURROGATE.sub("\ufffd", s)
    return _CONTROL.sub("", s.replace("\r\n", "\n").replace("\r", "\n"))


def flat(text: object) -> str:
    """Cleaned text on one line: every run of white space (newlines included) becomes one space."""
    return " ".join(clean(text).split())


def one_line(text: object, limit: int = DESCRIPTION_CHARS) -> str:
    """A description fit for a commit subject, a ledger cell or a terminal line: cleaned, one line, trimmed."""
    line = flat(text)
    return (line[: limit - 1] + "…") if len(line) > limit else (line or "(no description)")


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tail(text: object, limit: int = NOTES_CHARS) -> str:
    """Cleaned multi-line text bounded from the front: the last `limit` characters, starting on a whole line."""
    s = clean(text).strip()
    if len(s) <= limit:
        return s
    cut = s[-limit:]
    newline = cut.find("\n")
    return cut[newline + 1 :] if 0 <= newline < len(cut) - 1 else cut


def short(sha: str | None) -> str:
    """A commit's short name, as a person reads it in a table ("-" for none)."""
    return sha[:8] if sha else "-"


def num(v: float | None, sign: str = "") -> str:
    """Six decimals like the commit trailers, unless the value is too large or small for them."""
    if v is None:
        return "-"
    return f"{v:{sign}.6f}" if v == 0 or 1e-5 <= abs(v) < 1e6 else f"{v:{sign}.6g}"


def signed(v: float | None) -> str:
    return num(v, "+")
