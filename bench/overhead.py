"""
The harness's own time per experiment: wall time of each experiment minus the run's own time.

Usage:
    python bench/overhead.py            # 50 experiments, a trivial run, an agent that answers at once
    python bench/overhead.py -n 200
    python bench/overhead.py --sandbox off   # what the OS sandbox adds: compare with the default (auto)

A trivial run (`echo 'val_bpb: ...'`) and a trivial agent (a fixed edit, returned at once) leave only what the harness
adds: checks, the commit, spawning and reaping the run, hashing protected files, the ledger row (fsync) and the
keep/reset, and (with bubblewrap) the sandbox and its scratch copy of the tree. Printed: the median and p90 over the
experiments, for an in-process agent and for an agent file behind the process boundary (which adds one Python
interpreter start per proposal).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import runner
from harness.agents import build_agent
from harness.session import Options, open_session
from harness.testing import AGENT_FILE, FixedEdit

GOAL_MS = 100.0  # the harness's own time per experiment on a 2-core machine

TRAIN = "X = 1.0  # the knob\nprint('val_bpb: %.6f' % X)\n"


def repo(path: Path, sandbox: str) -> Path:
    path.mkdir()
    (path / "train.py").write_text(TRAIN)
    front = f'run: "echo val_bpb: 1.0"\nbudget: 5\ntimeout: 10\nsandbox: "{sandbox}"\n'
    (path / "program.md").write_text(f"---\n{front}---\nBench.\n")
    (path / "prepare.py").write_text("# fixed\n")
    (path / "agent.py").write_text(AGENT_FILE)
    (path / ".gitignore").write_text("experiments.log\nruns/\n")
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "i"]):
        subprocess.run(["git", *args], cwd=path, check=True)
    return path


class Clock:
    """A screen that notes when each experiment's row was written."""

    def __init__(self) -> None:
        self.rows: list[tuple[float, int]] = []

    def update(self, state: dict[str, Any]) -> None:
        pass

    def row(self, row: Any) -> None:
        self.rows.append((time.perf_counter(), row.id))

    def info(self, text: str) -> None:
        pass


def measure(root: Path, agent_kind: str, n: int) -> tuple[list[float], str]:
    """A night of `n` experiments on the one engine (one worker, none ahead: the classic night); per experiment, the
    wall time from the row before to its row, less the time of the runs made for it (its own and the champion's)."""
    session = open_session(root, Options(tag="bench", agent=agent_kind, max_experiments=n + 1))
    clock = Clock()
    try:
        box = session.sandbox
        protection = f"bubblewrap ({box.bwrap})" if box.active else f"none ({box.missing or 'sandbox: off'})"
        config = session.config
        if agent_kind == "fixed":
            agent = FixedEdit()
        else:
            agent = build_agent(agent_kind, config, session.night, session.layout, session.repo, print, {})
        night = runner.engine(session, agent, clock)
        try:
            night.until_end()
        finally:
            agent.close()
        runs: dict[int, float] = {}
        for m in session.night.measured_rows:
            runs[m.experiment] = runs.get(m.experiment, 0.0) + m.seconds
    finally:
        session.close()
    # The first experiment is left out: the champion's re-runs the keep rule asks for at the start come before it.
    pairs = list(zip(clock.rows, clock.rows[1:], strict=False))[1:]
    overheads = [(t - before - runs.get(i, 0.0)) * 1000 for (before, _), (t, i) in pairs]
    return overheads, protection


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("-n", type=int, default=50, help="experiments per agent")
    parser.add_argument("--sandbox", choices=("auto", "off"), default="auto", help="the runs' sandbox (default auto)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"experiments: {args.n} per agent (trivial run, fixed edit); python {sys.version.split()[0]}")
        for kind, label in (("fixed", "in-process agent"), (str(Path(tmp) / "b" / "agent.py"), "agent file")):
            root = repo(Path(tmp) / ("a" if kind == "fixed" else "b"), args.sandbox)
            ms, protection = measure(root, kind, args.n)
            if kind == "fixed":
                print(f"sandbox: {protection}")
            p90 = statistics.quantiles(ms, n=10)[-1]
            print(f"{label:17s} median {statistics.median(ms):6.1f} ms  p90 {p90:6.1f} ms  max {max(ms):6.1f} ms")
        print(f"goal: median at most {GOAL_MS:.0f} ms for the in-process agent")


if __name__ == "__main__":
    main()
