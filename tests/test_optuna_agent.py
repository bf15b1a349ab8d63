"""The offline agent: proposals inside the search space, rewritten in place, learned from every result."""

from __future__ import annotations

import pytest

from harness.errors import ProgramError
from harness.optuna_agent import OptunaAgent
from harness.program import parse
from harness.source import read_constants
from harness.task import Result, Task

SOURCE = "LR = 0.01  # learning rate\nDEPTH = 4  # layers\nACT = 'relu'  # activation\n\nprint('hi')\n"
SPACE = parse(
    "---\nsearch:\n  LR: {low: 1.0e-4, high: 1.0e-1, log: true}\n  DEPTH: {low: 2, high: 8}\n"
    "  ACT: {choices: [relu, gelu]}\n---\n"
).config.search


def task(n: int, content: str = SOURCE) -> Task:
    return Task(program="", mutable_path="train.py", mutable_content=content, metric="loss", direction="minimize",
                best=1.0, baseline=1.0, experiment=n)  # fmt: skip


def row(n: int, status: str, metric: float | None, params: dict | None = None) -> Result:
    return Result(n, status, metric, {"params": params} if params else {})


def test_proposals_stay_in_the_space_and_keep_the_comments():
    agent = OptunaAgent(SPACE, "minimize", seed=1)
    for n in range(1, 8):
        proposed = agent.propose(task(n))
        values = read_constants(proposed.proposal.content)
        assert 1e-4 <= values["LR"] <= 1e-1 and 2 <= values["DEPTH"] <= 8 and values["ACT"] in ("relu", "gelu")
        assert "# learning rate\n" in proposed.proposal.content and proposed.proposal.content.endswith("print('hi')\n")
        assert proposed.extra["params"].keys() == {"LR", "DEPTH", "ACT"}
        agent.observe(row(n, "discard", 1.0 + n / 10, proposed.extra["params"]))
    assert len(agent.study.trials) == 7


def test_it_learns_from_the_ledger_on_resume_and_counts_crashes_as_the_worst():
    agent = OptunaAgent(SPACE, "minimize", seed=1, baseline_content=SOURCE)
    history = [
        row(0, "keep", 2.0),
        row(1, "discard", 3.0, {"LR": 0.05, "DEPTH": 3, "ACT": "relu"}),
        row(2, "crash", None, {"LR": 0.09, "DEPTH": 8, "ACT": "gelu"}),
        row(3, "keep", 1.5, {"LR": 0.001, "DEPTH": 5, "ACT": "gelu"}),
    ]
    agent.resume(history)
    values = [t.value for t in agent.study.trials]
    assert values == [2.0, 3.0, 3.0, 1.5]  # the crash learned as the worst result seen
    assert agent.study.best_params == {"LR": 0.001, "DEPTH": 5, "ACT": "gelu"}


def test_a_search_space_naming_a_missing_constant_is_a_clear_error():
    agent = OptunaAgent(SPACE, "minimize")
    with pytest.raises(ProgramError, match=r"search names ACT, but train\.py has no such top-level constant"):
        agent.check("LR = 0.1\nDEPTH = 3\n", "train.py")


def test_no_search_space_is_a_clear_error():
    with pytest.raises(ProgramError, match="needs a 'search:' space"):
        OptunaAgent((), "minimize")
