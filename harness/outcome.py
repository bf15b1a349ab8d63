"""What became of one experiment: its status and evidence, turned into its ledger row and its commit's trailers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import Config
from harness.edits import head
from harness.evaluate import RunResult
from harness.ledger import EVALUATED, FAILED, Experiment, Status
from harness.night import Night
from harness.task import Proposed, Spend
from harness.text import DESCRIPTION_CHARS, REASON_CHARS, REFLECTION_CHARS, clean, clip, one_line, tail

TAIL_CHARS = 3000  # how much of a failed run's log the ledger and the agent see


@dataclass(frozen=True)
class Finished:
    """One experiment's end, before it becomes a row: what was tried, how it went, and what it cost."""

    id: int
    status: Status
    description: str = ""
    commit: str | None = None  # None when nothing was committed (invalid, duplicate)
    metric: float | None = None  # only from a run that ended well
    result: RunResult | None = None  # None when nothing ran
    proposed: Proposed | None = None
    spend: Spend = field(default_factory=Spend)
    file_sha: str = ""
    reason: str = ""
    seconds: float = 0.0  # when nothing ran to measure it: the time until the interruption
    extra: dict[str, Any] = field(default_factory=dict)
    notes: str = ""  # the agent's notes when the proposal carries none (an unrun row keeps the last ones)


@dataclass(frozen=True)
class Author:
    """Who made the experiment and under what: the agent, the program in force, the sandbox in force."""

    agent: str
    agent_sha: str
    program_sha: str
    sandbox: str  # "bwrap", or "none (<mode>)"


def delta(finished: Finished, night: Night) -> float | None:
    """The metric minus the champion's, or None when either is unknown."""
    if finished.metric is None or night.best is None:
        return None
    return finished.metric - night.best


def row(finished: Finished, night: Night, config: Config, author: Author, root: Path) -> Experiment:
    """The ledger row of `finished`, against the night as it stood before it."""
    f, result = finished, finished.result
    change = delta(f, night)
    reason = one_line(f.reason, REASON_CHARS) if f.reason else ""
    if not reason and f.status == "discard" and change is not None:
        reason = f"not better than the champion by more than {night.margin(config):g} (delta {change:+.6f})"
    if not reason and result is not None and f.status not in EVALUATED:
        reason = result.reason
    proposal = f.proposed.proposal if f.proposed else None
    extra = {**(f.proposed.extra if f.proposed else {}), **f.extra}
    if "reflection" in extra:  # model-written, and sent back in every later task: bounded like the notes
        extra["reflection"] = head(clean(extra["reflection"]), REFLECTION_CHARS)
    return Experiment(
        tag=night.tag,
        id=f.id,
        commit=f.commit,
        parent=night.champion,
        status=f.status,
        metric=f.metric,
        best=f.metric if f.status == "keep" else night.best,
        delta=change,
        description=clip(f.description, DESCRIPTION_CHARS),
        seconds=round(result.seconds if result else f.seconds, 3),
        agent=author.agent,
        program_sha=author.program_sha,
        agent_sha=author.agent_sha,
        tokens_in=f.spend.tokens_in,
        tokens_out=f.spend.output_tokens,
        cost_usd=round(f.spend.cost_usd, 6),
        cache_read=f.spend.cache_read_tokens,
        cache_write=f.spend.cache_write_tokens,
        file_sha=f.file_sha,
        exit_code=result.exit_code if result else None,
        peak_mem_mb=result.peak_mem_mb if result else None,
        log=str(result.log.relative_to(root)) if result else "",
        reason=reason,
        tail=clean(result.tail[-TAIL_CHARS:]) if result and f.status in FAILED else "",
        notes=tail((proposal.notes if proposal else "") or f.notes),
        extra=extra,
        sandbox=author.sandbox,
    )


def trailers(finished: Finished, night: Night, config: Config) -> dict[str, str]:
    """The commit's trailers, in the spec's order: Experiment, Metric, Delta, Status."""
    out = {"Experiment": str(finished.id)}
    if finished.metric is not None:
        out["Metric"] = f"{config.metric}={finished.metric:.6f}"
    change = delta(finished, night)
    if change is not None:
        out["Delta"] = f"{change:+.6f}"
    out["Status"] = finished.status
    return out
