"""The process table: finding every live process of a tree or of a marked run, and ending them all (Linux /proc)."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

PROC = "/proc"
KILL_LIMIT = 30.0  # seconds of SIGKILL rounds before giving up on a process stuck in the kernel (state D)


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


def busy_seconds(cpus: Iterable[int]) -> float | None:
    """CPU seconds the cores `cpus` have spent busy since boot, whoever ran (user, nice, system, irq, softirq,
    steal), from /proc/stat; None where it cannot be read. Two readings around a run say how busy its cores were."""
    raw = _read(f"{PROC}/stat")
    if raw is None:
        return None
    wanted = {f"cpu{c}" for c in cpus}
    ticks = 0
    for line in raw.decode(errors="replace").splitlines():
        fields = line.split()
        if fields and fields[0] in wanted and len(fields) >= 9:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[1:9])
            ticks += user + nice + system + irq + softirq + steal
    return ticks / os.sysconf("SC_CLK_TCK") if wanted else None


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


def stat(pid: int) -> ProcInfo | None:
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
        info = stat(pid)
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
    return [info.pid for info in sweep(f"{name}={value}".encode(), (), None, 0)]


def kill_marked(name: str, value: str, *, grace: float = 5.0) -> list[int]:
    """End every process whose environment holds `name=value`, and its descendants, as Child.kill_tree ends a tree:
    for the runs a harness killed with -9 left behind. Returns the pids found; [] on a system without /proc."""
    if not has_proc():
        return []
    entry = f"{name}={value}".encode()
    seen: set[int] = set()

    def find(act: Callable[[int], None]) -> list[ProcInfo]:
        members = sweep(entry, (), None, 0, act)
        seen.update(info.pid for info in members)
        return members

    end(find, grace)
    return sorted(seen)


def sweep(
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
        if name.isdigit() and (info := stat(int(name))) is not None:
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
            if (info := stat(pid)) is not None and belongs(info):
                take(info)
        start = end
    return [found[pid] for pid in sorted(found)]


def _signal(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        # It may have ended between the scan and the signal, or not be ours to signal.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def killpg(pgid: int, sig: int) -> bool:
    """Signal a process group; False when the group has no process left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone's process is in it that we may not signal; the scan handles ours
    return True


def end(
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
