"""How a night's evaluators spent their time, from its measurement rows: how busy they were, and how much of it went
to new experiments rather than the baseline, confirmations and the champion's re-runs."""

from __future__ import annotations

from datetime import datetime

from harness.ledger import MeasurementRow


def busy(runs: list[MeasurementRow]) -> float | None:
    """How much of the night the evaluators worked: the runs' seconds over (workers x the span from the first run's
    start to the last run's end). What is left is time a worker waited (for the agent, for the harness)."""
    if not runs:
        return None
    try:
        ends = [datetime.fromisoformat(m.time).timestamp() for m in runs]
    except ValueError:
        return None
    span = max(ends) - min(end - m.seconds for end, m in zip(ends, runs, strict=True))
    workers = len({m.worker for m in runs}) or 1
    # The ledger's times are to the second: a night shorter than its rounding says nothing, and none is above 100%.
    return min(1.0, sum(m.seconds for m in runs) / (workers * span)) if span >= 1.0 else None


def new_share(runs: list[MeasurementRow]) -> float | None:
    """The share of the runs' seconds on candidates (new experiments), not the baseline, confirmations, re-runs."""
    total = sum(m.seconds for m in runs)
    return sum(m.seconds for m in runs if m.purpose == "candidate") / total if total > 0 else None
