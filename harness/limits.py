"""The resource limits of every run and evaluator: sized from the machine and the number of workers, changed by
program.md, enforced by the kernel (a cgroup of its own per process tree where the harness may make one, sized
tmpfs mounts, rlimits as the last resort), and the tree's own peak memory and CPU time from the same accounting."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness import cgroup
from harness.cgroup import Cgroup, Control

GIB = 2**30
MIB = 2**20
RESERVE = 0.15  # of the RAM, at least RESERVE_MIN, kept for the harness and the system: never given to runs
RESERVE_MIN = 1 * GIB
PROCESSES_BASE = 1024  # processes and threads of one run: this, and PROCESSES_PER_CORE per core
PROCESSES_PER_CORE = 32
OUTPUT_SHARE = 0.1  # of the disk space free at start, the most one run may write (its output and its scratch copy)
OUTPUT_MAX = 50 * GIB
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
    for path in cgroup.own_limit_files():
        with contextlib.suppress(OSError, ValueError):
            text = path.read_text().strip()
            if text != "max":
                total = min(total, int(text))
    return total


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

    def new_cgroup(self) -> Cgroup | None:
        """A fresh cgroup for one tree, or None when this machine gives none (or refuses one now: the rlimits and
        the sized tmpfs mounts still hold)."""
        if not self.control.version:
            return None
        try:
            return Cgroup(self.control, self.limits.memory, self.limits.processes)
        except OSError:
            return None

    def wrap(self, argv: Sequence[str], group: Cgroup | None) -> list[str]:
        """`argv` started inside `group` and under the rlimits."""
        spec = {"procs": group.procs() if group else [], "rlimits": self.rlimits()}
        return [sys.executable, "-I", "-S", "-c", CONFINE, json.dumps(spec), *argv]
