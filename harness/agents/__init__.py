"""Which agent a night runs: the offline optuna or random agent, agent.py behind the process boundary, the hybrid of
optuna and an LLM, or another agent file."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from harness.agents.host import HostedAgent
from harness.agents.hybrid import ADVISOR, HybridAgent
from harness.agents.optuna import OptunaAgent, Sampler
from harness.config import Config
from harness.errors import HarnessError, LLMError
from harness.night import Night
from harness.paths import Layout
from harness.repo import Repo
from harness.task import Agent

KINDS = "llm, optuna, random, hybrid, or the path of an agent file"
_SAMPLERS: dict[str, Sampler] = {"optuna": "tpe", "random": "random"}
NAME_OF_ADVISOR = "hybrid-llm"  # the hybrid's LLM side, as its child process and logs name it


def build_agent(
    kind: str,
    config: Config,
    night: Night,
    layout: Layout,
    repo: Repo,
    say: Callable[[str], None],
    secrets: Mapping[str, str],
) -> Agent:
    """The agent a run asked for (see KINDS); an LLM agent's key (from `secrets`, the credentials the harness withdrew
    from its environment) is checked here, before any compute is spent."""
    if kind in _SAMPLERS:
        agent = _offline(_SAMPLERS[kind], config, night, repo)
        agent.resume(night.results())
        return agent
    if kind == "hybrid":
        if not secrets.get("ANTHROPIC_API_KEY", "").strip():
            raise LLMError(
                "--agent hybrid needs ANTHROPIC_API_KEY (an LLM reviews the optimizer's suggestions); export it, or "
                "use the offline agent with --agent optuna"
            )
        optimizer = _offline("tpe", config, night, repo)
        advisor = HostedAgent.start(ADVISOR, NAME_OF_ADVISOR, config, layout, night.tag, say, secrets, night.spend_usd)
        hybrid = HybridAgent(optimizer, advisor, share=config.override_share)
        hybrid.resume(night.results())
        return hybrid
    path = layout.agent if kind == "llm" else Path(kind)
    if not path.is_file():
        raise HarnessError(f"agent file {path} not found; --agent takes {KINDS}")
    name = "llm" if kind == "llm" else path.name
    return HostedAgent.start(path, name, config, layout, night.tag, say, secrets, night.spend_usd)


def _offline(sampler: Sampler, config: Config, night: Night, repo: Repo) -> OptunaAgent:
    """An optimizer over program.md's `search:` space, checked against the champion file; it learns the baseline's
    constants from the file the baseline ran."""
    champion = repo.show(night.champion, config.mutable)
    base = [r for r in night.rows if r.id == 0 and r.status == "keep" and r.commit]
    baseline = repo.show(base[-1].commit, config.mutable) if base and base[-1].commit else champion
    agent = OptunaAgent(config.search, config.direction, sampler=sampler, baseline_content=baseline, seed=config.seed)
    agent.check(champion, config.mutable)
    return agent
