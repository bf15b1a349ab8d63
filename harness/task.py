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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Task:
        data = dict(data)
        data["history"] = tuple(Attempt(**a) for a in data.get("history", ()))
        data["kept"] = tuple(Attempt(**a) for a in data.get("kept", ()))
        return cls(**data)


@dataclass(frozen=True)
class Proposal:
    """A one-line description and the whole new content of the file, with notes the agent wants back next time."""

    description: str
    content: str
    notes: str = ""
    reason: str = ""  # why this change rather than another (the hybrid records its LLM's reason to accept or override)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Proposal:
        return cls(
            description=str(data.get("description", "")),
            content=str(data.get("content", "")),
            notes=str(data.get("notes", "") or ""),
            reason=str(data.get("reason", "") or ""),
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
    stop_reason: str | None = None
    model: str = ""
    usage: Spend = field(default_factory=Spend)


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

    def close(self) -> None: ...
