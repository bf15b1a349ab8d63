"""`autoresearch init`: another git repository made ready, without clobbering what a person wrote."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.program import load
from harness.scaffold import init, seed_agent
from harness.testing import git

ROOT = Path(__file__).resolve().parent.parent

OPTIONS = {"mutable": "solve.py", "run": "python solve.py", "metric": "score", "direction": "maximize",
           "budget": 60.0, "timeout": None}  # fmt: skip


@pytest.fixture
def solver(tmp_path: Path) -> Path:
    repo = tmp_path / "solver"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "solve.py").write_text("print('score: 1.0')\n")
    (repo / ".gitignore").write_text("__pycache__/\n/runs")  # no final newline, and runs/ spelt another way
    return repo


def test_init_writes_a_program_that_parses_to_the_options_and_copies_the_agent(solver: Path):
    written = init(solver, **OPTIONS, force=False, agent_source=seed_agent())
    assert written == [solver / "program.md", solver / ".gitignore", solver / "agent.py"]
    program = load(solver / "program.md")
    config = program.config
    assert (config.mutable, config.run, config.metric, config.direction) == ("solve.py", "python solve.py", "score",
                                                                             "maximize")  # fmt: skip
    assert (config.budget, config.timeout) == (60, 120)  # budget + the 60 s grace
    text = (solver / "program.md").read_text()
    assert "budget: 60\n" in text
    # The metric is self-reported until the person names an evaluator; the template says why and how.
    assert config.evaluate == "" and "#   evaluate: python evaluate.py" in text
    assert "#   test: python evaluate.py --split test" in text  # the three splits: train, selection, locked test
    assert "better number than it earns" in text
    for heading in ("# Goal", "# Rules", "# Ideas"):
        assert heading in program.text
    assert (solver / "agent.py").read_bytes() == (ROOT / "agent.py").read_bytes()
    assert (solver / ".gitignore").read_text() == "__pycache__/\n/runs\nexperiments.log\n"


def test_init_refuses_to_overwrite_without_force_and_never_duplicates_ignore_lines(solver: Path):
    init(solver, **OPTIONS, force=False, agent_source=seed_agent())
    (solver / "program.md").write_text("---\nmetric: score\n---\nmy own notes\n")
    with pytest.raises(HarnessError, match=r"program\.md exists; --force to overwrite"):
        init(solver, **OPTIONS, force=False, agent_source=seed_agent())
    assert "my own notes" in (solver / "program.md").read_text()
    (solver / "program.md").unlink()
    with pytest.raises(HarnessError, match=r"agent\.py exists; --force to overwrite"):
        init(solver, **OPTIONS, force=False, agent_source=seed_agent())
    written = init(solver, **{**OPTIONS, "timeout": 90.0}, force=True, agent_source=seed_agent())
    assert solver / ".gitignore" not in written
    lines = (solver / ".gitignore").read_text().splitlines()
    assert sorted(lines) == ["/runs", "__pycache__/", "experiments.log"]
    assert load(solver / "program.md").config.timeout == 90


def test_init_needs_a_git_repository_and_the_mutable_file(tmp_path: Path, solver: Path):
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(HarnessError, match="is not a git repository"):
        init(plain, **OPTIONS, force=False, agent_source=seed_agent())
    with pytest.raises(HarnessError, match=r"train\.py: not found"):
        init(solver, **{**OPTIONS, "mutable": "train.py"}, force=False, agent_source=seed_agent())
    with pytest.raises(HarnessError, match=r"--timeout.*at least the 'budget'"):
        init(solver, **{**OPTIONS, "timeout": 10.0}, force=False, agent_source=seed_agent())
    assert not (solver / "program.md").exists()  # nothing is written unless every check passes


def test_init_then_run_with_the_optuna_agent_in_a_foreign_repository(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    from harness.testing import cli, make_repo

    solve = (
        '"""A solver with two knobs. Usage: python solve.py"""\n\n'
        "STEP = 0.5  # how far each move goes\n"
        "ROUNDS = 3  # moves per attempt\n\n"
        "score = 10 - (STEP - 0.8) ** 2 * 10 - (ROUNDS - 7) ** 2 * 0.1\n"
        'print(f"score: {score:.6f}")\n'
    )
    repo = make_repo(tmp_path / "solver", {"solve.py": solve})
    out = cli(
        tmp_path, "init", str(repo), "--mutable", "solve.py", "--run", f"{sys.executable} solve.py",
        "--metric", "score", "--direction", "maximize", "--budget", "10",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    front = (repo / "program.md").read_text()
    assert "STEP:" in front and "ROUNDS:" in front  # a search space derived from the file's constants
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "autoresearch init"], cwd=repo, check=True)
    out = cli(repo, "run", "--tag", "solve", "--agent", "optuna", "--max-experiments", "10")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in (repo / "experiments.log").read_text().splitlines()]
    exps = [r for r in rows if r["kind"] == "experiment"]
    assert len(exps) == 11 and exps[0]["metric"] == pytest.approx(10 - 0.9 - 1.6)
    kept = [r for r in exps[1:] if r["status"] == "keep"]
    assert kept and kept[-1]["metric"] > exps[0]["metric"]  # maximize: kept means higher
    assert all(r["delta"] > 0 for r in kept)
    assert subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout == ""


GBR = '''\
"""A boosted model's knobs, checked as scikit-learn checks them. Usage: python gbr.py"""

N_ESTIMATORS = 100
MAX_DEPTH = 3
MIN_SAMPLES_SPLIT = 2
MIN_SAMPLES_LEAF = 1
LEARNING_RATE = 0.1
SUBSAMPLE = 0.9
RANDOM_STATE = 13
LOSS = "squared_error"

import json, os  # noqa: E401

assert MIN_SAMPLES_SPLIT >= 2, "min_samples_split must be >= 2"
assert 0 < SUBSAMPLE <= 1, "subsample must be in (0, 1]"
assert MAX_DEPTH >= 1 and N_ESTIMATORS >= 1
loss = (LEARNING_RATE - 0.05) ** 2 + (SUBSAMPLE - 0.7) ** 2 + abs(MAX_DEPTH - 4) * 0.01 + RANDOM_STATE * 1e-9
with open(os.path.join(os.environ["AUTORESEARCH_OUT"], "pred.json"), "w") as f:
    json.dump({"loss": loss}, f)
'''

SCORE = """\
import json, os, sys  # noqa: E401
print("rmse:", json.load(open(os.path.join(sys.argv[1], "pred.json")))["loss"])
"""


def test_init_bounds_and_explains_its_guesses_and_protects_the_evaluator(tmp_path: Path) -> None:
    import json
    import sys

    from harness.testing import cli, make_repo

    repo = make_repo(tmp_path / "gbr", {"gbr.py": GBR, "score.py": SCORE})
    out = cli(
        repo / ".", "init", "--mutable", "gbr.py", "--run", f"{sys.executable} gbr.py", "--metric", "rmse",
        "--budget", "10", "--evaluate", f"{sys.executable} score.py $AUTORESEARCH_OUT",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    # init says what it guessed and why, on the terminal and beside every range in program.md.
    assert "RANDOM_STATE = 13: not searched; a seed" in out.stdout
    assert "MIN_SAMPLES_SPLIT = 2: not searched" in out.stdout
    program = load(repo / "program.md")
    space = {p.name: p for p in program.config.search}
    assert set(space) == {"N_ESTIMATORS", "MAX_DEPTH", "LEARNING_RATE", "SUBSAMPLE"}
    assert space["SUBSAMPLE"].high == 1.0 and space["MAX_DEPTH"].low >= 1
    lines = (repo / "program.md").read_text().splitlines()
    for name in space:
        (line,) = [x for x in lines if x.startswith(f"  {name}:")]
        assert "# " in line and "in the file" in line  # each inferred range says where it came from
    assert "score.py" in program.config.protected and program.config.evaluate.endswith("score.py $AUTORESEARCH_OUT")
    assert "#   test: python evaluate.py --split test" in (repo / "program.md").read_text()  # the locked test, shown
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=T", "-c", "user.email=t@e", "commit", "-qm", "init")
    out = cli(repo, "run", "--tag", "g", "--agent", "random", "--max-experiments", "12")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(x) for x in (repo / "experiments.log").read_text().splitlines()]
    exps = [r for r in rows if r["kind"] == "experiment"]
    assert len(exps) == 13 and not [r for r in exps if r["status"] in ("crash", "invalid")]
    for ref in git(repo, "for-each-ref", "--format=%(objectname)", "refs/autoresearch/g").split():
        assert "RANDOM_STATE = 13\n" in git(repo, "show", f"{ref}:gbr.py") + "\n"
