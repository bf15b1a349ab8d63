"""
How fast the review's pages are on a big night, and what a live update reads.

Usage:
    python bench/web.py              # a 10,000-experiment night (and its 10,000 runs), two workers
    python bench/web.py -n 30000

A real `autoresearch serve` (a subprocess) over a repository whose ledger holds one night of N experiments, written
as the loop writes them (harness.testing.nights). Timed over HTTP, each the median of 5 after one request that
warms nothing but the interpreter: the night page (/tag/<tag>) with a changed ledger each time (the whole ledger read
again, as while a night runs), the same page again with the ledger unchanged, its JSON, and the nights (/).
Then the live path: one row appended to the ledger, the seconds until its event arrives on /events/<tag>, and how
many bytes a follower reads for it (against the ledger's size). Goal: the night page under a second; a live update
reads only the new row.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from harness.ledger import Ledger
from harness.testing import make_repo, toy_program
from harness.testing.nights import experiment_row, write_night
from harness.testing.repos import TOY_TRAIN
from harness.web.follow import Follow

GOAL_S = 1.0
REPEATS = 5
TAG = "big"


def cpu(pid: int) -> float:
    """The CPU seconds a process has used (user and system), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fetch(url: str, pid: int) -> tuple[float, float, int]:
    """Wall seconds, the server's CPU seconds and the bytes of one request."""
    used, start = cpu(pid), time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as response:
        body = response.read()
    return time.perf_counter() - start, cpu(pid) - used, len(body)


def report(name: str, samples: list[tuple[float, float, int]]) -> float:
    wall, busy = statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)
    print(f"{name:<30}{wall:.3f} s wall, {busy:.2f} s of the server's CPU ({samples[0][2] / 2**20:.1f} MiB)")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=10_000, help="experiments in the night")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = make_repo(Path(tmp) / "repo", {"train.py": TOY_TRAIN, "program.md": toy_program()})
        made = time.perf_counter()
        write_night(root, TAG, args.n, workers=2)
        ledger = root / "experiments.log"
        print(f"ledger: {args.n:,} experiments, {ledger.stat().st_size / 2**20:.1f} MiB, written in "
              f"{time.perf_counter() - made:.1f} s")  # fmt: skip
        server = subprocess.Popen([sys.executable, "-m", "harness", "serve", "--port", "0"], cwd=root,
                                  stdout=subprocess.PIPE, text=True)  # fmt: skip
        try:
            assert server.stdout is not None
            url = server.stdout.readline().split(" at ", 1)[1].split()[0].rstrip("/")
            pid = server.pid
            fetch(url + "/", pid)
            cold, warm, js, index = [], [], [], []
            for k in range(REPEATS):
                # A note row changes the ledger, so the page reads and builds everything again, as during a night.
                Ledger(ledger).note(TAG, f"bench {k}")
                cold.append(fetch(f"{url}/tag/{TAG}", pid))
                warm.append(fetch(f"{url}/tag/{TAG}", pid))
                Ledger(ledger).note(TAG, f"bench json {k}")
                js.append(fetch(f"{url}/tag/{TAG}.json", pid))
                index.append(fetch(url + "/", pid))
            wall = report("night page, ledger changed", cold)
            report("night page, ledger unchanged", warm)
            report("night page JSON, changed", js)
            report("nights (/)", index)
            load = os.getloadavg()[0]
            print(f"goal: the night page under {GOAL_S:g} s: {'met' if wall < GOAL_S else 'MISSED'} "
                  f"(load average {load:.1f} on {os.cpu_count()} cores)")  # fmt: skip
            live(url, ledger, args.n)
        finally:
            server.terminate()
            server.wait(timeout=10)


def live(url: str, ledger: Path, count: int) -> None:
    """One appended row: how soon its event arrives, and what a follower reads for it."""
    follow = Follow(ledger, ledger.stat().st_size)
    stream = urllib.request.urlopen(f"{url}/events/{TAG}?offset={ledger.stat().st_size}", timeout=30)
    stream.readline()  # the retry line: the stream is open
    row = experiment_row(TAG, count + 1, status="discard", metric=2.5, best=2.0, description="appended by the bench")
    start = time.perf_counter()
    Ledger(ledger).append(row)
    while not stream.readline().startswith(b"event: row"):
        pass
    arrived = time.perf_counter() - start
    stream.close()
    follow.lines()
    added = ledger.stat().st_size - follow.offset + follow.read_bytes
    print(f"live: the appended row's event arrived after {arrived:.2f} s")
    print(f"live: a follower read {follow.read_bytes:,} bytes for it (the row is {added:,} bytes; the ledger "
          f"{ledger.stat().st_size:,})")  # fmt: skip


if __name__ == "__main__":
    main()
