"""bench/probation.py as a script: the rule in force holds its stated error rates; the rules it replaced did not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_probation_accepts_by_evidence_within_its_stated_error_rates():
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "probation.py"), "--n", "2000"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    table = {line.split()[0]: line.split()[1:] for line in out.stdout.splitlines()[2:]}
    pairs, before, after = ({case: _share(cells[i]) for case, cells in table.items()} for i in (0, 1, 4))
    assert after["equal"] <= 0.10 and after["ties"] <= 0.10 and after["worse"] <= 0.02 and after["never"] <= 0.02
    assert after["better"] >= 0.70 and after["bigger"] >= 0.70  # twice as often, or twice as much
    assert after["thrower"] <= 0.10  # a champion that throws its turns does not get its candidate in
    assert after["reverted"] <= 0.10  # an honest champion keeps its place
    assert int(table["equal"][6]) <= 10 * 8  # probation never runs past its last look
    # The pair rule: an equal candidate got in more often than not, and a thrower's nearly always. The Mann-Whitney
    # rule it became saw how often a candidate kept, hardly how much: keeps twice as large got in 1 time in 8.
    assert pairs["equal"] > 0.5 and pairs["never"] > 0.25 and pairs["thrower"] > 0.75
    assert before["bigger"] < 0.2


def _share(cell: str) -> float | None:
    return None if cell == "n/a" else float(cell.rstrip("%")) / 100
