"""A run's output: copied from its pipe into a log capped in size, whose tail and last metric line survive a flood."""

from __future__ import annotations

import math
import os
import re
import select
import threading
from typing import BinaryIO

TAIL_CHARS = 3000  # of the log, kept in the result of a failed run
TAIL_LINES = 50
KEEP_AFTER_CAP = 64 * 2**10  # bytes of a capped log's end that are kept, so the final metric line survives
READ_CHUNK = 64 * 2**10
NEWLINE = ord("\n")
_NUMBER = r"[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|(?i:nan|inf|infinity))"


def _metric_line(metric: str) -> re.Pattern[str]:
    return re.compile(rf"[ \t]*{re.escape(metric)}[ \t]*:[ \t]*({_NUMBER})[ \t]*")


def last_value(text: str, metric: str) -> float | None:
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


_ANY_METRIC = re.compile(rf"[ \t]*([A-Za-z_][\w.\-/]*)[ \t]*:[ \t]*{_NUMBER}[ \t]*")


def metric_names(text: str) -> list[str]:
    """The names of the `<name>: <number>` lines of an output, the last printed last, each once."""
    names: dict[str, None] = {}
    for line in text.splitlines():
        found = _ANY_METRIC.fullmatch(line)
        if found:
            names.pop(found.group(1), None)
            names[found.group(1)] = None
    return list(names)


def parse_metric(text: str, metric: str) -> float | None:
    """The value of the last line `<metric>: <float>` in `text`; None when there is none or it is nan or inf."""
    value = last_value(text, metric)
    return value if value is not None and math.isfinite(value) else None


class LogReader(threading.Thread):
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
            self.out.flush()  # the log grows as the run prints, so a person (or the review's live tail) can follow it
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


def tail(text: str) -> str:
    """The last lines of a log, bounded."""
    lines = text.splitlines()[-TAIL_LINES:]
    return "\n".join(lines)[-TAIL_CHARS:]
