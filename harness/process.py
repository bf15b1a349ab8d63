"""Child processes: spawning one in its own session, and ending its whole tree, whatever it did to escape."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from harness import proctable

PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL
STDOUT = subprocess.STDOUT
MARKER = "AUTORESEARCH_RUN_ID"  # every descendant inherits it, so a process that left the group is still found


class Child:
    """A child process started in its own session, tagged so that its every descendant can be found and ended."""

    def __init__(
        self,
        argv: Sequence[str] | str,
        *,
        cwd: Path | str | None = None,
        env: Mapping[str, str] | None = None,
        shell: bool = False,
        stdin: int | IO[Any] | None = DEVNULL,
        stdout: int | IO[Any] | None = None,
        stderr: int | IO[Any] | None = None,
        pass_fds: Sequence[int] = (),
    ) -> None:
        self.run_id = uuid.uuid4().hex
        child_env = dict(os.environ if env is None else env)
        child_env[MARKER] = self.run_id
        self._popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env=child_env,
            shell=shell,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            pass_fds=tuple(pass_fds),
            start_new_session=True,  # own session and group: the terminal's Ctrl-C is the harness's to handle
        )
        self.pid = self._popen.pid
        self.pgid = self.pid
        # Its start time, read while it cannot yet have been reaped: no process of its tree started before it.
        info = proctable.stat(self.pid) if proctable.has_proc() else None
        self.born = info.started if info else 0
        self.stdin = self._popen.stdin
        self.stdout = self._popen.stdout
        self.stderr = self._popen.stderr
        self.returncode: int | None = None
        self.maxrss_kib: int | None = None
        self.cpu_seconds: float | None = None  # user + system time of the child and the descendants it waited for
        self._pidfd: int | None = None
        if hasattr(os, "pidfd_open"):
            try:
                self._pidfd = os.pidfd_open(self.pid)
            except OSError:
                self._pidfd = None  # an old kernel or a sandbox without pidfd: fall back to polling

    # --- waiting ---------------------------------------------------------------------------------------------

    def poll(self) -> int | None:
        """The exit status if the child has ended (reaping it), else None."""
        return self._reap(block=False)

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait up to `timeout` seconds (None: forever) for the child; its exit status, or None if still running.

        The status is negative for a death by signal, as with subprocess."""
        if self.returncode is not None:
            return self.returncode
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._pidfd is not None:
            poller = select.poll()
            poller.register(self._pidfd, select.POLLIN)
            while True:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                # poll() takes milliseconds; round up so that a short timeout never becomes a busy loop.
                if poller.poll(None if left is None else max(1, int(left * 1000 + 0.999))):
                    return self._reap(block=True)
                if deadline is not None and time.monotonic() >= deadline:
                    return self._reap(block=False)
        delay = 0.0005
        while (code := self._reap(block=False)) is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            time.sleep(delay if left is None else min(delay, left))
            delay = min(delay * 2, 0.02)
        return code

    def _reap(self, *, block: bool) -> int | None:
        if self.returncode is not None:
            return self.returncode
        try:
            pid, status, usage = os.wait4(self.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            # Reaped elsewhere (a SIGCHLD handler set to ignore): the status is lost, the process is gone.
            self._finish(0, None, None)
            return self.returncode
        if pid == 0:
            return None
        self._finish(os.waitstatus_to_exitcode(status), usage.ru_maxrss, usage.ru_utime + usage.ru_stime)
        return self.returncode

    def _finish(self, code: int, maxrss: int | None, cpu: float | None) -> None:
        self.returncode = code
        self._popen.returncode = code  # so that Popen never waits for a pid that is no longer ours
        self.cpu_seconds = cpu
        if maxrss is not None:
            # ru_maxrss is in KiB on Linux and in bytes on macOS.
            self.maxrss_kib = maxrss // 1024 if sys.platform == "darwin" else maxrss
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None

    @property
    def peak_mem_mb(self) -> float | None:
        """Peak resident memory of the child and the descendants it waited for, in MiB; None until reaped.

        Linux counts the memory of the process that forked toward the child's peak until the exec, so this is never
        below the harness's own peak resident size."""
        return None if self.maxrss_kib is None else self.maxrss_kib / 1024

    # --- ending the tree -------------------------------------------------------------------------------------

    def survivors(self) -> list[int]:
        """Live pids of the tree (zombies count as dead); on a system without /proc, the group's leader if any lives."""
        if not proctable.has_proc():
            return [self.pgid] if proctable.killpg(self.pgid, 0) else []
        return [info.pid for info in self._sweep()]

    def _sweep(self, act: Callable[[int], None] | None = None) -> list[proctable.ProcInfo]:
        roots = [self.pid] if self.returncode is None else []
        # The group id stays reserved while any member of the group lives, so after the reap its members are still
        # ours: this finds one that exec'd with an empty environment (losing the marker) and was orphaned.
        return proctable.sweep(f"{MARKER}={self.run_id}".encode(), roots, self.pgid, self.born, act)

    def kill_tree(self, grace: float = 5.0) -> list[int]:
        """SIGTERM every process of the tree, SIGKILL what is left after `grace` seconds, and repeat until nothing
        of it is alive; reaps the child. Returns the pids that would not die (stuck in the kernel), normally []."""
        if not proctable.has_proc():
            return self._kill_group(grace)

        def sweep(act: Callable[[int], None]) -> list[proctable.ProcInfo]:
            self.poll()  # a dead direct child is a zombie until reaped: reap it so it stops counting
            return self._sweep(act)

        def each_round(members: list[proctable.ProcInfo], killing: bool) -> None:
            # killpg is atomic against fork, which one signal per pid is not. After the reap it is safe only while a
            # live member shows that the group id is still ours.
            if killing and (self.returncode is None or any(info.pgrp == self.pgid for info in members)):
                proctable.killpg(self.pgid, signal.SIGKILL)

        left = proctable.end(sweep, grace, each_round)
        if left:
            return left
        # It may have died after the last poll: a zombie counts as dead, so it is there to be reaped.
        return [] if self.wait(1.0) is not None else [self.pid]

    def _kill_group(self, grace: float) -> list[int]:
        """kill_tree without /proc: the process group is all that can be found."""
        proctable.killpg(self.pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self.poll() is None or proctable.killpg(self.pgid, 0):
            if time.monotonic() >= deadline:
                break
            time.sleep(0.01)
        stop = time.monotonic() + proctable.KILL_LIMIT
        while proctable.killpg(self.pgid, signal.SIGKILL) and time.monotonic() < stop:
            self.poll()
            time.sleep(0.01)
        self.wait(1.0)
        return self.survivors()

    # --- context manager -------------------------------------------------------------------------------------

    def __enter__(self) -> Child:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill_tree(grace=1.0)

    def close(self) -> None:
        """Close the pipes the harness holds to the child."""
        for stream in (self.stdin, self.stdout, self.stderr):
            if stream is not None:
                stream.close()


# Start `argv` (a command line if `shell`) in a new session, with `env` (default os.environ) plus the run marker.
# Build `env` with harness.childenv, which decides what a child may see.
spawn = Child
