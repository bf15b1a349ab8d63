"""What the loop needs of an agent, whichever it is (the offline optuna agent, agent.py, another agent file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from harness.ledger import Experiment
from harness.task import Proposal, Task


@dataclass(frozen=True)
class Spend:
    """LLM usage charged to one proposal."""

    tokens_in: int = 0  # uncached input + cache writes + cache reads
    tokens_out: int = 0
    cache_read: int = 0
    cache_write: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True)
class Proposed:
    """A proposal, with what the harness keeps beside it in the ledger (for example the optuna parameters)."""

    proposal: Proposal
    extra: dict[str, Any] = field(default_factory=dict)


class Agent(Protocol):
    """The loop's view of an agent; `propose` raises AgentError for a proposal that failed (recorded `invalid`)."""

    name: str
    sha: str  # identifies the agent's version in the ledger

    def propose(self, task: Task) -> Proposed: ...

    def observe(self, row: Experiment) -> None: ...

    def take_spend(self) -> Spend: ...

    def close(self) -> None: ...
