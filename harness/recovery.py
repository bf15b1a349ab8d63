"""Recovery after a kill -9 or a power cut: the marker of the experiment under way, and the reconciliation that
puts the ledger and the branch back in agreement on the next start."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import childenv, paths, proctable
from harness.ledger import Experiment, Ledger
from harness.night import Night
from harness.repo import Repo

REASON = "the harness stopped during this experiment (killed, power cut or Ctrl-C)"


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


def reconcile(repo: Repo, ledger: Ledger, marker: Path, tag: str, reset_branch: Callable[[str], None]) -> None:
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
