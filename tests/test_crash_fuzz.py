"""Crash-consistency, the short version CI runs: 30 kills -9 at random moments, each followed by an immediate restart
that must not be refused and must leave every invariant holding (bench/crash_fuzz.py runs 200)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_thirty_kills_each_restarted_at_once_hold_every_invariant():
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "crash_fuzz.py"), "--kills", "30", "--seed", "1"],
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    summary = out.stdout.strip().splitlines()[-1]
    assert summary.startswith("kills: 30 / held: 30 / refused: 0 / experiments: ")
