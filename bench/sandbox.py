"""
What the OS sandbox adds to one experiment: bwrap's start and end, and the scratch copy the run works in.

Usage:
    python bench/sandbox.py                   # medians of 20, scratch copies under runs/
    python bench/sandbox.py -n 50 --dir /dev/shm

Printed: a plain `true` against a sandboxed one (spawned and reaped as the harness does: a Child, its wait), the
preparation of one run's world (a scratch copy of this repository's tracked files, given to the sandbox's uid, and
the command line), its removal (which can wait until the run is over), the start-up probe (once per process), and
the sum on the critical path against the goal. The copies are made under runs/, where the harness makes them, unless
--dir says elsewhere: the file system matters (a tmpfs is several times faster than a disk).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from harness import jails, process, sandbox
from harness.program import load

GOAL_MS = 30.0  # the sandbox's whole added cost per experiment on a 2-core machine
ROOT = Path(__file__).resolve().parent.parent
ENV = {"PATH": "/usr/bin:/bin", "HOME": sandbox.HOME}


def median_ms(times: int, step: Callable[[], None]) -> float:
    spent = []
    for _ in range(times):
        start = time.perf_counter()
        step()
        spent.append(time.perf_counter() - start)
    return statistics.median(spent) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=20, help="repetitions per figure")
    parser.add_argument("--dir", type=Path, default=ROOT / "runs", help="where the scratch copies go")
    args = parser.parse_args()
    n, where = args.n, args.dir.resolve()

    start = time.perf_counter()
    sb = sandbox.probe("auto")
    probe_ms = (time.perf_counter() - start) * 1000
    if not sb.active:
        raise SystemExit(f"no sandbox on this machine: {sb.missing}")
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    config = load(ROOT / "program.md").config  # the bundled task's: its protected files are shown, not copied
    files, protected = jails.unprotected(tracked, config), jails.guarded(config)

    where.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-", dir=where) as tmp:
        out = Path(tmp, "out")
        out.mkdir()
        sandbox.own(sb, out)
        tree = jails.scratch(sb, ROOT, Path(tmp, "tree"), files)
        view = jails.repo_view(ROOT, tree, protected=protected, writable=[out])
        true = shutil.which("true") or "/bin/true"

        def plain() -> None:
            process.spawn([true], env=ENV).wait()

        def sandboxed() -> None:
            assert sandbox.spawn(sb, view, [true], env=ENV).wait() == 0

        copies = iter(range(n))
        removals = iter(range(n))

        def prepare() -> None:
            copy = jails.scratch(sb, ROOT, Path(tmp, f"copy-{next(copies)}"), files)
            sandbox.command(sb, jails.repo_view(ROOT, copy, protected=protected, writable=[out]), [true])

        def remove() -> None:
            shutil.rmtree(Path(tmp, f"copy-{next(removals)}"))

        plain_ms = median_ms(n, plain)
        sandboxed_ms = median_ms(n, sandboxed)
        prepare_ms = median_ms(n, prepare)
        remove_ms = median_ms(n, remove)

    added = sandboxed_ms - plain_ms + prepare_ms
    mode = "root harness: runs as nobody through setpriv" if sb.user else "unprivileged: a user namespace"
    print("---")
    print(f"bwrap:          {sb.bwrap} ({mode})")
    print(f"true:           {plain_ms:7.1f} ms  (median of {n})")
    print(f"sandboxed true: {sandboxed_ms:7.1f} ms")
    print(f"bwrap adds:     {sandboxed_ms - plain_ms:7.1f} ms")
    copied = f"{len(files)} of {len(tracked)} tracked files in {where}: the protected ones are shown, not copied"
    print(f"scratch copy:   {prepare_ms:7.1f} ms  ({copied}; chown and argv included)")
    print(f"its removal:    {remove_ms:7.1f} ms  (after the run, off the critical path)")
    print(f"added per run:  {added:7.1f} ms  (goal {GOAL_MS:.0f} ms: {'met' if added <= GOAL_MS else 'MISSED'})")
    print(f"probe, once:    {probe_ms:7.1f} ms")


if __name__ == "__main__":
    main()
