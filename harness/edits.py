"""The edit format of a reply: its fields (DESCRIPTION, NOTES, REFLECTION), SEARCH/REPLACE blocks or a whole file,
applied to a file with a precise reason when they do not apply."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

BLOCK = re.compile(r"<<<<<<< SEARCH\n(.*?)\n?=======\n(.*?)\n?>>>>>>> REPLACE", re.DOTALL)
# A code fence as Markdown (CommonMark) has it: a line of three or more backticks (or tildes) opens it, and only a
# line of the same character, at least as long and with nothing else on it, closes it. A whole file that holds
# ``` itself (agent.py's own prompts do) is sent in a longer fence, and a fence mark inside a line never counts.
OPEN = re.compile(r"[ ]{0,3}(`{3,}|~{3,})([^\n]*)\n?")
CLOSE = re.compile(r"[ ]{0,3}(`{3,}|~{3,})[ \t]*\n?")
# A field starts a line ("NOTES:", also "**NOTES:**" or "## NOTES:") and runs to the next field, the first edit
# block or the first code fence.
FIELD = re.compile(r"^[#*_ \t]*(DESCRIPTION|NOTES|REFLECTION)[*_]*[ \t]*:[*_]*[ \t]*", re.MULTILINE)
_END = re.compile(r"^(?:<<<<<<< SEARCH|```)", re.MULTILINE)


@dataclass(frozen=True)
class Parsed:
    """What one reply says: its fields and its edits (blocks, or a whole file when there are none)."""

    description: str
    notes: str
    reflection: str
    blocks: tuple[tuple[str, str], ...]
    whole: str | None  # a fenced whole file, when the reply has no blocks


@dataclass(frozen=True)
class Miss:
    """Why an edit block did not apply."""

    kind: str  # "not_found" (or an empty SEARCH) or "ambiguous"
    block: int  # 1-based
    count: int  # how many places the SEARCH text matches (0 when not found)
    why: str  # one line


def parse(text: str, current_size: int) -> Parsed:
    """The fields and edits of a reply; a fence counts as a whole file only when it is over half the current size.

    What a fenced file holds is never read as the reply's own fields or edit blocks (agent.py's source has both in
    its prompts), unless the fence only wraps edit blocks, as models often send them."""
    files = [f for f in fences(text) if not f.body.lstrip().startswith("<<<<<<< SEARCH")]
    prose, at = [], 0
    for f in files:
        prose += [text[at : f.start], "```\n"]  # the file's place stays a fence line: a field ends there
        at = f.end
    visible = "".join([*prose, text[at:]])
    fields: dict[str, str] = {}
    starts = list(FIELD.finditer(visible))
    for i, match in enumerate(starts):
        stop = starts[i + 1].start() if i + 1 < len(starts) else len(visible)
        body = visible[match.end() : stop]
        end = _END.search(body)
        fields.setdefault(match.group(1), (body[: end.start()] if end else body).strip())
    description = next((line.strip() for line in fields.get("DESCRIPTION", "").splitlines() if line.strip()), "")
    blocks = tuple(BLOCK.findall(visible))
    whole = None
    if not blocks:
        large = [f.body for f in files if len(f.body) > current_size // 2]
        whole = large[-1] if large else None
    return Parsed(description, fields.get("NOTES", ""), fields.get("REFLECTION", ""), blocks, whole)


@dataclass(frozen=True)
class Fenced:
    """One closed code fence of a reply: where it starts and ends (its fence lines included), and what it holds."""

    start: int
    end: int
    body: str


def fences(text: str) -> list[Fenced]:
    """The closed code fences of a text, in order; a fence left open (a reply cut short) holds no file."""
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    found, i = [], 0
    while i < len(lines):
        opened = OPEN.fullmatch(lines[i])
        if opened and not (opened.group(1)[0] == "`" and "`" in opened.group(2)):
            mark = opened.group(1)
            for j in range(i + 1, len(lines)):
                closed = CLOSE.fullmatch(lines[j])
                if closed and closed.group(1)[0] == mark[0] and len(closed.group(1)) >= len(mark):
                    found.append(Fenced(offsets[i], offsets[j + 1], "".join(lines[i + 1 : j])))
                    i = j
                    break
        i += 1
    return found


def fence_for(content: str) -> str:
    """A fence of backticks longer than any run of backticks in `content`, so that it can hold `content` whole."""
    longest = max((len(run) for run in re.findall(r"`+", content)), default=0)
    return "`" * max(3, longest + 1)


def apply(blocks: tuple[tuple[str, str], ...], content: str, path: str) -> tuple[str, int, Miss | None]:
    """(content with the blocks applied in order, how many applied, why the first that failed did); the blocks
    after a failed one are not tried."""
    for n, (search, replace) in enumerate(blocks, 1):
        if not search.strip():
            return content, n - 1, Miss("not_found", n, 0, "its SEARCH text is empty")
        places = _places(search, content)
        if len(places) == 1:
            at = places[0]
            content = content[:at] + replace + content[at + len(search) :]
            continue
        if not places:
            return content, n - 1, Miss("not_found", n, 0, f"its SEARCH text is not in {path}")
        return content, n - 1, Miss("ambiguous", n, len(places), f"its SEARCH text matches {len(places)} places")
    return content, len(blocks), None


def _places(search: str, content: str) -> list[int]:
    """Where `search` occurs; whole-line occurrences win, so "X = 1" is not also found inside "X = 10"."""
    found, at = [], content.find(search)
    while at >= 0:
        found.append(at)
        at = content.find(search, at + 1)
    end = len(search)
    lines = [i for i in found if (i == 0 or content[i - 1] == "\n") and content[i + end : i + end + 1] in ("", "\n")]
    return lines or found


def closest(search: str, content: str) -> str:
    """The lines of the file most like a SEARCH text that did not match, so the model can copy them exactly."""
    want, lines = search.splitlines(), content.splitlines()
    if not want or not lines:
        return ""
    size = len(want)
    best, start = 0.0, 0
    for i in range(max(1, len(lines) - size + 1)):
        ratio = difflib.SequenceMatcher(None, "\n".join(want), "\n".join(lines[i : i + size])).quick_ratio()
        if ratio > best:
            best, start = ratio, i
    snippet = "\n".join(lines[start : start + size])
    return f"The closest lines in the file ({start + 1}-{start + size}) are:\n{snippet}\n"


def compile_error(content: str, path: str, around: int = 3) -> tuple[str, str]:
    """("line N: message", the numbered lines around it) when a Python file does not compile, else ("", "")."""
    if not path.endswith(".py"):
        return "", ""
    try:
        compile(content, path, "exec", dont_inherit=True)
    except SyntaxError as e:
        line = e.lineno or 0
        lines = content.splitlines()
        shown = range(max(1, line - around), min(len(lines), line + around) + 1)
        context = "\n".join(f"{i:5d}{'>' if i == line else ' '} {lines[i - 1]}" for i in shown)
        return f"line {line}: {e.msg}", context
    except ValueError as e:  # null bytes
        return str(e), ""
    return "", ""


def diff(old: str, new: str, path: str, context: int = 2) -> str:
    """A unified diff of one file, as `git show` would print its hunks."""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), f"a/{path}", f"b/{path}", n=context
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def head(text: str, limit: int, mark: str = "[... cut]") -> str:
    """At most `limit` characters from the start, cut at a line end and marked: what comes first is kept."""
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text.rfind("\n", 0, limit - len(mark) - 1)
    return text[: cut if cut > 0 else limit - len(mark) - 1].rstrip() + "\n" + mark


def tail(text: str, limit: int, mark: str = "[... earlier lines cut]") -> str:
    """At most `limit` characters from the end, starting at a line start and marked: what comes last is kept."""
    if len(text) <= limit:
        return text
    start = text.find("\n", len(text) - limit + len(mark) + 1)
    return mark + "\n" + text[start + 1 if start >= 0 else len(text) - limit + len(mark) + 1 :]
