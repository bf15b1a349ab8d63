"""What a run's log says in a few lines: samples of its progress lines and its final numbers, bounded."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

HEAD_BYTES = 32 * 1024  # of a long log, its start (the first progress lines) ...
TAIL_BYTES = 64 * 1024  # ... and its end (the last progress lines and the summary) are read; never the middle
SAMPLES = 5  # progress lines shown: the first, the last, and evenly between
SUMMARY_LINES = 14  # `key: value` lines of the final summary
LINE_CHARS = 160

_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_KEY_VALUE = re.compile(r"^\s*[A-Za-z_][\w ./()-]{0,40}:\s*\S")
# A `key: value` line whose value is a file path (a run's own output folder): unique to each run, and no evidence.
_PATH = re.compile(r"^\s*[A-Za-z_][\w ./()-]{0,40}:\s*(?:[A-Za-z]:)?\.{0,2}/\S*/\S*\s*$")
_ERROR = re.compile(r"^(?:Traceback|\w*(?:Error|Exception)\b|Killed|Segmentation fault)")


def read_log(path: Path) -> str:
    """A log's text, or its start and end with a mark between when it is long."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            f.seek(0)
            if size <= HEAD_BYTES + TAIL_BYTES:
                return f.read().decode("utf-8", errors="replace")
            start = f.read(HEAD_BYTES)
            f.seek(size - TAIL_BYTES)
            end = f.read()
    except OSError:
        return ""
    return (start.decode("utf-8", "replace") + "\n[...]\n" + end.decode("utf-8", "replace")).replace("\r\n", "\n")


def digest(text: str, limit: int = 1200) -> str:
    """Progress samples (the most frequent shape of numbered line, first to last) and the final numbers (the
    `key: value` lines after the last `---`, or the last such lines), then the first error line; `limit` chars."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    summary, body = _summary(lines)
    out = [*_progress(body), *summary]
    error = next((line for line in reversed(lines) if _ERROR.match(line)), "")
    if error and error not in out:
        out.append(error)
    text = "\n".join(_short(line) for line in out)
    return text if len(text) <= limit else text[: limit - 4].rsplit("\n", 1)[0] + "\n..."


def _summary(lines: list[str]) -> tuple[list[str], list[str]]:
    """(the summary lines, the lines before them)."""
    if "---" in lines:
        at = len(lines) - 1 - lines[::-1].index("---")
        found = [line for line in lines[at + 1 :] if _KEY_VALUE.match(line) and not _PATH.search(line)]
        return found[:SUMMARY_LINES], lines[:at]
    found: list[str] = []
    for line in reversed(lines):
        if _PATH.search(line):
            continue  # a path differs every run and says nothing of how it went
        if not (_KEY_VALUE.match(line) and _NUMBER.search(line)) or len(found) == SUMMARY_LINES // 2:
            break
        found.insert(0, line)
    return found, lines[: len(lines) - len(found)]


def _progress(lines: list[str]) -> list[str]:
    """A few lines of the run's progress: those of its most frequent numbered shape, evenly spaced."""
    # A line's shape: its words with the numbers and the padding taken out ("step # | #% | loss #").
    shapes = [" ".join(_NUMBER.sub("#", line).split()) if _NUMBER.search(line) else "" for line in lines]
    counts = Counter(s for s in shapes if s.count("#") >= 2)
    if not counts:
        return []
    shape, seen = counts.most_common(1)[0]
    if seen < 3:
        return []
    chosen = [line for line, s in zip(lines, shapes, strict=True) if s == shape]
    if len(chosen) <= SAMPLES:
        return chosen
    picks = sorted({round(i * (len(chosen) - 1) / (SAMPLES - 1)) for i in range(SAMPLES)})
    return [chosen[i] for i in picks]


def _short(line: str) -> str:
    return line if len(line) <= LINE_CHARS else line[: LINE_CHARS - 1] + "…"
