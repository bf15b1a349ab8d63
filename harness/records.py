"""What the engine of a night writes: a proposal checked and committed on its own parent, and a finished
experiment's row, trailers and refs, in the order a kill -9 can be reconciled from."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import msgspec

from harness import flight, jails, lockedtest, memory, outcome, outputs
from harness.errors import RepoError
from harness.executors.workers import Done
from harness.flight import Flight
from harness.ledger import UNRUN, Experiment, MeasurementRow, Status
from harness.night import result_of
from harness.outcome import Author, Finished
from harness.paths import PROGRAM, branch, discarded_ref
from harness.precheck import check_proposal
from harness.repo import blob_sha, with_trailers
from harness.session import Session
from harness.status import Screen
from harness.task import Agent
from harness.text import short


class Records:
    """The one writer of git and the ledger in a night (the engine's thread calls it, nothing else)."""

    def __init__(self, session: Session, screen: Screen, flights: dict[int, Flight], *, in_place: bool) -> None:
        self.s, self.night, self.repo, self.screen = session, session.night, session.repo, screen
        self.flights = flights  # the scheduler's experiments in flight: a finished one leaves it here
        # Runs made in the repository's own tree: an experiment's commit stays checked out (the branch at it) until
        # its row is written; else the tree stays at the champion and a commit is made beside it.
        self.in_place = in_place
        self.tried = memory.Tried()  # the points that spent a run, to refuse a near-duplicate before its run

    def accept(self, f: Flight) -> bool:
        """Check a proposal before it costs compute and commit it on its parent: True when it is to be measured; else
        its row is written (invalid, duplicate)."""
        night, mutable = self.night, self.s.config.mutable
        content = f.content
        problem = ""
        if not self.in_place and (control := self.s.restore_control()):  # in place, the run's guards did it
            problem = f"the agent changed .git control files (undone): {', '.join(control)}"
        if strays := [p for p in self.repo.changed() if p not in (mutable, PROGRAM)]:
            self.repo.restore(strays)  # an agent may only answer with content; what it wrote is undone
            problem = problem or f"the agent changed {', '.join(strays)}; only {mutable} may change"
        problem = problem or check_proposal(content, f.parent_content, mutable)
        if problem:
            self.finish(f, "invalid", reason=problem)
            return False
        if f.task is not None and f.proposed is not None:
            f.proposed = memory.tagged(f.proposed, f.task, f.parent_content)
        f.file_sha = sha = blob_sha(content)
        # A re-based experiment may carry exactly its own version (every change of it conflicted): that is measured
        # again against the new champion, not refused as a duplicate of itself.
        measured = f.rebased_from is not None and bool(night.referee.runs(sha))
        twin = next((g for g in self.flights.values() if g is not f and g.commit and g.file_sha == sha), None)
        earlier = None if measured else night.seen.get(sha)
        if earlier is not None or twin is not None:
            k = earlier.id if earlier else twin.id  # type: ignore[union-attr]
            why = f"same content as experiment {k} ({earlier.status if earlier else 'in flight'}); not run again"
            self.finish(f, "duplicate", reason=why, extra={"same_as": k, "earlier_metric": earlier and earlier.metric})
            return False
        if not measured and (found := self._near(f)) is not None:
            why, extra = memory.refusal(found, night.rows)
            self.finish(f, "duplicate", reason=why, extra=extra)
            return False
        if self.in_place:  # the marker names it before its commit exists: a kill -9 finds the commit on the branch
            flight.mark(self.s.layout, self.s.tag, f, self.who(f.agent))
        try:
            made = self.repo.commit_file(mutable, content, f.description)
            if not self.in_place:
                self.s.reset_hard(night.champion)  # the tree stays at the champion; the commit goes onto its parent
            f.commit = made if f.parent == night.champion else self.repo.amend_message(made, f.description, f.parent)
        except RepoError as e:
            self.s.reset_hard(night.champion)
            self.finish(f, "invalid", reason=f"git could not commit it: {e}")
            return False
        if not self.in_place:
            flight.mark(self.s.layout, self.s.tag, f, self.who(f.agent))
        return True

    def _near(self, f: Flight) -> tuple[int, str] | None:
        """(the experiment `f` is a near-duplicate of, why), when it repeats a point that ran or is running."""
        self.tried.sync(self.night.rows, self._show)
        flying = memory.Tried()
        for g in self.flights.values():
            if g is not f and g.commit:
                flying.add(g.id, "in flight", g.content)
        return self.tried.refuse(f.content) or flying.refuse(f.content)

    def _show(self, commit: str) -> str | None:
        try:
            return self.repo.show(commit, self.s.config.mutable)
        except RepoError:
            return None

    # --- rows ----------------------------------------------------------------------------------------------------

    def measurement(self, done: Done) -> tuple[Done, MeasurementRow]:
        """One run's measurement row, written before anything is decided on it; a run that changed .git's control
        files is tampered, and a tampered run's protected files are put back first."""
        job, result = done.job, done.result
        if not self.in_place and (control := self.s.restore_control()):  # in place, the run's guards did it
            reason = "changed .git control files: " + ", ".join(control)
            result = dataclasses.replace(result, outcome="tampered", metric=None, reason=reason)
            done = dataclasses.replace(done, result=result)
        if result.outcome == "tampered":
            self.repo.restore(jails.guarded(self.s.config))
        value = result.metric if result.outcome == "ok" else None
        found = None
        if value is not None:
            # A worker shares the machine by design: only its own cores' load counts (none known: a starved run).
            found = self.night.referee.measurement(
                job.file_sha, value, seconds=result.seconds, cpu_seconds=result.cpu_seconds, load=result.load,
                cores=done.cores, purpose=job.purpose,  # type: ignore[arg-type]
            )  # fmt: skip
        row = MeasurementRow(
            tag=self.s.tag, file_sha=job.file_sha, value=value, purpose=job.purpose, experiment=job.experiment,
            outcome=result.outcome, seconds=round(result.seconds, 3), log=str(result.log.relative_to(self.repo.root)),
            cpu_seconds=None if result.cpu_seconds is None else round(result.cpu_seconds, 3),
            contended=bool(found and found.contended), worker=done.worker,
        )  # fmt: skip
        self.s.ledger.append(row)
        return done, row

    def finish(
        self,
        f: Flight,
        status: Status,
        metric: float | None = None,
        reason: str = "",
        extra: dict[str, Any] | None = None,
    ) -> Experiment:
        """Record one experiment: its commit re-made with trailers on its own parent, its row (fsynced), then the
        git state the row describes; only a keep on the champion moves the branch. Returns the row."""
        config, night = self.s.config, self.night
        # A row's seconds are its run's: none for a proposal refused before its run; an interrupted run's time so far.
        seconds = time.time() - f.started if f.result is None and status not in UNRUN else 0.0
        more = {**f.extra, **(extra or {})}
        if f.rebased_from is not None:
            more["rebased_from"] = f.rebased_from
        done = Finished(
            f.id, status, f.description, f.commit, metric, f.result, f.proposed, f.spend, f.file_sha, reason,
            seconds, more, notes=f.task.notes if f.task else "",
        )  # fmt: skip
        if f.commit and f.id != 0:
            message = with_trailers(f.description, outcome.trailers(done, night, config))
            done = dataclasses.replace(done, commit=self.repo.amend_message(f.commit, message, f.parent))
        sb, agent = self.s.sandbox, f.agent
        name, sha = (agent.name, agent.sha) if agent else ("", "")
        author = Author(name, sha, self.s.program.sha, "bwrap" if sb.active else f"none ({sb.mode})")
        row = msgspec.structs.replace(
            outcome.row(done, night, config, author, self.repo.root), parent=f.parent, worker=f.worker
        )
        if status == "keep" and f.id != 0 and f.parent != night.champion:
            raise AssertionError(f"experiment {f.id} would be kept on {short(f.parent)}, not on the champion")
        self.s.ledger.append(row)
        if row.id != 0 and row.commit:
            if row.status == "keep" and self.in_place:
                self.repo.set_ref(f"refs/heads/{branch(self.s.tag)}", row.commit)  # the tree is at it already
            elif row.status == "keep":
                self.s.reset_hard(row.commit)  # the branch moves from the champion to its child
            else:
                self.repo.set_ref(discarded_ref(self.s.tag, row.id), row.commit)
                if self.in_place:
                    self.s.reset_hard(night.champion)
        flight.unmark(self.s.layout, self.s.tag, f.id)
        self.flights.pop(f.id, None)
        night.record(row)
        if agent is not None:
            agent.observe(result_of(row))
        self.screen.row(row)
        if test := lockedtest.after(self.s.tree, config, row, f.result.out if f.result else None):
            self.s.ledger.append(test)
            self.screen.info(lockedtest.line(test, config.metric))
        outputs.retain(self.s.layout.tag_dir(self.s.tag), night)
        return row

    def who(self, agent: Agent | None) -> dict[str, str]:
        """What an experiment's marker says of who proposed it."""
        name, sha = (agent.name, agent.sha) if agent else ("", "")
        return {"agent": name, "agent_sha": sha, "program_sha": self.s.program.sha}


def failure(outcome_: str) -> Status:
    return "tampered" if outcome_ == "tampered" else "timeout" if outcome_ == "timeout" else "crash"


def evidence(done: Done) -> dict[str, Any]:
    """What an experiment's row keeps of its candidate run beside the standard fields (and of the last baseline
    run): what the run claimed beside the evaluator, its times, and the files it left in the tree (no sandbox)."""
    result = done.result
    out: dict[str, Any] = {"removed": list(done.removed)} if done.removed else {}
    if result.claimed is not None:
        out["claimed"] = result.claimed
    if result.eval_seconds is not None:
        out["eval_seconds"] = result.eval_seconds
    if result.cpu_seconds is not None:
        out["cpu_seconds"] = round(result.cpu_seconds, 3)
    return out
