"""The offline agents (optuna, random): points inside the search space, learned from every result, restart-proof."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.agents.optuna import REDRAWS, OptunaAgent
from harness.agents.samplers import GP_MAX_DIMS, choose
from harness.errors import ProgramError
from harness.program import parse
from harness.source import read_constants
from harness.task import Result, Task
from harness.testing import TOY_TRAIN, cli, make_repo, toy_program

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


# --- the random control, restarts, points in flight -------------------------------------------------------------

DISCRETE = parse("---\nsearch:\n  DEPTH: {low: 2, high: 8}\n  ACT: {choices: [relu, gelu]}\n---\n").config.search


def points(repo: Path, tag: str) -> list[dict]:
    rows = [json.loads(line) for line in (repo / "experiments.log").read_text().splitlines()]
    return [r["extra"]["params"] for r in rows if r["kind"] == "experiment" and r["tag"] == tag and r["id"] > 0]


@pytest.mark.parametrize("kind", ["random", "optuna"])
def test_a_restart_goes_on_with_the_sequence_instead_of_repeating_it(tmp_path: Path, kind: str):
    files = {"train.py": TOY_TRAIN, "program.md": toy_program(seed=7), "prepare.py": "#\n", "agent.py": "#\n"}
    restarted, straight = make_repo(tmp_path / "a", files), make_repo(tmp_path / "b", files)
    # More experiments before the restart than draws an agent makes to avoid a point already tried: a sampler that
    # started its sequence over could not hide it by drawing again.
    before, after = REDRAWS + 1, 3
    for n in (before, after):
        out = cli(restarted, "run", "--tag", "n", "--agent", kind, "--max-experiments", str(n))
        assert out.returncode == 0, out.stderr
    out = cli(straight, "run", "--tag", "n", "--agent", kind, "--max-experiments", str(before + after))
    assert out.returncode == 0, out.stderr
    first, second = points(restarted, "n")[:before], points(restarted, "n")[before:]
    assert len(second) == after and not any(p in first for p in second)  # new points, not the first ones again
    # The same seed and the same results give the same night, restart or not.
    assert points(restarted, "n") == points(straight, "n")


def test_another_seed_gives_other_points(tmp_path: Path):
    nights = []
    for seed in (1, 2):
        files = {"train.py": TOY_TRAIN, "program.md": toy_program(seed=seed), "prepare.py": "#\n", "agent.py": "#\n"}
        repo = make_repo(tmp_path / str(seed), files)
        assert cli(repo, "run", "--tag", "s", "--agent", "random", "--max-experiments", "3").returncode == 0
        nights.append(points(repo, "s"))
    assert nights[0] != nights[1]


@pytest.mark.slow  # 600 draws of two samplers
def test_the_random_agent_draws_uniformly_from_the_space_whatever_the_results():
    told_good, told_bad = (
        OptunaAgent(SPACE, "minimize", sampler="random"),
        OptunaAgent(SPACE, "minimize", sampler="random"),
    )
    drawn = []
    for n in range(1, 301):
        a, b = told_good.propose(task(n)), told_bad.propose(task(n))
        assert a.extra["params"] == b.extra["params"]  # what it is told changes nothing: a control, not a search
        told_good.observe(row(n, "discard", 0.0, a.extra["params"]))
        told_bad.observe(row(n, "crash", None, b.extra["params"]))
        drawn.append(a.extra["params"])
    assert told_good.name == "random" and all(1e-4 <= p["LR"] <= 1e-1 for p in drawn)
    # Uniform on the log scale: half the draws below the geometric midpoint of 1e-4..1e-1; every depth and activation.
    below = sum(p["LR"] < 10**-2.5 for p in drawn) / len(drawn)
    assert 0.4 < below < 0.6
    assert {p["DEPTH"] for p in drawn} == set(range(2, 9)) and {p["ACT"] for p in drawn} == {"relu", "gelu"}


@pytest.mark.parametrize("sampler", ["gp", "tpe", "random"])
def test_points_asked_for_before_their_results_are_never_the_same(sampler: str):
    agent = OptunaAgent(DISCRETE, "minimize", sampler=sampler, seed=3)  # 14 points in all
    source = "DEPTH = 4\nACT = 'relu'\n"
    for n in range(1, 5):
        proposed = agent.propose(task(n, source))
        agent.observe(row(n, "discard", abs(proposed.extra["params"]["DEPTH"] - 5) / 10, proposed.extra["params"]))
    # Eight experiments in flight at once: all different, and none a point already tried.
    in_flight = {n: agent.propose(task(n, source)).extra["params"] for n in range(5, 13)}
    tried = [t.params for t in agent.study.trials if t.state.name == "COMPLETE"]
    keys = [tuple(sorted(p.items())) for p in [*tried, *in_flight.values()]]
    assert len(set(keys)) == len(keys) == 12
    # Results come back in any order; each becomes the trial of its own experiment.
    for n in reversed(in_flight):
        agent.observe(row(n, "discard", 1.0, in_flight[n]))
    told = {t.user_attrs["experiment"]: t.params for t in agent.study.trials if t.state.name == "COMPLETE"}
    assert set(told) == set(range(1, 13)) and all(told[n] == in_flight[n] for n in in_flight)
    assert agent.pending == {}


def test_an_edit_of_search_constants_only_is_a_point_and_a_code_change_is_not():
    agent = OptunaAgent(SPACE, "minimize")
    constants = SOURCE.replace("LR = 0.01", "LR = 3e-3").replace("DEPTH = 4", "DEPTH = 6")
    assert agent.params_of_edit(SOURCE, constants) == {"LR": 0.003, "DEPTH": 6, "ACT": "relu"}
    assert agent.params_of_edit(SOURCE, constants.replace("print('hi')", "print('bye')")) is None
    assert agent.params_of_edit(SOURCE, SOURCE.replace("DEPTH = 4", "DEPTH = 12")) is None  # outside the space


# --- the sampler, and steering ----------------------------------------------------------------------------------


def test_the_default_sampler_is_a_gaussian_process_in_few_dimensions_and_tpe_in_many():
    many = parse(
        "---\nsearch:\n" + "".join(f"  C{i}: {{low: 0, high: 1}}\n" for i in range(GP_MAX_DIMS + 1)) + "---\n"
    ).config.search
    assert choose("auto", SPACE) == "gp" and choose("auto", many) == "tpe"
    assert choose("random", SPACE) == "random" and choose("tpe", SPACE) == "tpe"
    agent = OptunaAgent(SPACE, "minimize")
    assert agent.name == "optuna" and agent.state()["sampler"] == "Gaussian process (Bayesian)"


def test_a_steered_space_keeps_what_was_learned_inside_it_and_proposes_only_inside_it():
    agent = OptunaAgent(SPACE, "minimize", seed=2)
    told = []
    for n in range(1, 9):
        proposed = agent.propose(task(n))
        params = proposed.extra["params"]
        agent.observe(row(n, "discard", params["LR"] * 10 + params["DEPTH"] / 10, params))
        told.append(params)
    in_flight = agent.propose(task(9)).extra["params"]  # asked before the edit, its result comes after it
    narrow = parse(
        "---\nsearch:\n  LR: {low: 1.0e-4, high: 1.0e-2, log: true}\n  DEPTH: {low: 2, high: 4}\n---\n"
    ).config  # ACT is no longer tuned: points are kept by the constants the space still names
    agent.steer(narrow)
    inside = [{"LR": p["LR"], "DEPTH": p["DEPTH"]} for p in told if p["LR"] <= 1e-2 and p["DEPTH"] <= 4]
    complete = [t.params for t in agent.study.trials if t.state.name == "COMPLETE"]
    assert complete == inside
    agent.observe(row(9, "discard", 0.5, in_flight))
    for n in range(10, 16):
        params = agent.propose(task(n)).extra["params"]
        assert params.keys() == {"LR", "DEPTH"} and 1e-4 <= params["LR"] <= 1e-2 and 2 <= params["DEPTH"] <= 4
        agent.observe(row(n, "discard", 1.0, params))
    trials = len(agent.study.trials)
    agent.steer(narrow)  # the same program again: nothing to rebuild
    assert len(agent.study.trials) == trials
