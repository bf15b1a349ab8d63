"""Trivial agents for tests and benchmarks: one in-process, one as an agent file, and a screen that shows nothing."""

from __future__ import annotations

from typing import Any

from harness.config import Config
from harness.task import Proposal, Proposed, Result, Spend, Task

# An agent file with the propose(task, llm) contract: a new comment line each time, so no proposal is a duplicate.
AGENT_FILE = """from harness.task import Proposal


def propose(task, llm):
    return Proposal(f"edit {task.experiment}", task.mutable_content + f"# experiment {task.experiment}\\n")
"""


class FixedEdit:
    """Answers at once with a small new edit (a fresh comment line), and remembers what it learned."""

    name = "fixed"
    sha = "fixed"

    def __init__(self) -> None:
        self.results: list[Result] = []

    def propose(self, task: Task) -> Proposed:
        return Proposed(Proposal(f"edit {task.experiment}", task.mutable_content + f"# e{task.experiment}\n"))

    def observe(self, result: Result) -> None:
        self.results.append(result)

    def take_spend(self) -> Spend:
        return Spend()

    def steer(self, config: Config) -> None:
        pass

    def close(self) -> None:
        pass


class Quiet:
    """A screen for the loop that shows nothing and keeps the lines it was given."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def update(self, state: dict[str, Any]) -> None:
        pass

    def row(self, row: object) -> None:
        pass

    def info(self, text: str) -> None:
        self.lines.append(text)


# An agent file that walks X down a quarter per experiment: every proposal new, the night's gains foreseeable.
DOWNHILL_AGENT = """from harness.task import Proposal


def propose(task, llm):
    x = 3.0 - 0.25 * task.experiment
    return Proposal(f"X to {x}", task.mutable_content.replace("X = 3.0", f"X = {x}", 1))
"""
