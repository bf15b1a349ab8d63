"""One loop per repository: the lock a running loop holds, and the stop request another terminal leaves for it."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from harness.errors import LockedError


class LoopLock:
    """An flock on runs/loop.lock; the kernel drops it when the holder dies, so a kill -9 never leaves it stale."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LockedError(
                f"another loop is running on this repository (pid {pid}); stop it with 'autoresearch stop'"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> LoopLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder(path: Path) -> int | None:
    """The pid of the loop holding the lock, or None when no loop runs."""
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 32).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def request_stop(lock: Path, stop: Path) -> int:
    """Ask the running loop to stop after its current experiment; returns its pid. LockedError-free: no loop is fine."""
    pid = holder(lock)
    if pid is None:
        raise LockedError("no loop is running on this repository")
    stop.parent.mkdir(parents=True, exist_ok=True)
    stop.write_text(str(pid))
    return pid
