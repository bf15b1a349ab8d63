"""The agent host: runs an agent file in a child process with a scrubbed environment and serves its LLM calls and
its read-only tools (from the repository; the child has no access of its own)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import select
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from harness import childenv, process, protocol, sandbox, toolbox
from harness.agents import KINDS, Setup
from harness.brief import Evidence
from harness.config import Config
from harness.edits import head
from harness.errors import AgentError, BudgetExceeded, HarnessError, LLMError, RequestRefused
from harness.jails import Jail, agent_jail
from harness.paths import Layout
from harness.repo import Repo
from harness.task import Proposal, Proposed, Result, Spend, Task
from harness.text import REASON_CHARS, REFLECTION_CHARS, clean, one_line, tail

if TYPE_CHECKING:
    from harness.llm import LLMClient

TIME_LIMIT = 1200.0  # wall seconds per proposal, the harness's time answering its LLM calls and tools included
TOOL_CALLS = 100  # tool calls per proposal; more is a flood, not a look around (the seed makes a handful per round)
WATCH_EVERY = 1.0  # seconds between two checks of the night's stop conditions while a proposal is under way
# The resource limits of the child of a HyperAgent agent, and of its gates' child alike, so that a candidate cannot
# tell its gates from its work by them: bytes of address space, CPU seconds, bytes of a file it writes, processes.
AGENT_LIMITS = {"memory": 2 * 2**30, "cpu": 600, "files": 64 * 2**20, "processes": 0}
MAX_LINE = 16 * 2**20  # a protocol line larger than this is a runaway agent, not a proposal
REFUSALS = 3  # proposals in a row whose request the API refused: then it is not the prompt, and the night ends
TOOLS_KEPT = 20  # tool calls of one proposal named in its ledger row

# Where an agent child runs: given its scratch folder and the files it must read (its own source), the jail to start
# it in. A night's agents get `jails` (the OS sandbox); an agent built by hand without one, the scrubbed environment.
JailFactory = Callable[[Path, Sequence[Path]], AbstractContextManager[Jail]]


def jails(config: Config, repo: Repo) -> JailFactory:
    """The jail of every child that runs an agent of a night: jails.agent_jail in the night's sandbox (a plain
    child with a scrubbed environment when the sandbox is not in force)."""
    sb = sandbox.probe(config.sandbox)
    return lambda work, readable: agent_jail(sb, repo, config, work, readable)


class HostedAgent:
    """An agent file (agent.py or another with the same contract) behind a process boundary."""

    def __init__(
        self,
        path: Path,
        client: LLMClient | None,
        *,
        name: str,
        root: Path,
        workdir: Path,
        log_dir: Path,
        evidence: Evidence,
        time_limit: float = TIME_LIMIT,
        jail: JailFactory | None = None,
        watch: Callable[[], None] | None = None,
        limits: Mapping[str, int] | None = None,
        entries: Sequence[str] = (),
    ) -> None:
        self.path = path.resolve()
        self.client = client
        self.name = name
        self.root = root
        self.workdir = workdir
        self.log_dir = log_dir
        self.evidence = evidence
        self.time_limit = time_limit
        self.jail: JailFactory = jail or self._unjailed
        # The night's stop conditions (a stop request, --hours): raises LoopEnd to end a proposal under way.
        self.watch: Callable[[], None] = watch or _nothing
        self.limits = dict(limits or {})  # the child's resource limits (AGENT_LIMITS); none when empty
        self.entries = tuple(entries)  # the entries the child binds before the call (all of the contract's, or the one)
        self.sha = agent_sha(self.path.read_bytes())
        self._refused = 0  # proposals in a row refused by the API

    @classmethod
    def start(
        cls,
        path: Path,
        name: str,
        config: Config,
        layout: Layout,
        tag: str,
        say: Callable[[str], None],
        secrets: Mapping[str, str],
        spent: float = 0.0,
        jail: JailFactory | None = None,
        limits: Mapping[str, int] | None = None,
        entries: Sequence[str] = (),
    ) -> HostedAgent:
        """The agent file at `path` with an LLM client of its own; the key is checked before use (a bad one is an
        LLMError now, not at 3 am). An agent file that never calls the LLM runs without a key. Its children run in
        `jail` (default: the night's sandbox, see `jails`); `spent` is the night's spend so far (the cap is the
        night's)."""
        from harness.llm import LLMClient

        key = secrets.get("ANTHROPIC_API_KEY", "").strip()
        if name == "llm" and not key:
            raise LLMError("ANTHROPIC_API_KEY is not set; export it, or use the offline agent with --agent optuna")
        client = None
        if key:
            client = LLMClient(
                config.model,
                api_key=key,
                key_name="ANTHROPIC_API_KEY",
                base_url=secrets.get("ANTHROPIC_BASE_URL") or None,
                patience=config.patience,
                max_cost_usd=config.max_cost_usd,
                spent_before=spent,
                on_wait=say,
            )
            client.check()
        repo = Repo(layout.root)
        return cls(
            path, client, name=name, root=layout.root, workdir=layout.work(tag, "agent"), log_dir=layout.tag_dir(tag),
            evidence=Evidence(repo, layout.root), jail=jail or jails(config, repo), limits=limits, entries=entries,
        )  # fmt: skip

    # --- the Agent protocol ---------------------------------------------------------------------------------

    def propose(self, task: Task) -> Proposed:
        """The agent's proposal for `task`, told what the files say (Evidence); its reflection and tool calls go
        beside it in the ledger. A request the API refused makes the proposal invalid, unless it keeps happening."""
        task = self.evidence.attach(task)
        tools: list[str] = []
        try:
            proposal = self.call("propose", task, log_name=f"{task.experiment}.agent.log", tools=tools)
        except RequestRefused as e:
            self._refused += 1
            if self._refused >= REFUSALS:
                raise LLMError(f"the API refused the requests of {self._refused} proposals in a row ({e})") from None
            raise AgentError(f"the API refused this proposal's request: {e}") from None
        self._refused = 0
        extra: dict[str, Any] = {"reflection": proposal.reflection} if proposal.reflection else {}
        if proposal.hypothesis:
            extra["hypothesis"] = proposal.hypothesis
        if tools:
            extra["tools"] = tools[:TOOLS_KEPT]
        return Proposed(proposal, extra)

    def observe(self, result: Result) -> None:
        """Nothing to do: the agent reads the night from its Task, rebuilt from the ledger each time."""

    def take_spend(self) -> Spend:
        return Spend() if self.client is None else self.client.take()

    def steer(self, config: Config) -> None:
        """The LLM client takes a new `model`, `patience` or `max_cost_usd` from the next call; the rest of
        program.md reaches the agent in its Task."""
        if self.client is not None:
            self.client.model = config.model
            self.client.patience = config.patience
            self.client.max_cost_usd = config.max_cost_usd

    def close(self) -> None:
        """No process outlives a call; nothing to close."""

    # --- one call in a child process ------------------------------------------------------------------------

    def call(self, entry: str, task: Task, *, log_name: str, tools: list[str] | None = None) -> Proposal:
        """Run `entry(task, llm)` of the agent file in a fresh child, its tools answered from `task`; AgentError
        when it gives no proposal. The tool calls it made are added to `tools`."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / log_name
        request = {"entry": entry, "entries": list(self.entries), "path": str(self.path), "task": task.to_json(),
                   "limits": self.limits}  # fmt: skip
        refused: BaseException | None = None
        seen = tools if tools is not None else []
        with self.jail(self.workdir, [self.path]) as jail, open(log_path, "wb") as log:
            child = jail.spawn(
                [sys.executable, "-I", "-m", "harness.agents.child"],
                stdin=process.PIPE,
                stdout=process.PIPE,
                stderr=log,
            )
            try:
                child.stdin.write((json.dumps(request) + "\n").encode())
                child.stdin.flush()
                lines = Lines(child.stdout.fileno())
                deadline, calls = time.monotonic() + self.time_limit, 0
                while True:
                    self.watch()
                    left = deadline - time.monotonic()
                    line = lines.next(min(left, WATCH_EVERY))
                    if line is None and not lines.ended:
                        if left > WATCH_EVERY:
                            continue  # a look at the stop conditions, nothing more
                        raise AgentError(
                            f"the agent took longer than {self.time_limit:g} s (wall clock, its LLM calls and tools "
                            f"included); see {log_path}"
                        )
                    if line is None:
                        code = child.wait(timeout=2)
                        raise AgentError(f"the agent process ended (status {code}) without a proposal; see {log_path}")
                    message = protocol.decode(line)
                    if isinstance(message, protocol.Stage):
                        continue  # the child's steps (import, signature, call): the gates' concern
                    if isinstance(message, protocol.Llm | protocol.Tool):
                        if isinstance(message, protocol.Llm):
                            answer, error = self._serve(message)
                            if isinstance(error, BudgetExceeded):
                                raise error  # the night's cap: the proposal ends now, not when the child gives up
                            refused = refused or error
                        else:
                            calls += 1
                            if calls > TOOL_CALLS:
                                raise AgentError(f"the agent made more than {TOOL_CALLS} tool calls; see {log_path}")
                            answer = self._serve_tool(message, task, log, seen)
                        child.stdin.write((json.dumps(answer) + "\n").encode())
                        child.stdin.flush()
                    elif isinstance(message, protocol.Result):
                        proposal = bounded(message.proposal)
                        break
                    else:
                        if refused is not None:
                            raise refused
                        if message.kind == "no_proposal":
                            raise AgentError(f"no proposal: {message.error}")
                        raise AgentError(f"agent {entry}() raised {message.error or 'an error'}")
            except (BrokenPipeError, ValueError) as e:
                if refused is not None:
                    raise refused from None
                raise AgentError(f"the agent process broke the protocol ({e}); see {log_path}") from None
            finally:
                child.kill_tree(grace=1.0)
        if refused is not None:
            raise refused
        return proposal

    @contextlib.contextmanager
    def _unjailed(self, work: Path, readable: Sequence[Path]) -> Iterator[Jail]:
        yield Jail(sandbox.probe("off"), None, childenv.agent_env(self.root), work)

    def _serve(self, message: protocol.Llm) -> tuple[dict[str, Any], BaseException | None]:
        """Make one LLM call for the child; a refusal is sent back to it and kept for the loop."""
        if self.client is None:
            return {"ok": False, "error": "no ANTHROPIC_API_KEY is set, so this agent cannot call the LLM"}, None
        try:
            reply = self.client.complete(
                system=message.system,
                messages=message.messages,
                max_tokens=message.max_tokens,
                **message.options(),
            )
        except (BudgetExceeded, LLMError) as e:
            return {"ok": False, "error": str(e)}, e
        reply_json = {"text": reply.text, "stop_reason": reply.stop_reason, "model": reply.model}
        return {"ok": True, **reply_json, "content": list(reply.content), "usage": reply.usage.to_json()}, None

    def _serve_tool(self, message: protocol.Tool, task: Task, log: IO[bytes], seen: list[str]) -> dict[str, Any]:
        """Answer one read-only tool call from the repository, and note it in the agent's log."""
        name, args = message.name, message.input
        text, ok = toolbox.serve(name, args, task, self.evidence)
        line = toolbox.describe(name, args)
        seen.append(line)
        log.write(f"[autoresearch] tool {line}: {len(text)} characters{'' if ok else ' (refused)'}\n".encode())
        log.flush()
        return {"ok": ok, "text": text}


def bounded(proposal: Proposal) -> Proposal:
    """A child's proposal with its free text bounded as the ledger bounds it: the notes and the reflection come back
    in every later task, so a child that writes pages of them cannot grow each task and the ledger without end."""
    return replace(
        proposal,
        notes=tail(proposal.notes),
        reflection=head(clean(proposal.reflection), REFLECTION_CHARS),
        reason=one_line(proposal.reason, REASON_CHARS) if proposal.reason else "",
    )


def _nothing() -> None:
    """No stop condition to watch (an agent used outside a night)."""


def agent_sha(source: bytes) -> str:
    """The version of an agent file as the ledger names it (experiment rows' agent_sha, generation rows')."""
    return hashlib.sha256(source).hexdigest()[:16]


class Lines:
    """Newline-delimited messages from a pipe, with a time limit on each wait."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""
        self.ended = False  # the other end closed the pipe: no message will come

    def next(self, limit: float) -> bytes | None:
        deadline = time.monotonic() + max(0.0, limit)
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                self.ended = True
                return None
            self.buffer += chunk
            if len(self.buffer) > MAX_LINE:
                raise ValueError("a message over 16 MiB")
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line


def build(kind: str, setup: Setup) -> HostedAgent:
    """agent.py (`llm`), or the agent file at the path `kind`, in its child."""
    path = setup.layout.agent if kind == "llm" else Path(kind)
    if not path.is_file():
        raise HarnessError(f"agent file {path} not found; --agent takes {KINDS}")
    name = "llm" if kind == "llm" else path.name
    night = setup.night
    return HostedAgent.start(
        path, name, setup.config, setup.layout, night.tag, setup.say, setup.secrets, night.spend_usd
    )
