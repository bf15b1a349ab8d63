"""Which agent a night runs: the offline optuna agent, agent.py behind the process boundary, or another agent file."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from harness.config import Config
from harness.errors import HarnessError
from harness.host import HostedAgent
from harness.night import Night
from harness.optuna_agent import OptunaAgent
from harness.paths import Layout
from harness.repo import Repo
from harness.task import Agent


def build_agent(
    kind: str,
    config: Config,
    night: Night,
    layout: Layout,
    repo: Repo,
    say: Callable[[str], None],
    secrets: Mapping[str, str],
) -> Agent:
    """The agent a run asked for: "optuna", "llm" (agent.py), or the path of another agent file; an LLM agent's key
    (from `secrets`, the credentials the harness withdrew from its environment) is checked here, before any compute
    is spent."""
    if kind == "optuna":
        champion = repo.show(night.champion, config.mutable)
        base = [r for r in night.rows if r.id == 0 and r.status == "keep" and r.commit]
        baseline = repo.show(base[-1].commit, config.mutable) if base and base[-1].commit else champion
        agent = OptunaAgent(config.search, config.direction, baseline_content=baseline)
        agent.check(champion, config.mutable)
        agent.resume(night.results())
        return agent
    path = layout.agent if kind == "llm" else Path(kind)
    if not path.is_file():
        raise HarnessError(f"agent file {path} not found; --agent takes llm, optuna, or the path of an agent file")
    name = "llm" if kind == "llm" else path.name
    return HostedAgent.start(path, name, config, layout, night.tag, say, secrets)
