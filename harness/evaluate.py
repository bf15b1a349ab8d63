"""One evaluation: run the command under a time limit, capture a capped log, read the metric, check protected files."""

from __future__ import annotations

import hashlib
import math
import os
import re
import select
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from harness import process

Outcome = Literal["ok", "crash", "timeout", "tampered"]

TAIL_CHARS = 3000  # of the log, kept in the result of a failed run
TAIL_LINES = 50
KEEP_AFTER_CAP = 64 * 2**10  # bytes of a capped log's end that are kept, so the final metric line survives
READ_CHUNK = 64 * 2**10
READER_JOIN = 2.0  # seconds to wait for the reader after the tree is dead; EOF normally comes at once
NEWLINE = ord("\n")
MISSING = "missing"  # the hash of a protected path that does not exist, so that deleting one counts as a change
_NUMBER = r"[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|(?i:nan|inf|infinity))"


@dataclass(frozen=True)
class RunResult:
    """What one evaluation did, as the loop records it."""

    outcome: Outcome
    metric: float | None
    exit_code: int | None  # None when killed at the timeout
    seconds: float  # wall time measured by the harness
    peak_mem_mb: float | None  # from wait4's ru_maxrss; never below the harness's own peak (see Child.peak_mem_mb)
    log: Path
    tail: str  # the end of the log, for a failed run ("" for an ok one)
    reason: str  # one line: why it is not ok ("" for an ok one)
    tampered: tuple[str, ...] = ()  # protected paths (relative) whose content changed during the run


def _metric_line(metric: str) -> re.Pattern[str]:
    return re.compile(rf"[ \t]*{re.escape(metric)}[ \t]*:[ \t]*({_NUMBER})[ \t]*")


def _last_value(text: str, metric: str) -> float | None:
    """The value of the last `<metric>: <number>` line, nan and inf included; None when there is none."""
    pattern = _metric_line(metric)
    # Backwards, because the line is almost always among the last few; splitlines also splits on the \r of
    # progress bars, which would otherwise hide a metric printed after one.
    for line in reversed(text.splitlines()):
        if metric in line:
            found = pattern.fullmatch(line)
            if found:
                return float(found.group(1))
    return None


def parse_metric(text: str, metric: str) -> float | None:
    """The value of the last line `<metric>: <float>` in `text`; None when there is none or it is nan or inf."""
    value = _last_value(text, metric)
    return value if value is not None and math.isfinite(value) else None


def hash_paths(root: Path, paths: Sequence[str]) -> dict[str, str]:
    """sha256 of every file under each path (a file or a directory, walked), keyed by its path relative to root;
    __pycache__ and *.pyc are passed over, and a missing path gets a hash of its own so that deleting it counts."""
    hashes: dict[str, str] = {}
    for rel in paths:
        top = root / rel
        key = Path(rel).as_posix()
        if top.is_dir():  # following a link: a protected data folder may well be one
            if top.is_symlink():
                hashes[key] = "symlink:" + os.readlink(top)
            for folder, dirs, files in os.walk(top):
                dirs.sort()
                for name in [*dirs]:
                    if name == "__pycache__":
                        dirs.remove(name)
                    elif os.path.islink(os.path.join(folder, name)):  # os.walk does not enter it, so note where it goes
                        link = Path(folder, name)
                        hashes[f"{key}/{link.relative_to(top).as_posix()}"] = "symlink:" + os.readlink(link)
                for name in sorted(files):
                    if not name.endswith(".pyc"):
                        path = Path(folder, name)
                        hashes[f"{key}/{path.relative_to(top).as_posix()}"] = _hash_file(path)
        else:
            hashes[key] = _hash_file(top)
    return hashes


def _hash_file(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
    except FileNotFoundError:
        digest = MISSING  # never there, deleted, or a link to nothing
    if path.is_symlink():
        # Retargeting a link changes what the run reads as surely as editing the file does.
        return f"symlink:{os.readlink(path)}:{digest}"
    return digest


def changed(before: Mapping[str, str], after: Mapping[str, str]) -> tuple[str, ...]:
    """The paths whose hash differs, including those that appeared or disappeared."""
    return tuple(sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p)))


class _LogReader(threading.Thread):
    """Copies the run's output pipe to the log file: the first `cap` bytes, then only a rolling tail of the rest."""

    def __init__(self, fd: int, out: BinaryIO, cap: int) -> None:
        super().__init__(name="run-log", daemon=True)
        self.fd = fd
        self.out = out
        self.cap = cap
        self.written = 0
        self.overflow = bytearray()  # the end of what came after the cap
        self.before = NEWLINE  # the byte of the output just before overflow[0]
        self.head_last = NEWLINE  # the last byte written before the cap
        self.dropped = 0
        self.stop = threading.Event()  # set when the reader must give up on a pipe that never closes

    def run(self) -> None:
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        try:
            while True:
                # A timeout, so that a pipe held open by a process that could not be killed never keeps this
                # thread reading forever.
                if not poller.poll(100):
                    if self.stop.is_set():
                        break
                    continue
                chunk = os.read(self.fd, READ_CHUNK)
                if not chunk:
                    break
                self._take(chunk)
            self._finish()
        finally:
            os.close(self.fd)
            self.out.close()

    def _take(self, chunk: bytes) -> None:
        room = self.cap - self.written
        if room > 0:
            head = chunk[:room]
            self.out.write(head)
            self.written += len(head)
            self.before = self.head_last = head[-1]
            chunk = chunk[room:]
        if chunk:
            self.overflow += chunk
            if len(self.overflow) > 2 * KEEP_AFTER_CAP:  # trim in batches: amortized O(1) per byte
                cut = len(self.overflow) - KEEP_AFTER_CAP
                self.dropped += cut
                self.before = self.overflow[cut - 1]
                del self.overflow[:cut]

    def _finish(self) -> None:
        if not self.overflow:
            return
        tail = bytes(self.overflow[-KEEP_AFTER_CAP:])
        skipped = len(self.overflow) - len(tail)
        before = self.overflow[skipped - 1] if skipped else self.before
        newline = tail.find(b"\n")
        if before != NEWLINE and 0 <= newline < len(tail) - 1:
            # Start the kept tail on a whole line; the part line before it counts as dropped.
            skipped += newline + 1
            tail = tail[newline + 1 :]
        self.dropped += skipped
        if not self.dropped:  # the whole output fits in the cap and the tail: nothing to mark
            self.out.write(tail)
            return
        gap = "" if self.head_last == NEWLINE else "\n"  # the marker goes on a line of its own
        marker = f"[... {self.dropped} bytes dropped by autoresearch: log capped at {self.cap / 2**20:g} MiB ...]"
        self.out.write(f"{gap}{marker}\n".encode() + tail)


def _tail(text: str) -> str:
    lines = text.splitlines()[-TAIL_LINES:]
    return "\n".join(lines)[-TAIL_CHARS:]


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"exit status {code}"


def evaluate(
    root: Path,
    command: str,
    *,
    metric: str,
    timeout: float,
    log: Path,
    env: Mapping[str, str],
    protected: Sequence[str] = (),
    grace: float = 5.0,
    log_cap: int = 10 * 2**20,
) -> RunResult:
    """Run `command` through /bin/sh in `root` with `env` (built by harness.childenv) and judge it: killed with its
    whole tree past `timeout` seconds, a crash without a `<metric>: <float>` line or with a non-zero exit, tampered if
    a protected path changed."""
    before = hash_paths(root, protected)
    log.parent.mkdir(parents=True, exist_ok=True)
    # One pipe for stdout and stderr, so the log keeps their interleaving as the run printed it. The log is opened
    # here, so that a log that cannot be written is the caller's error before anything runs.
    out = open(log, "wb")  # noqa: SIM115  (the reader thread closes it)
    read_fd, write_fd = os.pipe()
    reader = _LogReader(read_fd, out, log_cap)
    started = time.monotonic()
    try:
        child = process.spawn(
            command, cwd=root, env=env, shell=True, stdin=process.DEVNULL, stdout=write_fd, stderr=write_fd
        )
    except BaseException:
        os.close(read_fd)
        out.close()
        raise
    finally:
        os.close(write_fd)  # the child has its copy; ours would keep the pipe open past the run's end
    try:
        reader.start()
        code = child.wait(timeout)
        seconds = time.monotonic() - started
    finally:
        # Always, also after a normal exit: a daemon left behind would hold the GPU, and the pipe, open. On
        # Ctrl-C or any error this ends the tree before the exception goes on.
        try:
            child.kill_tree(grace)
        except KeyboardInterrupt:
            child.kill_tree(0)  # a second Ctrl-C during the grace: no more patience, but still no survivors
            raise
        finally:
            if reader.ident is None:  # interrupted before it started: its pipe and file are still ours to close
                os.close(read_fd)
                out.close()
            else:
                reader.join(READER_JOIN)
                if reader.is_alive():  # a survivor stuck in the kernel still holds the pipe: stop reading it
                    reader.stop.set()
                    reader.join()
    if code is None:
        seconds = time.monotonic() - started  # a timed-out run lasted until its tree was dead
    after = hash_paths(root, protected)

    text = log.read_bytes().decode("utf-8", errors="replace")
    value = _last_value(text, metric)
    found = value if value is not None and math.isfinite(value) else None
    tampered = changed(before, after)
    if tampered:
        outcome: Outcome = "tampered"
        reason = "changed protected files: " + ", ".join(tampered)
    elif code is None:
        outcome = "timeout"
        reason = f"timed out after {timeout:g} s"
    elif code != 0:
        outcome = "crash"
        reason = _exit_reason(code)
    elif found is None:
        outcome = "crash"
        reason = f"{metric} was {value}" if value is not None else f"no '{metric}: <float>' line in the output"
    else:
        outcome = "ok"
        reason = ""
    return RunResult(
        outcome=outcome,
        metric=found,
        exit_code=code,
        seconds=seconds,
        peak_mem_mb=child.peak_mem_mb,
        log=log,
        tail="" if outcome == "ok" else _tail(text),
        reason=reason,
        tampered=tampered,
    )
