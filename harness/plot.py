"""progress.png: the night in one picture (matplotlib, imported only here)."""

from __future__ import annotations

from pathlib import Path

from harness.ledger import Experiment
from harness.review import Night, num
from harness.text import clip

LABEL_CHARS = 40  # a kept point's label in progress.png
LABEL_ROOM = 0.22  # of the view's height, left free on the better side for the kept points' labels
LABEL_STEPS = (14, 26, 38)  # points below (above) a kept point where its label goes, in turn, so neighbours differ
LABEL_BINS = 12  # at most one label in each twelfth of the x axis, the largest gain's, so labels never pile up
WORSE_ROOM = 1.0  # discards this many interquartile ranges past the 90th percentile are still drawn in place


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
    xmax = max((r.id for r in night.rows), default=1) + 1
    for i, r in enumerate(labelled(night)):
        # Level labels, in turn at three depths below the point (above when higher is better) and to its left, where
        # a curve that improves to the right leaves room (to its right near the left edge, so none is cut off); a
        # thin line ties each to its point.
        dy = LABEL_STEPS[i % len(LABEL_STEPS)] * (-1 if minimize else 1)
        right = r.id > 0.2 * xmax
        ax.annotate(clip(r.description, LABEL_CHARS), (r.id, r.metric), xytext=(-6 if right else 6, dy),
                    textcoords="offset points", fontsize=7, color="darkgreen", ha="right" if right else "left",
                    va="center", arrowprops={"arrowstyle": "-", "color": "darkgreen", "lw": 0.5, "alpha": 0.6},
                    annotation_clip=False)  # fmt: skip
    for s in night.steers:
        x = (-1 if s.after is None else s.after) + 0.5
        ax.axvline(x, ls="--", lw=0.9, color="tab:purple")
        text = clip("steer: " + (", ".join(s.changes) if not s.error else "error, not applied"), LABEL_CHARS)
        # On the side away from the labels: the top when the best falls, the bottom when it rises.
        ax.text(x, 0.94 if minimize else 0.06, text, transform=ax.get_xaxis_transform(), rotation=90, fontsize=7,
                color="tab:purple", ha="right", va="top" if minimize else "bottom")  # fmt: skip
    ax.set_ylim(lo, hi)
    ax.set_xlim(-1, xmax)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # experiments are whole numbers
    ax.set_xlabel("experiment")
    ax.set_ylabel(f"{night.metric} ({'lower' if minimize else 'higher'} is better)")
    pct = f" ({night.change_pct:+.1f}%)" if night.change_pct is not None else ""
    ax.set_title(f"autoresearch {night.tag}: {night.metric} {num(night.baseline)} → {num(night.best)}{pct}")
    ax.grid(alpha=0.3)
    # Below the plot, where it hides no point however the night went.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=4, fontsize=8, frameon=False)
    fig.savefig(path)


def labelled(night: Night) -> list[Experiment]:
    """The kept experiments whose description is drawn: in each of LABEL_BINS spans of the x axis, the largest gain."""
    xmax = max((r.id for r in night.rows), default=1) + 1
    bins: dict[int, Experiment] = {}
    for r in night.rows:
        b = int(LABEL_BINS * r.id / xmax)
        if r.status == "keep" and r.id != 0 and (b not in bins or abs(r.delta or 0.0) > abs(bins[b].delta or 0.0)):
            bins[b] = r
    return [bins[b] for b in sorted(bins)]


def _view(night: Night, kept: list[float | None], others: list[float | None]) -> tuple[float, float]:
    """The y range: the champions, and the discards of a noisy night too (all but outliers past the 90th percentile
    by more than WORSE_ROOM interquartile ranges, drawn at the edge), with room on the better side for the labels."""
    core = [v for v in (night.baseline, night.best, *kept) if v is not None] or [v for v in others if v is not None]
    lo, hi = (min(core), max(core)) if core else (0.0, 1.0)
    values = sorted(v for v in others if v is not None)
    if values:
        q = [values[int(f * (len(values) - 1))] for f in (0.1, 0.25, 0.75, 0.9)]
        reach = WORSE_ROOM * (q[2] - q[1])
        if night.direction == "minimize":
            lo, hi = min(lo, values[0]), max(hi, max(v for v in values if v <= q[3] + reach))
        else:
            lo, hi = min(lo, min(v for v in values if v >= q[0] - reach)), max(hi, values[-1])
    span = (hi - lo) or abs(hi) * 0.05 or 1.0
    room = LABEL_ROOM * span / (1 - LABEL_ROOM)
    if night.direction == "minimize":
        return lo - room, hi + 0.04 * span
    return lo - 0.04 * span, hi + room


def _noise(row: object) -> float | None:
    extra = getattr(row, "extra", None)
    value = extra.get("noise") if isinstance(extra, dict) else None
    return float(value) if isinstance(value, int | float) else None
