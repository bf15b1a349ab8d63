"""The experiment loop: baseline, then propose, check, commit, evaluate, keep or reset, until something ends it."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Protocol

from harness import endings, judge, lockedtest, memory, outcome, outputs, recovery
from harness.agents.host import HostedAgent
from harness.brief import build_task
from harness.config import Config
from harness.errors import (
    AgentError,
    BudgetExceeded,
    HarnessError,
    Interrupted,
    LLMError,
    LoopEnd,
    RepoError,
    ServiceFailed,
)
from harness.evaluate import RunResult, baseline_failed
from harness.jails import guarded
from harness.ledger import Experiment, Status
from harness.night import result_of
from harness.outcome import Author, Finished
from harness.paths import PROGRAM, branch, discarded_ref
from harness.precheck import check_proposal
from harness.repo import blob_sha, with_trailers
from harness.session import Session
from harness.status import Screen, write_status
from harness.task import Agent, Proposed, Spend, Task
from harness.text import one_line


class Conductor(Protocol):
    """What drives the night's agent from outside the engine (HyperAgent mode owns one): between two experiments it
    says which agent proposes the next one (it may rewrite, try or swap agents first, or end the night by raising
    LoopEnd), and it is told the row of each experiment that ended well enough to write one."""

    def next_agent(self) -> Agent: ...

    def finished(self, row: Experiment) -> None: ...


class Loop:
    """The state machine of one night, over a session that is open and an agent that is ready."""

    def __init__(self, session: Session, agent: Agent, screen: Screen, conductor: Conductor | None = None) -> None:
        self.s = session
        self.night = session.night
        self.repo = session.repo
        self.agent = agent
        self.screen = screen
        self.conductor = conductor
        self.watch = endings.watcher(session.options, session.layout, session.started)
        self.count = 0  # proposals asked of the agent in this invocation (what --max-experiments counts)
        self.failed_remeasures = 0  # champion re-runs that failed in a row
        self._since = (-1, 0.0)  # the experiment under way and when it began, for the status's estimate
        self.tried = memory.Tried()  # the points that spent a run, to refuse a near-duplicate before its run

    def until_end(self) -> LoopEnd:
        """Run until something ends the night, and say what: a stop, a limit, Ctrl-C, or a bug (with a crash log).
        A person's mistake (HarnessError) is raised."""
        try:
            if not self.night.has_baseline:
                self.baseline()
            while True:
                self.check_stop()
                if self.conductor is None:
                    self.experiment()
                    continue
                self.agent = self.conductor.next_agent()
                before = len(self.night.rows)
                self.experiment()
                if len(self.night.rows) > before:
                    self.conductor.finished(self.night.rows[-1])
        except LoopEnd as e:
            return e
        except KeyboardInterrupt:
            # Caught between two steps (after the commit, before the run started): finish it as a restart would.
            self.s.reconcile()
            return Interrupted("interrupted (Ctrl-C or SIGTERM); the tree is back at the champion")
        except Exception as e:  # a person's mistake is raised, a full disk is a stop, a bug is a crash log
            crash_log = self.s.layout.crash_log(self.s.tag)
            if isinstance(e, HarnessError) or endings.disk_full(e):
                # What was under way is reconciled on the next start: on a full disk, writing it now would fail too.
                raise endings.failed(e, crash_log, self.s.tag) from None
            try:
                self.s.reconcile()  # first: whatever becomes of the crash log, the experiment under way is recorded
            finally:
                crashed = endings.failed(e, crash_log, self.s.tag)
            return crashed

    def check_stop(self) -> None:
        s = self.s
        end = endings.due(s.options, s.layout, s.started, self.count, self.night.spend_usd, s.config.max_cost_usd)
        if end is not None:
            raise end

    # --- the baseline and one experiment -----------------------------------------------------------------------

    def baseline(self) -> None:
        """Experiment 0: the unmodified champion, `baseline_runs` times; the keep rule re-runs it as it needs."""
        config = self.s.config
        head = self.night.champion
        content = (self.repo.root / config.mutable).read_text(encoding="utf-8")
        metrics: list[float] = []
        for repeat in range(config.baseline_runs):
            self._mark(0, head, "baseline")
            text = f"baseline run {repeat + 1} of {config.baseline_runs}"
            run = judge.run_version(
                self.s, config, 0, "baseline", started=lambda t=text: self._status("baseline", 0, t),
                scoring=lambda t=text: self._status("baseline", 0, t, step="evaluator"),
            )  # fmt: skip
            result = run.measured.result
            if run.measurement is None:
                break
            metrics.append(run.measurement.value)
        ok = len(metrics) == config.baseline_runs
        status = "keep" if ok else self._failure(result, config)
        sha = blob_sha(content)
        metric = self.night.referee.value(sha) if ok else None
        extra = {"repeats": metrics, "noise": self.night.noise, **run.measured.extra()}
        self._finish(Finished(0, status, "baseline", head, metric, result, file_sha=sha, extra=extra))
        if not ok:
            raise HarnessError(baseline_failed(status, result, config.mutable, config.run))

    def remeasure(self, config: Config, exp_id: int) -> None:
        """Run the champion again while the keep rule asks for it (too few clean runs, the noise not yet trusted, or
        `remeasure_every` experiments since); each run is a measurement row, never an experiment."""
        while judge.remeasure_due(self.s, config, self.failed_remeasures):
            why = judge.remeasure_why(self.s, config)
            run = judge.run_version(
                self.s, config, exp_id, "remeasure",
                started=lambda w=why: self._status("remeasuring", exp_id, "", why=w),
                scoring=lambda w=why: self._status("remeasuring", exp_id, "", step="evaluator", why=w),
            )  # fmt: skip
            self.failed_remeasures = 0 if run.measurement is not None else self.failed_remeasures + 1

    def experiment(self) -> None:
        """One proposal, checked, committed, evaluated, and kept or reset."""
        self.s.steer(self.screen.info, self.agent)
        config, night = self.s.config, self.night
        exp_id = night.next_id()
        self.remeasure(config, exp_id)
        champion = self.repo.show(night.champion, config.mutable)
        task = build_task(night, self.s.program.text, config, champion)
        self._status("proposing", exp_id, "")
        proposed, problem, spend = self._propose(task)
        control = self.s.restore_control()
        if control:
            problem = f"the agent changed .git control files (undone): {', '.join(control)}"
        strays = [p for p in self.repo.changed() if p not in (config.mutable, PROGRAM)]
        if strays:
            # An agent may only answer with content; a file it wrote into the repository is undone.
            self.repo.restore(strays)
            problem = problem or f"the agent changed {', '.join(strays)}; only {config.mutable} may change"
        if proposed is not None and not problem:
            problem = check_proposal(proposed.proposal.content, champion, config.mutable)
        if proposed is None or problem:
            self._unrun(exp_id, "invalid", proposed, problem, spend, task)
            return
        proposed = memory.tagged(proposed, task, champion)
        sha = blob_sha(proposed.proposal.content)
        if (earlier := night.seen.get(sha)) is not None:
            reason = f"same content as experiment {earlier.id} ({earlier.status}); not run again"
            extra = {"same_as": earlier.id, "earlier_metric": earlier.metric}
            self._unrun(exp_id, "duplicate", proposed, reason, spend, task, extra)
            return
        self.tried.sync(night.rows, lambda commit: self._show(commit, config.mutable))
        if (found := self.tried.refuse(proposed.proposal.content)) is not None:
            reason, extra = memory.refusal(found, night.rows)
            self._unrun(exp_id, "duplicate", proposed, reason, spend, task, extra)
            return
        description = one_line(proposed.proposal.description)
        self._mark(exp_id, None, description)
        try:
            commit = self.repo.commit_file(config.mutable, proposed.proposal.content, description)
        except RepoError as e:
            # Whatever made git refuse it, the proposal is data: an invalid row, and the tree back at the champion.
            self.s.reset_hard(night.champion)
            self._unrun(exp_id, "invalid", proposed, f"git could not commit it: {e}", spend, task)
            return
        tried = Finished(exp_id, "interrupted", description, commit, proposed=proposed, spend=spend, file_sha=sha)
        started = time.monotonic()
        try:
            run = judge.run_version(
                self.s, config, exp_id, "candidate", started=lambda: self._status("evaluating", exp_id, description),
                scoring=lambda: self._status("evaluating", exp_id, description, step="evaluator"),
            )  # fmt: skip
            result = run.measured.result
            tried = replace(tried, result=result, extra=run.measured.extra())
            # A metric counts only from a run that ended well; a crash's or a cheat's number is not a result.
            if run.measurement is None:
                self._finish(replace(tried, status=self._failure(result, config)))
                return
            rerun: list[str] = ["", ""]  # whose re-run it is, and the keep rule's reason for it

            def again(who: str, why: str) -> None:
                rerun[:] = [who, why]
                self._status("evaluating", exp_id, description, rerun=who, why=why)

            verdict = judge.settle(
                self.s, config, exp_id, proposed.proposal.content, champion, started=again,
                scoring=lambda: self._status("evaluating", exp_id, description, "evaluator", rerun[0], rerun[1]),
            )  # fmt: skip
        except KeyboardInterrupt:
            self._finish(replace(tried, result=None, seconds=time.monotonic() - started))
            raise
        runs = len(night.referee.runs(sha))
        extra = {**tried.extra, "noise": night.noise, "margin": verdict.margin, "runs": runs}
        status: Status = "keep" if verdict.action == "keep" else "discard"
        self._finish(replace(tried, status=status, metric=verdict.value, reason=verdict.reason, extra=extra))

    # --- steps -------------------------------------------------------------------------------------------------

    def _propose(self, task: Task) -> tuple[Proposed | None, str, Spend]:
        """The agent's proposal, or why there is none (recorded `invalid`); a refused or capped LLM ends the night."""
        config = self.s.config
        if capped := endings.spend_cap(self.night.spend_usd, config.max_cost_usd, self.s.tag):
            raise capped  # the night's spend, across restarts of the tag; a rewrite in the same turn may have spent
        self.count += 1
        if isinstance(self.agent, HostedAgent):
            self.agent.watch = self.watch  # a stop request or --hours ends a proposal under way
        try:
            return self.agent.propose(task), "", self.agent.take_spend()
        except AgentError as e:
            return None, str(e), self.agent.take_spend()
        except (BudgetExceeded, LLMError) as e:
            # Calls made before the refusal were paid for: their spend goes into the ledger before the loop ends.
            spend = self.agent.take_spend()
            if spend.tokens_in or spend.output_tokens:
                self._unrun(task.experiment, "invalid", None, f"no proposal: {e}", spend, task)
            if isinstance(e, BudgetExceeded):
                raise
            raise ServiceFailed(f"the LLM service failed: {e}") from None
        except LoopEnd as e:  # the night ended while the agent was at work: what it spent is recorded all the same
            spend = self.agent.take_spend()
            if spend.tokens_in or spend.output_tokens:
                self._unrun(task.experiment, "invalid", None, f"no proposal: the night ended during it ({e})", spend,
                            task)  # fmt: skip
            raise

    def _show(self, commit: str, path: str) -> str | None:
        try:
            return self.repo.show(commit, path)
        except RepoError:
            return None

    def _failure(self, result: RunResult, config: Config) -> Status:
        """The status of a run that did not end well; a tampered tree is put back first."""
        if result.outcome == "tampered":
            self.repo.restore(guarded(config))
            return "tampered"
        return "timeout" if result.outcome == "timeout" else "crash"

    def _unrun(
        self,
        exp_id: int,
        status: Status,
        proposed: Proposed | None,
        reason: str,
        spend: Spend,
        task: Task,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Record a proposal that cost no compute (invalid, duplicate, or none at all)."""
        proposal = proposed.proposal if proposed else None
        self._finish(
            Finished(
                exp_id, status, one_line(proposal.description) if proposal else "", proposed=proposed, spend=spend,
                file_sha=blob_sha(proposal.content) if proposal else "", reason=reason, extra=extra or {},
                notes=task.notes,
            )
        )  # fmt: skip

    def _finish(self, finished: Finished) -> None:
        """Record one experiment: its commit re-made with trailers, its row, then the git state the row describes."""
        config, night = self.s.config, self.night
        if finished.commit and finished.id != 0:
            message = with_trailers(finished.description, outcome.trailers(finished, night, config))
            finished = replace(finished, commit=self.repo.amend_message(finished.commit, message, night.champion))
        sb = self.s.sandbox
        author = Author(
            self.agent.name, self.agent.sha, self.s.program.sha, "bwrap" if sb.active else f"none ({sb.mode})"
        )
        row = outcome.row(finished, night, config, author, self.repo.root)
        # The ledger row first (fsynced), then the git state it describes, then the marker goes.
        self.s.ledger.append(row)
        if row.id != 0 and row.commit:
            if row.status == "keep":
                self.repo.set_ref(f"refs/heads/{branch(self.s.tag)}", row.commit)
            else:
                self.repo.set_ref(discarded_ref(self.s.tag, row.id), row.commit)
                self.s.reset_hard(night.champion)
        self.s.layout.inflight(self.s.tag).unlink(missing_ok=True)
        night.record(row)
        self.agent.observe(result_of(row))
        self.screen.row(row)
        if test := lockedtest.after(self.s, row, finished.result.out if finished.result else None):
            self.screen.info(lockedtest.line(test, config.metric))
        outputs.retain(self.s.layout.tag_dir(self.s.tag), night)

    def _mark(self, exp_id: int, commit: str | None, description: str) -> None:
        """Say durably which experiment is under way, before its commit exists, so a kill -9 can be reconciled."""
        layout, tag = self.s.layout, self.s.tag
        data = {
            "id": exp_id,
            "parent": self.night.champion,
            "commit": commit,
            "description": description,
            "started": time.time(),
            "agent": self.agent.name,
            "agent_sha": self.agent.sha,
            "program_sha": self.s.program.sha,
            "log": str(layout.run_log(tag, exp_id).relative_to(self.repo.root)),
        }
        recovery.write_marker(layout.inflight(tag), data)

    def _status(
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


__all__ = ["Conductor", "Loop"]
