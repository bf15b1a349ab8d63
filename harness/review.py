"""The morning review: a night's summary read from the ledger, the `log` table, and report.md with progress.png."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from harness import lockedtest, runtime
from harness.errors import HarnessError, ProgramError
from harness.keeprule import Measurement, Referee
from harness.ledger import (
    EVALUATED,
    FAILED,
    INTERRUPTED,
    UNRUN,
    Experiment,
    Generation,
    Ledger,
    LockedTest,
    MeasurementRow,
    Row,
    Steer,
)
from harness.paths import Layout
from harness.text import clip, flat, num, signed

LIMIT = 50  # rows in the `log` table unless told otherwise; the summary always counts every row
SHOWN = ("id", "status", "metric", "delta", "best", "seconds", "description", "commit", "time")  # a row in --json


@dataclass(frozen=True)
class SteerEvent:
    """An edit of program.md during the night: what changed, or the error that kept the previous program."""

    time: str
    after: int | None  # the last experiment before the edit; it applies from the next one
    changes: dict[str, list[Any]]  # front-matter key -> [old, new]
    error: str

    def summary(self) -> str:
        if self.error:
            return f"not applied: {self.error}"
        pairs = [(k, v if len(v) == 2 else [None, v]) for k, v in self.changes.items()]  # not a pair: a hand edit
        parts = [f"{k} {_value(old)} → {_value(new)}" if k != "text" else "free text edited" for k, (old, new) in pairs]
        return ", ".join(parts) or "no change in force"


@dataclass(frozen=True)
class Night:
    """The figures of one tag's night and the rows to show."""

    tag: str
    metric: str
    direction: str  # "minimize" or "maximize"
    experiments: int  # every row but the baseline
    kept: int  # kept rows but the baseline
    keep_rate: float  # kept / experiments, 0 when there are none
    baseline: float | None
    best: float | None
    change: float | None  # best - baseline (negative is better when minimizing)
    change_pct: float | None  # change as a percentage of |baseline|
    spend_usd: float
    tokens_in: int
    tokens_out: int
    first: str | None  # time of the first row counted
    last: str | None
    hours: float
    statuses: dict[str, int]
    steers: tuple[SteerEvent, ...]
    rows: tuple[Experiment, ...]  # the rows to show: the last `limit` of those counted
    hidden: int  # rows counted but not shown
    since: str | None  # the cutoff in force, as ISO 8601 UTC
    noise: float | None = None  # the noise the last decision used: the spread of one run
    extra_runs: dict[str, int] = field(default_factory=dict)  # runs beyond one per experiment: purpose -> count
    champion_runs: tuple[tuple[float, float], ...] = ()  # (experiment it preceded - 0.5, value) of each champion run
    workers: int = 1  # workers that ran its runs
    busy: float | None = None  # the share of the workers' time spent running runs, from the first run to the last
    new_share: float | None = None  # the share of the runs' time spent on new candidates
    deterministic: bool = False  # the metric has no noise: every repeat agreed (or program.md said so)
    generations: tuple[Generation, ...] = ()  # HyperAgent generations (each after the experiment it names)
    tests: tuple[LockedTest, ...] = ()  # the locked test of each champion, in order (program.md's `test:`)

    def proposer(self, row: Experiment) -> str:
        """Which agent proposed an experiment: "seed", "gen<n>" (the candidate of generation n), or its name."""
        return agent_labels(self.generations).get(row.agent_sha, row.agent)


# --- The summary -----------------------------------------------------------------------------------------------------


def summarize(
    rows: Iterable[Row] | Path,
    tag: str | None = None,
    since: str | None = None,
    *,
    metric: str = "metric",
    direction: str | None = None,
    limit: int | None = None,
    now: datetime | None = None,
) -> Night:
    """The night of `tag` (default: the latest) from the ledger's rows, or from the ledger file at a path.

    `since` (an ISO time or a duration ago like 12h) keeps only later rows; the baseline is the night's all the same.
    `direction` is inferred from the rows when not given; `limit` keeps the last rows for showing, counting all.
    """
    rows = Ledger(rows).read() if isinstance(rows, Path) else list(rows)
    tag = tag if tag is not None else (rows[-1].tag if rows else None)
    if tag is None:
        raise HarnessError("the ledger has no rows yet; start a night with 'autoresearch run --tag <name>'")
    cutoff = parse_since(since, now) if since else None
    mine: list[Experiment] = []
    steers: list[SteerEvent] = []
    runs_of: list[MeasurementRow] = []
    measured: list[MeasurementRow] = []  # every run of the tag, whatever `since` says
    generations: list[Generation] = []
    tests: list[LockedTest] = []
    for row in rows:
        if row.tag != tag:
            continue
        if type(row) is LockedTest:
            tests.append(row)  # every champion's, whatever `since` says: the night's gains are read against them
        elif type(row) is Experiment:
            mine.append(row)
        elif type(row) is MeasurementRow:
            measured.append(row)
            if row.time >= (cutoff or ""):
                runs_of.append(row)
        elif type(row) is Generation and row.time >= (cutoff or ""):
            generations.append(row)
        elif type(row) is Steer and row.time >= (cutoff or ""):
            steers.append(SteerEvent(row.time, mine[-1].id if mine else None, row.changes, row.error))
    if not mine and not any(r.tag == tag for r in rows):
        tags = ", ".join(dict.fromkeys(r.tag for r in rows))
        raise HarnessError(f"no rows for tag '{tag}' in the ledger" + (f"; its tags: {tags}" if tags else ""))

    # A resumed night may re-run a failed baseline: the last kept one counts, whatever `since` says.
    base = next((e for e in reversed(mine) if e.id == 0 and e.status == "keep"), None)
    entries = mine if cutoff is None else [e for e in mine if e.time >= cutoff]
    runs = [e for e in entries if e.id != 0]
    statuses = dict(Counter(e.status for e in runs).most_common())
    baseline = now if (now := _now(base, measured)) is not None else base.metric if base is not None else None
    # The champion as it stands now: a `since` window shows recent rows, not a best forgotten from before it.
    champion = next((e for e in reversed(mine) if e.status == "keep"), None)
    if (best := _now(champion, measured)) is None:  # a ledger without runs: the best its last row recorded
        best = next((e.best for e in reversed(mine) if e.best is not None), None)
    direction = direction or _infer(entries, baseline, best) or "minimize"
    if best is None:  # an older ledger without `best`: the best kept metric
        kept_metrics = [e.metric for e in mine if e.status == "keep" and e.metric is not None]
        best = (min if direction == "minimize" else max)(kept_metrics, default=baseline)
    change = best - baseline if best is not None and baseline is not None else None
    shown = entries[-limit:] if limit else entries
    first, end = (entries[0].time, entries[-1].time) if entries else (None, None)
    if cutoff is None and measured:  # the night began when its first run did, before any experiment's row
        first = min([first or measured[0].time, *(_began(m) for m in measured)])
    kept = statuses.get("keep", 0)
    return Night(
        tag=tag, metric=metric, direction=direction, experiments=len(runs), kept=kept,
        keep_rate=kept / len(runs) if runs else 0.0, baseline=baseline, best=best, change=change,
        change_pct=100.0 * change / abs(baseline) if change is not None and baseline else None,
        spend_usd=sum(e.cost_usd for e in [*entries, *generations]),
        tokens_in=sum(e.tokens_in for e in [*entries, *generations]),
        tokens_out=sum(e.tokens_out for e in [*entries, *generations]), first=first or None, last=end or None,
        hours=_hours(first, end), statuses=statuses, steers=tuple(steers), rows=tuple(shown),
        hidden=len(entries) - len(shown), since=cutoff, noise=_noise(mine), generations=tuple(generations),
        extra_runs=dict(Counter(m.purpose for m in runs_of if m.purpose in ("remeasure", "confirm"))),
        champion_runs=_champion_runs(runs_of, measured),
        workers=len({m.worker for m in runs_of}) or 1, busy=runtime.busy(runs_of), tests=tuple(tests),
        new_share=runtime.new_share(runs_of), deterministic=_deterministic(mine, measured))  # fmt: skip


def _now(row: Experiment | None, runs: list[MeasurementRow]) -> float | None:
    """A kept version's number now, as the loop weighs it (the median of its trusted runs), so the baseline and the
    champion are weighed alike and a night that kept nothing shows no change; None without runs (an older ledger)."""
    if row is None or not row.file_sha:
        return None
    mine = [Measurement(m.file_sha, m.value, contended=m.contended) for m in runs
            if m.file_sha == row.file_sha and m.value is not None]  # fmt: skip
    return Referee(mine).value(row.file_sha)


def _deterministic(rows: list[Experiment], runs: list[MeasurementRow]) -> bool:
    """Whether the last decision used a noise of exactly 0 (no noise) and no two runs of a version disagree."""
    ran = [Measurement(m.file_sha, m.value) for m in runs if m.value is not None]
    return _noise(rows) == 0.0 and Referee(ran).disagreement() is None


def _noise(rows: list[Experiment]) -> float | None:
    """The noise of the last decision, as its row recorded it (the baseline's for a night of one row)."""
    for row in reversed(rows):
        value = row.extra.get("noise") if isinstance(row.extra, dict) else None
        if isinstance(value, int | float):
            return float(value)
    return None


def _infer(entries: list[Experiment], baseline: float | None, best: float | None) -> str | None:
    """The direction the loop kept by: the sign of a kept experiment's delta, else best against baseline."""
    for e in entries:
        if e.status == "keep" and e.id != 0 and e.delta:
            return "minimize" if e.delta < 0 else "maximize"
    if best is not None and baseline is not None and best != baseline:
        return "minimize" if best < baseline else "maximize"
    return None


def parse_since(since: str, now: datetime | None = None) -> str:
    """An ISO time or a duration ago (90s, 30m, 12h, 2d) as ISO 8601 UTC, comparable with the ledger's times."""
    now = now or datetime.now(UTC)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", since)
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[m.group(2)]
        when = now - timedelta(**{unit: float(m.group(1))})
    else:
        try:
            when = datetime.fromisoformat(since.strip())
        except ValueError:
            raise HarnessError(
                f"--since {since!r}: expected an ISO time like 2026-11-23T01:00:00Z or a duration like 12h or 30m"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)  # the ledger's times are UTC, so a bare time is read as UTC too
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- `autoresearch log` ----------------------------------------------------------------------------------------------


def log_table(night: Night, console_width: int | None = None) -> str:
    """The night as plain aligned text: the table of rows, then a `---` block of summary figures."""
    width = console_width or shutil.get_terminal_size((100, 24)).columns
    head = ("id", "status", night.metric, "delta", "seconds")
    cells = [(str(r.id), r.status, num(r.metric), signed(r.delta), f"{r.seconds:.1f}") for r in night.rows]
    widths = [max(len(c[i]) for c in [head, *cells]) for i in range(5)]
    room = max(20, width - sum(widths) - 2 * 5)

    def line(c: tuple[str, ...], text: str) -> str:
        fields = [c[0].rjust(widths[0]), c[1].ljust(widths[1]), *(c[i].rjust(widths[i]) for i in (2, 3, 4))]
        return "  ".join([*fields, clip(text, room)]).rstrip()

    # In a HyperAgent night each experiment says which agent proposed it, and each generation has a line of its
    # own after the experiment it followed.
    texts = [flat(r.description) for r in night.rows]
    if night.generations:
        texts = [f"[{night.proposer(r)}] {text}" for r, text in zip(night.rows, texts, strict=True)]
    out = [line(head, "description")]
    shown = {r.id for r in night.rows}
    out += [clip(generation_line(g), width) for g in night.generations if g.after not in shown]
    for c, text, r in zip(cells, texts, night.rows, strict=True):
        out.append(line(c, text))
        out += [clip(generation_line(g), width) for g in night.generations if g.after == r.id]
    if night.hidden:
        out.append(f"({night.hidden} earlier rows not shown; --limit 0 shows every row)")
    if not night.rows:
        out.append("(no experiments" + (f" since {night.since})" if night.since else ")"))
    out += [clip(line, width) for line in lockedtest.table(night.tests)]
    lines = figures(night)
    pad = max(len(k) for k, _ in lines) + 2
    return "\n".join(out) + "\n---\n" + "\n".join(f"{k + ':':<{pad}}{v}" for k, v in lines) + "\n"


def _statuses(counts: dict[str, int]) -> str:
    """The statuses by what became of each run: evaluated (keep, discard), failed, not run, interrupted."""
    parts = []
    for name, group in (("evaluated", EVALUATED), ("failed", FAILED), ("not run", UNRUN), ("", INTERRUPTED)):
        if mine := {k: n for k, n in counts.items() if k in group}:
            each = ", ".join(f"{k} {n}" for k, n in mine.items())
            parts.append(f"{name} {sum(mine.values())} ({each})" if name else each)
    return ", ".join(parts) or "-"


def figures(night: Night) -> list[tuple[str, str]]:
    better = "lower" if night.direction == "minimize" else "higher"
    best = num(night.best)
    if night.change is not None:
        pct = f", {night.change_pct:+.1f}%" if night.change_pct is not None else ""
        best += f" ({signed(night.change)}{pct}; {better} is better)"
    span = "-"
    if night.first and night.last:
        span = f"{night.first.replace('T', ' ')[:16]} to {night.last.replace('T', ' ')[:16]} UTC ({night.hours:.1f} h)"
    return [
        ("tag", night.tag + (f" (since {night.since})" if night.since else "")),
        ("experiments", f"{night.experiments} ({night.kept} kept, {100 * night.keep_rate:.1f}%)"),
        (f"baseline {night.metric}", num(night.baseline)),
        (f"best {night.metric}", best),
        ("spend", f"${night.spend_usd:.2f} ({night.tokens_in:,} tokens in, {night.tokens_out:,} out)"),
        ("time", span),
        ("steer events", str(len(night.steers))),
        ("statuses", _statuses(night.statuses)),
        ("noise", _noise_line(night)),
        ("evaluators busy", "-" if night.busy is None else f"{100 * night.busy:.1f}% of {night.workers} workers' time"),
        ("new experiments", "-" if night.new_share is None else f"{100 * night.new_share:.0f}% of run time"),
        *([("generations", generations_summary(night.generations))] if night.generations else []),
        *([("locked test", lockedtest.summary(night.tests))] if night.tests else []),
    ]


def generation_line(g: Generation) -> str:
    """One generation as the `log` table shows it."""
    what = f"{g.description} ({g.error})" if g.status == "reverted" else g.error or g.description
    if g.status == "accepted" and isinstance(g.scores.get("candidate"), list):
        turns, reference = len(g.scores["candidate"]), len(g.scores.get("reference", []))
        what += (f" (kept {g.scores.get('candidate_keeps', 0)} of {turns} against the champion's "
                 f"{g.scores.get('reference_keeps', 0)} of {reference}, z {g.scores.get('z', 0):+.2f})")  # fmt: skip
    return f"   gen {g.generation}  {g.status}  {g.stage}  {flat(what)}"


def generations_summary(generations: Iterable[Generation]) -> str:
    """How the rewrites went: how many, how many accepted, where the others stopped."""
    rows = [g for g in generations if g.status != "reverted"]
    stages = Counter(g.stage for g in rows if g.status == "rejected")
    stopped = ", ".join(f"{stage} {n}" for stage, n in stages.most_common())
    accepted = sum(1 for g in rows if g.status == "accepted")
    reverted = sum(1 for g in generations if g.status == "reverted")
    return f"{len(rows)} ({accepted} accepted" + (f"; rejected at {stopped}" if stopped else "") + (
        f"; {reverted} reverted" if reverted else "") + ")"  # fmt: skip


def agent_labels(generations: Iterable[Generation]) -> dict[str, str]:
    """agent_sha -> the agent's name in a HyperAgent night: "seed", or "gen<n>" for generation n's candidate."""
    labels: dict[str, str] = {}
    for g in generations:
        labels.setdefault(g.champion_sha, "seed")
        if g.agent_sha and g.status != "reverted":  # the first name wins: a candidate identical to an agent is not it
            labels.setdefault(g.agent_sha, f"gen{g.generation}")
    return labels


def _noise_line(night: Night) -> str:
    """The noise a keep had to beat at the end, and the runs the keep rule added to get there."""
    if night.noise is None:
        return "-"
    runs = night.extra_runs
    extra = f"{runs.get('remeasure', 0)} champion re-runs, {runs.get('confirm', 0)} confirmations"
    if night.deterministic:
        return f"0: deterministic, every repeat agreed exactly ({extra})"
    return f"{num(night.noise)} per run ({extra})"


def log_json(night: Night) -> dict[str, Any]:
    """The night as plain data: the summary figures, the steer events and the rows shown."""
    head = {k: getattr(night, k) for k in ("tag", "metric", "direction", "since")}
    skip = ("steers", "rows", "hidden", "generations", "tests")
    summary = {k: v for k, v in vars(night).items() if k not in head and k not in skip}
    steers = [vars(s) for s in night.steers]
    rows = [{k: getattr(r, k) for k in SHOWN} | {"description": flat(r.description)} for r in night.rows]
    if night.generations:
        rows = [row | {"agent": night.proposer(r)} for row, r in zip(rows, night.rows, strict=True)]
    out = {**head, "summary": summary, "steers": steers, "rows": rows, "hidden": night.hidden}
    if night.generations:
        out["generations"] = [g.to_json() for g in night.generations]
    out |= {"tests": [msgspec.to_builtins(t) for t in night.tests]} if night.tests else {}
    return out


def render_log(
    root: Path, tag: str | None = None, since: str | None = None, limit: int = LIMIT, as_json: bool = False
) -> str:
    """What `autoresearch log` prints for the repository at `root`."""
    ledger, metric, direction = repository(root)
    night = summarize(ledger, tag, since, metric=metric, direction=direction, limit=limit or None)
    return json.dumps(log_json(night), indent=2) + "\n" if as_json else log_table(night)


def repository(root: Path) -> tuple[Path, str, str | None]:
    """The ledger, and the metric's name and direction from program.md when it is valid (rows do not carry them)."""
    from harness.program import load

    layout = Layout(root)
    if not layout.ledger.exists():
        raise HarnessError(f"no {layout.ledger.name} in {root}; start a night with 'autoresearch run --tag <name>'")
    try:
        config = load(layout.program).config
    except ProgramError:
        return layout.ledger, "metric", None
    return layout.ledger, config.metric, config.direction


# --- Small conversions -----------------------------------------------------------------------------------------------
def _value(v: Any) -> str:
    return "-" if v is None else (", ".join(map(str, v)) if isinstance(v, list) else str(v))


def _champion_runs(runs: list[MeasurementRow], measured: list[MeasurementRow]) -> tuple[tuple[float, float], ...]:
    """(experiment it preceded or stood beside - 0.5, value) of each run of the champion: the baseline's, its
    re-measures, and the confirming runs it made beside a candidate (a `confirm` run of another version than the
    candidate's own), contended or not."""
    own = {m.experiment: m.file_sha for m in measured if m.purpose == "candidate"}
    return tuple(
        (m.experiment - 0.5, m.value)
        for m in runs
        if m.value is not None
        and (m.purpose in ("baseline", "remeasure") or (m.purpose == "confirm" and m.file_sha != own.get(m.experiment)))
    )


def _began(run: MeasurementRow) -> str:
    """When a run started, as the ledger writes times: its row's time less its seconds."""
    try:
        end = datetime.fromisoformat(run.time)
    except ValueError:
        return run.time
    return (end - timedelta(seconds=run.seconds)).isoformat(timespec="seconds").replace("+00:00", "Z")


def _hours(first: str | None, last: str | None) -> float:
    try:
        a, b = datetime.fromisoformat(first or ""), datetime.fromisoformat(last or "")
    except ValueError:
        return 0.0
    return max(0.0, (b - a).total_seconds() / 3600)
