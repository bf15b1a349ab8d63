"""Live steering: watch program.md during a run and hand the loop each valid edit (or the error of a bad one)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from harness.errors import ProgramError
from harness.program import Program, load

SETTLE = 0.3  # seconds program.md must stay unchanged before an edit is read
READS = 5  # reads of an edit that changes while it is read, before the last one is taken as it is


@dataclass(frozen=True)
class Steer:
    """One change of program.md: the new program, or the error that kept the previous one in force."""

    program: Program | None
    previous: str  # sha of the program in force before
    sha: str  # sha of the file as written now
    changes: dict[str, list[Any]]  # front-matter key -> [old, new]; "text" when the free text changed
    error: str = ""
    text: str = ""  # the whole file as it was read, so the ledger keeps every version of the program

    def row(self, tag: str) -> dict[str, Any]:
        """The ledger's `steer` row for this change."""
        row: dict[str, Any] = {"kind": "steer", "tag": tag, "program_sha": self.sha, "previous": self.previous}
        if self.error:
            return {**row, "error": self.error}
        return {**row, "changes": self.changes, "text": self.text}


class Steering:
    """Holds the program in force; a watchdog observer flags edits so the loop notices them at once."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self.path = program.path
        self._seen = program.sha  # the last version looked at, valid or not, so a bad edit is reported once
        self._changed = threading.Event()
        self._observer: Any = None

    def start(self) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        target = str(self.path.resolve())
        flag = self._changed

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                paths = {str(getattr(event, "src_path", "")), str(getattr(event, "dest_path", ""))}
                if target in paths:
                    flag.set()

        self._observer = Observer()
        self._observer.schedule(Handler(), str(self.path.resolve().parent), recursive=False)
        self._observer.daemon = True
        self._observer.start()

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=2)
            self._observer = None

    @property
    def flagged(self) -> bool:
        return self._changed.is_set()

    def poll(self) -> Steer | None:
        """The change since the last poll, if any. The file is hashed every time too, in case an event was missed."""
        self._changed.clear()
        new, sha, error = _read_program(self.path)
        if new is None:
            if sha == self._seen:
                return None
            self._seen = sha
            return Steer(None, self.program.sha, sha, {}, error=error)
        if new.sha == self._seen:
            return None
        self._seen = new.sha
        if new.sha == self.program.sha:
            return None  # fixed back to the program in force: nothing changed
        old = self.program
        self.program = new
        return Steer(new, old.sha, new.sha, diff(old, new), text=_read(self.path))


def _read_program(path: Path) -> tuple[Program | None, str, str]:
    """(the program, or None and the error) and the file's sha, read when the file has settled and counted only if
    it did not change while it was read: an editor that truncates, then writes, is never caught between the two."""
    for _ in range(READS):
        _settle(path)
        sha = _sha(path)
        try:
            program: Program | None = load(path)
            _usable(program, path)
            error = ""
        except ProgramError as e:
            program, error = None, str(e)
        _settle(path)
        if _sha(path) == sha:
            break
    return program, sha, error


def _usable(program: Program, path: Path) -> None:
    """A ProgramError for an edit that parses but would break the running loop; the last valid program stays."""
    if not _read(path).strip():
        raise ProgramError(f"{path.name}: the file is empty; write the program back (the last valid one stays)")
    mutable = program.config.mutable
    if not (path.parent / mutable).is_file():
        raise ProgramError(f"{path.name}: 'mutable' names {mutable}, which does not exist in {path.parent}")


def diff(old: Program, new: Program) -> dict[str, list[Any]]:
    """Front-matter keys whose values changed, [old, new]; the free text as a key of its own."""
    out: dict[str, list[Any]] = {}
    for f in fields(old.config):
        a, b = getattr(old.config, f.name), getattr(new.config, f.name)
        if a != b:
            out[f.name] = [_plain(a), _plain(b)]
    if old.text != new.text:
        out["text"] = [len(old.text), len(new.text)]
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [repr(v) if not isinstance(v, str | int | float) else v for v in value]
    return value


def _settle(path: Path) -> None:
    """Wait until the file has not changed for SETTLE seconds: an editor that truncates and then writes must not be
    caught half way. An empty file is given longer: it is most often an editor between the two steps, and a busy
    machine can keep that editor from its write past SETTLE."""
    deadline = time.monotonic() + 5 * SETTLE
    while time.monotonic() < deadline:
        try:
            st = path.stat()
        except OSError:
            return
        age = time.time() - st.st_mtime
        if age >= SETTLE and (st.st_size > 0 or age >= 4 * SETTLE):
            return
        time.sleep(max(0.01, SETTLE - age) if st.st_size > 0 else SETTLE)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def _sha(path: Path) -> str:
    import hashlib

    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return "missing"
