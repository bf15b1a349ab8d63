"""How far each worker's device reads above or below the others, so a fast worker never wins by being fast.

Devices differ: a throttled GPU gives a baseline 1.7% worse than a healthy one. A run's number is taken as the
version's truth plus its worker's offset plus noise. The offsets are fitted by median polish (alternating medians,
robust to a spiked run) over a table of one cell per version and worker (the median of its runs), for the versions
run on more than one worker: the baseline runs on every worker, the champion's re-runs and the confirmations land
wherever a worker is free. They are centred on the median worker, so a corrected number reads as the typical worker
would have read it. A worker no shared version ran on has offset 0 until one does; what the fit leaves of the spread
across workers shows in the noise, which pools the corrected runs.
"""

from __future__ import annotations

import statistics
from collections import defaultdict

ROUNDS = 20  # median polish converges in a few rounds; the bound only guards that
SETTLED = 1e-12  # offsets that moved less than this in a round are the fit


class Offsets:
    """Every successful run's (version, worker, value), and the worker offsets fitted to them."""

    def __init__(self) -> None:
        self._runs: list[tuple[str, str, float]] = []
        self._workers: dict[str, set[str]] = defaultdict(set)  # version -> workers that ran it
        self._offsets: dict[str, float] = {}

    def add(self, version: str, worker: str, value: float) -> bool:
        """Take in one run; True when the offsets changed (numbers corrected before must be corrected again)."""
        self._runs.append((version, worker, value))
        self._workers[version].add(worker)
        if len(self._workers[version]) < 2:
            return False
        before, self._offsets = self._offsets, _fit(self._runs, self._workers)
        return before != self._offsets

    def of(self, worker: str) -> float:
        """The worker's offset: what it reads above the typical worker (0.0 when it is not known yet)."""
        return self._offsets.get(worker, 0.0)

    def all(self) -> dict[str, float]:
        """Every known offset, by worker."""
        return dict(self._offsets)


def _fit(runs: list[tuple[str, str, float]], workers: dict[str, set[str]]) -> dict[str, float]:
    # One number per (version, worker), the median of its runs, so that a worker that ran a version many times (the
    # champion's re-runs all on one worker) weighs no more in that version's effect than a worker that ran it once.
    cells: dict[tuple[str, str], list[float]] = defaultdict(list)
    for v, w, x in runs:
        if len(workers[v]) >= 2:
            cells[v, w].append(x)
    table = [(v, w, statistics.median(xs)) for (v, w), xs in cells.items()]
    offset: dict[str, float] = {w: 0.0 for _, w, _ in table}
    for _ in range(ROUNDS):
        by_version: dict[str, list[float]] = defaultdict(list)
        for v, w, x in table:
            by_version[v].append(x - offset[w])
        effect = {v: statistics.median(xs) for v, xs in by_version.items()}
        by_worker: dict[str, list[float]] = defaultdict(list)
        for v, w, x in table:
            by_worker[w].append(x - effect[v])
        fitted = {w: statistics.median(xs) for w, xs in by_worker.items()}
        centre = statistics.median(fitted.values())
        fitted = {w: o - centre for w, o in fitted.items()}
        moved = max(abs(fitted[w] - offset[w]) for w in fitted)
        offset = fitted
        if moved < SETTLED:
            break
    return offset
