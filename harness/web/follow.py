"""Following a growing file from a byte offset: only the bytes written since the last look are read."""

from __future__ import annotations

import os
from pathlib import Path

MAX_READ = 8 * 2**20  # bytes read per look at most; the rest waits for the next look


class Follow:
    """The whole lines appended to a file after `offset`, one look at a time. A line still being written waits for
    its newline; a file that shrank (a torn last line repaired) is followed from its new end."""

    def __init__(self, path: Path, offset: int) -> None:
        self.path = path
        self.offset = offset
        self.read_bytes = 0  # every byte read so far, for a benchmark to check that only new bytes are read

    def lines(self) -> list[bytes]:
        """The complete lines written since the last call."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return []
        try:
            size = os.fstat(fd).st_size
            if size < self.offset:
                self.offset = size
            if size == self.offset:
                return []
            data = os.pread(fd, min(size - self.offset, MAX_READ), self.offset)
        finally:
            os.close(fd)
        self.read_bytes += len(data)
        cut = data.rfind(b"\n") + 1
        if cut == 0 and len(data) == MAX_READ:
            self.offset += len(data)  # one line longer than a look is no row of ours: passed over
            return []
        self.offset += cut
        return [line for line in data[:cut].split(b"\n") if line.strip()]


def size(path: Path) -> int:
    """The size of a file, 0 when there is none."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
