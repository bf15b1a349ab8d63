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
    script = {5: "accept", 6: "accept", 7: "constants", 8: "code", 9: "stale"}
    with FakeAnthropic(responder=advisor(script)) as server:
        agent = night(root, server, 9)
        asked = prompts(server)
    rows = {r["id"]: r for r in experiments(root)}
    # The optimizer's random start-up points (the baseline and four more, before TPE models them) are not shown to
    # the LLM: there is no model to review, so no call is spent.
    assert len(asked) == 5
    for n in range(1, 5):
        assert has(rows[n]["extra"], source="optimizer", decision="not asked")
        assert "the optimizer's random start-up" in rows[n]["extra"]["why"]
    # Each request names the optimizer's suggested point (the one the ledger keeps as `suggested`), the trials so
    # far with their results, and the best one.
    for n, prompt in enumerate(asked, 5):
        point = SUGGESTS.search(prompt).group(2)
        assert all(f"{k}={v:.4g}" in point if isinstance(v, float) else f"{k}={v}" in point
                   for k, v in rows[n]["extra"]["suggested"].items())  # fmt: skip
    assert f"#1 {rows[1]['metric']:.6f}" in asked[2] and f"#6 {rows[6]['metric']:.6f}" in asked[2]
    assert "Best trial: #" in asked[2] and "X: 0.0 .. 4.0" in asked[0]
    # The best region only once there are enough trials for a best quarter to mean something.
    assert "Best region" not in asked[2] and "Best region (the best 3 of 8 trials): X " in asked[3]
    assert "Importance of each parameter" in asked[0] and "Budget: each run has 5 s" in asked[0]
    # An accepting reply runs the suggested point, and says why.
    for n in (5, 6):
        assert has(rows[n]["extra"], source="optimizer", decision="accept", told="trial")
        assert rows[n]["extra"]["why"] == f"the suggestion {n} explores well"
        ran = read_constants(git(root, "show", f"{rows[n]['commit']}:train.py"))
        # The file holds the point to four significant digits.
        assert {k: ran[k] for k in ("X", "Y")} == pytest.approx(rows[n]["extra"]["suggested"], rel=1e-3)
    # An overriding reply runs the LLM's edit instead: constants (a point Optuna learns as a trial of its own)...
    assert has(rows[7]["extra"], source="llm", decision="override", why="the optimum is known")
    assert rows[7]["extra"]["params"] == {"X": 1.25, "Y": 5} and rows[7]["extra"]["told"] == "trial"
    assert rows[7]["status"] == "keep" and rows[7]["metric"] == 0.5
    # ...or code (which Optuna cannot model, and the row says so).
    assert rows[8]["extra"]["source"] == "llm" and rows[8]["extra"]["told"].startswith("not told as a trial")
    assert 'print("--- 8")' in git(root, "show", f"{rows[8]['commit']}:train.py")
    # An override that does not apply costs no experiment: the optimizer's point runs.
    assert has(rows[9]["extra"], source="optimizer", decision="llm failed")
    assert "does not apply" in rows[9]["extra"]["why"] and rows[9]["status"] in ("keep", "discard", "duplicate")
    # Optuna was told every result: one trial per experiment, the override of constants as a completed trial.
    trials = [t for t in agent.optimizer.study.trials if "withdrawn" not in t.user_attrs]
    by_id = {t.user_attrs["experiment"]: t for t in trials if "redrawn" not in t.user_attrs}
    assert sorted(by_id) == list(range(10)) and len(by_id) == len(trials)
    assert by_id[7].params == {"X": 1.25, "Y": 5} and by_id[7].value == 0.5
    assert by_id[8].state.name == "FAIL" and "unusable" in by_id[8].user_attrs
    for n in (1, 2, 3, 4, 5, 6):
        assert by_id[n].params == rows[n]["extra"]["params"] and by_id[n].value == rows[n]["metric"]
    withdrawn = [t.user_attrs["experiment"] for t in agent.optimizer.study.trials if "withdrawn" in t.user_attrs]
    assert withdrawn == [7, 8]  # the suggestions the LLM overrode were never run, so nothing was learned of them
    # The morning report says which experiments came from the optimizer and which from the LLM.
    report.report_repo(root, tmp_path / "report", tag="h")
    page = (tmp_path / "report" / "report.md").read_text()
    assert "7 experiments came from the optimizer and 2 from the LLM" in page
    assert re.search(r"\| \*\*7\*\* \| \*\*keep\*\* .*\| \*\*llm\*\* \|", page), page


# A toy whose code can be improved, with a knob of choices and a region of X that crashes.
CODED = """\
X = 3.0  # the knob the agent tunes
BLOCK = 128  # a choice

if X > 3.6:
    raise SystemExit("diverged")
loss = (X - 1.25) ** 2 + (0.1 if BLOCK == 128 else 0.0) + 0.5
print(f"val_bpb: {loss:.6f}")
"""


def test_the_advisor_sees_choices_failures_code_versions_and_a_fresh_study_after_a_kept_code_change(tmp_path: Path):
    space = "\n  X: {low: 2.0, high: 4.0}\n  BLOCK: {choices: [128, 64]}"
    files = {"train.py": CODED, "program.md": toy_program(override_share=1.0, search=space), "agent.py": "#\n"}
    root = make_repo(tmp_path / "project", files)

    def answer(request: dict[str, Any]) -> str:
        content = request["messages"][0]["content"]
        if not isinstance(content, list):
            return "ok"
        n = int(SUGGESTS.search(content[-1]["text"]).group(1))
        if n == 9:  # a code change that takes 0.3 off every result: kept
            return override("better code", "less loss", ("+ 0.5\n", "+ 0.2\n"))
        return "DECISION: accept\nREASON: fine\n"

    with FakeAnthropic(responder=answer) as server:
        agent = night(root, server, 15)
        asked = prompts(server)
    rows = {r["id"]: r for r in experiments(root)}
    assert rows[9]["status"] == "keep" and rows[9]["extra"]["decision"] == "override"
    # Choices as they are: a region of the choice BLOCK lists the choices taken, never a range "128..64".
    assert "BLOCK: one of 128, 64" in asked[0]
    assert re.search(r"BLOCK \{(128, 64|128|64)\}", "\n".join(asked)) and "128..64" not in "\n".join(asked)
    # A crashed trial is shown as a crash, not as a number among the others.
    crashed = [n for n, r in rows.items() if r["status"] == "crash"]
    assert crashed, "the toy's X > 3.6 should have crashed a trial"
    assert any(re.search(rf"#{n} crash \(told as \S+\) X=", p) for n in crashed for p in asked)
    # Each trial names its code version; the kept code change started a fresh study with no trial of the old code,
    # so the next points are random start-up trials again and the LLM is not asked for them.
    old, new = rows[1]["extra"]["code"], rows[10]["extra"]["code"]
    assert old != new and all(rows[n]["extra"]["code"] == new for n in range(10, 16))
    assert f"[code {old}]" in asked[0]
    assert agent.optimizer.fresh_at == 10 and "started a fresh study at #10" in asked[-1]
    assert all(t.user_attrs.get("code") in (new, None) for t in agent.optimizer.study.trials)
    assert [rows[n]["extra"]["decision"] for n in range(10, 15)] == ["not asked"] * 5
    assert all("random start-up" in rows[n]["extra"]["why"] for n in range(10, 15))
    assert len(asked) == 6  # experiments 5 to 9, and 15 once the fresh study has its five start-up trials


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
    # None during the optimizer's random start-up (1-4); then the share allows them as the count goes on, across
    # the restart after 6.
    assert overrides == [5, 6, 7, 11]
    assert all("random start-up" in r["extra"]["why"] for r in rows if r["id"] < 5)
    # The LLM is asked only when an override is allowed; otherwise the optimizer's point runs and the row says why.
    assert len(asked) == len(overrides)
    for r in rows:
        if r["id"] not in overrides:
            assert r["extra"]["decision"] == "not asked" and r["extra"]["source"] == "optimizer"
            assert r["tokens_in"] == 0 or r["id"] == 1  # the key check before the night is metered with its first row
    assert all(r["extra"]["why"].startswith("a code idea") for r in rows if r["id"] in overrides)


def test_hybrid_without_a_key_is_refused_with_a_clear_message(tmp_path: Path):
    root = repo(tmp_path)
    out = cli(root, "run", "--tag", "h", "--agent", "hybrid")
    assert out.returncode == 2
    assert "--agent hybrid needs ANTHROPIC_API_KEY" in out.stderr and "--agent optuna" in out.stderr
    assert not (root / "experiments.log").exists() or experiments(root) == []
