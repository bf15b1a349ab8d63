"""The agents a night can run, one registry: each kind a module of this folder with a `build()` that makes it for the
night. Adding one is a module and a line here; `--agent`'s help and the README read this table. Any other `--agent`
is the path of an agent file, run like agent.py. Nothing here imports an agent: an agent's child imports this folder."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.config import Config
    from harness.night import Night
    from harness.paths import Layout
    from harness.repo import Repo
    from harness.task import Agent


@dataclass(frozen=True)
class Kind:
    """One kind of agent: the module whose `build(kind, setup)` makes it, and what it is in a few words."""

    module: str
    meaning: str


AGENTS: dict[str, Kind] = {
    "llm": Kind("harness.agents.host", "agent.py in a child process; the harness makes its LLM calls"),
    "optuna": Kind(
        "harness.agents.optuna", "Bayesian search (a Gaussian process, or TPE) over the `search:` constants"
    ),
    "random": Kind("harness.agents.optuna", "uniform samples of the `search:` space: the control"),
    "hybrid": Kind("harness.agents.hybrid", "Optuna proposes, an LLM may override a bounded share"),
}
FILE = Kind("harness.agents.host", "an agent file with agent.py's contract")  # any other --agent
KINDS = f"{', '.join(AGENTS)}, or the path of an agent file"


@dataclass(frozen=True)
class Setup:
    """What every kind is built from: the night's config and state, where its files are, its repository, where it
    speaks, and the credentials the harness withdrew from its environment."""

    config: Config
    night: Night
    layout: Layout
    repo: Repo
    say: Callable[[str], None]
    secrets: Mapping[str, str]


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
    module = importlib.import_module((AGENTS.get(kind) or FILE).module)
    agent: Agent = module.build(kind, Setup(config, night, layout, repo, say, secrets))
    return agent
