"""What runs leave in $AUTORESEARCH_OUT: checked before an evaluator reads it (regular files only, each under a size
cap), and old folders pruned by a retention rule (every champion's and the last few kept)."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Collection
from pathlib import Path

from harness.jails import remove
from harness.limits import shown
from harness.night import Night

KEEP_LAST = 5  # experiments whose outputs stay besides the champion's, newest first
_NAME = re.compile(r"^(\d+)(?:\.[a-z]+)?(?:\.\d+)?\.out$")  # <id>.out, <id>.<n>.out, <id>.<kind>.out, ...


def refusal(out: Path, cap: int) -> str:
    """Why the evaluator must not be given `out`, as one line, or "" when every entry is a regular file of at most
    `cap` bytes (or a folder of them). Never follows a link: a link, a FIFO, a socket or a device is refused as such."""
    if not out.exists():
        return ""
    for folder, dirs, files in os.walk(out, followlinks=False):
        for name in [*dirs, *files]:
            path = Path(folder, name)
            rel = path.relative_to(out)
            info = path.lstat()
            if stat.S_ISDIR(info.st_mode):
                continue
            if not stat.S_ISREG(info.st_mode):
                return f"$AUTORESEARCH_OUT/{rel} is {_kind(info.st_mode)}, not a regular file"
            if info.st_nlink > 1:
                return f"$AUTORESEARCH_OUT/{rel} is a hard link to another file, not a file of its own"
            if info.st_size > cap:
                return f"$AUTORESEARCH_OUT/{rel} holds {shown(info.st_size)}, over the output limit of {shown(cap)}"
    return ""


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a file"


def retain(folder: Path, night: Night, last: int = KEEP_LAST) -> list[Path]:
    """prune `folder` (runs/<tag>/) after a row of `night`: the outputs of every champion it had (the baseline and
    each keep, whose models the locked test and a person may read again) stay."""
    return prune(folder, {r.id for r in night.rows if r.id == 0 or r.status == "keep"}, last)


def prune(folder: Path, keep: Collection[int], last: int = KEEP_LAST) -> list[Path]:
    """Remove the output folders in `folder` (runs/<tag>/) of every experiment but those in `keep` (the champion's)
    and the `last` newest; returns the folders removed."""
    found: dict[int, list[Path]] = {}
    for entry in folder.iterdir() if folder.is_dir() else ():
        if (match := _NAME.match(entry.name)) and entry.is_dir() and not entry.is_symlink():
            found.setdefault(int(match.group(1)), []).append(entry)
    recent = set(sorted(found)[-last:]) if last > 0 else set()
    removed = []
    for exp_id, paths in sorted(found.items()):
        if exp_id in keep or exp_id in recent:
            continue
        for path in paths:
            remove(path)
            removed.append(path)
    return removed
