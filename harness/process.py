"""Child processes: spawning one in its own session with a scrubbed environment, and ending its whole tree."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL
STDOUT = subprocess.STDOUT

MARKER = "AUTORESEARCH_RUN_ID"  # every descendant inherits it, so a process that left the group is still found
PROC = "/proc"
KILL_LIMIT = 30.0  # seconds of SIGKILL rounds before giving up on a process stuck in the kernel (state D)

_SECRET_WORDS = (
    "KEY",
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "CREDENTIAL",
    "AUTH",
    "COOKIE",
    "PRIVATE",
)
_SECRET_PREFIXES = ("ANTHROPIC_", "OPENAI_", "AWS_")
# Values that are credentials whatever the variable is called: API keys, GitHub/GitLab/Slack/Hugging Face tokens,
# AWS access key ids, PEM private keys, and URLs with a password in them (DATABASE_URL=postgres://u:pw@host).
_SECRET_VALUE = re.compile(
    r"^(sk-|gh[pousr]_|github_pat_|glpat-|xox|-----BEGIN)"
    r"|sk-ant-"
    r"|^(AKIA|ASIA)[A-Z0-9]{16}$"
    r"|^hf_[A-Za-z0-9]{30,}$"
    r"|://[^/\s:@]+:[^/\s@]+@"
)


def is_secret(name: str, value: str) -> bool:
    """Whether a variable looks like a credential, by its name or by its value."""
    upper = name.upper()
    if upper.startswith(_SECRET_PREFIXES) or any(word in upper for word in _SECRET_WORDS):
        return True
    return _SECRET_VALUE.search(value.strip()) is not None


def scrub_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of `env` (default os.environ) without anything that looks like a credential."""
    source = os.environ if env is None else env
    return {name: value for name, value in source.items() if not is_secret(name, value)}


@dataclass(frozen=True)
class ProcInfo:
    """One line of the process table, as read from /proc/<pid>/stat."""

    pid: int
    ppid: int
    pgrp: int
    state: str
    started: int  # clock ticks after boot

    @property
    def dead(self) -> bool:
        # A zombie (Z) or exiting (X) process runs no code and holds no memory or GPU; only its parent's wait is due.
        return self.state in ("Z", "X")


@functools.cache
def has_proc() -> bool:
    """Whether the process table can be scanned (Linux); elsewhere only the process group is used."""
    return sys.platform.startswith("linux") and os.path.isdir(PROC)


def _read(path: str) -> bytes | None:
    """A file of /proc, or None when its process is gone or not ours to read. Plain os calls: a sweep reads two files
    of every process on the machine, and pathlib's overhead would be most of its cost."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except (ProcessLookupError, PermissionError):
        return None  # ended, or exec'd into something we may not read, between the open and the read
    finally:
        os.close(fd)
    return b"".join(chunks)


def _stat(pid: int) -> ProcInfo | None:
    raw = _read(f"{PROC}/{pid}/stat")
    if raw is None:
        return None
    # comm, in parentheses, may itself hold spaces and parentheses: the fields start after the last ')'.
    fields = raw[raw.rfind(b")") + 2 :].split()
    if len(fields) < 20:
        return None
    return ProcInfo(
        pid=pid, state=fields[0].decode(), ppid=int(fields[1]), pgrp=int(fields[2]), started=int(fields[19])
    )


def _has_marker(pid: int, entry: bytes) -> bool:
    environ = _read(f"{PROC}/{pid}/environ")
    return environ is not None and entry in environ.split(b"\0")


def _protected() -> set[int]:
    """This process and its ancestors: never signalled, whatever a scan says."""
    pids = {0, 1, os.getpid()}
    pid = os.getppid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        info = _stat(pid)
        pid = info.ppid if info else 0
    return pids


def _last_pid() -> int | None:
    """The pid the kernel handed out last in this pid namespace, or None where that cannot be read."""
    raw = _read(f"{PROC}/sys/kernel/ns_last_pid")
    return int(raw) if raw and raw.strip().isdigit() else None


def _pid_max() -> int:
    raw = _read(f"{PROC}/sys/kernel/pid_max")
    return int(raw) if raw and raw.strip().isdigit() else 2**22


def scan(name: str, value: str) -> list[int]:
    """Live pids whose environment holds `name=value`, and their descendants. Linux only."""
    return [info.pid for info in _sweep(f"{name}={value}".encode(), (), None, 0)]


def kill_marked(name: str, value: str, *, grace: float = 5.0) -> list[int]:
    """End every process whose environment holds `name=value`, and its descendants, as Child.kill_tree ends a tree:
    for the runs a harness killed with -9 left behind. Returns the pids found; [] on a system without /proc."""
    if not has_proc():
        return []
    entry = f"{name}={value}".encode()
    seen: set[int] = set()

    def sweep(act: Callable[[int], None]) -> list[ProcInfo]:
        members = _sweep(entry, (), None, 0, act)
        seen.update(info.pid for info in members)
        return members

    _end(sweep, grace)
    return sorted(seen)


def _sweep(
    entry: bytes, roots: Iterable[int], pgrp: int | None, born: int, act: Callable[[int], None] | None = None
) -> list[ProcInfo]:
    """The live members of a tree: processes with `entry` in their environment, in group `pgrp`, or descended from
    those or from `roots`, started at or after `born` (clock ticks after boot). Calls `act` on each the moment it is
    found, so that a process that keeps forking is signalled before it can fork again."""
    protected = _protected()
    family = set(roots)  # pids of the tree, dead or alive: a process whose parent is one of them is one too
    found: dict[int, ProcInfo] = {}

    def take(info: ProcInfo) -> None:
        family.add(info.pid)
        if not info.dead and info.pid not in protected and info.pid not in found:
            found[info.pid] = info
            if act is not None:
                act(info.pid)

    def belongs(info: ProcInfo) -> bool:
        if info.started < born:
            return False  # older than the run's first process, so not of its tree; and its environment goes unread
        if info.pid in family or info.ppid in family or (pgrp is not None and info.pgrp == pgrp):
            return True
        return not info.dead and _has_marker(info.pid, entry)

    start = _last_pid()
    table: dict[int, ProcInfo] = {}
    for name in os.listdir(PROC):
        if name.isdigit() and (info := _stat(int(name))) is not None:
            table[info.pid] = info
            if belongs(info):
                take(info)
    # The walk by parent pid finds a descendant that exec'd with an empty environment and also left the group,
    # whatever the order its pid had in the listing.
    children: dict[int, list[int]] = {}
    for info in table.values():
        children.setdefault(info.ppid, []).append(info.pid)
    stack = [pid for pid in family if pid in children]
    while stack:
        for kid in children.get(stack.pop(), ()):
            if kid not in family:
                take(table[kid])
                stack.append(kid)
    # A listing is not a snapshot: a child born while it was read, of a parent that then died, is in neither. Every
    # such child has a pid handed out since the listing began, so those pids are checked too, until none is new.
    for _ in range(1000):
        end = _last_pid()
        if start is None or end is None or end == start:
            break
        fresh = range(start + 1, end + 1) if end > start else [*range(start + 1, _pid_max()), *range(1, end + 1)]
        for pid in fresh:
            if (info := _stat(pid)) is not None and belongs(info):
                take(info)
        start = end
    return [found[pid] for pid in sorted(found)]


def _signal(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        # It may have ended between the scan and the signal, or not be ours to signal.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _killpg(pgid: int, sig: int) -> bool:
    """Signal a process group; False when the group has no process left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone's process is in it that we may not signal; the scan handles ours
    return True


def _end(
    sweep: Callable[[Callable[[int], None]], list[ProcInfo]],
    grace: float,
    each_round: Callable[[list[ProcInfo], bool], None] | None = None,
) -> list[int]:
    """SIGTERM whatever `sweep` finds, SIGKILL what is left after `grace` seconds, and repeat until a sweep finds
    nothing. Returns the pids that would not die (stuck in the kernel), normally []."""
    deadline = time.monotonic() + grace
    stop: float | None = None  # when SIGKILL rounds give up on a process stuck in the kernel; set once they start
    termed: set[int] = set()  # SIGTERM once per process: a second one means "quit now" to some programs

    def term(pid: int) -> None:
        if pid not in termed:
            termed.add(pid)
            _signal([pid], signal.SIGTERM)

    def kill(pid: int) -> None:
        _signal([pid], signal.SIGKILL)

    delay = 0.001
    while True:
        members = sweep(term if stop is None else kill)
        if not members:
            return []
        if each_round is not None:
            each_round(members, stop is not None)
        now = time.monotonic()
        if stop is None and now >= deadline:
            stop = now + KILL_LIMIT
            continue  # straight on to the first SIGKILL round
        if stop is not None and now >= stop:
            return [info.pid for info in members]
        time.sleep(delay if stop is not None else max(0.0, min(delay, deadline - now)))
        delay = min(delay * 2, 0.05)


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
        info = _stat(self.pid) if has_proc() else None
        self.born = info.started if info else 0
        self.stdin = self._popen.stdin
        self.stdout = self._popen.stdout
        self.stderr = self._popen.stderr
        self.returncode: int | None = None
        self.maxrss_kib: int | None = None
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
            self._finish(0, None)
            return self.returncode
        if pid == 0:
            return None
        self._finish(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
        return self.returncode

    def _finish(self, code: int, maxrss: int | None) -> None:
        self.returncode = code
        self._popen.returncode = code  # so that Popen never waits for a pid that is no longer ours
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
        if not has_proc():
            return [self.pgid] if _killpg(self.pgid, 0) else []
        return [info.pid for info in self._sweep()]

    def _sweep(self, act: Callable[[int], None] | None = None) -> list[ProcInfo]:
        roots = [self.pid] if self.returncode is None else []
        # The group id stays reserved while any member of the group lives, so after the reap its members are still
        # ours: this finds one that exec'd with an empty environment (losing the marker) and was orphaned.
        return _sweep(f"{MARKER}={self.run_id}".encode(), roots, self.pgid, self.born, act)

    def kill_tree(self, grace: float = 5.0) -> list[int]:
        """SIGTERM every process of the tree, SIGKILL what is left after `grace` seconds, and repeat until nothing
        of it is alive; reaps the child. Returns the pids that would not die (stuck in the kernel), normally []."""
        if not has_proc():
            return self._kill_group(grace)

        def sweep(act: Callable[[int], None]) -> list[ProcInfo]:
            self.poll()  # a dead direct child is a zombie until reaped: reap it so it stops counting
            return self._sweep(act)

        def each_round(members: list[ProcInfo], killing: bool) -> None:
            # killpg is atomic against fork, which one signal per pid is not. After the reap it is safe only while a
            # live member shows that the group id is still ours.
            if killing and (self.returncode is None or any(info.pgrp == self.pgid for info in members)):
                _killpg(self.pgid, signal.SIGKILL)

        left = _end(sweep, grace, each_round)
        if left:
            return left
        # It may have died after the last poll: a zombie counts as dead, so it is there to be reaped.
        return [] if self.wait(1.0) is not None else [self.pid]

    def _kill_group(self, grace: float) -> list[int]:
        """kill_tree without /proc: the process group is all that can be found."""
        _killpg(self.pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self.poll() is None or _killpg(self.pgid, 0):
            if time.monotonic() >= deadline:
                break
            time.sleep(0.01)
        stop = time.monotonic() + KILL_LIMIT
        while _killpg(self.pgid, signal.SIGKILL) and time.monotonic() < stop:
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
# Pass scrub_env(...) as `env` to keep the harness's credentials from the child.
spawn = Child
