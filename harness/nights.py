"""The nights of a repository, one line each: the `/` page of `autoresearch serve` and `autoresearch nights`."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, ProgramError
from harness.ledger import Experiment, Ledger, MeasurementRow, Row
from harness.paths import Layout
from harness.review import Night, summarize
from harness.status import doing, duration, read_status
from harness.text import num, signed

CRASHED = ("crash", "timeout")  # the statuses counted as crashes in the nights table


@dataclass(frozen=True)
class Place:
    """The repository under review: its ledger, and what program.md says of the metric, the file and the search."""

    root: Path
    metric: str
    direction: str | None
    mutable: str
    search: tuple[str, ...]  # the names of the `search:` constants

    @property
    def layout(self) -> Layout:
        return Layout(self.root)


def place(root: Path, ledger: bool = True) -> Place:
    """The repository at `root`; a HarnessError when it has no ledger yet (unless `ledger` is False: a server may
    start before the first night). A malformed program.md is read as absent."""
    from harness.program import load

    layout = Layout(root)
    if ledger and not layout.ledger.exists():
        raise HarnessError(f"no {layout.ledger.name} in {root}; start a night with 'autoresearch run --tag <name>'")
    try:
        config = load(layout.program).config
    except ProgramError:
        return Place(root, "metric", None, "train.py", ())
    return Place(root, config.metric, config.direction, config.mutable, tuple(p.name for p in config.search))


@dataclass(frozen=True)
class Rows:
    """One read of the ledger: every typed row, and the byte where the next row will start."""

    rows: tuple[Row, ...]
    end: int  # the ledger's size when read: a live page follows from here, reading only the bytes written after
    groups: dict[str, list[Row]] = field(default_factory=dict)  # tag -> its rows; built by read()

    def of(self, tag: str) -> list[Row]:
        if not self.groups and self.rows:
            for r in self.rows:
                self.groups.setdefault(r.tag, []).append(r)
        return self.groups.get(tag, [])

    def tags(self) -> list[str]:
        return list(dict.fromkeys(r.tag for r in self.rows))


@dataclass(frozen=True)
class NightLine:
    """A night in one line: where it stands, what it found, what it cost."""

    tag: str
    state: str  # running, stopped, ended (its loop died without stopping; `run --tag` resumes), or done
    doing: str  # while running: what the loop is doing now ("" otherwise)
    eta: str  # while running: when the run under way is due to end ("" otherwise)
    metric: str
    direction: str
    baseline: float | None
    best: float | None
    change: float | None
    change_pct: float | None
    experiments: int
    kept: int
    keep_rate: float
    crashes: int  # crash and timeout rows
    contended: int  # runs measured while the machine was clearly busy
    cost_usd: float
    busy: float | None  # the share of the workers' time spent running runs
    workers: int
    first: str | None
    last: str | None
    hours: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def read(path: Path) -> Rows:
    """Every row of the ledger at `path`, typed, with its size."""
    size = path.stat().st_size if path.exists() else 0
    return Rows(tuple(Ledger(path).read()), size)


def night_of(rows: Rows, tag: str, metric: str, direction: str | None) -> Night:
    """One night's summary from a read of the ledger; a HarnessError naming the tags when it has no rows."""
    mine = rows.of(tag)
    if not mine:
        tags = ", ".join(rows.tags()) or "none yet"
        raise HarnessError(f"no night '{tag}' in the ledger; its nights: {tags}")
    return summarize(mine, tag, metric=metric, direction=direction)


def lines(where: Place, rows: Rows | None = None) -> list[NightLine]:
    """Every night of the repository, the latest first."""
    rows = rows or read(where.layout.ledger)
    state = read_status(where.layout.status)
    running = _running(where.layout)
    out = [line(where, rows, tag, state=state, running=running) for tag in rows.tags()]
    return sorted(out, key=lambda n: n.last or "", reverse=True)


def line(
    where: Place, rows: Rows, tag: str, night: Night | None = None, state: Any = "", running: bool | None = None
) -> NightLine:
    """One night in a line; `night` when its summary is at hand, `state` and `running` when already read."""
    mine = rows.of(tag)
    night = night or night_of(rows, tag, where.metric, where.direction)
    state = read_status(where.layout.status) if state == "" else state
    running = _running(where.layout) if running is None else running
    now, what, eta = "done", "", ""
    if state is not None and state.get("tag") == tag:
        now = "running" if running and state.get("phase") != "stopped" else _ended(state)
        if now == "running":
            what, eta = doing(state), _eta(state, [r for r in mine if type(r) is Experiment])
    return NightLine(
        tag=tag, state=now, doing=what, eta=eta, metric=night.metric, direction=night.direction,
        baseline=night.baseline, best=night.best, change=night.change, change_pct=night.change_pct,
        experiments=night.experiments, kept=night.kept, keep_rate=night.keep_rate,
        crashes=sum(1 for r in mine if type(r) is Experiment and r.id != 0 and r.status in CRASHED),
        contended=sum(1 for r in mine if type(r) is MeasurementRow and r.contended), cost_usd=night.spend_usd,
        busy=night.busy, workers=night.workers, first=night.first, last=night.last, hours=night.hours,
    )  # fmt: skip


def _running(layout: Layout) -> bool:
    from harness.lock import holder

    return holder(layout.lock) is not None


def _ended(state: dict[str, Any]) -> str:
    return "stopped" if state.get("phase") == "stopped" else "ended"


def _eta(state: dict[str, Any], rows: list[Experiment], now: float | None = None) -> str:
    """When the night should end, from the limits the loop was started with (--hours, --max-experiments) and its
    pace since it started; without a limit, when the run under way is due."""
    now = time.time() if now is None else now
    started, limit, hours = state.get("loop_started"), state.get("max_experiments"), state.get("hours")
    if not isinstance(started, int | float):
        return ""
    ends = []
    if isinstance(hours, int | float):
        ends.append(started + 3600 * hours)
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
    done = sum(1 for r in rows if r.id != 0 and r.time >= since)
    if isinstance(limit, int) and done:
        ends.append(now + (limit - done) * (now - started) / done)
    if ends:
        end = min(ends)
        return f"ends about {time.strftime('%H:%M', time.gmtime(end))} UTC (in {duration(max(0.0, end - now))})"
    run_started, budget = state.get("started"), state.get("budget")
    if (
        state.get("phase") in ("baseline", "remeasuring", "evaluating")
        and isinstance(run_started, int | float)
        and (isinstance(budget, int | float))
    ):
        left = run_started + budget - now
        return f"until stopped; this run is due in {duration(left)}" if left > 0 else "until stopped"
    return "until stopped"


# --- `autoresearch nights` -------------------------------------------------------------------------------------------


def table(nights: list[NightLine]) -> str:
    """The nights as plain aligned text, one line each."""
    if not nights:
        return "no nights yet; start one with 'autoresearch run --tag <name>'\n"
    head = ("tag", "state", "baseline", "best", "change", "exps", "kept", "crashes", "contended", "cost", "busy",
            "span")  # fmt: skip
    cells = [head] + [
        (n.tag, n.state, num(n.baseline), num(n.best), change(n), str(n.experiments),
         f"{n.kept} ({100 * n.keep_rate:.0f}%)", str(n.crashes), str(n.contended), f"${n.cost_usd:.2f}",
         "-" if n.busy is None else f"{100 * n.busy:.0f}%", span(n))
        for n in nights
    ]  # fmt: skip
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    out = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
           .rstrip() for row in cells]  # fmt: skip
    out += [f"{n.tag}: {n.doing}" + (f" ({n.eta})" if n.eta else "") for n in nights if n.state == "running"]
    return "\n".join(out) + "\n"


def change(n: NightLine) -> str:
    """The change from baseline to best, with its percentage."""
    if n.change is None:
        return "-"
    return signed(n.change) + (f" ({n.change_pct:+.1f}%)" if n.change_pct is not None else "")


def span(n: NightLine) -> str:
    """When the night ran: its first row's time and its length."""
    if not n.first:
        return "-"
    return f"{n.first.replace('T', ' ')[:16]} +{duration(n.hours * 3600)}"
