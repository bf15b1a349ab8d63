"""The hybrid agent: the optimizer proposes every point, and an LLM shown its state may override a bounded share."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.agents import Setup
from harness.agents.host import HostedAgent
from harness.agents.optuna import OptunaAgent, offline
from harness.config import Config
from harness.errors import AgentError, LLMError
from harness.task import Agent, Proposal, Proposed, Result, Spend, Task

NAME = "hybrid"
# The LLM's side, an agent file like agent.py that reads task.suggestion; it runs in a child process whose LLM calls
# the harness makes, so it never holds the key.
ADVISOR = Path(__file__).with_name("advisor.py")
NAME_OF_ADVISOR = "hybrid-llm"  # the LLM's side, as its child process and logs name it
WHY_CHARS = 300  # of the LLM's reason, kept in the ledger
UNUSABLE = "not told as a trial: the edit changes code, or leaves the search space, so it is no point Optuna can model"


class HybridAgent:
    """Composes the optimizer (an OptunaAgent) and an LLM agent whose Task carries the optimizer's suggestion.

    Each experiment the optimizer suggests a point. During its random start-up trials the LLM is not asked (there is
    no model to review). After them, when an override is within `share` (after n experiments, at most
    ceil(share * n) were overrides), the LLM sees the suggestion and the optimizer's state (trials failed ones too,
    the best region, each parameter's importance, the code version each trial ran on) and either accepts the point
    or returns its own edit; otherwise it is not asked, and the point runs. A kept change of the code starts the
    optimizer on a fresh study. Optuna is told every
    result: the suggested point's when it ran, and an override's as a trial of its own when the override changed only
    search constants inside the space, or else as a failed trial marked unusable (it cannot model a code change).
    The ledger row's `extra` says which: `source` (optimizer or llm), `decision`, `why`, `suggested`, `told`.
    """

    name = NAME

    def __init__(self, optimizer: OptunaAgent, llm: Agent, *, share: float) -> None:
        self.optimizer = optimizer
        self.llm = llm
        self.share = share
        self.sha = hashlib.sha256(f"{optimizer.sha}:{llm.sha}".encode()).hexdigest()[:16]
        self.proposed = 0  # experiments this agent proposed in the night, across restarts
        self.overrides = 0  # of them, those where the LLM's edit ran instead of the optimizer's point

    def resume(self, results: Iterable[Result]) -> None:
        """Learn the night so far from the ledger: the optimizer its trials, this agent its count of overrides."""
        for result in results:
            self._count(result)
            self.optimizer.observe(result)

    # --- the Agent protocol ---------------------------------------------------------------------------------

    def propose(self, task: Task) -> Proposed:
        suggested = self.optimizer.propose(task)
        params = suggested.extra["params"]
        if self.optimizer.in_startup():  # asked after the proposal, which may have begun a fresh study
            # A random start-up point is drawn to explore, not modelled: there is nothing for the LLM to review.
            done, total = self.optimizer.state()["startup"]
            why = f"not asked: the optimizer's random start-up ({done} of {total} trials told before TPE models them)"
            return self._suggestion(suggested, "not asked", why)
        allowed = self.overrides + 1 <= math.ceil(self.share * (self.proposed + 1))
        if not allowed:
            why = f"not asked: {self.overrides} of {self.proposed} were overrides (override_share {self.share:g})"
            return self._suggestion(suggested, "not asked", why)
        state = {**self.optimizer.state(), "params": params, "description": suggested.proposal.description}
        state |= {"content": suggested.proposal.content, "override_share": self.share}
        state |= {"overrides": self.overrides, "experiments": self.proposed}
        try:
            answer = self.llm.propose(replace(task, suggestion=state)).proposal
        except AgentError as e:
            # The optimizer's point is a good experiment too: a failed LLM turn costs no experiment.
            return self._suggestion(suggested, "llm failed", str(e))
        why = answer.reason[:WHY_CHARS]
        known = self.optimizer.params_of_edit(task.mutable_content, answer.content)
        if answer.content == suggested.proposal.content or known == params:
            return self._suggestion(suggested, "accept", why, notes=answer.notes)
        self.optimizer.withdraw(task.experiment, "overridden by the LLM")
        extra: dict[str, Any] = {"source": "llm", "decision": "override", "why": why, "suggested": params}
        if known is not None:
            extra |= {"params": known, "told": "trial"}
        else:
            extra["told"] = UNUSABLE
        self.proposed += 1
        self.overrides += 1
        return Proposed(Proposal(answer.description, answer.content, notes=answer.notes), extra=extra)

    def observe(self, result: Result) -> None:
        self.optimizer.observe(result)
        self.llm.observe(result)

    def take_spend(self) -> Spend:
        return self.llm.take_spend()

    def steer(self, config: Config) -> None:
        self.share = config.override_share
        self.optimizer.steer(config)
        self.llm.steer(config)

    def close(self) -> None:
        self.optimizer.close()
        self.llm.close()

    # --- helpers ------------------------------------------------------------------------------------------

    def _suggestion(self, suggested: Proposed, decision: str, why: str, notes: str = "") -> Proposed:
        """The optimizer's point runs; the row says why and that Optuna learns it as its own trial."""
        self.proposed += 1
        extra = {**suggested.extra, "source": "optimizer", "decision": decision, "why": why[:WHY_CHARS]}
        extra |= {"suggested": suggested.extra["params"], "told": "trial"}
        return Proposed(replace(suggested.proposal, notes=notes), extra=extra)

    def _count(self, result: Result) -> None:
        source = result.extra.get("source") if isinstance(result.extra, dict) else None
        if source in ("optimizer", "llm"):
            self.proposed += 1
            self.overrides += source == "llm"


def build(kind: str, setup: Setup) -> HybridAgent:
    """Optuna and the advisor in its child (the key checked now), having learned the night so far."""
    config, night = setup.config, setup.night
    if not setup.secrets.get("ANTHROPIC_API_KEY", "").strip():
        raise LLMError(
            "--agent hybrid needs ANTHROPIC_API_KEY (an LLM reviews the optimizer's suggestions); export it, or "
            "use the offline agent with --agent optuna"
        )
    optimizer = offline("auto", config, night, setup.repo)
    advisor = HostedAgent.start(
        ADVISOR, NAME_OF_ADVISOR, config, setup.layout, night.tag, setup.say, setup.secrets, night.spend_usd
    )
    hybrid = HybridAgent(optimizer, advisor, share=config.override_share)
    hybrid.resume(night.results())
    return hybrid
