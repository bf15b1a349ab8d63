"""The engine of every night: the one driver that owns git, the ledger and every keep or reset, over an executor's
workers and an agent that proposes (`ahead` proposals made while every worker is busy).

One worker of this machine with no proposal ahead is the classic night: each proposal sees the last result, and each
run is made in the repository's own tree, the branch at the candidate while it runs (harness.executors.inplace).

The merge rule. An experiment is proposed against the champion of its time (its parent) and committed on it. When its
runs are in:
- its parent is still the champion: it is judged against it by the keep rule (confirmed like any candidate), and a
  keep moves the branch to it: the branch stays a straight line of kept experiments, each on its own parent;
- the champion moved on while it ran: it is weighed against its own parent only. If it does not beat it, it is
  discarded. If it does, it is discarded here too, and its change is carried onto the new champion (a three-way merge
  of the mutable file; where both changed the same lines, the experiment's lines) as a new experiment, recorded as
  such (`rebased_from`), measured and judged against that champion like any other. A change already in the champion
  is not carried again.
So no commit is ever kept on a champion it was not measured against, and no kept improvement is dropped: the branch
only moves from the champion to a child of it.
"""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any, Protocol

from harness import endings, flight, records
from harness.agents.host import HostedAgent
from harness.brief import build_task, in_flight
from harness.errors import (
    AgentError,
    BudgetExceeded,
    HarnessError,
    Interrupted,
    LLMError,
    LoopEnd,
    ServiceFailed,
)
from harness.evaluate import baseline_failed
from harness.executors.base import Executor, Inline, Lane
from harness.executors.inplace import InPlace
from harness.executors.workers import Done, Job
from harness.flight import Flight
from harness.ledger import Experiment, MeasurementRow, Status
from harness.merge import merge
from harness.records import Records
from harness.repo import blob_sha
from harness.session import Session
from harness.status import Screen, write_status
from harness.task import Agent, Proposal, Proposed, Spend, Task
from harness.text import one_line, short

BASELINE, CHAMPION, CONFIRM, CANDIDATE = range(4)  # the order waiting runs take a free worker in
FAILED_REMEASURES = 2  # champion re-runs that may fail in a row before the night stops asking for them


class Conductor(Protocol):
    """What drives the night's agent from outside the engine (HyperAgent mode owns one): before each proposal it
    says which agent makes it (it may rewrite, try or swap agents first, or end the night by raising LoopEnd), and
    it is told the row of each experiment that ran its course."""

    def next_agent(self) -> Agent: ...

    def finished(self, row: Experiment) -> None: ...


class Engine:
    """The state machine of a night, over an open session, a ready agent and an executor."""

    def __init__(
        self,
        session: Session,
        agent: Agent,
        screen: Screen,
        executor: Executor,
        *,
        ahead: int = 1,
        conductor: Conductor | None = None,
    ) -> None:
        self.s, self.night, self.repo, self.agent, self.screen, self.ex = (
            session, session.night, session.repo, agent, screen, executor,
        )  # fmt: skip
        self.ahead = ahead
        self.limit = executor.slots + ahead  # experiments in flight at most: every worker's, and `ahead` being proposed
        self.conductor = conductor
        self.inline = executor.inline  # runs made in this thread, one at a time: proposals too, in turn with them
        self.count = 0  # experiments proposed in this invocation
        self.flights: dict[int, Flight] = {}
        self.runs: dict[Future[Done], Flight | None] = {}  # None: a run of the champion or the baseline
        self.proposals: dict[Future[tuple[Proposed | None, str, Spend]], Flight] = {}
        self.waiting: list[tuple[int, int, Job, Flight | None, int | None]] = []  # (order, seq, job, for, its slot)
        self.free = set(range(executor.slots))
        self.used = dict.fromkeys(self.free, 0)  # runs given to each worker
        self.issued: dict[tuple[int, str], int] = {}  # runs handed out per (experiment, kind), so logs never clash
        self.seq = 0  # waiting runs of one order go first come, first served
        self.baseline: list[MeasurementRow] = []
        self.baseline_left = 0  # baseline runs not yet in
        self.champion_runs = 0  # the champion's re-runs under way (one at a time)
        self.failed_remeasures = 0
        self.why: dict[int, str] = {}  # the keep rule's reason for an experiment's re-runs waiting, for the status
        self.records = Records(session, screen, self.flights, in_place=self.inline)
        self.ending: LoopEnd | None = None  # once set, nothing new starts; the night ends when nothing is in flight
        self.watch = endings.watcher(session.options, session.layout, session.started)
        self._since = (-1, 0.0)  # the experiment under way and when it began, for the status's estimate
        self.running: Flight | None = None  # whose run was handed out last (inline: the run under way)
        if isinstance(executor, InPlace):  # it says when a run and its evaluator start: the night's step
            executor.step = lambda job, step: self.show_run(job, self.running, step)
        # Long-lived threads, one per proposal that may be in flight: an agent's child process lives on the thread
        # that started it, and a proposal never waits for another's thread. Inline: the engine's own thread.
        self.idle: list[Lane | Inline] = (
            [Inline()] if self.inline else [Lane(f"proposer-{i}") for i in range(self.limit)]
        )
        # An agent that may be asked for several proposals at once says so (`concurrent = True`); any other is asked
        # for one at a time, still ahead of the workers. agent.py's host keeps one jail folder, so it is one of those.
        self.concurrent = bool(getattr(agent, "concurrent", False)) and conductor is None

    # --- the night -----------------------------------------------------------------------------------------------

    def until_end(self) -> LoopEnd:
        """Run until something ends the night and every experiment in flight is recorded; say what ended it."""
        try:
            if not self.night.has_baseline:
                self.start_baseline()
            while True:
                if not self.inline or not self.flights:  # in place: between two experiments, as each one starts
                    self.s.steer(self.screen.info, self.agent, busy=bool(self.proposals) and not self.concurrent)
                self.check_stop()
                self.fill()
                if not self.runs and not self.proposals:
                    raise self.ending or AssertionError("nothing in flight and nothing to start")
                self.publish()
                futures: list[Future[Any]] = [*self.runs, *self.proposals]
                finished = wait(futures, return_when=FIRST_COMPLETED).done
                # A worker whose run is in takes its next waiting run first; the bookkeeping of the run can wait
                # (inline, the next run waits for it: it is made in this thread).
                self.free.update(done.result().slot for done in finished if done in self.runs)
                if not self.inline:
                    self.dispatch()
                for done in finished:
                    if done in self.runs:
                        self.measured(done, self.runs.pop(done))
                    else:
                        self.proposed(done, self.proposals.pop(done))
        except LoopEnd as e:
            return e
        except KeyboardInterrupt:
            self.abandon()
            return Interrupted(
                "interrupted (Ctrl-C or SIGTERM); what was in flight is recorded, the tree is at the champion"
            )
        except Exception as e:  # a person's mistake is raised, a full disk is a stop, a bug is a crash log
            crash_log = self.s.layout.crash_log(self.s.tag)
            if endings.disk_full(e):
                # The runs end; what was in flight is reconciled on the next start (writing it now would fail too).
                self.ex.cancel()
                raise endings.failed(e, crash_log, self.s.tag) from None
            try:
                self.abandon()  # first: whatever becomes of the crash log, what was in flight is recorded
            finally:
                crashed = endings.failed(e, crash_log, self.s.tag)
            return crashed
        finally:
            for lane in self.idle:
                lane.close()

    def check_stop(self) -> None:
        if self.ending is None:
            s = self.s
            self.ending = endings.due(
                s.options, s.layout, s.started, self.count, self.night.spend_usd, s.config.max_cost_usd
            )

    def fill(self) -> None:
        """Give every free worker a waiting run, and start proposals until `limit` experiments are in flight (with
        no proposal ahead, only while a worker has nothing to do)."""
        # One experiment at a time: the champion runs again between two experiments, never among a candidate's runs.
        between = self.limit > 1 or not self.flights
        if (
            self.ending is None
            and self.night.has_baseline
            and between
            and not self.champion_runs
            and self.remeasure_due()
        ):
            self.queue(CHAMPION, self.champion_job("remeasure"), None)
        self.dispatch()
        while self.ending is None and self.night.has_baseline and len(self.flights) < self.limit:
            if self.proposals and not self.concurrent:
                break
            if not self.ahead and len(self.free) <= len(self.waiting):
                break
            self.start_proposal()

    def dispatch(self) -> None:
        """Give every free worker a waiting run: pinned ones to their worker, the others to any, in order."""
        for order, seq, job, owner, pin in sorted(self.waiting, key=lambda w: w[:2]):
            # The worker used least so far: runs spread over every device, so each one's offset keeps being measured.
            slot = pin if pin is not None else min(self.free, key=lambda k: self.used[k], default=None)
            if slot is None or slot not in self.free:
                continue
            self.waiting.remove((order, seq, job, owner, pin))
            self.free.discard(slot)
            self.used[slot] += 1
            self.running = owner
            self.runs[self.ex.submit(job, slot, self.s.config)] = owner

    def remeasure_due(self) -> bool:
        night = self.night
        if not night.champion_sha or self.failed_remeasures >= FAILED_REMEASURES:
            return False
        return night.referee.remeasure_due(night.champion_sha, self.s.config.remeasure_every)

    # --- runs ----------------------------------------------------------------------------------------------------

    def queue(self, order: int, job: Job, owner: Flight | None, pin: int | None = None) -> None:
        if owner is not None:
            owner.pending += 1
        if job.purpose == "remeasure":
            self.champion_runs += 1
        self.seq += 1
        self.waiting.append((order, self.seq, job, owner, pin))

    def job(self, exp_id: int, kind: str, purpose: str, content: str) -> Job:
        key = (exp_id, kind)
        repeat = max(self.issued.get(key, 0), self.night.runs[key])
        self.issued[key] = repeat + 1
        return Job(exp_id, repeat, kind, purpose, content, blob_sha(content))

    def champion_job(self, purpose: str, exp_id: int | None = None) -> Job:
        content = self.repo.show(self.night.champion, self.s.config.mutable)
        kind = "remeasure" if purpose == "remeasure" else ""
        return self.job(self.next_id() if exp_id is None else exp_id, kind, purpose, content)

    def start_baseline(self) -> None:
        """Experiment 0 on every worker (and again until `baseline_runs` runs), so each worker's offset is known."""
        head = self.night.champion
        base = Flight(0, head, "", "", None, description="baseline", commit=head, agent=self.agent)
        self.flights[0] = base
        flight.mark(self.s.layout, self.s.tag, base, self.records.who(self.agent))
        self.baseline_left = max(self.ex.slots, self.s.config.baseline_runs)
        for i in range(self.baseline_left):
            pin = i if i < self.ex.slots and self.ex.name == "local" else None  # Ray places its tasks itself
            self.queue(BASELINE, self.champion_job("baseline", 0), None, pin)

    def measured(self, future: Future[Done], owner: Flight | None) -> None:
        """Record one run as a measurement row first, then take it where it belongs."""
        done, row = self.records.measurement(future.result())
        job = done.job
        ok = self.night.measured(row) is not None
        if job.purpose == "baseline":
            self.baseline.append(row)
            self.baseline_left -= 1
            if not ok:  # a failed baseline run ends the baseline: the runs not yet started are not made
                dropped = [w for w in self.waiting if w[2].purpose == "baseline"]
                self.waiting = [w for w in self.waiting if w[2].purpose != "baseline"]
                self.baseline_left -= len(dropped)
            if not self.baseline_left:
                self.finish_baseline(done)
        elif owner is None:
            self.champion_runs -= job.purpose == "remeasure"
            self.failed_remeasures = 0 if ok else self.failed_remeasures + 1
        else:
            self.advance(owner, done, ok)

    def finish_baseline(self, last: Done) -> None:
        """Every baseline run is in: the baseline's row, or the reason the night cannot start."""
        config, night = self.s.config, self.night
        failed = [r for r in self.baseline if r.value is None]
        sha = self.baseline[0].file_sha
        status: Status = "keep" if not failed else records.failure(failed[0].outcome)
        base = self.flights[0]
        base.result, base.file_sha, base.parent_sha = last.result, sha, sha
        base.extra = {"repeats": [r.value for r in self.baseline if r.value is not None], "noise": night.noise}
        if self.ex.slots > 1:
            base.extra["workers"] = [r.worker for r in self.baseline]
        base.extra |= records.evidence(last)
        self.records.finish(base, status, night.referee.value(sha) if not failed else None)
        where = f"on worker {failed[0].worker}, " if failed and self.ex.slots > 1 else ""
        if failed and last.result.outcome != "ok":  # the failure at hand: its reason names the fix
            raise HarnessError(where + baseline_failed(status, last.result, config.mutable, config.run))
        if failed:
            raise HarnessError(
                f"{where}the baseline failed ({status}); see {failed[0].log} and fix {config.mutable} or the run "
                "command, then start again ('autoresearch check' tries it)"
            )

    def advance(self, f: Flight, done: Done, ok: bool) -> None:
        """One run of an experiment is in: a failed candidate run ends it, a failed re-run discards it; when no run
        of it is left under way, it is judged."""
        f.pending -= 1
        job, result = done.job, done.result
        if f.id not in self.flights:
            return  # already decided (its re-run failed while the champion's beside it still ran)
        if job.purpose == "candidate":
            f.result, f.worker = result, done.worker
            f.extra |= records.evidence(done)
            if not ok:
                self.finish(f, records.failure(result.outcome))
                return
        elif not ok and job.file_sha == f.file_sha:
            self.finish(f, "discard", reason="discarded, not confirmed: its re-run failed")
            return
        elif not ok:
            f.pair = False  # the champion's own re-run failed: judge on the runs it has
        if f.pending == 0:
            self.decide(f)

    def decide(self, f: Flight) -> None:
        config, night = self.s.config, self.night
        f.rounds += 1
        if f.rounds > 2 * (2 + config.confirm + 3):
            raise AssertionError(f"judging experiment {f.id} did not settle")
        stale = f.parent != night.champion
        against = f.parent_sha if stale else night.champion_sha
        verdict = night.referee.judge(
            f.file_sha, against, config.direction, config.min_delta, 0 if stale else config.confirm, pair=f.pair
        )
        extra = {"noise": night.noise, "margin": verdict.margin, "runs": len(night.referee.runs(f.file_sha))}
        if verdict.action == "measure":
            self.why[f.id] = verdict.reason
            for sha in verdict.measure:
                content = f.content if sha == f.file_sha else self.repo.show(night.champion, config.mutable)
                self.queue(CONFIRM, self.job(f.id, "", "confirm", content), f)
        elif stale:
            # Its parent is no longer the champion: it is weighed against that parent alone, never kept here.
            why = verdict.reason.replace("champion", f"its parent {short(f.parent)}", 1)
            if verdict.action == "keep":
                self.rebase(f, why.replace("kept: ", "won: ", 1), verdict.value, extra)
            else:
                self.finish(f, "discard", verdict.value, f"{why}, no longer the champion", extra)
        else:
            self.finish(f, "keep" if verdict.action == "keep" else "discard", verdict.value, verdict.reason, extra)

    def rebase(self, f: Flight, why: str, value: float | None, extra: dict[str, Any]) -> None:
        """`f` beat its parent after the champion moved on: its change goes onto the champion as a new experiment."""
        night, mutable = self.night, self.s.config.mutable
        champion = self.repo.show(night.champion, mutable)
        merged = merge(f.parent_content, champion, f.content)
        if merged.text == champion:
            self.finish(f, "discard", value, f"{why}; its change is already in the champion {short(night.champion)}")
            return
        g = Flight(self.next_id(), night.champion, night.champion_sha, champion, f.task, rebased_from=f.id)
        g.agent = f.agent
        g.description = one_line(f"{f.description} (re-based from {f.id})")
        proposal = Proposal(g.description, merged.text, notes=f.proposed.proposal.notes if f.proposed else "")
        g.proposed = Proposed(proposal, {"rebased_from": f.id, "conflicts": merged.conflicts})
        self.flights[g.id] = g
        flight.mark(self.s.layout, self.s.tag, g, self.records.who(g.agent))  # before the row that names it
        note = f" ({merged.conflicts} conflicting hunks taken from it)" if merged.conflicts else ""
        where = f"re-based onto {short(night.champion)} as experiment {g.id}"
        self.finish(
            f,
            "discard",
            value,
            f"{why}; its parent is no longer the champion: {where}{note}",
            extra | {"rebased_as": g.id},
        )
        self.accept(g)

    def finish(
        self,
        f: Flight,
        status: Status,
        metric: float | None = None,
        reason: str = "",
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Record an experiment that ran its course (its runs waiting, if any, are not made), and tell the
        conductor."""
        self.waiting = [w for w in self.waiting if w[3] is not f]
        row = self.records.finish(f, status, metric, reason, extra)
        if self.conductor is not None and row.id != 0:
            self.conductor.finished(row)

    # --- proposals -----------------------------------------------------------------------------------------------

    def next_id(self) -> int:
        return max(self.night.next_id(), max(self.flights, default=-1) + 1)

    def start_proposal(self) -> None:
        if self.conductor is not None:
            self.agent = self.conductor.next_agent()  # before the experiment is marked: a rewrite may come first
            self.s.steer(self.screen.info, self.agent)
        agent, night, config = self.agent, self.night, self.s.config
        champion = self.repo.show(night.champion, config.mutable)
        f = Flight(self.next_id(), night.champion, night.champion_sha, champion, None, agent=agent)
        flying = [(g.id, g.description, _family(g)) for g in sorted(self.flights.values(), key=lambda g: g.id) if g.id]
        task = build_task(night, self.s.program.text, config, champion)
        f.task = task = dataclasses.replace(task, experiment=f.id, in_flight=in_flight(flying))
        self.flights[f.id] = f
        self.count += 1
        if not self.inline:  # in place, its marker is written before its commit: a proposal cut short leaves no row
            flight.mark(self.s.layout, self.s.tag, f, self.records.who(agent))
        if isinstance(agent, HostedAgent):
            agent.watch = self.watch  # a stop request or --hours ends a proposal under way
        if self.inline:
            self.status("proposing", f.id, "")
        lane = self.idle.pop()
        future = lane.submit(lambda: self._propose(agent, task))
        future.add_done_callback(lambda _: self.idle.append(lane))  # list.append is atomic: no lock needed
        self.proposals[future] = f

    @staticmethod
    def _propose(agent: Agent, task: Task) -> tuple[Proposed | None, str, Spend]:
        """In a proposer's thread: the agent's proposal or why there is none, and what it cost."""
        try:
            return agent.propose(task), "", agent.take_spend()
        except AgentError as e:
            return None, str(e), agent.take_spend()

    def proposed(self, future: Future[tuple[Proposed | None, str, Spend]], f: Flight) -> None:
        agent = f.agent or self.agent
        try:
            proposed, problem, f.spend = future.result()
        except (BudgetExceeded, LLMError, LoopEnd) as e:
            # The night ends. Calls made before it were paid for: their spend goes into the ledger first.
            f.spend = agent.take_spend()
            if isinstance(e, LoopEnd) and not isinstance(e, BudgetExceeded):
                why, end = f"no proposal: the night ended during it ({e})", e
            else:
                why = f"no proposal: {e}"
                end = e if isinstance(e, BudgetExceeded) else ServiceFailed(f"the LLM service failed: {e}")
            if f.spend.tokens_in or f.spend.output_tokens:
                self.records.finish(f, "invalid", reason=why)
            else:  # nothing was spent, nothing happened: no row
                flight.unmark(self.s.layout, self.s.tag, f.id)
                self.flights.pop(f.id, None)
            self.ending = self.ending or end
            return
        f.proposed = proposed
        if proposed is None:
            self.finish(f, "invalid", reason=problem)
            return
        f.description = one_line(proposed.proposal.description)
        self.accept(f)

    def accept(self, f: Flight) -> None:
        if not self.records.accept(f):
            if f.id not in self.flights and self.conductor is not None:
                self.conductor.finished(self.night.rows[-1])
            return
        if f.rebased_from is not None and self.night.referee.runs(f.file_sha):
            self.decide(f)  # the same version already ran (its own runs): it is judged on them against the champion
        else:
            self.queue(CANDIDATE, self.job(f.id, "", "candidate", f.content), f)

    def abandon(self) -> None:
        """Ctrl-C or a fatal error: end every run and agent child of this repository, and record every experiment in
        flight `interrupted` (its commit kept under a discarded ref); the tree goes back to the champion."""
        self.ex.cancel()
        flight.end_orphans(self.repo.root)
        for f in sorted(self.flights.values(), key=lambda g: g.id):
            if f.id == 0:
                flight.unmark(self.s.layout, self.s.tag, 0)
                self.s.ledger.note(self.s.tag, "the baseline was interrupted; it runs again", baseline=True)
                continue
            if self.inline and f.commit is None:
                self.flights.pop(f.id)  # a proposal cut short in place: no commit, no row (as after a kill -9)
                flight.unmark(self.s.layout, self.s.tag, f.id)
                continue
            f.result, f.extra = None, {}
            self.records.finish(f, "interrupted", reason=flight.REASON)
        self.s.reset_hard(self.night.champion)

    # --- what the night shows ------------------------------------------------------------------------------------

    def publish(self) -> None:
        """Several experiments in flight: how many, on how many workers (inline, each step says what it is)."""
        ids = sorted(self.flights)
        if not ids or self.inline:
            return
        phase = "baseline" if not self.night.has_baseline else "evaluating" if self.runs else "proposing"
        text = f"{len(ids)} in flight ({', '.join(map(str, ids))}) on {self.ex.slots} workers"
        state = self.s.state(self.agent.name, phase, ids[0], text)
        state |= {"workers": self.ex.slots, "in_flight": ids, "busy": self.ex.slots - len(self.free)}
        write_status(self.s.layout.status, state)
        self.screen.update(state)

    def show_run(self, job: Job, owner: Flight | None, step: str = "run") -> None:
        """The run about to start in this thread (its step: the run, or the evaluator after it): the baseline's, the
        champion's re-run and why, or an experiment's run, and for a re-run whose it is and the keep rule's reason."""
        night, config = self.night, self.s.config
        if job.purpose == "baseline":
            n = len(self.baseline) + 1
            self.status("baseline", 0, f"baseline run {n} of {config.baseline_runs}", step)
        elif owner is None:
            why = night.referee.remeasure_reason(night.champion_sha, config.remeasure_every)
            self.status("remeasuring", job.experiment, "", step, why=why)
        elif job.purpose == "confirm":
            who = "candidate" if job.file_sha == owner.file_sha else "champion"
            self.status("evaluating", owner.id, owner.description, step, who, self.why.get(owner.id, ""))
        else:
            self.status("evaluating", owner.id, owner.description, step)

    def status(
        self, phase: str, exp_id: int, description: str, step: str = "run", rerun: str = "", why: str = ""
    ) -> None:
        """Publish what the night does now: the phase, its step (the run, or the evaluator after it), and for a
        re-run whose it is (the candidate or the champion) and why the keep rule asked for it."""
        if self._since[0] != exp_id:
            self._since = (exp_id, time.time())
        state = self.s.state(self.agent.name, phase, exp_id, description)
        state |= {"step": step, "rerun": rerun, "why": why, "since": self._since[1]}
        write_status(self.s.layout.status, state)
        self.screen.update(state)


def _family(f: Flight) -> str:
    family = f.proposed.extra.get("family") if f.proposed else None
    return family if isinstance(family, str) else ""


__all__ = ["Conductor", "Engine"]
