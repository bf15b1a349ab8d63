"""A night from its start to its end: open it, build its agent, say what protects it, loop, record how it ended."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from harness import executors, jails
from harness.config import Config
from harness.engine import Conductor, Engine
from harness.errors import HarnessError, LedgerError, LoopEnd
from harness.executors.inplace import InPlace
from harness.night import Night
from harness.paths import Layout
from harness.repo import Repo
from harness.session import Options, Session, open_session
from harness.status import Screen, write_status
from harness.task import Agent

Conducting = Callable[[Session, Agent, Screen], Conductor]  # what builds a night's conductor (HyperAgent mode)
AgentFactory = Callable[[str, Config, Night, Layout, Repo, Callable[[str], None], Mapping[str, str]], Agent]


@dataclass(frozen=True)
class Ending:
    """How the night ended: the reason (also in the ledger and the status), the exit status, and where it stands."""

    reason: str
    exit_code: int
    experiments: int  # run in this invocation
    best: float | None
    baseline: float | None


def run(
    root: Path,
    options: Options,
    *,
    screen: Screen,
    make_agent: AgentFactory,
    secrets: Mapping[str, str] | None = None,
    conduct: Conducting | None = None,
) -> Ending:
    """Open the night, build its agent, and loop until something ends it; the tree is left clean at the champion.

    Whatever ends it, its reason goes to the ledger, the status file and the screen before the lock is let go; a
    person's mistake (HarnessError) is then raised, a bug leaves a crash log. `conduct`, given the open night and its
    agent, returns what chooses the agent of each experiment (HyperAgent mode); the agent built here by default."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    # A terminal that goes away (a closed window, a dropped ssh) hangs up on its jobs: the night goes on, as under
    # nohup, and what it would have printed is dropped (the ledger and `autoresearch status` still say it all).
    hangup = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    agent: Agent | None = None
    loop: Engine | None = None
    try:
        session = open_session(root, options)
        try:
            session.steering.start()
            args = (session.config, session.night, session.layout, session.repo, screen.info, secrets or {})
            count = 0
            try:
                agent = make_agent(options.agent, *args)  # an LLM agent's key check is a call: the cap may refuse it
            except LoopEnd as e:
                end: LoopEnd = e
            else:
                _announce(session, screen)
                loop = engine(session, agent, screen, conduct)
                end = loop.until_end()
                count = loop.count
            _record_end(session, screen, str(end), type(end).__name__, agent.name if agent else options.agent)
        except HarnessError as e:
            _record_end(session, screen, f"stopped: {e}", type(e).__name__, agent.name if agent else options.agent)
            raise
        finally:
            if agent is not None:
                agent.close()
            if loop is not None:
                loop.ex.close()
            session.undo_branch()
            session.close()
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGHUP, hangup)
    return Ending(str(end), end.exit_code, count, session.night.best, session.night.baseline)


def engine(session: Session, agent: Agent, screen: Screen, conduct: Conducting | None = None) -> Engine:
    """The night's engine over the executor program.md asks for, `ahead` proposals made while its workers are busy;
    one worker of this machine and none ahead (`workers: 1`) is the classic night, measured in the repository's
    own tree."""
    config = session.config
    alone = config.workers == 1 and config.executor == "local"
    ahead = (0 if alone else 1) if config.ahead == "auto" else config.ahead
    conductor = conduct(session, agent, screen) if conduct and alone and ahead == 0 else None
    if conduct is not None and conductor is None:
        raise HarnessError("HyperAgent mode runs one experiment at a time: set 'workers: 1' for it")
    if alone and ahead == 0:
        return Engine(session, agent, screen, InPlace(session.tree), ahead=0, conductor=conductor)
    files = tuple(session.repo.tracked())
    ex = executors.load(config.executor).build(
        config, session.repo.root, session.tag, files, session.sandbox, session.devices
    )
    where = f"{ex.slots} workers ({ex.name}): {ex.describe()}"
    screen.info(f"parallel: {where}; the agent proposes {ahead} ahead of them")
    session.ledger.note(session.tag, f"parallel: {where}", workers=ex.slots, executor=ex.name, ahead=ahead)
    return Engine(session, agent, screen, ex, ahead=ahead)


def _announce(session: Session, screen: Screen) -> None:
    """Say at the start what protects the night and where its metric comes from: on the screen and in the ledger."""
    config, sb = session.config, session.sandbox
    guard = "runs and agents in the OS sandbox (bubblewrap)" if sb.active else sb.missing
    if sb.active and sb.user is not None:
        guard += f", as uid {sb.user[0]}"
    if sb.active:
        guard += ", network on for runs" if config.network else ", no network"
    source = f"from the evaluator '{config.evaluate}'" if config.evaluate else "self-reported by the run"
    if config.hidden and not sb.active:
        source += f"; the hidden data ({', '.join(config.hidden)}) is NOT hidden without the sandbox"
    sight = _sight(config, sb.active)
    screen.info(f"sandbox: {config.sandbox}: {guard}")
    screen.info(f"metric: {config.metric}, {source}")
    screen.info(f"sight: {sight}")
    limits = jails.enforcement(config, session.repo.root).describe()
    screen.info(limits)
    session.ledger.note(session.tag, "night started", sandbox=config.sandbox, sandboxed=sb.active, protection=guard,
                        metric_source=source, sight=sight, limits=limits)  # fmt: skip


def _sight(config: Config, sandboxed: bool) -> str:
    """One line: what of the repository and the machine runs and agents see."""
    if not sandboxed:
        return "runs and agents see every file their user can read (no sandbox): untracked files and hidden data too"
    data = f" and the untracked {', '.join(config.data)}" if config.data else ""
    hidden = f"; {', '.join(config.hidden)} for the evaluators only" if config.hidden else ""
    return f"runs and agents see the tracked files{data}; no other untracked or ignored file (.env, keys){hidden}"


def _record_end(session: Session, screen: Screen, reason: str, kind: str, agent: str) -> None:
    """Whatever ended the night: one ledger note, the status file, and a line on the screen (the lock is still held).
    A full disk can refuse the note and the status file too; the screen and the exit line still say why."""
    with contextlib.suppress(LedgerError):
        session.ledger.note(session.tag, f"loop ended: {reason}", ending=kind)
    with contextlib.suppress(OSError):
        write_status(session.layout.status, session.state(agent, "stopped", -1, reason))
    screen.info(f"loop ended: {reason}")


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
