"""The contracts between the harness and an agent: Task in, Proposal out, what it cost, and what it learns back.

A leaf: it imports nothing of ours, so every other module (and an agent file in its child process) can use it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Attempt:
    """One earlier experiment as an agent sees it."""

    id: int
    status: str  # keep, discard, crash, timeout, invalid, duplicate, tampered, interrupted
    metric: float | None
    delta: float | None  # metric minus the champion it was tried against
    description: str
    reason: str = ""  # why it failed or was not run, one line
    seconds: float | None = None  # wall time of its run, measured by the harness (None when nothing ran)
    peak_mem_mb: float | None = None  # peak memory of its run, measured by the harness
    digest: str = ""  # a few lines of its run's log: progress samples and the final numbers (bounded)
    commit: str = ""  # its commit: on the branch when kept, under refs/autoresearch/<tag>/discarded/ otherwise
    log: str = ""  # its run's log, relative to the repository root
    contended: bool = False  # its run shared a busy machine: its number is not to be trusted alone
    family: str = ""  # what the change is about: the constants it moved, or the model's own hypothesis
    expected: str = ""  # the effect its proposal predicted (its EXPECTED: line)
    mode: str = ""  # "exploit" or "broaden": what the night asked for when it was proposed


@dataclass(frozen=True)
class Family:
    """A family of changes tried this night (the memory beyond the history window): how often, how well, and what
    it amounts to so far."""

    name: str
    tries: int
    kept: int
    best: float | None  # the best delta of its tries against the champion of their time
    inside: bool  # that best delta is inside the noise (within the keep threshold)
    status: str  # promising, inconclusive, dead end
    last: int  # the latest experiment of the family


@dataclass(frozen=True)
class Inspiration:
    """The code of an earlier experiment worth learning from: a kept one, or a near miss."""

    id: int
    status: str
    metric: float | None
    delta: float | None
    description: str
    commit: str
    diff: str = ""  # unified diff of the mutable file against the champion it was tried on (bounded)


@dataclass(frozen=True)
class ContextFile:
    """A read-only file named in program.md's `context`, as the champion commit has it."""

    path: str
    content: str = ""  # bounded; a cut is marked in the text


@dataclass(frozen=True)
class Task:
    """Everything an agent needs for one proposal; plain data, so it crosses a process boundary as JSON."""

    program: str  # program.md's free text, sent to the LLM verbatim
    mutable_path: str  # relative to the repository root, e.g. "train.py"
    mutable_content: str
    metric: str
    direction: str  # "minimize" or "maximize"
    best: float | None  # the champion's metric
    baseline: float | None
    history: tuple[Attempt, ...] = ()  # bounded, oldest first
    kept: tuple[Attempt, ...] = ()  # the kept experiments that made the champion (the latest few)
    crash_tail: str = ""  # the log tail of the most recent crash, when the last experiment crashed
    notes: str = ""  # the agent's own notes from its previous proposal
    experiment: int = 0  # the id this proposal will get
    search: dict[str, dict[str, Any]] = field(default_factory=dict)  # program.md's search space
    agent_source: str = ""  # the agent's own source (HyperAgent rewrites)
    # The hybrid agent's optimizer state for its LLM: the suggested next point ("params", "description", "content"
    # of the file that would run), the trials so far, the best one and the best region; empty for other agents.
    suggestion: dict[str, Any] = field(default_factory=dict)
    # The evidence: what a run is given, what a keep must beat, and what the champion's own run showed.
    budget: float = 0.0  # seconds a run is told it has (AUTORESEARCH_BUDGET); wall clock, so speed counts
    timeout: float = 0.0  # seconds after which a run is killed
    margin: float = 0.0  # what a gain must beat to be kept: max(min_delta, the noise of repeated baselines)
    machine: str = ""  # what the runs run on: GPUs, CPU cores, memory
    champion: str = ""  # the champion's commit
    champion_run: Attempt | None = None  # the run that made the champion (the baseline or the latest keep)
    context: tuple[ContextFile, ...] = ()  # program.md's `context` files, read-only
    archive: tuple[Inspiration, ...] = ()  # code of kept experiments and near misses, picked for diversity
    reflection: str = ""  # the agent's latest reflection on the night (stands for the history beyond the window)
    reflect: bool = False  # True when this proposal should write a new reflection (every `reflect_every`)
    agent_steps: int = 0  # rounds of read-only tool use allowed before the answer
    hidden: tuple[str, ...] = ()  # program.md's `hidden:` patterns: data no agent may see, not even through a tool
    # The noise and the memory of the night, kept by the harness (they change every experiment: never cached).
    noise: float = 0.0  # the spread (standard deviation) of one run, from repeated runs of the same versions
    champion_runs: tuple[float, ...] = ()  # the champion's trusted runs: its number is their median
    keep_rule: str = ""  # the keep rule in one sentence
    families: tuple[Family, ...] = ()  # every family of changes tried this night, the most recent first
    mode: str = "exploit"  # "broaden" once the night has stalled, back to "exploit" after a keep
    stalled: int = 0  # experiments since the last keep
    patience: int = 0  # experiments without a keep after which the night broadens
    in_flight: tuple[Attempt, ...] = ()  # experiments proposed and not finished yet (a parallel night)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Task:
        data = dict(data)
        data["history"] = tuple(Attempt(**a) for a in data.get("history", ()))
        data["kept"] = tuple(Attempt(**a) for a in data.get("kept", ()))
        if data.get("champion_run") is not None:
            data["champion_run"] = Attempt(**data["champion_run"])
        data["context"] = tuple(ContextFile(**c) for c in data.get("context", ()))
        data["archive"] = tuple(Inspiration(**i) for i in data.get("archive", ()))
        data["families"] = tuple(Family(**f) for f in data.get("families", ()))
        data["in_flight"] = tuple(Attempt(**a) for a in data.get("in_flight", ()))
        data["champion_runs"] = tuple(data.get("champion_runs", ()))
        return cls(**data)


@dataclass(frozen=True)
class Proposal:
    """A one-line description and the whole new content of the file, with notes the agent wants back next time."""

    description: str
    content: str
    notes: str = ""
    reason: str = ""  # why this change rather than another (the hybrid records its LLM's reason to accept or override)
    reflection: str = ""  # when the task asked for one: what worked, what failed, what to try next
    expected: str = ""  # the effect the model predicts (its EXPECTED: line), kept in the ledger beside the result
    hypothesis: str = ""  # the idea's family in the model's words (its HYPOTHESIS: line), for the night's memory

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Proposal:
        return cls(
            description=str(data.get("description", "")),
            content=str(data.get("content", "")),
            notes=str(data.get("notes", "") or ""),
            reason=str(data.get("reason", "") or ""),
            reflection=str(data.get("reflection", "") or ""),
            expected=str(data.get("expected", "") or ""),
            hypothesis=str(data.get("hypothesis", "") or ""),
        )


@dataclass(frozen=True)
class Spend:
    """LLM tokens and their price, for one call or summed over many with +."""

    input_tokens: int = 0  # uncached input
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def tokens_in(self) -> int:
        """Every input token the model read: uncached, written to the cache, and read from it."""
        return self.input_tokens + self.cache_write_tokens + self.cache_read_tokens

    def __add__(self, other: Spend) -> Spend:
        if not isinstance(other, Spend):
            return NotImplemented
        return Spend(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cost_usd=self.cost_usd + other.cost_usd,
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> Spend:
        if not isinstance(data, dict):
            return cls()
        known = ("input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens")
        return cls(**{k: int(data.get(k) or 0) for k in known}, cost_usd=float(data.get("cost_usd") or 0.0))


@dataclass(frozen=True)
class Reply:
    """One completed LLM call: the text of its text blocks, why it stopped, which model answered, what it cost."""

    text: str
    stop_reason: str | None = None  # end_turn, max_tokens, tool_use, refusal, ...
    model: str = ""
    usage: Spend = field(default_factory=Spend)
    content: tuple[dict[str, Any], ...] = ()  # the content blocks as the API sent them (text, tool_use, thinking)

    @property
    def tool_uses(self) -> list[dict[str, Any]]:
        """The tool_use blocks: what the model asked to look at."""
        return [b for b in self.content if b.get("type") == "tool_use"]


@dataclass(frozen=True)
class Proposed:
    """A proposal, with what the harness keeps beside it in the ledger (for example the optuna parameters)."""

    proposal: Proposal
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Result:
    """What an agent learns from one finished experiment (kept or not), or from one of the ledger on resume."""

    id: int
    status: str
    metric: float | None
    extra: dict[str, Any] = field(default_factory=dict)  # what the agent put beside its proposal, and same_as info


class Agent(Protocol):
    """The loop's view of an agent; `propose` raises AgentError for a proposal that failed (recorded `invalid`)."""

    name: str
    sha: str  # identifies the agent's version in the ledger

    def propose(self, task: Task) -> Proposed: ...

    def observe(self, result: Result) -> None: ...

    def take_spend(self) -> Spend: ...

    def steer(self, config: Any) -> None:
        """program.md changed: take the keys this agent reads from `config` (the harness.config.Config now in force:
        a search space, a model) before its next proposal. Any, because the contracts import nothing of the harness."""
        ...

    def close(self) -> None: ...
