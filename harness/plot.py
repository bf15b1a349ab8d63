"""progress.png: the night in one picture (matplotlib, imported only here)."""

from __future__ import annotations

from pathlib import Path

from harness.review import Night, num
from harness.text import clip

LABEL_CHARS = 40  # a kept point's label in progress.png
LABEL_ANGLE = 40  # degrees; steeper labels of neighbouring points overlap less
LABEL_ROOM = 0.9  # of the champions' range, left free beside them so slanted labels stay inside the axes
MAX_LABELS = 50  # past this many kept points, only the largest gains are labelled, so the plot stays readable


def progress_png(night: Night, path: Path) -> None:
    """The night in one picture: every metric over experiment ids, the running best, kept points labelled."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator  # no pyplot: no global backend state, and savefig renders PNG with Agg

    minimize = night.direction == "minimize"
    measured = [r for r in night.rows if r.metric is not None]
    kept = [r for r in measured if r.status == "keep"]
    other = [(r.id, r.metric) for r in measured if r.status != "keep"]
    failed = [r.id for r in night.rows if r.metric is None]
    lo, hi = _view(night, [r.metric for r in kept], [y for _, y in other])
    fig = Figure(figsize=(14, 7), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    grey = "#b5b5b5"
    inside = [(x, y) for x, y in other if lo <= y <= hi]
    ax.scatter([x for x, _ in inside], [y for _, y in inside], s=10, color=grey, label=f"discarded ({len(other)})")
    if off := [(x, hi if y > hi else lo) for x, y in other if not lo <= y <= hi]:
        # A diverged run would squash the interesting range: it is drawn at the edge instead.
        ax.scatter([x for x, _ in off], [y for _, y in off], s=14, marker="^" if minimize else "v", color=grey,
                   clip_on=False, label=f"off scale ({len(off)})")  # fmt: skip
    if failed:
        ax.scatter(failed, [0.98] * len(failed), s=12, marker="x", color="#d9a0a0", transform=ax.get_xaxis_transform(),
                   label=f"no metric: crash, timeout, ... ({len(failed)})")  # fmt: skip
    if steps := [(r.id, r.best) for r in night.rows if r.best is not None]:
        ax.step(*zip(*steps, strict=True), where="post", color="tab:blue", lw=1.4, label="best so far")
        # The noise a gain had to beat, as it stood at each decision: a band around the champion's number.
        band = [(r.id, r.best, _noise(r)) for r in night.rows if r.best is not None and _noise(r) is not None]
        if band:
            xs = [x for x, _, _ in band]
            low, high = [y - n for _, y, n in band], [y + n for _, y, n in band]
            ax.fill_between(xs, low, high, step="post", color="tab:blue", alpha=0.12, lw=0, label="± noise of one run")
    if night.champion_runs:
        ax.scatter(*zip(*night.champion_runs, strict=True), s=9, marker="_", color="tab:blue",
                   label=f"champion runs ({len(night.champion_runs)})")  # fmt: skip
    ax.scatter([r.id for r in kept], [r.metric for r in kept], s=34, color="tab:green", edgecolor="black",
               linewidth=0.5, zorder=3, label=f"kept ({len(kept)})")  # fmt: skip
    labelled = [r for r in kept if r.id != 0]
    if len(labelled) > MAX_LABELS:
        labelled = sorted(sorted(labelled, key=lambda r: -abs(r.delta or 0.0))[:MAX_LABELS], key=lambda r: r.id)
    for r in labelled:
        # Each label ends at its point and runs back on the side where no point can be: below-left of a falling
        # best (above-left of a rising one). Consecutive kept points then sit apart across their slanted labels.
        ax.annotate(clip(r.description, LABEL_CHARS), (r.id, r.metric), xytext=(-5, -3 if minimize else 3),
                    textcoords="offset points", fontsize=7, color="darkgreen", ha="right", va="center",
                    rotation=LABEL_ANGLE if minimize else -LABEL_ANGLE, rotation_mode="anchor")  # fmt: skip
    for s in night.steers:
        x = (-1 if s.after is None else s.after) + 0.5
        ax.axvline(x, ls="--", lw=0.9, color="tab:purple")
        text = clip("steer: " + (", ".join(s.changes) if not s.error else "error, not applied"), LABEL_CHARS)
        # On the side away from the labels: the top when the best falls, the bottom when it rises.
        ax.text(x, 0.94 if minimize else 0.06, text, transform=ax.get_xaxis_transform(), rotation=90, fontsize=7,
                color="tab:purple", ha="right", va="top" if minimize else "bottom")  # fmt: skip
    ax.set_ylim(lo, hi)
    ax.set_xlim(-1, max((r.id for r in night.rows), default=1) + 1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # experiments are whole numbers
    ax.set_xlabel("experiment")
    ax.set_ylabel(f"{night.metric} ({'lower' if minimize else 'higher'} is better)")
    pct = f" ({night.change_pct:+.1f}%)" if night.change_pct is not None else ""
    ax.set_title(f"autoresearch {night.tag}: {night.metric} {num(night.baseline)} → {num(night.best)}{pct}")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right" if minimize else "lower right", fontsize=8)
    fig.savefig(path)


def _view(night: Night, kept: list[float | None], others: list[float | None]) -> tuple[float, float]:
    """The y range: the champions' range, with room on the worse side for most discards but not for outliers."""
    core = [v for v in (night.baseline, night.best, *kept) if v is not None] or [v for v in others if v is not None]
    lo, hi = (min(core), max(core)) if core else (0.0, 1.0)
    span = (hi - lo) or abs(hi) * 0.05 or 1.0
    values = sorted(v for v in others if v is not None)
    if night.direction == "minimize":
        worse = values[int(0.9 * (len(values) - 1))] if values else hi
        return lo - LABEL_ROOM * span, min(max(hi, worse), hi + span) + 0.05 * span  # room below for the labels
    worse = values[int(0.1 * (len(values) - 1))] if values else lo
    return max(min(lo, worse), lo - span) - 0.05 * span, hi + LABEL_ROOM * span


def _noise(row: object) -> float | None:
    extra = getattr(row, "extra", None)
    value = extra.get("noise") if isinstance(extra, dict) else None
    return float(value) if isinstance(value, int | float) else None
