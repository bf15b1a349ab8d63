"""What the harness hands an agent (Task) and what an agent hands back (Proposal)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.ledger import Experiment
    from harness.program import Config

KEPT_SHOWN = 10  # how many kept experiments an agent sees besides the recent history


@dataclass(frozen=True)
class Attempt:
    """One earlier experiment as an agent sees it."""

    id: int
    status: str  # keep, discard, crash, timeout, invalid, duplicate, tampered, interrupted
    metric: float | None
    delta: float | None  # metric minus the champion it was tried against
    description: str
    reason: str = ""  # why it failed or was not run, one line


@dataclass(frozen=True)
class Task:
    """Everything an agent needs for one proposal; plain data, so it crosses a process boundary as JSON."""

    program: str  # program.md's free text, sent to the LLM verbatim
    mutable_path: str  # relative to the repository root, e.g. "train.py"
    mutable_content: str
    metric: str
    direction: str  # "minimize" or "maximize"
    best: float | None  # the champion's metric
    baseline: float | None
    history: tuple[Attempt, ...] = ()  # bounded, oldest first
    kept: tuple[Attempt, ...] = ()  # the kept experiments that made the champion (the latest few)
    crash_tail: str = ""  # the log tail of the most recent crash, when the last experiment crashed
    notes: str = ""  # the agent's own notes from its previous proposal
    experiment: int = 0  # the id this proposal will get
    search: dict[str, dict[str, Any]] = field(default_factory=dict)  # program.md's search space
    agent_source: str = ""  # the agent's own source (HyperAgent rewrites)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Task:
        data = dict(data)
        data["history"] = tuple(Attempt(**a) for a in data.get("history", ()))
        data["kept"] = tuple(Attempt(**a) for a in data.get("kept", ()))
        return cls(**data)


@dataclass(frozen=True)
class Proposal:
    """A one-line description and the whole new content of the file, with notes the agent wants back next time."""

    description: str
    content: str
    notes: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Proposal:
        return cls(
            description=str(data.get("description", "")),
            content=str(data.get("content", "")),
            notes=str(data.get("notes", "") or ""),
        )


def build_task(
    rows: list[Experiment],
    program_text: str,
    config: Config,
    exp_id: int,
    content: str,
    best: float | None,
    baseline: float | None,
) -> Task:
    """The task for experiment `exp_id`: the night so far (bounded by config.history), the last crash's tail, and
    the agent's latest notes."""
    tried = [r for r in rows if r.id != 0]
    last = rows[-1] if rows else None
    return Task(
        program=program_text,
        mutable_path=config.mutable,
        mutable_content=content,
        metric=config.metric,
        direction=config.direction,
        best=best,
        baseline=baseline,
        history=tuple(_attempt(r) for r in tried[-config.history :]),
        kept=tuple(_attempt(r) for r in tried if r.status == "keep")[-KEPT_SHOWN:],
        crash_tail=last.tail if last and last.status in ("crash", "timeout") else "",
        notes=next((r.notes for r in reversed(rows) if r.notes), ""),
        experiment=exp_id,
        search=config.search_dict(),
    )


def _attempt(row: Experiment) -> Attempt:
    return Attempt(row.id, row.status, row.metric, row.delta, row.description, row.reason)
