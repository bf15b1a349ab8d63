"""bench/yield.py at its CI size: real nights of random and optuna on the synthetic task, figures and a plot."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_quick_yield_bench_compares_random_and_optuna_at_an_equal_budget(tmp_path: Path):
    plot, figures, nights = tmp_path / "yield.png", tmp_path / "yield.json", tmp_path / "nights.jsonl"
    bench = [sys.executable, str(ROOT / "bench" / "yield.py"), "--quick", "--record", str(nights)]
    out = subprocess.run(
        [*bench, "--out", str(plot), "--json", str(figures)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(line.startswith("random ") for line in lines) and any(line.startswith("optuna ") for line in lines)
    assert any(line.startswith("optuna - random after 10: ") for line in lines)
    last = json.loads(lines[-1])  # the line a script reads: the default agent against the control
    assert (last["bench"], last["default"], last["control"], last["experiments"], last["seeds"]) == (
        "yield",
        "optuna",
        "random",
        10,
        3,
    )
    assert last["low"] <= last["difference"] <= last["high"] and last["verdict"] in (
        "better",
        "worse",
        "no significant difference",
    )
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(figures.read_text())
    assert data["experiments"] == 10 and data["target"] == 1.01 and set(data["agents"]) == {"random", "optuna"}
    for agent in data["agents"].values():
        assert len(agent["curves"]) == 3  # one night per seed
        for curve in agent["curves"]:
            assert len(curve) == 11  # the baseline and ten experiments
            assert all(a >= b for a, b in itertools.pairwise(curve))  # a best so far never gets worse
            # The synthetic baseline is 1.077 and no point beats the optimum, 1.0, by more than the noise allows.
            assert abs(curve[0] - 1.077) < 0.02 and min(curve) > 1.0 - 0.02
        assert len(agent["mean"]) == len(agent["half"]) == 11

    # Every night was recorded as it finished; run again, the bench reads them instead of running them, and says so.
    assert len(nights.read_text().splitlines()) == 6
    again = subprocess.run(
        [*bench, "--out", str(tmp_path / "again.png")], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stderr
    assert "6 of 6 nights recorded already" in again.stdout
    assert json.loads(again.stdout.splitlines()[-1]) == last and len(nights.read_text().splitlines()) == 6
