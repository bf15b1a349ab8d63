"""The geometry of the review's plots (every experiment as a point, the running best, the workers' timeline, two
nights on one axis), as numbers and class names; the templates draw them as SVG, so nothing here is markup."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from harness.ledger import Experiment, LockedTest, MeasurementRow
from harness.review import Night
from harness.text import clip, num

WIDTH, HEIGHT = 960, 340
LEFT, RIGHT, TOP, BOTTOM = 78, 16, 22, 34  # margins around the plotting area, in pixels
TITLE_CHARS = 160  # a point's tooltip: its description, cut
LANE = 22  # pixels per worker in the timeline
SHAPES = {"keep": "dot", "discard": "dot", "crash": "cross", "timeout": "cross", "tampered": "cross",
          "invalid": "tri", "duplicate": "tri", "interrupted": "tri"}  # fmt: skip


@dataclass(frozen=True)
class Scale:
    """Data to pixels: x from x0..x1 over the plotting width, y from y0..y1 (y1 at the top)."""

    x0: float
    x1: float
    y0: float
    y1: float
    width: int = WIDTH
    height: int = HEIGHT

    def x(self, v: float) -> float:
        return LEFT + (v - self.x0) / ((self.x1 - self.x0) or 1.0) * (self.width - LEFT - RIGHT)

    def y(self, v: float) -> float:
        v = min(max(v, self.y0), self.y1)  # a diverged run is drawn at the edge, not off the plot
        return TOP + (self.y1 - v) / ((self.y1 - self.y0) or 1.0) * (self.height - TOP - BOTTOM)

    @property
    def bottom(self) -> float:
        return self.height - BOTTOM

    @property
    def right(self) -> float:
        return self.width - RIGHT


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    id: int
    status: str
    shape: str  # dot, cross, tri or diamond
    title: str  # the tooltip (model-written text: escaped by the template)
    value: float | None = None  # the data, so that the page can lay the points out again when live rows rescale it
    best: float | None = None
    noise: float | None = None


@dataclass(frozen=True)
class Tick:
    at: float  # pixels
    label: str

    @property
    def px(self) -> str:
        return f"{self.at:.1f}"


@dataclass(frozen=True)
class Curve:
    path: str  # an SVG path of numbers only
    name: str
    cls: str


@dataclass(frozen=True)
class Plot:
    scale: Scale
    points: tuple[Point, ...]
    curves: tuple[Curve, ...]  # the running best of one night or more
    band: str  # the champion's noise band as a closed path ("" without one)
    tests: tuple[Point, ...]  # locked-test scores
    xticks: tuple[Tick, ...]
    yticks: tuple[Tick, ...]
    xlabel: str
    ylabel: str


def night_plot(night: Night, rows: list[Experiment], tests: list[LockedTest], live: bool = False) -> Plot:
    """Every experiment as a point (status by class and shape), the running best as a step line, its noise band and
    the locked test's scores. A live night leaves room on the right for the experiments to come."""
    last = max((r.id for r in rows), default=1)
    x1 = max(1.0, last * 1.25 + 5 if live else last + 0.5)
    test_values = [t.metric for t in tests if t.metric is not None]
    y0, y1 = _domain(night, [r.metric for r in rows if r.metric is not None], test_values)
    scale = Scale(-0.5, x1, y0, y1)
    points = tuple(
        Point(scale.x(r.id), scale.y(r.metric) if r.metric is not None else TOP - 8, r.id, r.status,
              SHAPES.get(r.status, "tri"), f"{r.id} {r.status} {num(r.metric)}: {_title(r.description)}", r.metric,
              r.best, _noise(r))
        for r in rows
    )  # fmt: skip
    steps = _changes([(r.id, r.best) for r in rows if r.best is not None])
    noisy = _changes([(r.id, r.best, _noise(r)) for r in rows if r.best is not None and _noise(r) is not None])
    band = ""
    if noisy:
        upper = _steps(scale, [(i, b + n) for i, b, n in noisy])  # type: ignore[operator]
        lower = _steps(scale, [(i, b - n) for i, b, n in reversed(noisy)], backwards=True)  # type: ignore[operator]
        band = upper + " L" + lower.removeprefix("M") + " Z"
    test_points = tuple(
        Point(scale.x(t.id), scale.y(t.metric), t.id, "test", "diamond",
              f"locked test {num(t.metric)} (the champion of experiment {t.id})", t.metric)
        for t in tests if t.metric is not None
    )  # fmt: skip
    curve = (Curve(_steps(scale, steps), "best so far", "best"),)  # drawn when empty too: live rows extend it
    return Plot(
        scale,
        points,
        curve,
        band,
        test_points,
        _xticks(scale, last),
        _yticks(scale),
        "experiment",
        f"{night.metric} ({'lower' if night.direction == 'minimize' else 'higher'} is better)",
    )


def compare_plot(a: tuple[Night, list[Experiment]], b: tuple[Night, list[Experiment]]) -> Plot:
    """Two nights' best-so-far curves on one axis: experiment number against the best metric."""
    curves, values, last = [], [], 1
    for _, rows in (a, b):
        steps = _changes([(r.id, r.best) for r in rows if r.best is not None])
        values += [v for _, v in steps]
        last = max(last, max((r.id for r in rows), default=1))
        curves.append(steps)
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.05 or 1.0
    scale = Scale(-0.5, last + 0.5, lo - pad, hi + pad)
    night = a[0]
    return Plot(
        scale, (), tuple(Curve(_steps(scale, s), n.tag, f"night{i}") for i, (s, (n, _)) in enumerate(zip(curves, (a, b),
        strict=True))), "", (), _xticks(scale, last), _yticks(scale), "experiment",
        f"best {night.metric} so far ({'lower' if night.direction == 'minimize' else 'higher'} is better)",
    )  # fmt: skip


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    w: float
    purpose: str
    title: str


@dataclass(frozen=True)
class Timeline:
    width: int
    height: int
    lanes: tuple[Tick, ...]  # each worker's name at its lane's middle
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]  # hours since the first run started


def timeline(runs: list[MeasurementRow]) -> Timeline | None:
    """Which run ran where and when: one lane per worker, one bar per run, so a worker's idle time is the gap."""
    spans = []
    for m in runs:
        try:
            end = datetime.fromisoformat(m.time).timestamp()
        except ValueError:
            continue
        spans.append((end - m.seconds, end, m))
    if not spans:
        return None
    start, stop = min(s for s, _, _ in spans), max(e for _, e, _ in spans)
    workers = sorted({m.worker for _, _, m in spans})
    height = TOP + LANE * len(workers) + BOTTOM
    scale = Scale(start, max(stop, start + 1), 0, 1, height=height)
    bars: list[Bar] = []
    last: dict[str, int] = {}  # worker -> index of its latest bar in `bars`
    for s, e, m in sorted(spans, key=lambda span: span[0]):
        kind = m.purpose if m.outcome == "ok" else "failed"
        x, w = scale.x(s), max(1.0, scale.x(e) - scale.x(s))
        k = last.get(m.worker)
        if k is not None and bars[k].purpose == kind and x <= bars[k].x + bars[k].w + 0.5:
            # Runs closer than a pixel apart are one bar: a big night stays a picture, not 10,000 rectangles.
            prev = bars[k]
            n = int(prev.title.split(" ", 1)[0]) + 1 if prev.title.endswith(" runs") else 2
            bars[k] = Bar(prev.x, prev.y, max(prev.w, x + w - prev.x), kind, f"{n} {kind} runs")
            continue
        last[m.worker] = len(bars)
        bars.append(Bar(x, TOP + LANE * workers.index(m.worker) + 3, w, kind,
                        f"experiment {m.experiment} {m.purpose} {m.outcome} {m.seconds:.1f} s"
                        f"{' contended' * m.contended}"))  # fmt: skip
    lanes = tuple(Tick(TOP + LANE * i + LANE / 2, w or "local") for i, w in enumerate(workers))
    seconds = stop - start
    unit, name = (3600, "h") if seconds >= 3 * 3600 else (60, "min") if seconds >= 180 else (1, "s")
    step = _nice(seconds / unit / 6)
    ticks = tuple(Tick(scale.x(start + k * step * unit), f"{k * step:g} {name}")
                  for k in range(int(seconds / unit / step) + 1))  # fmt: skip
    return Timeline(WIDTH, height, lanes, tuple(bars), ticks)


# --- helpers ---------------------------------------------------------------------------------------------------------


def _changes(points: list[Any]) -> list[Any]:
    """Of (id, value, ...) points, those where the values change, and the last: the same step line, fewer points."""
    return [p for k, p in enumerate(points) if k in (0, len(points) - 1) or p[1:] != points[k - 1][1:]]


def _steps(scale: Scale, steps: list[tuple[int, float]], backwards: bool = False) -> str:
    """A step line through (id, value) pairs: level until the next id, then up or down."""
    if not steps:
        return ""
    parts = [f"M{scale.x(steps[0][0]):.1f},{scale.y(steps[0][1]):.1f}"]
    for i, v in steps[1:]:
        parts.append(f"{'V' if backwards else 'H'}{scale.y(v) if backwards else scale.x(i):.1f}")
        parts.append(f"{'H' if backwards else 'V'}{scale.x(i) if backwards else scale.y(v):.1f}")
    return " ".join(parts)


def _domain(night: Night, metrics: list[float], tests: list[float]) -> tuple[float, float]:
    """The y range: the baseline, the champions and the tests, and most discards, but not a diverged outlier."""
    core = [v for v in (night.baseline, night.best, *tests) if v is not None and math.isfinite(v)]
    finite = sorted(v for v in metrics if math.isfinite(v))
    if not core:
        core = finite or [0.0, 1.0]
    lo, hi = min(core), max(core)
    span = (hi - lo) or abs(hi) * 0.05 or 1.0
    if finite:
        worse = finite[int((0.9 if night.direction == "minimize" else 0.1) * (len(finite) - 1))]
        lo, hi = min(lo, max(worse, lo - span)), max(hi, min(worse, hi + span))
    pad = (hi - lo) * 0.06 or span * 0.06
    return lo - pad, hi + pad


def _xticks(scale: Scale, last: int) -> tuple[Tick, ...]:
    step = max(1, int(_nice(max(last, 1) / 8)))
    return tuple(Tick(scale.x(i), str(i)) for i in range(0, int(scale.x1) + 1, step))


def _yticks(scale: Scale) -> tuple[Tick, ...]:
    step = _nice((scale.y1 - scale.y0) / 5)
    first = math.ceil(scale.y0 / step) * step
    count = int((scale.y1 - first) / step) + 1
    return tuple(Tick(scale.y(first + k * step), f"{first + k * step:.6g}") for k in range(count))


def _nice(x: float) -> float:
    """A round step (1, 2 or 5 times a power of ten) near x."""
    if x <= 0 or not math.isfinite(x):
        return 1.0
    power = 10 ** math.floor(math.log10(x))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= x)


def _title(text: str) -> str:
    return clip(text, TITLE_CHARS)  # escaped where it is drawn; a newline in a tooltip is harmless


def _noise(row: Experiment) -> float | None:
    value = row.extra.get("noise") if isinstance(row.extra, dict) else None
    return float(value) if isinstance(value, int | float) else None
