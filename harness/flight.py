"""The experiments in flight of a night and the recovery after a kill -9 or a power cut: what each experiment is, its
marker (one per experiment, written before anything depends on it), and on the next start the reconciliation that
puts the ledger and the branch back in agreement, the orphaned runs ended and the workers' checkouts removed."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import childenv, jails, paths, proctable
from harness.evaluate import RunResult
from harness.ledger import Experiment, Ledger
from harness.night import Night
from harness.paths import Layout
from harness.repo import Repo
from harness.task import Agent, Proposed, Spend, Task

CHECKOUTS = ("worker-", "evaluator-")  # the names of the workers' folders under runs/<tag>/work/
REASON = "the harness stopped during this experiment (killed, power cut or Ctrl-C)"


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
    write_marker(markers(layout, tag) / f"{flight.id}.json", data)


def unmark(layout: Layout, tag: str, exp_id: int) -> None:
    (markers(layout, tag) / f"{exp_id}.json").unlink(missing_ok=True)


def reconcile(repo: Repo, ledger: Ledger, layout: Layout, tag: str, reset_branch: Callable[[str], None]) -> int:
    """Record every experiment a killed night had in flight `interrupted` (its commit kept under a
    discarded ref), or apply its row when that was written, oldest first; returns how many markers there were."""
    found = sorted(markers(layout, tag).glob("*.json"), key=lambda p: int(p.stem) if p.stem.isdigit() else -1)
    if (legacy := layout.tag_dir(tag) / "inflight.json").is_file():  # the one marker an earlier version wrote
        found.insert(0, legacy)
    for marker in found:
        _reconcile_one(repo, ledger, marker, tag, reset_branch)
    return len(found)


def clean(layout: Layout, tag: str) -> list[str]:
    """Remove the workers' checkouts a night killed with -9 left under runs/<tag>/work/; returns their names."""
    work = layout.work(tag, CHECKOUTS[0]).parent
    found = sorted(p.name for p in work.iterdir() if p.name.startswith(CHECKOUTS)) if work.is_dir() else []
    for name in found:
        jails.remove(work / name)
    return found


def write_marker(path: Path, data: dict[str, Any]) -> None:
    """Say which experiment is under way, durably, before its commit exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def end_orphans(root: Path) -> list[int]:
    """End the processes of runs of this repository that outlived a harness killed with -9 (they would hold the GPU).
    Only called while the loop lock is held, so no live loop owns them."""
    return proctable.kill_marked(childenv.OWNER, str(root), grace=5.0)


def _reconcile_one(repo: Repo, ledger: Ledger, marker: Path, tag: str, reset_branch: Callable[[str], None]) -> None:
    """Finish what the marker says was under way: record it `interrupted` (its commit kept under a discarded ref)
    or, if its row was written, apply the row; then the branch goes back to the champion and the marker goes."""
    if not marker.exists():
        return
    try:
        inflight = json.loads(marker.read_text())
    except ValueError:
        inflight = {}
    rows, measurements = ledger.night(tag)
    by_id = {r.id: r for r in rows}
    exp_id = inflight.get("id")
    parent = inflight.get("parent") or ""
    night = Night.load(tag, rows, measurements, parent, ledger.generations(tag))
    if exp_id == 0 and 0 not in by_id:
        # The baseline has id 0 whatever happens; an interrupted one is a note, and it runs again on this start.
        ledger.note(tag, "the baseline was interrupted (killed, power cut or Ctrl-C); it runs again", baseline=True)
        reset_branch(night.champion)
    elif exp_id is not None and exp_id not in by_id and parent:
        commit = inflight.get("commit")
        ref = f"refs/heads/{paths.branch(tag)}"
        head = repo.resolve(ref) if repo.exists(ref) else None
        if not commit and head and head != parent and repo.parent_of(head) == parent:
            commit = head  # the experiment's commit landed; the marker was written before it
        if commit and commit != parent:
            repo.set_ref(paths.discarded_ref(tag, exp_id), commit)
        ledger.append(
            Experiment(
                tag=tag,
                id=exp_id,
                commit=commit,
                parent=parent,
                status="interrupted",
                metric=None,
                best=night.best,
                description=inflight.get("description", ""),
                seconds=round(time.time() - inflight.get("started", time.time()), 3),
                agent=inflight.get("agent", ""),
                program_sha=inflight.get("program_sha", ""),
                agent_sha=inflight.get("agent_sha", ""),
                reason=REASON,
                log=inflight.get("log", ""),
            )
        )
        reset_branch(night.champion)
    elif exp_id in by_id:
        row = by_id[exp_id]
        if row.status != "keep" and row.commit and row.id != 0:
            repo.set_ref(paths.discarded_ref(tag, row.id), row.commit)
        reset_branch(night.champion)
    marker.unlink()
