"""The experiments in flight of a night: what each one is, its marker (so a kill -9 can be reconciled, one marker per
experiment), and what a killed night left behind: its markers and its workers' checkouts."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import jails, recovery
from harness.evaluate import RunResult
from harness.ledger import Ledger
from harness.paths import Layout
from harness.repo import Repo
from harness.task import Agent, Proposed, Spend, Task

CHECKOUTS = ("worker-", "evaluator-")  # the names of the workers' folders under runs/<tag>/work/


@dataclass
class Flight:
    """One experiment from the moment its id is given out (its proposal starts) until its row is written."""

    id: int
    parent: str  # the champion it was proposed against: it is measured, judged and kept against this commit only
    parent_sha: str  # that champion's version of the mutable file (its blob sha)
    parent_content: str
    task: Task | None  # what the agent was given (None for an experiment re-based by the harness)
    started: float = field(default_factory=time.time)
    proposed: Proposed | None = None
    spend: Spend = field(default_factory=Spend)
    commit: str | None = None  # its commit (parent: `parent`), once made
    file_sha: str = ""
    description: str = ""
    rebased_from: int | None = None  # the experiment whose change it carries onto a newer champion
    result: RunResult | None = None  # its candidate run
    worker: str = ""  # the worker of its candidate run
    pending: int = 0  # its runs under way
    pair: bool = True  # a champion run beside its confirmation still counts (False once one failed)
    rounds: int = 0  # verdicts asked for: the scheduler gives up past 2 x (2 + confirm + 3), a bug
    extra: dict[str, Any] = field(default_factory=dict)
    agent: Agent | None = None  # who proposes it (the baseline: the night's agent)

    @property
    def content(self) -> str:
        return self.proposed.proposal.content if self.proposed else ""


def markers(layout: Layout, tag: str) -> Path:
    """runs/<tag>/inflight/: one marker per experiment in flight, named <id>.json, in the one-experiment format."""
    return layout.inflight(tag)


def mark(layout: Layout, tag: str, flight: Flight, info: dict[str, Any]) -> None:
    """Say durably that `flight` is under way (and its commit once it has one), before anything depends on it."""
    data = {
        "id": flight.id,
        "parent": flight.parent,
        "commit": flight.commit,
        "description": flight.description,
        "started": flight.started,
        "log": str(layout.run_log(tag, flight.id).relative_to(layout.root)),
        **info,
    }
    recovery.write_marker(markers(layout, tag) / f"{flight.id}.json", data)


def unmark(layout: Layout, tag: str, exp_id: int) -> None:
    (markers(layout, tag) / f"{exp_id}.json").unlink(missing_ok=True)


def reconcile(repo: Repo, ledger: Ledger, layout: Layout, tag: str, reset_branch: Callable[[str], None]) -> int:
    """Record every experiment a killed parallel night had in flight `interrupted` (its commit kept under a
    discarded ref), or apply its row when that was written, oldest first; returns how many markers there were."""
    found = sorted(markers(layout, tag).glob("*.json"), key=lambda p: int(p.stem) if p.stem.isdigit() else -1)
    if (legacy := layout.tag_dir(tag) / "inflight.json").is_file():  # the one marker an earlier version wrote
        found.insert(0, legacy)
    for marker in found:
        recovery.reconcile(repo, ledger, marker, tag, reset_branch)
    return len(found)


def clean(layout: Layout, tag: str) -> list[str]:
    """Remove the workers' checkouts a night killed with -9 left under runs/<tag>/work/; returns their names."""
    work = layout.work(tag, CHECKOUTS[0]).parent
    found = sorted(p.name for p in work.iterdir() if p.name.startswith(CHECKOUTS)) if work.is_dir() else []
    for name in found:
        jails.remove(work / name)
    return found
