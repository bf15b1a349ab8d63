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
FIELD = re.compile(r"^[#*_ \t]*(DESCRIPTION|NOTES|REFLECTION|EXPECTED|HYPOTHESIS)[*_]*[ \t]*:[*_]*[ \t]*", re.MULTILINE)
_END = re.compile(r"^(?:<<<<<<< SEARCH|```|@@ -\d|--- a/|diff --git )", re.MULTILINE)


@dataclass(frozen=True)
class Parsed:
    """What one reply says: its fields and its edits (blocks, or a whole file when there are none)."""

    description: str
    notes: str
    reflection: str
    fields: dict[str, str]  # the other fields: EXPECTED (the effect the model predicts), HYPOTHESIS (its family)
    blocks: tuple[tuple[str, str], ...]  # SEARCH/REPLACE blocks, or the hunks of a unified diff when none
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
    its prompts), unless the fence only wraps edit blocks or a unified diff, as models often send them."""
    files = [f for f in fences(text) if not f.body.lstrip().startswith("<<<<<<< SEARCH") and not hunks(f.body)]
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
    blocks = tuple(BLOCK.findall(visible)) or hunks(visible)
    whole = None
    if not blocks:
        # A short fence is a whole file too when it says it leaves code out: it is then refused for that reason.
        large = [f.body for f in files if len(f.body) > current_size // 2 or any(map(LAZY.match, f.body.splitlines()))]
        whole = large[-1] if large else None
    others = {k: v for k, v in fields.items() if k in ("EXPECTED", "HYPOTHESIS")}
    return Parsed(description, fields.get("NOTES", ""), fields.get("REFLECTION", ""), others, blocks, whole)


def one_line_of(text: str, limit: int = 200) -> str:
    """The first non-blank line of a field, bounded."""
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return line[:limit]


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
    after a failed one are not tried. A SEARCH text found nowhere as it is may still match one place when its
    trailing whitespace, a uniform shift of its indentation, or `view_file` line numbers before each line are set
    aside; the REPLACE text is then shifted the same way."""
    for n, (search, replace) in enumerate(blocks, 1):
        if not search.strip():
            return content, n - 1, Miss("not_found", n, 0, "its SEARCH text is empty")
        places = _places(search, content)
        if len(places) == 1:
            at = places[0]
            content = content[:at] + replace + content[at + len(search) :]
            continue
        if not places:
            loose = _loose(search, replace, content)
            if len(loose) == 1:
                start, end, text = loose[0]
                content = content[:start] + text + content[end:]
                continue
            if len(loose) > 1:
                why = f"its SEARCH text matches {len(loose)} places (once whitespace is set aside)"
                return content, n - 1, Miss("ambiguous", n, len(loose), why)
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


def _loose(search: str, replace: str, content: str) -> list[tuple[int, int, str]]:
    """The places (start, end, replacement) where the SEARCH lines match whole lines of the file once trailing
    whitespace, one uniform indentation shift and view_file's line numbers are set aside."""
    want, new = search.splitlines(), replace.splitlines()
    if all(NUMBERED.match(line) for line in want if line.strip()):
        want = [NUMBERED.sub("", line, count=1) for line in want]
        if all(NUMBERED.match(line) for line in new if line.strip()):
            new = [NUMBERED.sub("", line, count=1) for line in new]
    while want and not want[0].strip():
        want = want[1:]
    while want and not want[-1].strip():
        want = want[:-1]
    if not want:
        return []
    lines = content.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    shape, indent = _shape(want)
    found = []
    for i in range(len(lines) - len(want) + 1):
        window = [line.rstrip("\r\n") for line in lines[i : i + len(want)]]
        there, at = _shape(window)
        if there != shape:
            continue
        shift = at - indent
        moved = [_shifted(line, shift) for line in new]
        text = "".join(line + "\n" for line in moved)
        if not lines[i + len(want) - 1].endswith("\n"):
            text = text[:-1]  # the file's last line had no newline: neither has the replacement
        found.append((offsets[i], offsets[i + len(want)], text))
    return found


# A line as view_file shows it: its number right-aligned, two spaces, then the line.
NUMBERED = re.compile(r"^ *\d+  ")


def _shape(lines: list[str]) -> tuple[tuple[str, ...], int]:
    """The lines without their common indentation and trailing whitespace, and that indentation's width."""
    indent = min((len(line) - len(line.lstrip(" ")) for line in lines if line.strip()), default=0)
    return tuple(line[indent:].rstrip() if line.strip() else "" for line in lines), indent


def _shifted(line: str, shift: int) -> str:
    if not line.strip():
        return ""
    if shift >= 0:
        return " " * shift + line.rstrip()
    lead = len(line) - len(line.lstrip(" "))
    return line[min(lead, -shift) :].rstrip()


def closest(search: str, content: str) -> str:
    """The lines of the file most like a SEARCH text that did not match (by sequence similarity: the same text in
    the same order, not merely the same characters), so the model can copy them exactly."""
    want, lines = search.splitlines(), content.splitlines()
    if not want or not lines:
        return ""
    size = len(want)
    text = "\n".join(want)
    matcher = difflib.SequenceMatcher(None, autojunk=False)
    matcher.set_seq2(text)  # the matcher caches what it learns of its second sequence
    best, start = -1.0, 0
    for i in range(max(1, len(lines) - size + 1)):
        matcher.set_seq1("\n".join(lines[i : i + size]))
        if matcher.real_quick_ratio() <= best or matcher.quick_ratio() <= best:
            continue
        ratio = matcher.ratio()
        if ratio > best:
            best, start = ratio, i
    snippet = "\n".join(lines[start : start + size])
    return f"The closest lines in the file ({start + 1}-{start + size}) are:\n{snippet}\n"


# A line that stands for code left out: "# ... rest unchanged", "# (the rest of the file is the same)", "// ...".
LAZY = re.compile(
    r"^\s*(?:#|//)\s*(?:\.\.\.|…|\[\.\.\.\]|.*\b(?:unchanged|rest of (?:the )?(?:file|code|function|class)|"
    r"remains? the same|same as before|as before|omitted|existing code)\b)",
    re.IGNORECASE,
)


def lazy(old: str, new: str) -> str:
    """The first line of `new` that stands for code of `old` left out (an ellipsis comment that `old` does not
    have, where `new` drops lines of `old`), or ""."""
    had = set(old.splitlines())
    dropped = [line for line in old.splitlines() if line.strip() and line not in set(new.splitlines())]
    if not dropped:
        return ""
    return next((line.strip() for line in new.splitlines() if LAZY.match(line) and line not in had), "")


HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@.*$")


def hunks(text: str) -> tuple[tuple[str, str], ...]:
    """The hunks of the unified diffs in a reply, as (SEARCH, REPLACE) pairs: the context and removed lines, and
    the context and added lines. A blank line inside a hunk is taken as blank context (models often drop its
    space)."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        if not HUNK.match(lines[i]):
            i += 1
            continue
        old: list[str] = []
        new: list[str] = []
        i += 1
        while i < len(lines) and not HUNK.match(lines[i]) and not _ends_hunk(lines[i]):
            line = lines[i]
            mark, rest = (line[:1], line[1:]) if line else (" ", "")
            if mark in " -":
                old.append(rest)
            if mark in " +":
                new.append(rest)
            i += 1
        while old and new and not old[-1].strip() and not new[-1].strip():
            old, new = old[:-1], new[:-1]  # trailing blank context: the gap before the next prose
        out.append(("\n".join(old), "\n".join(new)))
    return tuple(out)


def _ends_hunk(line: str) -> bool:
    return line.startswith(("```", "~~~", "diff --git", "--- a/", "+++ b/", "--- ", "+++ ")) or (
        bool(line) and line[0] not in " +-\\"
    )


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
