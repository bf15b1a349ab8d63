"""What an agent is told before each proposal: the Task, built from the program in force and the night so far."""

from __future__ import annotations

from harness.config import Config
from harness.ledger import Experiment
from harness.night import Night
from harness.task import Attempt, Task

KEPT_SHOWN = 10  # how many kept experiments an agent sees besides the recent history


def build_task(night: Night, program_text: str, config: Config, content: str) -> Task:
    """The task for the night's next experiment: the history (bounded by config.history), the last crash's tail,
    and the agent's latest notes."""
    rows = night.rows
    tried = [r for r in rows if r.id != 0]
    last = rows[-1] if rows else None
    return Task(
        program=program_text,
        mutable_path=config.mutable,
        mutable_content=content,
        metric=config.metric,
        direction=config.direction,
        best=night.best,
        baseline=night.baseline,
        history=tuple(_attempt(r) for r in tried[-config.history :]),
        kept=tuple(_attempt(r) for r in tried if r.status == "keep")[-KEPT_SHOWN:],
        crash_tail=last.tail if last and last.status in ("crash", "timeout") else "",
        notes=next((r.notes for r in reversed(rows) if r.notes), ""),
        experiment=night.next_id(),
        search=config.search_dict(),
    )


def _attempt(row: Experiment) -> Attempt:
    return Attempt(row.id, row.status, row.metric, row.delta, row.description, row.reason)
