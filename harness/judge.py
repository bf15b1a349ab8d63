"""How the night weighs a result: every run recorded as a measurement, the champion re-measured, a winner confirmed
before it is kept, contention marked. The rule itself is harness.keeprule; this module runs what it asks for."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from harness import keeprule
from harness.config import Config
from harness.keeprule import Measurement, Purpose, Verdict
from harness.ledger import MeasurementRow
from harness.measure import Measured, measure
from harness.repo import blob_sha
from harness.session import Session

FAILED_REMEASURES = 2  # champion re-runs that may fail in a row before the night stops asking for them


@dataclass(frozen=True)
class Run:
    """One run of one version: what the loop reports of it, and the measurement the rule weighs (None: it failed)."""

    measured: Measured
    measurement: Measurement | None


def run_version(
    session: Session,
    config: Config,
    exp_id: int,
    purpose: Purpose,
    content: str | None = None,
    started: Callable[[], None] = lambda: None,
    scoring: Callable[[], None] = lambda: None,
) -> Run:
    """Measure the checked-out tree, or the tree with `content` in the mutable file for this run only (the champion,
    measured beside a candidate), and record the run as a measurement row before anything is decided on it."""
    night, path = session.night, session.repo.root / config.mutable
    current = path.read_text(encoding="utf-8")
    version = content if content is not None else current
    if content is not None and content != current:
        path.write_text(content, encoding="utf-8")
    try:
        kind = (
            "remeasure" if purpose == "remeasure" else ""
        )  # the champion's runs are named apart from the experiment's
        measured = measure(session, config, exp_id, night.runs[exp_id, kind], started, kind, scoring)
    finally:
        if content is not None and content != current:
            path.write_text(current, encoding="utf-8")
    result = measured.result
    key = blob_sha(version)
    value = result.metric if result.outcome == "ok" else None
    found = None
    if value is not None:
        load = result.load if result.load is not None else _load()
        found = night.referee.measurement(
            key, value, seconds=result.seconds, cpu_seconds=result.cpu_seconds, load=load, cores=_cores(),
            purpose=purpose,
        )  # fmt: skip
    row = MeasurementRow(
        tag=session.tag, file_sha=key, value=value, purpose=purpose, experiment=exp_id, outcome=result.outcome,
        seconds=round(result.seconds, 3), cpu_seconds=_round(result.cpu_seconds),
        load=_round(found.load if found else None), contended=bool(found and found.contended),
        log=str(result.log.relative_to(session.repo.root)),
    )  # fmt: skip
    session.ledger.append(row)
    night.measured(row)
    return Run(measured, found)


def remeasure_due(session: Session, config: Config, failures: int) -> bool:
    """Whether the champion should run again before the next experiment (the rule says so, and its re-runs have
    not kept failing)."""
    night = session.night
    if not night.champion_sha or failures >= FAILED_REMEASURES:
        return False
    return night.referee.remeasure_due(night.champion_sha, config.remeasure_every)


def remeasure_why(session: Session, config: Config) -> str:
    """Why the champion runs again now, in the keep rule's own words, for the status."""
    night = session.night
    return night.referee.remeasure_reason(night.champion_sha, config.remeasure_every)


def settle(
    session: Session,
    config: Config,
    exp_id: int,
    candidate: str,
    champion: str,
    started: Callable[[str, str], None],
    scoring: Callable[[], None] = lambda: None,
) -> Verdict:
    """Keep or discard the candidate (the checked-out version, already measured once): every run the rule asks for
    (the candidate again, the champion beside it) is made and recorded first. `champion` is its file's content.
    `started(who, why)` is called before each of those runs: "candidate" or "champion", and the rule's reason."""
    night = session.night
    champion_sha = night.champion_sha

    def again(version: str, purpose: Purpose) -> Measurement | None:
        content = champion if version == champion_sha else None
        return run_version(session, config, exp_id, purpose, content, scoring=scoring).measurement

    def why(version: str, reason: str) -> None:
        started("champion" if version == champion_sha else "candidate", reason)

    return keeprule.settle(
        night.referee, blob_sha(candidate), champion_sha, again, config.direction, config.min_delta, config.confirm,
        why,
    )  # fmt: skip


def _load() -> float | None:
    """Where the run's cores could not be read (not Linux): the 1-minute load average per core, a laggy stand-in."""
    try:
        return os.getloadavg()[0] / _cores()
    except OSError:
        return None


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
