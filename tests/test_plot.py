"""progress.png: readable for a short night and a long one, noisy or not."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from harness.ledger import Experiment
from harness.plot import LABEL_BINS, _view, labelled
from harness.review import summarize
from harness.testing import cli


def night_rows(n: int, noise: float, seed: int = 1) -> list[Experiment]:
    """A night of n experiments: a slowly improving champion, discards spread by `noise`, a few crashes and blow-ups."""
    rnd = random.Random(seed)
    best = 1.0
    rows = [Experiment(tag="t", id=0, commit="c0", parent="p", status="keep", metric=best, best=best,
                       description="baseline", seconds=60, agent="optuna", program_sha="p", agent_sha="a")]  # fmt: skip
    for i in range(1, n + 1):
        value = best + abs(rnd.gauss(0, 0.02)) + rnd.gauss(0, noise) - (0.01 if rnd.random() < 0.15 else 0)
        value = 3.0 + rnd.random() if rnd.random() < 0.03 else value
        status = "crash" if rnd.random() < 0.05 else "keep" if value < best - max(noise, 0.001) else "discard"
        delta = value - best
        best = value if status == "keep" else best
        rows.append(Experiment(
            tag="t", id=i, commit=f"c{i}", parent="p", status=status, metric=None if status == "crash" else value,
            best=best, description=f"change {i}", seconds=60, agent="optuna", program_sha="p", agent_sha="a",
            delta=delta,
        ))  # fmt: skip
    return rows


@pytest.mark.parametrize(("n", "noise"), [(5, 0.0), (5, 0.05), (500, 0.0), (500, 0.05)])
def test_the_view_shows_most_discards_in_place_and_labels_never_pile_up(n: int, noise: float):
    night = summarize(night_rows(n, noise), "t", metric="val_bpb", direction="minimize")
    discards = [r.metric for r in night.rows if r.status == "discard" and r.metric is not None]
    kept = [r.metric for r in night.rows if r.status == "keep"]
    lo, hi = _view(night, kept, discards)
    ordinary = [v for v in discards if v < 2.5]
    inside = sum(lo <= v <= hi for v in ordinary)
    assert inside >= 0.9 * len(ordinary)  # a noisy night is drawn, not pinned to the top edge
    assert all(v < hi for v in kept) and all(v > lo for v in kept)
    assert not any(lo <= v <= hi for v in discards if v > 2.5)  # a blow-up does not squash the scale
    chosen = labelled(night)
    assert len(chosen) <= LABEL_BINS and len({int(LABEL_BINS * r.id / (n + 1)) for r in chosen}) == len(chosen)


def test_report_draws_a_night_of_500_from_a_real_ledger(project: Path):
    out = cli(project, "run", "--tag", "t", "--agent", "optuna", "--max-experiments", "1")
    assert out.returncode == 0, out.stderr
    with (project / "experiments.log").open("a") as f:
        for row in night_rows(500, 0.05)[2:]:
            f.write(json.dumps(row.to_json() | {"tag": "t", "id": row.id + 1}) + "\n")
    out = cli(project, "report", "--tag", "t", "--out", "r")
    assert out.returncode == 0, out.stderr
    png = (project / "r" / "progress.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 50_000
