"""What each page of the review shows, as typed values built from one read of the ledger: the nights, one night, two
nights side by side. The same values make the HTML (through the templates) and the JSON beside it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from harness import nights
from harness.errors import HarnessError
from harness.ledger import Experiment, Generation, LockedTest, MeasurementRow
from harness.nights import NightLine, Place, Rows
from harness.review import Night, agent_labels, figures, log_json
from harness.status import read_status
from harness.text import flat, num, signed
from harness.web import svg

LIVE_TAIL = 4096  # bytes of the run under way's log shown live


@dataclass(frozen=True)
class TableRow:
    """One experiment as the night's table shows it (text cells; the numbers beside them sort the columns)."""

    id: int
    status: str
    metric: float | None
    delta: float | None  # against its parent (the champion it was tried against)
    vs_baseline: float | None
    description: str
    agent: str
    worker: str
    seconds: float
    cost_usd: float

    def cells(self) -> dict[str, str]:
        return {"metric": num(self.metric), "delta": signed(self.delta), "vs_baseline": signed(self.vs_baseline),
                "seconds": f"{self.seconds:.1f}", "cost": f"${self.cost_usd:.4f}"}  # fmt: skip


@dataclass(frozen=True)
class Tail:
    """The log of the run under way, while a night runs."""

    experiment: int | None
    text: str
    doing: str
    log: str  # the log shown: the experiment's latest (a confirmation, an evaluation, the champion's re-run)
    size: int


@dataclass(frozen=True)
class NightPage:
    line: NightLine
    night: Night
    cards: tuple[tuple[str, str], ...]
    plot: svg.Plot
    rows: tuple[TableRow, ...]
    generations: tuple[Generation, ...]
    timeline: svg.Timeline | None
    tests: tuple[LockedTest, ...]  # the locked test of each champion
    tail: Tail | None
    offset: int  # the ledger's size when the page was made: live updates start there

    def to_json(self) -> dict[str, Any]:
        out = log_json(self.night)
        out["rows"] = [vars(r) for r in self.rows]
        out["hidden"] = 0
        out["night"] = self.line.to_json()
        out["tests"] = [msgspec.to_builtins(t) for t in self.tests]
        out["generations"] = [g.to_json() for g in self.generations]
        out["offset"] = self.offset
        return out


@dataclass(frozen=True)
class ComparePage:
    a: NightLine
    b: NightLine
    plot: svg.Plot
    kept_a: tuple[TableRow, ...]
    kept_b: tuple[TableRow, ...]

    def to_json(self) -> dict[str, Any]:
        return {"a": self.a.to_json(), "b": self.b.to_json(), "kept_a": [vars(r) for r in self.kept_a],
                "kept_b": [vars(r) for r in self.kept_b]}  # fmt: skip


def night_page(where: Place, rows: Rows, tag: str) -> NightPage:
    """The page of night `tag`; a HarnessError naming the nights when there is none of that name."""
    night = nights.night_of(rows, tag, where.metric, where.direction)
    line = nights.line(where, rows, tag, night)
    mine = rows.of(tag)
    experiments = _latest(r for r in mine if type(r) is Experiment)
    tests = list(night.tests)
    live = line.state == "running"
    return NightPage(
        line=line,
        night=night,
        cards=tuple(figures(night)),
        plot=svg.night_plot(night, experiments, tests, live=live),
        rows=tuple(table_row(r, night) for r in experiments),
        generations=night.generations,
        timeline=svg.timeline([r for r in mine if type(r) is MeasurementRow]),
        tests=tuple(tests),
        tail=live_tail(where, tag) if live else None,
        offset=rows.end,
    )


def compare_page(where: Place, rows: Rows, a: str, b: str) -> ComparePage:
    """Two nights side by side; a HarnessError when either is missing."""
    if not a or not b:
        raise HarnessError("compare needs two nights: /compare?a=<tag>&b=<tag>")
    sides = []
    for tag in (a, b):
        night = nights.night_of(rows, tag, where.metric, where.direction)
        sides.append((night, _latest(r for r in rows.of(tag) if type(r) is Experiment)))
    lines = [nights.line(where, rows, n.tag, n) for n, _ in sides]
    kept = [tuple(table_row(r, n) for r in exps if r.status == "keep") for n, exps in sides]
    return ComparePage(lines[0], lines[1], svg.compare_plot(sides[0], sides[1]), kept[0], kept[1])


def table_row(r: Experiment, night: Night, labels: dict[str, str] | None = None) -> TableRow:
    """An experiment as a row of the night's table (and of the live updates)."""
    labels = labels if labels is not None else agent_labels(night.generations)
    vs = r.metric - night.baseline if r.metric is not None and night.baseline is not None else None
    return TableRow(r.id, r.status, r.metric, r.delta, vs, flat(r.description), labels.get(r.agent_sha, r.agent),
                    r.worker, r.seconds, r.cost_usd)  # fmt: skip


def live_tail(where: Place, tag: str) -> Tail | None:
    """The tail of the log of the run under way, from the loop's status; None when no run of `tag` is under way."""
    from harness.detail import log_tail
    from harness.status import doing

    state = read_status(where.layout.status)
    if state is None or state.get("tag") != tag or not isinstance(state.get("experiment"), int):
        return None
    exp = state["experiment"]
    logs = where.layout.run_logs(tag, exp)
    if not logs:
        return Tail(exp, "", doing(state), "", 0)
    latest = max(logs, key=lambda p: p.stat().st_mtime_ns)
    size = latest.stat().st_size
    return Tail(exp, log_tail(latest, LIVE_TAIL), doing(state), str(latest.relative_to(where.root)), size)


def _latest(rows: Any) -> list[Experiment]:
    """The experiment rows, the last row of an id standing for it (a resumed night may re-run its baseline)."""
    by_id: dict[int, Experiment] = {}
    for r in rows:
        by_id[r.id] = r
    return sorted(by_id.values(), key=lambda r: r.id)


def decode_row(line: bytes) -> Experiment | None:
    """An experiment row from one ledger line, or None when the line is another kind or not a row."""
    try:
        return msgspec.json.decode(line, type=Experiment, strict=False)
    except msgspec.DecodeError:  # ValidationError is one: another kind, or a hand edit
        return None
