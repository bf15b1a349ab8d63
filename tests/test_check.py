"""`autoresearch check`: program.md against the repository with its lines, then the baseline once, creating nothing."""

from __future__ import annotations

from pathlib import Path

from harness.testing import PY, TOY_TRAIN, cli, git, make_repo, toy_program


def refs(repo: Path) -> list[str]:
    return git(repo, "for-each-ref", "--format=%(refname)").split()


def test_check_names_each_mistake_with_its_line_and_run_refuses_before_making_anything(tmp_path: Path):
    search = "\n  X: {low: 0.0, high: 4.0}\n  YY: {low: 1, high: 8}"
    program = toy_program(search=search, protected="[prepare.py, scorer.py]", hidden="[data/test/]")
    repo = make_repo(tmp_path / "p", {"train.py": TOY_TRAIN, "program.md": program, "prepare.py": "# fixed\n"})
    lines = program.splitlines()
    out = cli(repo / ".", "check", "--no-run")
    assert out.returncode == 2
    said = out.stderr.splitlines()
    yy = next(i for i, line in enumerate(lines, 1) if line.strip().startswith("YY:"))
    protected = next(i for i, line in enumerate(lines, 1) if line.startswith("protected:"))
    hidden = next(i for i, line in enumerate(lines, 1) if line.startswith("hidden:"))
    assert f"program.md:{yy}: search: train.py has no top-level constant 'YY' (did you mean 'Y'?)" in said[0]
    assert f"program.md:{protected}: protected: 'scorer.py' matches nothing" in out.stderr
    assert f"program.md:{hidden}: hidden: 'data/test/' matches nothing" in out.stderr
    before = refs(repo)
    out = cli(repo, "run", "--tag", "typo", "--agent", "optuna")
    assert out.returncode == 2 and f"program.md:{yy}: search" in out.stderr
    assert refs(repo) == before and not (repo / "experiments.log").exists()
    assert git(repo, "branch", "--show-current") == "main"


def test_check_runs_the_baseline_and_the_evaluator_and_records_nothing(tmp_path: Path):
    scorer = "import sys\nprint('scored')\nprint('val_bpb: 0.75')\n"
    program = toy_program(evaluate=f"{PY} scorer.py", protected="[scorer.py]")
    repo = make_repo(tmp_path / "p", {"train.py": TOY_TRAIN, "program.md": program, "scorer.py": scorer})
    before = refs(repo)
    (repo / "sub").mkdir()
    out = cli(repo / "sub", "check")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "program.md: no mistake found" in text and "metric: val_bpb (minimize), from the evaluator" in text
    assert "run:       " in text and "ok (exit 0)" in text and "log runs/.check/0.log" in text
    assert "evaluator: " in text and "val_bpb = 0.75" in text and "log runs/.check/0.eval.log" in text
    assert "the run's own claim, kept apart: val_bpb = 4.4625" in text  # (3 - 1.25)^2 + 0.1 * 9 + 0.5
    assert "a night would record: experiment 0 (baseline) keep, val_bpb=0.750000" in text
    assert refs(repo) == before and not (repo / "experiments.log").exists()
    assert git(repo, "status", "--porcelain") == "?? sub/" or git(repo, "status", "--porcelain") == ""


def test_check_of_a_baseline_that_crashes_says_the_fix_and_exits_1(tmp_path: Path):
    train = TOY_TRAIN.replace('print("---")', "raise SystemExit('no data: run prepare.py first')")
    repo = make_repo(tmp_path / "p", {"train.py": train, "program.md": toy_program()})
    out = cli(repo, "check")
    assert out.returncode == 1
    assert "a night would stop here: the baseline failed (crash: exit status 1); see" in out.stdout
    assert "fix train.py or the run command" in out.stdout and "nothing was created" in out.stdout
    assert not (repo / "experiments.log").exists()


def test_a_start_the_api_refuses_leaves_no_branch_behind(project: Path):
    from harness.testing import FakeAnthropic

    before = refs(project)
    with FakeAnthropic() as server:
        env = {"ANTHROPIC_API_KEY": "sk-wrong", "ANTHROPIC_BASE_URL": server.url}
        out = cli(project, "run", "--tag", "nokey", "--agent", "llm", env=env)
    assert out.returncode == 2 and "was refused (401" in out.stderr
    assert refs(project) == before and git(project, "branch", "--show-current") == "main"
    # A night that recorded something keeps its branch.
    assert cli(project, "run", "--tag", "kept", "--agent", "optuna", "--max-experiments", "1").returncode == 0
    assert "refs/heads/autoresearch/kept" in refs(project)
