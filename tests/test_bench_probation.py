"""bench/probation.py as a script: the rule in force holds its stated error rates; the pair rule it replaced did not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_probation_accepts_by_evidence_within_its_stated_error_rates():
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "probation.py"), "--n", "2000"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    table = {line.split()[0]: line.split()[1:] for line in out.stdout.splitlines()[2:]}
    before = {case: float(cells[0].rstrip("%")) / 100 for case, cells in table.items()}
    after = {case: float(cells[1].rstrip("%")) / 100 for case, cells in table.items()}
    assert after["equal"] <= 0.10 and after["worse"] <= 0.02 and after["never"] <= 0.02
    assert after["better"] >= 0.70
    assert after["thrower"] <= 0.10  # a champion that throws its turns no longer gets its candidate in
    # The pair rule: an equal candidate got in more often than not, and a thrower's nearly always.
    assert before["equal"] > 0.5 and before["never"] > 0.25 and before["thrower"] > 0.75
