"""The resource limits of every run and evaluator: sized from the machine and the number of workers, changed by
program.md, enforced by the kernel (a cgroup of its own per process tree where the harness may make one, sized
tmpfs mounts, rlimits as the last resort), and the tree's own peak memory and CPU time from the same accounting."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

GIB = 2**30
MIB = 2**20
RESERVE = 0.15  # of the RAM, at least RESERVE_MIN, kept for the harness and the system: never given to runs
RESERVE_MIN = 1 * GIB
PROCESSES_BASE = 1024  # processes and threads of one run: this, and PROCESSES_PER_CORE per core
PROCESSES_PER_CORE = 32
OUTPUT_SHARE = 0.1  # of the disk space free at start, the most one run may write (its output and its scratch copy)
OUTPUT_MAX = 50 * GIB
PREFIX = "autoresearch-"
CGROUPS = Path("/sys/fs/cgroup")
# The tiny trusted program that puts itself (and so all it starts) into the cgroups and under the rlimits, then
# becomes the command: no race, since nothing of the command runs before. -S: no site import, so it starts in ms.
CONFINE = (
    "import json, os, resource, sys\n"
    "spec = json.loads(sys.argv[1])\n"
    "for path in spec['procs']:\n"
    "    with open(path, 'w') as f:\n"
    "        f.write(str(os.getpid()))\n"
    "for name, value in spec['rlimits'].items():\n"
    "    kind = getattr(resource, name)\n"
    "    hard = resource.getrlimit(kind)[1]\n"
    "    value = value if hard == resource.RLIM_INFINITY else min(value, hard)\n"
    "    resource.setrlimit(kind, (value, value))\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes from a size as a person writes it: 8G, 8GiB, 512 MB, 1.5T (binary units); ValueError otherwise."""
    found = _SIZE.match(text)
    if not found or (found.group(2) == "" and not text.strip().lower().endswith("b")):
        raise ValueError(f"{text!r} is not a size; write it with a unit, like 8G or 512M")
    return int(float(found.group(1)) * _UNITS[found.group(2).lower()])


def shown(size: int) -> str:
    """A size as a person reads it: 8 GiB, 512 MiB."""
    for unit, name in ((2**40, "TiB"), (GIB, "GiB"), (MIB, "MiB"), (2**10, "KiB")):
        if size >= unit:
            value = size / unit
            return f"{value:.0f} {name}" if value.is_integer() or value >= 10 else f"{value:.1f} {name}"
    return f"{size} bytes"


@dataclass(frozen=True)
class Limits:
    """What one run or evaluator may use: memory (its processes and what it writes to its tmpfs mounts), processes
    and threads, and bytes written to disk (its output folder and its scratch copy, each file too)."""

    memory: int
    processes: int
    output: int

    def describe(self) -> str:
        return f"memory {shown(self.memory)}, {self.processes} processes, output {shown(self.output)}"


def machine_memory() -> int:
    """The RAM this process may use: the machine's, or less when its own cgroup says so."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in _own_limit_files():
        with contextlib.suppress(OSError, ValueError):
            text = path.read_text().strip()
            if text != "max":
                total = min(total, int(text))
    return total


def _own_limit_files() -> list[Path]:
    found = []
    for hierarchy, controllers, place in _own_cgroups():
        if hierarchy == "0":
            found.append(CGROUPS / place.lstrip("/") / "memory.max")
        elif "memory" in controllers:
            found.append(CGROUPS / "memory" / place.lstrip("/") / "memory.limit_in_bytes")
    return found


def defaults(workers: int, disk: Path) -> Limits:
    """Limits sized from the machine: its RAM (less a reserve for the system and the harness) and the disk space free
    at `disk`, shared by `workers` runs at once; processes from the number of cores."""
    ram = machine_memory()
    reserve = max(RESERVE_MIN, int(ram * RESERVE))
    workers = max(1, workers)
    memory = max(256 * MIB, (ram - reserve) // workers)
    cores = os.cpu_count() or 1
    free = shutil.disk_usage(disk).free if disk.exists() else 10 * GIB
    output = max(256 * MIB, min(OUTPUT_MAX, int(free * OUTPUT_SHARE) // workers))
    return Limits(memory, PROCESSES_BASE + PROCESSES_PER_CORE * cores, output)


def resolve(memory: str, processes: int | str, output: str, workers: int, disk: Path) -> Limits:
    """The limits program.md asks for (`auto`: the machine's defaults for `workers` runs at once, see defaults)."""
    auto = defaults(workers, disk)
    return Limits(
        auto.memory if memory == "auto" else parse_size(memory),
        auto.processes if processes == "auto" else int(processes),
        auto.output if output == "auto" else parse_size(output),
    )


# --- the kernel's controls -------------------------------------------------------------------------------------


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


def find_control() -> Control:
    """The cgroups this harness may make, v2 first (with the memory and pids controllers), else v1's memory, pids
    and cpuacct hierarchies; Control(0, why) when it may make none."""
    if not sys.platform.startswith("linux"):
        return Control(0, why="no cgroups on this system")
    mounts, own = _mounts(), _own_cgroups()
    v2 = next((place for hierarchy, _, place in own if hierarchy == "0"), None)
    if "" in mounts and v2 is not None:
        folder = mounts[""] / v2.lstrip("/")
        with contextlib.suppress(OSError):
            enabled = set((folder / "cgroup.subtree_control").read_text().split())
            if not {"memory", "pids"} <= enabled:
                with contextlib.suppress(OSError):  # refused while this cgroup holds processes (no delegation)
                    (folder / "cgroup.subtree_control").write_text("+memory +pids")
                enabled = set((folder / "cgroup.subtree_control").read_text().split())
            if {"memory", "pids"} <= enabled and _writable(folder):
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
    return Control(0, why="no cgroup this user may make (cgroup v2 needs its memory and pids controllers delegated)")


@dataclass(frozen=True)
class Usage:
    """What a cgroup's tree used, read as it is removed."""

    peak_memory: int | None = None  # bytes
    cpu_seconds: float | None = None
    out_of_memory: bool = False
    out_of_processes: bool = False


class Cgroup:
    """One cgroup (v1: one per controller) for one process tree: its limits, and after it ends, what it used."""

    def __init__(self, control: Control, limits: Limits) -> None:
        self.control = control
        self.limits = limits
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
        memory, pids = str(self.limits.memory), str(self.limits.processes)
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


@dataclass(frozen=True)
class Enforcement:
    """How this machine enforces Limits: which cgroups, which rlimits, and what each mechanism covers."""

    limits: Limits
    control: Control

    def describe(self) -> str:
        """One line for the start: the limits and what enforces each."""
        memory = "cgroup" if self.control.memory else "not enforced (no memory cgroup)"
        pids = "cgroup" if self.control.pids else "rlimit of the run's user"
        cg = f"cgroup v{self.control.version}" if self.control.version else "no cgroup"
        return (
            f"limits per run and evaluator: {self.limits.describe()} ({cg}; memory: {memory}, tmpfs mounts sized "
            f"and charged to it; processes: {pids}; output: each file by rlimit, the total watched)"
        )

    def rlimits(self) -> dict[str, int]:
        """The rlimits a confined tree gets: a file's size always; processes only without a pids cgroup."""
        out = {"RLIMIT_FSIZE": self.limits.output}
        if not self.control.pids:
            out["RLIMIT_NPROC"] = self.limits.processes
        return out

    def tmpfs_size(self) -> int:
        """The size of each of the tree's tmpfs mounts (/tmp and /dev/shm): the memory limit, whose cgroup counts
        their pages; without one, half each, so that together they stay within it."""
        return self.limits.memory if self.control.memory else self.limits.memory // 2

    def cgroup(self) -> Cgroup | None:
        """A fresh cgroup for one tree, or None when this machine gives none (or refuses one now: the rlimits and
        the sized tmpfs mounts still hold)."""
        if not self.control.version:
            return None
        try:
            return Cgroup(self.control, self.limits)
        except OSError:
            return None

    def wrap(self, argv: Sequence[str], cgroup: Cgroup | None) -> list[str]:
        """`argv` started inside `cgroup` and under the rlimits."""
        spec = {"procs": cgroup.procs() if cgroup else [], "rlimits": self.rlimits()}
        return [sys.executable, "-I", "-S", "-c", CONFINE, json.dumps(spec), *argv]
