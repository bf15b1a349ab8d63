"""Opening a night: the lock, recovery from whatever stopped the last one, the checks, and the night's state."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import check, flight, paths, sandbox, visibility
from harness.config import Config, override
from harness.errors import HarnessError, ProgramError, RepoError
from harness.gitdir import ControlSnapshot
from harness.ledger import Ledger
from harness.lock import LoopLock
from harness.measure import Tree
from harness.night import Night
from harness.program import Program, load
from harness.repo import Repo
from harness.status import snapshot
from harness.steer import Steering
from harness.task import Agent
from harness.text import short
from harness.visibility import Sight


@dataclass(frozen=True)
class Options:
    """One `autoresearch run`: the tag, the agent, the limits, and the flags that override program.md."""

    tag: str
    agent: str = "optuna"  # "optuna", "llm", or the path of an agent file
    max_experiments: int | None = None  # experiments to run in this invocation, the baseline not counted
    hours: float | None = None
    overrides: dict[str, Any] = field(default_factory=dict)  # budget, timeout, model, max_cost_usd


@dataclass
class Session:
    """A repository opened for one night: it holds the loop lock until `close`."""

    repo: Repo
    layout: paths.Layout
    ledger: Ledger
    lock: LoopLock
    steering: Steering
    night: Night
    options: Options
    control: ControlSnapshot  # .git's control files as the harness left them: anything else changing them is undone
    devices: tuple[str, ...]  # the GPU device nodes runs get
    started: float = field(default_factory=time.time)
    home: str | None = None  # the branch this start made the night's branch from (None: the branch existed)
    agent_behind: bool = False  # program.md changed while the agent was busy proposing: it takes the edit when idle

    @property
    def tag(self) -> str:
        return self.options.tag

    @property
    def program(self) -> Program:
        return self.steering.program

    @property
    def config(self) -> Config:
        """The program in force, with the command line's flags over it."""
        return override(self.steering.program.config, **self.options.overrides)

    @property
    def sandbox(self) -> sandbox.Sandbox:
        """The sandbox in force for the program in force (probed once per mode)."""
        return sandbox.probe(self.config.sandbox, devices=self.devices)

    @property
    def tree(self) -> Tree:
        """The repository's working tree as the night measures in it (what a run in place needs of the night)."""
        return Tree(self.repo, self.layout, self.tag, self.devices, self.control)

    def state(self, agent: str, phase: str, exp_id: int, description: str) -> dict[str, Any]:
        """What the night is doing now, as the status file and the live display show it; with this invocation's
        limits, from which the review tells when the night should end."""
        state = snapshot(self.tag, agent, phase, exp_id, description, self.config, self.night, self.started)
        return {**state, "max_experiments": self.options.max_experiments, "hours": self.options.hours}

    def steer(self, info: Callable[[str], None], agent: Agent, *, busy: bool = False) -> None:
        """Apply an edit of program.md from the next experiment on (a `steer` row), or report a malformed one and
        keep the last valid program in force. The keep rule takes it at once, the agent before its next proposal:
        now, or, while it is `busy` with a proposal begun before the edit, at the first call it is not."""
        change = self.steering.poll()
        if change is not None:
            self.ledger.append(change.row(self.tag))
            if change.error:
                info(f"program.md edit not applied, the last valid program stays in force: {change.error}")
            else:
                self.night.declare(self.config)
                self.agent_behind = True
                changed = ", ".join(change.changes) or "nothing"
                info(f"program.md changed ({changed}); in force from the next experiment")
        if self.agent_behind and not busy:
            agent.steer(self.config)
            self.agent_behind = False

    def restore_control(self) -> list[str]:
        """Undo any change to .git's control files (config, hooks) since the harness set them; returns the paths."""
        return self.repo.restore_control(self.control)

    def reset_hard(self, sha: str) -> None:
        """Reset to a commit, keeping the person's uncommitted edits of program.md (steering must survive resets)."""
        self.repo.reset_hard(sha, keep=(paths.PROGRAM,))

    def undo_branch(self) -> None:
        """A start that recorded no experiment (an API key refused, say) leaves no branch behind: back to the branch
        it was made from, and the new one deleted."""
        if self.home and not self.night.rows and self.repo.branch() == paths.branch(self.tag):
            self.repo.checkout_branch(self.home)
            self.repo.set_ref(f"refs/heads/{paths.branch(self.tag)}", "")

    def close(self) -> None:
        """End the night cleanly: the next start need not restore .git's control files from this night's copy."""
        self.steering.stop()
        if self.lock.held:
            self.layout.control.unlink(missing_ok=True)
        self.lock.release()


def open_session(root: Path, options: Options) -> Session:
    """Take the lock, repair the ledger, reconcile an interrupted night, check the tree and the program, check out
    the branch and load the night; a HarnessError (with the lock released) when the night cannot start."""
    tag = options.tag
    if not _valid_tag(tag):
        raise HarnessError(f"tag '{tag}' is not usable in a branch name; use letters, digits, '-', '_', '.'")
    repo = Repo(root)
    layout = paths.Layout(repo.root)
    lock = LoopLock(layout.lock)
    lock.acquire()
    try:
        ledger = Ledger(layout.ledger)
        torn = ledger.repair()
        if torn:
            keep = layout.runs / f"torn-ledger-line-{int(time.time())}.txt"
            keep.write_bytes(torn)
            ledger.note(tag, f"repaired a torn last line of the ledger ({len(torn)} bytes kept in {keep})")
        layout.stop_request.unlink(missing_ok=True)
        program = load(layout.program)
        # Every mistake of program.md against the repository stops the start before a branch or a row is made.
        check.validate(repo.root, program, repo.tracked())
        config = override(program.config, **options.overrides)
        devices = sandbox.gpu_devices()
        sb = sandbox.probe(config.sandbox, devices=devices)  # `sandbox: required` without one stops here, exit 2
        flight.end_orphans(repo.root)  # first: a dead night's run may still hold a git lock open
        for line in repo.clear_stale_locks():
            ledger.note(tag, line)
        _restore_control(repo, ledger, layout, tag)
        repo.ensure_ignored()
        _reconcile(repo, ledger, layout, tag)
        changed = [p for p in repo.changed() if p != paths.PROGRAM]  # program.md is the person's to edit
        if changed:
            raise RepoError(
                f"the working tree has uncommitted changes to {', '.join(changed[:5])}; commit or stash them first"
            )
        home = repo.branch()
        made = repo.checkout_branch(paths.branch(tag))
        if not (repo.root / config.mutable).is_file():
            raise ProgramError(f"program.md: the mutable file '{config.mutable}' does not exist in {repo.root}")
        where = {key: program.where(key) for key in ("hidden", "data")}
        visibility.check(Sight.of(repo.root, config.hidden, config.data), where, sb.user if sb.active else None)
        head = repo.head()
        night = Night.load(tag, *ledger.night(tag), head, ledger.generations(tag))
        night.declare(config)
        last = night.generations[-1] if night.generations else None
        if head != night.champion and last is not None and last.commit == night.champion and last.parent == head:
            # An agent accepted just before a kill: its row was written, the branch not yet moved to its commit.
            repo.reset_hard(night.champion, keep=(paths.PROGRAM,))
            head = night.champion
        if head != night.champion:
            best = short(night.champion)
            raise RepoError(
                f"{paths.branch(tag)} is at {short(head)}, but the ledger's best experiment is {best}: the branch was "
                f"changed by hand. Start a new tag from here (autoresearch run --tag <new>), or put it back with "
                f"'git reset --hard {best}'"
            )
        control = repo.snapshot_control()
        _save(layout.control, control.dumps())
    except BaseException:
        lock.release()
        raise
    return Session(
        repo, layout, ledger, lock, Steering(program), night, options, control, devices, home=home if made else None
    )


def _restore_control(repo: Repo, ledger: Ledger, layout: paths.Layout, tag: str) -> None:
    """A night that did not end cleanly left its copy of .git's control files: whatever differs from it now was
    changed by something that was not the harness (a run killed with it), and is put back."""
    try:
        saved = ControlSnapshot.loads(layout.control.read_text())
    except (OSError, ValueError):
        return
    changed = repo.restore_control(saved)
    if changed:
        ledger.note(tag, f"undid changes to .git control files since the last night stopped: {', '.join(changed)}")


def _save(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _reconcile(repo: Repo, ledger: Ledger, layout: paths.Layout, tag: str) -> None:
    def reset_branch(sha: str) -> None:
        if not sha:
            return
        name = paths.branch(tag)
        if repo.branch() == name:
            repo.reset_hard(sha, keep=(paths.PROGRAM,))
        else:
            repo.set_ref(f"refs/heads/{name}", sha)

    flight.reconcile(repo, ledger, layout, tag, reset_branch)
    cleaned = flight.clean(layout, tag)
    if cleaned:
        ledger.note(tag, f"removed the workers' checkouts a stopped night left: {', '.join(cleaned)}")


def _valid_tag(tag: str) -> bool:
    return bool(tag) and all(c.isalnum() or c in "-_." for c in tag) and not tag.startswith((".", "-"))
