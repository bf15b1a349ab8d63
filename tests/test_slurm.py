"""executor: slurm through submitit's local executor (`slurm_cluster: local`): each measurement a job, the commit
shipped, the run sandboxed where the job runs, its log shipped back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import sandbox
from harness.testing import cli, git, make_repo, toy_program
from harness.testing.agents import DOWNHILL_AGENT as AGENT
from harness.testing.repos import SHIPPED_TRAIN as TRAIN

pytest.importorskip("submitit")


def test_a_night_of_slurm_jobs_on_the_local_cluster_ships_each_commit_and_brings_its_log_back(tmp_path: Path):
    program = toy_program(workers=2, executor="slurm", slurm_cluster="local", slurm_folder="runs/jobs")
    repo = make_repo(tmp_path / "repo", {"train.py": TRAIN, "program.md": program})
    agent = tmp_path / "down.py"
    agent.write_text(AGENT)
    out = cli(repo, "run", "--tag", "s", "--agent", str(agent), "--max-experiments", "3", timeout=600)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in (repo / "experiments.log").read_text().splitlines()]
    rows = [r for r in lines if r["kind"] == "experiment"]
    runs = [r for r in lines if r["kind"] == "measurement"]
    assert sorted(r["id"] for r in rows) == list(range(len(rows))) and len(rows) >= 4
    assert any("parallel: 2 workers (slurm)" in r.get("message", "") for r in lines)
    # Every run's log came back to where a local run's would be, from the version that run measured, and ran sandboxed.
    for m in runs:
        log = (repo / m["log"]).read_text()
        assert f"val_bpb: {m['value']}" in log
        seen = int(log.split("processes in sight:")[1].split()[0])
        assert seen < 10 or not sandbox.probe("auto").active
        assert m["worker"]  # the node and job it ran on
    assert len(list((repo / "runs" / "jobs" / "s").glob("*_result.pkl"))) == len(runs)  # submitit's own files
    best = min(r["metric"] for r in rows if r["status"] == "keep")
    assert rows[-1]["best"] == best < 4.0 and git(repo, "status", "--porcelain") == ""


def test_a_slurm_key_out_of_range_is_a_clear_error(tmp_path: Path):
    repo = make_repo(tmp_path / "repo", {"train.py": TRAIN, "program.md": toy_program(slurm_cluster="pbs")})
    out = cli(repo, "run", "--tag", "s", "--agent", "optuna", "--max-experiments", "1")
    assert out.returncode == 2 and "'slurm_cluster' must be local or slurm, not 'pbs'" in out.stderr
