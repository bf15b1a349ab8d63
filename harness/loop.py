"""The experiment loop: baseline, then propose, check, commit, evaluate, keep or reset, until stopped."""

from __future__ import annotations

import math
import os
import signal
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import paths, recovery
from harness.agents import Agent, Proposed, Spend
from harness.errors import AgentError, BudgetExceeded, HarnessError, LLMError, ProgramError, RepoError
from harness.evaluate import RunResult, evaluate
from harness.gates import check_proposal
from harness.ledger import Experiment, Ledger, Status
from harness.lock import LoopLock
from harness.program import Config, Program, load, override
from harness.repo import Repo, blob_sha, one_line, with_trailers
from harness.steer import Steering
from harness.task import Task, build_task

TAIL_CHARS = 3000  # how much of a crashed run's log the ledger and the agent see
NO_SPEND = Spend()


@dataclass(frozen=True)
class Options:
    """One `autoresearch run`: the tag, the agent, the limits, and the flags that override program.md."""

    tag: str
    agent: str = "optuna"  # "optuna", "llm", or the path of an agent file
    max_experiments: int | None = None  # experiments to run in this invocation, the baseline not counted
    hours: float | None = None
    overrides: dict[str, Any] = field(default_factory=dict)  # budget, timeout, model, max_cost_usd


@dataclass(frozen=True)
class Outcome:
    """Why the loop ended, and what the night holds so far."""

    reason: str
    experiments: int  # run in this invocation
    best: float | None
    baseline: float | None


class Stop(Exception):
    """Ends the loop cleanly with a reason."""


AgentFactory = Callable[[str, Config, "Loop"], Agent]


class Loop:
    """One night on one tag of one repository."""

    def __init__(self, root: Path, options: Options, *, display: Any, make_agent: AgentFactory) -> None:
        self.repo = Repo(root)
        self.layout = paths.Layout(self.repo.root)
        self.ledger = Ledger(self.layout.ledger)
        self.options = options
        self.tag = options.tag
        self.display = display
        self.make_agent = make_agent
        self.lock = LoopLock(self.layout.lock)
        self.agent: Agent | None = None
        self.steering: Steering | None = None
        self.champion = ""
        self.best: float | None = None
        self.baseline: float | None = None
        self.noise = 0.0
        self.rows: list[Experiment] = []
        self.seen: dict[str, Experiment] = {}  # file sha -> the row that evaluated that content
        self.phase_started = time.time()
        self.loop_started = time.time()

    # --- setup ----------------------------------------------------------------------------------------------

    @property
    def program(self) -> Program:
        assert self.steering is not None
        return self.steering.program

    @property
    def config(self) -> Config:
        return override(self.program.config, **self.options.overrides)

    def open(self) -> None:
        """Take the lock, check the program and the tree, check out the branch and reconcile an interrupted night."""
        if not _valid_tag(self.tag):
            raise HarnessError(f"tag '{self.tag}' is not usable in a branch name; use letters, digits, '-', '_', '.'")
        self.lock.acquire()
        torn = self.ledger.repair()
        if torn:
            keep = self.layout.runs / f"torn-ledger-line-{int(time.time())}.txt"
            keep.write_bytes(torn)
            self.ledger.note(self.tag, f"repaired a torn last line of the ledger ({len(torn)} bytes kept in {keep})")
        self.layout.stop_request.unlink(missing_ok=True)
        program = load(self.layout.program)
        config = override(program.config, **self.options.overrides)
        recovery.clear_stale_git_lock(self.repo.root)
        recovery.end_orphans(self.repo.root)
        self.repo.ensure_ignored()
        self.reconcile()
        changed = [p for p in self.repo.changed() if p != paths.PROGRAM]  # program.md is the person's to edit
        if changed:
            raise RepoError(
                f"the working tree has uncommitted changes to {', '.join(changed[:5])}; commit or stash them first"
            )
        self.repo.checkout_branch(paths.branch(self.tag))
        if not (self.repo.root / config.mutable).is_file():
            raise ProgramError(f"program.md: the mutable file '{config.mutable}' does not exist in {self.repo.root}")
        self.steering = Steering(program)
        self.rows = self.ledger.experiments(self.tag)
        self._load_state()

    def reconcile(self) -> None:
        """Bring an interrupted night back to a consistent state: ledger row written, branch at the champion."""
        recovery.reconcile(self.repo, self.ledger, self.layout.inflight(self.tag), self.tag, self._reset_branch)

    def _reset_branch(self, sha: str) -> None:
        if not sha:
            return
        name = paths.branch(self.tag)
        if self.repo.branch() == name:
            self._reset_hard(sha)
        else:
            self.repo.set_ref(f"refs/heads/{name}", sha)

    def _reset_hard(self, sha: str) -> None:
        """Reset to a commit, keeping the person's uncommitted edits of program.md (steering must survive resets)."""
        self.repo.reset_hard(sha, keep=(paths.PROGRAM,))

    @staticmethod
    def _guarded(config: Config) -> tuple[str, ...]:
        """Protected paths a run must not change; program.md is left out because the person edits it mid-run."""
        return tuple(p for p in config.protected if p != paths.PROGRAM)

    def _load_state(self) -> None:
        base = [r for r in self.rows if r.id == 0]
        if base and base[-1].status == "keep":
            self.baseline = base[-1].metric
            self.noise = float(base[-1].extra.get("noise", 0.0) or 0.0)
        self.champion = recovery.champion_of(self.rows) or self.repo.head()
        head = self.repo.head()
        if head != self.champion:
            name = paths.branch(self.tag)
            raise RepoError(
                f"{name} is at {head[:10]}, but the ledger's best experiment is {self.champion[:10]}: the branch was "
                f"changed by hand. Start a new tag from here (autoresearch run --tag <new>), or put it back with "
                f"'git reset --hard {self.champion[:10]}'"
            )
        self.best = recovery.best_of(self.rows)
        self.seen = {r.file_sha: r for r in self.rows if r.file_sha and r.status not in ("invalid", "duplicate")}

    # --- the night ------------------------------------------------------------------------------------------

    def run(self) -> Outcome:
        """Run until a stop condition; always leaves the tree clean at the champion."""
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        count = 0
        reason = "stopped"
        try:
            self.open()
            assert self.steering is not None
            self.steering.start()
            # The agent comes first: an LLM agent checks its key here, before any compute is spent.
            self.agent = self.make_agent(self.options.agent, self.config, self)
            if self.baseline is None:
                self.run_baseline()
            while True:
                reason = self._should_stop(count)
                if reason:
                    break
                self.experiment()
                count += 1
        except Stop as e:
            reason = str(e)
        except KeyboardInterrupt:
            # Caught between two steps (after the commit, before the run started): finish it as a restart would.
            if self.lock.held and self.steering is not None:
                self.reconcile()
            reason = "interrupted (Ctrl-C or SIGTERM); the tree is back at the champion"
        finally:
            signal.signal(signal.SIGTERM, previous)
            if self.agent is not None:
                self.agent.close()
            if self.steering is not None:
                self.steering.stop()
            if self.lock.held:
                self._status("stopped", -1, reason)
            self.lock.release()
        self.display.info(f"loop ended: {reason}")
        return Outcome(reason, count, self.best, self.baseline)

    def _should_stop(self, count: int) -> str:
        opts = self.options
        if self.layout.stop_request.exists():
            self.layout.stop_request.unlink(missing_ok=True)
            return "stopped by 'autoresearch stop'"
        if opts.max_experiments is not None and count >= opts.max_experiments:
            return f"reached --max-experiments {opts.max_experiments}"
        if opts.hours is not None and time.time() - self.loop_started > opts.hours * 3600:
            return f"reached --hours {opts.hours:g}"
        return ""

    def _next_id(self) -> int:
        return max((r.id for r in self.rows), default=-1) + 1

    def run_baseline(self) -> None:
        """Experiment 0: the unmodified champion, `baseline_runs` times; their spread is the noise."""
        config = self.config
        head = self.repo.head()
        content = (self.repo.root / config.mutable).read_text(encoding="utf-8")
        metrics: list[float] = []
        result: RunResult | None = None
        for repeat in range(config.baseline_runs):
            self._status("baseline", 0, f"baseline run {repeat + 1} of {config.baseline_runs}")
            self._write_inflight(0, head, head, "baseline")
            result = self._evaluate(config, 0, repeat)
            if result.outcome != "ok" or result.metric is None:
                break
            metrics.append(result.metric)
        assert result is not None
        ok = len(metrics) == config.baseline_runs
        metric = statistics.fmean(metrics) if ok else None
        noise = statistics.stdev(metrics) if ok and len(metrics) > 1 else 0.0
        status: Status = "keep" if ok else ("timeout" if result.outcome == "timeout" else "crash")
        if result.outcome == "tampered":
            self.repo.restore(self._guarded(config))
            status = "tampered"
        row = self._row(
            0, head, head, status, metric, "baseline", result, file_sha=blob_sha(content),
            best=metric, delta=None, extra={"repeats": metrics, "noise": noise},
        )  # fmt: skip
        self._commit_row(row)
        if not ok:
            raise HarnessError(
                f"the baseline failed ({status}: {result.reason}); see {result.log} and fix {config.mutable} "
                f"or the run command, then start again"
            )
        self.baseline, self.best, self.noise, self.champion = metric, metric, noise, head

    def experiment(self) -> None:
        """One proposal, checked, committed, evaluated, and kept or reset."""
        self._steer()
        config = self.config
        agent = self.agent
        assert agent is not None
        exp_id = self._next_id()
        champion_content = self.repo.show(self.champion, config.mutable)
        task = self._task(config, exp_id, champion_content)
        self._status("proposing", exp_id, "")
        try:
            proposed: Proposed | None = agent.propose(task)
            problem = ""
        except AgentError as e:
            proposed, problem = None, str(e)
        except (BudgetExceeded, LLMError) as e:
            # Calls made before the refusal were paid for: their spend goes into the ledger before the loop ends.
            spend = agent.take_spend()
            if spend.tokens_in or spend.tokens_out:
                self._record_unrun(exp_id, "invalid", None, f"no proposal: {e}", spend, task)
            raise Stop(str(e) if isinstance(e, BudgetExceeded) else f"the LLM service failed: {e}") from None
        spend = agent.take_spend()
        strays = [p for p in self.repo.changed() if p not in (config.mutable, paths.PROGRAM)]
        if strays:
            # An agent may only answer with content; a file it wrote into the repository is undone.
            self.repo.restore(strays)
            problem = problem or f"the agent changed {', '.join(strays)}; only {config.mutable} may change"
        if proposed is None or problem:
            self._record_unrun(exp_id, "invalid", proposed, problem, spend, task)
            return
        proposal = proposed.proposal
        problem = check_proposal(proposal.content, champion_content, config.mutable)
        if problem:
            self._record_unrun(exp_id, "invalid", proposed, problem, spend, task)
            return
        sha = blob_sha(proposal.content)
        if sha in self.seen:
            earlier = self.seen[sha]
            reason = f"same content as experiment {earlier.id} ({earlier.status}); not run again"
            extra = {"same_as": earlier.id, "earlier_metric": earlier.metric}
            self._record_unrun(exp_id, "duplicate", proposed, reason, spend, task, extra=extra)
            return
        description = one_line(proposal.description)
        self._write_inflight(exp_id, self.champion, None, description)
        commit = self.repo.commit_file(config.mutable, proposal.content, description)
        self._status("evaluating", exp_id, description)
        started = time.monotonic()
        try:
            result = self._evaluate(config, exp_id)
        except KeyboardInterrupt:
            elapsed = time.monotonic() - started
            self._finish(exp_id, commit, "interrupted", None, description, None, proposed, spend, sha, elapsed)
            raise
        status: Status
        if result.outcome == "tampered":
            self.repo.restore(self._guarded(config))
            status = "tampered"
        elif result.outcome == "timeout":
            status = "timeout"
        elif result.outcome == "crash" or result.metric is None:
            status = "crash"
        else:
            status = "keep" if self.beats(result.metric) else "discard"
        # A metric counts only from a run that ended well; a crash's or a cheat's number is not a result.
        metric = result.metric if status in ("keep", "discard") else None
        self._finish(exp_id, commit, status, metric, description, result, proposed, spend, sha)

    def beats(self, metric: float) -> bool:
        """True when `metric` improves on the champion by more than max(min_delta, the measured noise)."""
        if self.best is None or not math.isfinite(metric):
            return False
        config = self.config
        return config.sign * (metric - self.best) > max(config.min_delta, self.noise)

    def _finish(
        self,
        exp_id: int,
        commit: str,
        status: Status,
        metric: float | None,
        description: str,
        result: RunResult | None,
        proposed: Proposed,
        spend: Spend,
        sha: str,
        seconds: float = 0.0,
    ) -> None:
        config = self.config
        delta = None if metric is None or self.best is None else metric - self.best
        best = metric if status == "keep" else self.best
        trailers = {"Experiment": str(exp_id)}
        if metric is not None:
            trailers["Metric"] = f"{config.metric}={metric:.6f}"
        if delta is not None:
            trailers["Delta"] = f"{delta:+.6f}"
        trailers["Status"] = status
        final = self.repo.amend_message(commit, with_trailers(description, trailers), self.champion)
        reason = ""
        if status == "discard" and delta is not None:
            margin = max(config.min_delta, self.noise)
            reason = f"not better than the champion by more than {margin:g} (delta {delta:+.6f})"
        row = self._row(
            exp_id, final, self.champion, status, metric, description, result, file_sha=sha, best=best,
            delta=delta, extra=proposed.extra, spend=spend, notes=proposed.proposal.notes, reason=reason,
            seconds=seconds,
        )  # fmt: skip
        self._commit_row(row)
        if status == "keep":
            self.champion, self.best = final, metric

    def _commit_row(self, row: Experiment) -> None:
        """Ledger row first (fsynced), then the git state it describes, then the marker goes."""
        self.ledger.append(row)
        if row.id != 0 and row.commit:
            if row.status == "keep":
                self.repo.set_ref(f"refs/heads/{paths.branch(self.tag)}", row.commit)
            else:
                self.repo.set_ref(paths.discarded_ref(self.tag, row.id), row.commit)
                self._reset_hard(self.champion)
        self.layout.inflight(self.tag).unlink(missing_ok=True)
        self.rows.append(row)
        if row.file_sha and row.status not in ("invalid", "duplicate", "interrupted"):
            self.seen.setdefault(row.file_sha, row)
        if self.agent is not None:
            self.agent.observe(row)
        self.display.row(row)

    def _record_unrun(
        self,
        exp_id: int,
        status: Status,
        proposed: Proposed | None,
        reason: str,
        spend: Spend,
        task: Task,
        extra: dict[str, Any] | None = None,
    ) -> None:
        proposal = proposed.proposal if proposed else None
        row = self._row(
            exp_id, None, self.champion, status, None, one_line(proposal.description) if proposal else "",
            None, file_sha=blob_sha(proposal.content) if proposal else "", best=self.best, delta=None,
            extra={**(proposed.extra if proposed else {}), **(extra or {})}, spend=spend, reason=reason,
            notes=proposal.notes if proposal else task.notes,
        )  # fmt: skip
        self._commit_row(row)

    def _row(
        self,
        exp_id: int,
        commit: str | None,
        parent: str,
        status: Status,
        metric: float | None,
        description: str,
        result: RunResult | None,
        *,
        file_sha: str,
        best: float | None,
        delta: float | None,
        extra: dict[str, Any],
        spend: Spend = NO_SPEND,
        reason: str = "",
        notes: str = "",
        seconds: float = 0.0,
    ) -> Experiment:
        failed = status in ("crash", "timeout", "tampered")
        return Experiment(
            tag=self.tag,
            id=exp_id,
            commit=commit,
            parent=parent,
            status=status,
            metric=metric,
            best=best,
            delta=delta,
            description=description,
            seconds=round(result.seconds if result else seconds, 3),
            agent=self.agent.name if self.agent else self._agent_label(),
            program_sha=self.program.sha,
            agent_sha=self.agent.sha if self.agent else "",
            tokens_in=spend.tokens_in,
            tokens_out=spend.tokens_out,
            cost_usd=round(spend.cost_usd, 6),
            cache_read=spend.cache_read,
            cache_write=spend.cache_write,
            file_sha=file_sha,
            exit_code=result.exit_code if result else None,
            peak_mem_mb=result.peak_mem_mb if result else None,
            log=str(result.log.relative_to(self.repo.root)) if result else "",
            reason=reason or (result.reason if result and status != "keep" and status != "discard" else ""),
            tail=result.tail[-TAIL_CHARS:] if result and failed else "",
            notes=notes,
            extra=extra,
        )

    def _agent_label(self) -> str:
        kind = self.options.agent
        return kind if kind in ("optuna", "llm") else Path(kind).name

    def _evaluate(self, config: Config, exp_id: int, repeat: int = 0) -> RunResult:
        return evaluate(
            self.repo.root,
            config.run,
            metric=config.metric,
            budget=config.budget,
            timeout=config.timeout,
            log=self.layout.run_log(self.tag, exp_id, repeat),
            protected=self._guarded(config),
            env=_run_env(self.repo.root),
        )

    def _task(self, config: Config, exp_id: int, content: str) -> Task:
        return build_task(self.rows, self.program.text, config, exp_id, content, self.best, self.baseline)

    def _steer(self) -> None:
        """Apply an edit of program.md from this experiment on, or report a malformed one and keep the last."""
        assert self.steering is not None
        change = self.steering.poll()
        if change is None:
            return
        self.ledger.append(change.row(self.tag))
        if change.error:
            self.display.info(f"program.md edit not applied, the last valid program stays in force: {change.error}")
        else:
            keys = ", ".join(change.changes) or "nothing"
            self.display.info(f"program.md changed ({keys}); in force from the next experiment")

    def _write_inflight(self, exp_id: int, parent: str, commit: str | None, description: str) -> None:
        data = {
            "id": exp_id,
            "parent": parent,
            "commit": commit,
            "description": description,
            "started": time.time(),
            "agent": self.agent.name if self.agent else self._agent_label(),
            "agent_sha": self.agent.sha if self.agent else "",
            "program_sha": self.program.sha if self.steering else "",
            "log": str(self.layout.run_log(self.tag, exp_id).relative_to(self.repo.root)),
        }
        recovery.write_marker(self.layout.inflight(self.tag), data)

    def _status(self, phase: str, exp_id: int, description: str) -> None:
        from harness.status import snapshot, write_status

        agent = self.agent.name if self.agent else self._agent_label()
        config = self.config if self.steering else None
        state = snapshot(self.tag, agent, phase, exp_id, description, config, self.best, self.baseline, self.rows,
                         self.loop_started)  # fmt: skip
        write_status(self.layout.status, state)
        self.display.update(state)


def _valid_tag(tag: str) -> bool:
    return bool(tag) and all(c.isalnum() or c in "-_." for c in tag) and not tag.startswith((".", "-"))


def _run_env(root: Path) -> dict[str, str]:
    """The environment of a run: `python` means the interpreter the harness runs on (its venv has the task's deps),
    and every process of the run carries the repository's name, so a later start can end what a kill -9 orphaned."""
    env = dict(os.environ)
    env[recovery.RUN_OWNER] = str(root)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    return env


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


__all__ = ["Loop", "Options", "Outcome"]
