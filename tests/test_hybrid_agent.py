"""`--agent hybrid`: Optuna proposes, an LLM shown its state accepts or overrides (within a share); Optuna hears all."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness import report, runner
from harness.agents import build_agent
from harness.agents.hybrid import HybridAgent
from harness.session import Options
from harness.source import read_constants
from harness.task import Agent
from harness.testing import TEST_KEY, TOY_TRAIN, FakeAnthropic, Quiet, cli, git, make_repo, toy_program

SUGGESTS = re.compile(r"The optimizer suggests for experiment #(\d+): (.*)")
CHAMPION_X = re.compile(r"^(X = \S+)", re.M)


def repo(tmp_path: Path, **front: object) -> Path:
    files = {"train.py": TOY_TRAIN, "program.md": toy_program(**front), "prepare.py": "#\n", "agent.py": "#\n"}
    return make_repo(tmp_path / "project", files)


def experiments(root: Path) -> list[dict]:
    rows = [json.loads(line) for line in (root / "experiments.log").read_text().splitlines()]
    return [r for r in rows if r["kind"] == "experiment"]


def has(extra: dict, **fields: str) -> bool:
    return {k: extra.get(k) for k in fields} == fields


def prompts(server: FakeAnthropic) -> list[str]:
    """The changing part of each of the advisor's requests (the key check is not one)."""
    out = []
    for request in server.requests:
        content = request.json["messages"][0]["content"]
        if isinstance(content, list):
            out.append(content[-1]["text"])
    return out


def override(reason: str, description: str, *edits: tuple[str, str]) -> str:
    blocks = "".join(f"<<<<<<< SEARCH\n{old}\n=======\n{new}\n>>>>>>> REPLACE\n" for old, new in edits)
    return f"DECISION: override\nREASON: {reason}\nDESCRIPTION: {description}\n{blocks}"


def advisor(script: dict[int, str]) -> Callable[[dict[str, Any]], str]:
    """A model that answers the advisor per experiment: accept, constants (X and Y to the optimum), code, or stale."""

    def answer(request: dict[str, Any]) -> str:
        content = request["messages"][0]["content"]
        if not isinstance(content, list):
            return "ok"  # the key check
        found = SUGGESTS.search(content[-1]["text"])
        assert found, "the request carries the optimizer's suggestion"
        n = int(found.group(1))
        x_line = CHAMPION_X.search(content[0]["text"]).group(1)
        y_line = re.search(r"^(Y = \S+)", content[0]["text"], re.M).group(1)
        kind = script.get(n, "code")
        if kind == "accept":
            return f"DECISION: accept\nREASON: the suggestion {n} explores well\n"
        if kind == "constants":
            return override("the optimum is known", "X and Y to the optimum", (x_line, "X = 1.25"), (y_line, "Y = 5"))
        if kind == "stale":
            return override("r", "d", ("X = 99", "X = 1"))
        return override(f"a code idea {n}", f"code {n}", ('print("---")', f'print("--- {n}")'))

    return answer


def night(root: Path, server: FakeAnthropic, n: int) -> HybridAgent:
    """Run `n` experiments in this process with --agent hybrid, and hand back the agent to look into."""
    built: list[Agent] = []

    def make(*args: Any) -> Agent:
        built.append(build_agent(*args))
        return built[-1]

    secrets = {"ANTHROPIC_API_KEY": TEST_KEY, "ANTHROPIC_BASE_URL": server.url}
    options = Options(tag="h", agent="hybrid", max_experiments=n)
    ending = runner.run(root, options, screen=Quiet(), make_agent=make, secrets=secrets)
    assert ending.exit_code == 0, ending.reason
    assert isinstance(built[0], HybridAgent)
    return built[0]


def test_the_llm_sees_the_suggestion_and_history_and_its_accept_or_override_runs(tmp_path: Path):
    root = repo(tmp_path, override_share=1.0)
    script = {1: "accept", 2: "accept", 3: "constants", 4: "code", 5: "stale"}
    with FakeAnthropic(responder=advisor(script)) as server:
        agent = night(root, server, 5)
        asked = prompts(server)
    rows = {r["id"]: r for r in experiments(root)}
    assert len(asked) == 5
    # Each request names the optimizer's suggested point (the one the ledger keeps as `suggested`), the trials so
    # far with their results, and the best one.
    for n, prompt in enumerate(asked, 1):
        point = SUGGESTS.search(prompt).group(2)
        assert all(f"{k}={v:.4g}" in point if isinstance(v, float) else f"{k}={v}" in point
                   for k, v in rows[n]["extra"]["suggested"].items())  # fmt: skip
    assert f"#1 {rows[1]['metric']:.6f}" in asked[2] and f"#2 {rows[2]['metric']:.6f}" in asked[2]
    assert "Best trial: #" in asked[2] and "Best region" in asked[2] and "X: 0.0 .. 4.0" in asked[0]
    # An accepting reply runs the suggested point, and says why.
    for n in (1, 2):
        assert has(rows[n]["extra"], source="optimizer", decision="accept", told="trial")
        assert rows[n]["extra"]["why"] == f"the suggestion {n} explores well"
        ran = read_constants(git(root, "show", f"{rows[n]['commit']}:train.py"))
        # The file holds the point to four significant digits.
        assert {k: ran[k] for k in ("X", "Y")} == pytest.approx(rows[n]["extra"]["suggested"], rel=1e-3)
    # An overriding reply runs the LLM's edit instead: constants (a point Optuna learns as a trial of its own)...
    assert has(rows[3]["extra"], source="llm", decision="override", why="the optimum is known")
    assert rows[3]["extra"]["params"] == {"X": 1.25, "Y": 5} and rows[3]["extra"]["told"] == "trial"
    assert rows[3]["status"] == "keep" and rows[3]["metric"] == 0.5
    # ...or code (which Optuna cannot model, and the row says so).
    assert rows[4]["extra"]["source"] == "llm" and rows[4]["extra"]["told"].startswith("not told as a trial")
    assert 'print("--- 4")' in git(root, "show", f"{rows[4]['commit']}:train.py")
    # An override that does not apply costs no experiment: the optimizer's point runs.
    assert has(rows[5]["extra"], source="optimizer", decision="llm failed")
    assert "does not apply" in rows[5]["extra"]["why"] and rows[5]["status"] in ("keep", "discard")
    # Optuna was told every result: one trial per experiment, the override of constants as a completed trial.
    trials = [t for t in agent.optimizer.study.trials if "withdrawn" not in t.user_attrs]
    by_id = {t.user_attrs["experiment"]: t for t in trials if "redrawn" not in t.user_attrs}
    assert sorted(by_id) == [0, 1, 2, 3, 4, 5] and len(by_id) == len(trials)
    assert by_id[3].params == {"X": 1.25, "Y": 5} and by_id[3].value == 0.5
    assert by_id[4].state.name == "FAIL" and "unusable" in by_id[4].user_attrs
    for n in (1, 2, 5):
        assert by_id[n].params == rows[n]["extra"]["params"] and by_id[n].value == rows[n]["metric"]
    withdrawn = [t.user_attrs["experiment"] for t in agent.optimizer.study.trials if "withdrawn" in t.user_attrs]
    assert withdrawn == [3, 4]  # the suggestions the LLM overrode were never run, so nothing was learned of them
    # The morning report says which experiments came from the optimizer and which from the LLM.
    report.report_repo(root, tmp_path / "report", tag="h")
    page = (tmp_path / "report" / "report.md").read_text()
    assert "3 experiments came from the optimizer and 2 from the LLM" in page
    assert re.search(r"\| \*\*3\*\* \| \*\*keep\*\* .*\| \*\*llm\*\* \|", page), page


def test_overrides_stay_within_their_share_across_a_restart(tmp_path: Path):
    root = repo(tmp_path, override_share=0.3)
    with FakeAnthropic(responder=advisor({})) as server:  # a model that would override every time
        env = {"ANTHROPIC_API_KEY": TEST_KEY, "ANTHROPIC_BASE_URL": server.url}
        for _ in range(2):
            out = cli(root, "run", "--tag", "h", "--agent", "hybrid", "--max-experiments", "6", env=env)
            assert out.returncode == 0, out.stderr
        asked = prompts(server)
    rows = [r for r in experiments(root) if r["id"] > 0]
    assert len(rows) == 12
    overrides = [r["id"] for r in rows if r["extra"]["source"] == "llm"]
    for n in range(1, 13):
        assert sum(1 for i in overrides if i <= n) <= math.ceil(0.3 * n)
    assert overrides == [1, 4, 7, 11]  # the count went on after the restart
    # The LLM is asked only when an override is allowed; otherwise the optimizer's point runs and the row says why.
    assert len(asked) == len(overrides)
    for r in rows:
        if r["id"] not in overrides:
            assert r["extra"]["decision"] == "not asked" and r["extra"]["source"] == "optimizer"
            assert r["tokens_in"] == 0
    assert all(r["extra"]["why"].startswith("a code idea") for r in rows if r["id"] in overrides)


def test_hybrid_without_a_key_is_refused_with_a_clear_message(tmp_path: Path):
    root = repo(tmp_path)
    out = cli(root, "run", "--tag", "h", "--agent", "hybrid")
    assert out.returncode == 2
    assert "--agent hybrid needs ANTHROPIC_API_KEY" in out.stderr and "--agent optuna" in out.stderr
    assert not (root / "experiments.log").exists() or experiments(root) == []
