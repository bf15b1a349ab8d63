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


def build_agent(kind: str, config: Any, loop: Any) -> Agent:
    """The agent a run asked for: "optuna", "llm" (agent.py), or the path of another agent file."""
    if kind == "optuna":
        from harness.optuna_agent import OptunaAgent

        agent = OptunaAgent(config.search, config.direction)
        champion = loop.repo.show(loop.champion, config.mutable)
        agent.check(champion, config.mutable)
        base = [r for r in loop.rows if r.id == 0 and r.status == "keep"]
        agent.baseline_content = loop.repo.show(base[-1].commit, config.mutable) if base else champion
        agent.resume(loop.rows)
        return agent
    from harness.host import HostedAgent

    return HostedAgent.start(kind, config, loop)
