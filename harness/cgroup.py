"""The kernel's control groups: where this harness may make one per process tree (cgroup v2, or v1's memory, pids
and cpuacct hierarchies), each tree's limits in it, and what the tree used, read from the kernel's accounting."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

PREFIX = "autoresearch-"
CGROUPS = Path("/sys/fs/cgroup")


def own_limit_files() -> list[Path]:
    """The files that say how much memory this process's own cgroups allow it."""
    found = []
    for hierarchy, controllers, place in _own_cgroups():
        if hierarchy == "0":
            found.append(CGROUPS / place.lstrip("/") / "memory.max")
        elif "memory" in controllers:
            found.append(CGROUPS / "memory" / place.lstrip("/") / "memory.limit_in_bytes")
    return found


def _own_cgroups() -> list[tuple[str, set[str], str]]:
    """(hierarchy id, controllers, path) of this process's cgroups, from /proc/self/cgroup."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, place = rest.partition(":")
        out.append((hierarchy, set(filter(None, controllers.split(","))), place))
    return out


def _mounts() -> dict[str, Path]:
    """Where each cgroup v1 controller is mounted ("" for the v2 hierarchy)."""
    found: dict[str, Path] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) >= 4 and fields[2] == "cgroup2":
                found.setdefault("", Path(fields[1]))
            elif len(fields) >= 4 and fields[2] == "cgroup":
                for option in fields[3].split(","):
                    found.setdefault(option, Path(fields[1]))
    return found


@dataclass(frozen=True)
class Control:
    """The cgroup folders where this harness makes one cgroup per process tree: (v1) one per controller, or (v2)
    one folder; empty when it may make none."""

    version: int  # 1, 2, or 0: no cgroup
    parents: tuple[tuple[str, Path], ...] = ()  # (controller, folder its cgroups are made in); v2: ("", folder)
    why: str = ""  # why there is none, or what is missing

    @property
    def memory(self) -> bool:
        return self.version == 2 or any(c == "memory" for c, _ in self.parents)

    @property
    def pids(self) -> bool:
        return self.version == 2 or any(c == "pids" for c, _ in self.parents)


def _writable(folder: Path) -> bool:
    """Whether a cgroup can be made in `folder` (tried: permission bits do not tell)."""
    probe = folder / f"{PREFIX}probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        probe.mkdir()
    except OSError:
        return False
    with contextlib.suppress(OSError):
        probe.rmdir()
    return True


def _delegated(folder: Path) -> bool:
    """Whether cgroups made in the v2 `folder` get the memory and pids controllers, enabling them if need be. A
    cgroup that holds processes may not enable them for its children, so when this process is the only one in
    `folder` (a delegated scope: `systemd-run --user --scope -p Delegate=yes`), it first moves into a leaf there."""
    control, wanted = folder / "cgroup.subtree_control", {"memory", "pids"}
    try:
        if wanted <= set(control.read_text().split()):
            return True
        if not wanted <= set((folder / "cgroup.controllers").read_text().split()):
            return False
    except OSError:
        return False
    with contextlib.suppress(OSError):
        control.write_text("+memory +pids")
        return wanted <= set(control.read_text().split())
    leaf = folder / f"{PREFIX}harness-{os.getpid()}"
    try:
        leaf.mkdir(exist_ok=True)
        (leaf / "cgroup.procs").write_text(str(os.getpid()))
        control.write_text("+memory +pids")
        return wanted <= set(control.read_text().split())
    except OSError:  # other processes share the cgroup: not ours to rearrange
        with contextlib.suppress(OSError):
            (folder / "cgroup.procs").write_text(str(os.getpid()))
        with contextlib.suppress(OSError):
            leaf.rmdir()
        return False


def find_control() -> Control:
    """The cgroups this harness may make, v2 first (with the memory and pids controllers), else v1's memory, pids
    and cpuacct hierarchies; Control(0, why) when it may make none."""
    if not sys.platform.startswith("linux"):
        return Control(0, why="no cgroups on this system")
    mounts, own = _mounts(), _own_cgroups()
    v2 = next((place for hierarchy, _, place in own if hierarchy == "0"), None)
    if "" in mounts and v2 is not None:
        folder = mounts[""] / v2.lstrip("/")
        if _delegated(folder) and _writable(folder):
            return Control(2, (("", folder),))
    parents = []
    for controller in ("memory", "pids", "cpuacct"):
        place = next((p for _, names, p in own if controller in names), None)
        if controller in mounts and place is not None:
            folder = mounts[controller] / place.lstrip("/")
            if _writable(folder):
                parents.append((controller, folder))
    if parents:
        missing = {"memory", "pids"} - {c for c, _ in parents}
        return Control(1, tuple(parents), f"no {' or '.join(sorted(missing))} cgroup" if missing else "")
    return Control(0, why="no cgroup this user may make (with cgroup v2, start the night in a delegated scope: "
                   "systemd-run --user --scope -p Delegate=yes autoresearch run ...)")  # fmt: skip


@dataclass(frozen=True)
class Usage:
    """What a cgroup's tree used, read as it is removed."""

    peak_memory: int | None = None  # bytes
    cpu_seconds: float | None = None
    out_of_memory: bool = False
    out_of_processes: bool = False


class Cgroup:
    """One cgroup (v1: one per controller) for one process tree: its limits, and after it ends, what it used."""

    def __init__(self, control: Control, memory: int, processes: int) -> None:
        self.control = control
        self.memory, self.processes = memory, processes
        self.usage = Usage()  # filled in by remove()
        self.removed = False
        name = f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.folders: dict[str, Path] = {}
        for controller, parent in control.parents:
            folder = parent / name
            folder.mkdir()
            self.folders[controller] = folder
        try:
            self._set_limits()
        except OSError:
            self.remove()
            raise

    def _file(self, controller: str, v1: str, v2: str) -> Path | None:
        if self.control.version == 2:
            return self.folders[""] / v2
        folder = self.folders.get(controller)
        return folder / v1 if folder is not None else None

    def _set_limits(self) -> None:
        memory, pids = str(self.memory), str(self.processes)
        if self.control.version == 2:
            (self.folders[""] / "memory.max").write_text(memory)
            with contextlib.suppress(OSError):  # no swap to escape to, where the kernel accounts it
                (self.folders[""] / "memory.swap.max").write_text("0")
            (self.folders[""] / "pids.max").write_text(pids)
            return
        if "memory" in self.folders:
            (self.folders["memory"] / "memory.limit_in_bytes").write_text(memory)
            with contextlib.suppress(OSError):
                (self.folders["memory"] / "memory.memsw.limit_in_bytes").write_text(memory)
        if "pids" in self.folders:
            (self.folders["pids"] / "pids.max").write_text(pids)

    def procs(self) -> list[str]:
        """The cgroup.procs files a process writes its pid in to join."""
        return [str(folder / "cgroup.procs") for folder in self.folders.values()]

    def _read(self, path: Path | None) -> str:
        if path is None:
            return ""
        try:
            return path.read_text()
        except OSError:
            return ""

    def _count(self, path: Path | None, key: str) -> int:
        for line in self._read(path).splitlines():
            name, _, value = line.partition(" ")
            if name == key and value.strip().isdigit():
                return int(value)
        return 0

    def peak_memory(self) -> int | None:
        """The most memory the tree held at once, its tmpfs pages included; None when not accounted."""
        text = self._read(self._file("memory", "memory.max_usage_in_bytes", "memory.peak")).strip()
        return int(text) if text.isdigit() else None

    def cpu_seconds(self) -> float | None:
        """The CPU time of every process the tree had, daemons included; None when not accounted."""
        if self.control.version == 2:
            used = self._count(self.folders[""] / "cpu.stat", "usage_usec")
            return used / 1e6 if self._read(self.folders[""] / "cpu.stat") else None
        text = self._read(self._file("cpuacct", "cpuacct.usage", "")).strip()
        return int(text) / 1e9 if text.isdigit() else None

    def out_of_memory(self) -> bool:
        """Whether the kernel killed a process of the tree for the memory limit."""
        if self.removed:
            return self.usage.out_of_memory
        events = self._file("memory", "memory.oom_control", "memory.events")
        return self._count(events, "oom_kill") > 0

    def out_of_processes(self) -> bool:
        """Whether the tree tried to have more processes than its limit."""
        if self.removed:
            return self.usage.out_of_processes
        return self._count(self._file("pids", "pids.events", "pids.events"), "max") > 0

    def alive(self) -> int:
        """How many processes are in it now."""
        return sum(len(self._read(Path(path)).split()) for path in self.procs())

    def kill(self) -> None:
        """SIGKILL every process in it (what a kill of the tree missed, for one)."""
        for path in self.procs():
            for pid in self._read(Path(path)).split():
                with contextlib.suppress(OSError, ValueError):
                    os.kill(int(pid), 9)

    def remove(self, wait: float = 5.0) -> None:
        """Remove its folders, once its processes are gone (ended by the caller; killed here after `wait`), keeping
        what the tree used in `usage`."""
        if self.removed:
            return
        deadline = time.monotonic() + wait
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.alive():
            self.kill()
        self.usage = Usage(self.peak_memory(), self.cpu_seconds(), self.out_of_memory(), self.out_of_processes())
        self.removed = True
        for folder in self.folders.values():
            for _ in range(100):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


@functools.cache
def control() -> Control:
    """find_control, once per process."""
    return find_control()
