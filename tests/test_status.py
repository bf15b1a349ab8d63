"""The status file a loop rewrites, and `autoresearch status`'s sentence for a live and a dead loop."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from harness.status import describe, describe_repo, read_status, write_status

STARTED = 1_795_000_000.0


def _state(**changes: object) -> dict:
    state = {
        "pid": os.getpid(), "tag": "nov23", "agent": "optuna", "phase": "evaluating", "experiment": 12,
        "description": "raise LR to 3e-3", "started": STARTED, "budget": 300, "timeout": 600, "best": 1.0234,
        "baseline": 1.1002, "kept": 4, "experiments": 11, "spend_usd": 0.42, "metric": "val_bpb",
        "direction": "minimize", "updated": STARTED, "loop_started": STARTED - 3600,
    }  # fmt: skip
    return {**state, **changes}


def _dead_pid() -> int:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(child.stdout)


def test_the_status_file_is_replaced_whole_and_read_back(tmp_path: Path):
    path = tmp_path / "runs" / "status.json"
    assert read_status(path) is None
    write_status(path, _state())
    write_status(path, _state(experiment=13))
    assert read_status(path) == _state(experiment=13)
    assert [p.name for p in path.parent.iterdir()] == ["status.json"]  # no temporary file left behind
    path.write_text("{not json")
    assert read_status(path) is None


def test_a_running_loop_is_described_with_its_phase_clock_and_standing():
    text = describe(_state(), now=STARTED + 130)
    assert text == (
        f"running (pid {os.getpid()}, tag nov23, agent optuna): experiment 12 running for 2m10s of its 5m budget"
        " — 'raise LR to 3e-3'; best val_bpb 1.0234 (baseline 1.1002, -7.0%); kept 4 of 11; spend $0.42"
    )


def test_an_evaluation_past_its_budget_is_overtime_until_the_timeout():
    assert "for 5m30s of its 5m budget, overtime (killed at 10m)" in describe(_state(), now=STARTED + 330)


def test_the_agent_proposing_and_the_baseline_are_said_so():
    assert "experiment 12: the agent is proposing for 5s" in describe(_state(phase="proposing"), now=STARTED + 5)
    baseline = _state(phase="baseline", experiment=0, description="baseline run 1 of 1", best=None, baseline=None)
    assert "baseline running for 5s of its 5m budget — 'baseline run 1 of 1'; no val_bpb yet" in describe(
        baseline, now=STARTED + 5
    )


def test_a_dead_loop_is_not_running_and_says_how_to_resume():
    text = describe(_state(pid=_dead_pid()), now=STARTED + 60)
    assert text.startswith("not running; last loop (pid ")
    assert "ended without stopping cleanly at 2026-" in text and "(1m ago)" in text
    assert "'autoresearch run --tag nov23' resumes the night" in text


def test_a_loop_that_stopped_says_when_and_why():
    state = _state(pid=_dead_pid(), phase="stopped", experiment=-1, description="stopped by 'autoresearch stop'")
    text = describe(state, now=STARTED + 7200)
    assert "stopped at 2026-" in text and "(2h00m ago): stopped by 'autoresearch stop'; best val_bpb 1.0234" in text


def test_status_of_a_repository_without_a_loop_says_how_to_start_one(tmp_path: Path):
    assert "no loop has run here yet" in describe_repo(tmp_path)
    write_status(tmp_path / "runs" / "status.json", _state())
    assert describe_repo(tmp_path).startswith("not running")  # the pid is alive, but no loop holds the lock


def test_a_night_shows_the_run_and_the_evaluator_each_against_its_own_limit_and_why_it_runs_again(tmp_path: Path):
    import subprocess

    from harness.testing import PY, TOY_TRAIN, cli, make_repo, toy_program, wait_until

    # The run is quick and the evaluator slow: the status must not call the evaluator's time the run's overtime.
    scorer = "import time\ntime.sleep(2.5)\nprint('val_bpb: 1.5')\n"
    # Its number never changes, so the metric is said to be noisy: a deterministic one would never run twice.
    program = toy_program(
        budget=1, timeout=10, evaluate=f"{PY} scorer.py", protected="[scorer.py]", deterministic="false"
    )
    repo = make_repo(tmp_path / "p", {"train.py": TOY_TRAIN, "program.md": program, "scorer.py": scorer})
    night = subprocess.Popen(
        [PY, "-m", "harness", "run", "--tag", "s", "--agent", "random", "--max-experiments", "4"],
        cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen: list[str] = []

    def says(words: str) -> bool:
        seen.append(cli(repo, "status").stdout)
        return words in seen[-1]

    try:
        wait_until(lambda: says("the evaluator scoring it for"), limit=120, what="the evaluator's step in the status")
        assert "of its 5m limit" in seen[-1] and "overtime" not in seen[-1] and "budget" not in seen[-1].split(";")[0]
        wait_until(lambda: says("experiments/hour"), limit=180, what="an estimate of the pace")
        assert "the next result" in seen[-1]
    finally:
        out, err = night.communicate(timeout=300)
    assert night.returncode == 0, err
    assert not [s for s in seen if "overtime" in s]
    # Plain output (no terminal) says each step, and why the champion runs again.
    assert "baseline, the evaluator scoring it" in out
    why = r"\(its number rests on 1 clean run\(s\); 3 back a champion\)"
    assert re.search(rf"the champion \(before experiment \d+\) running again {why}", out), out
