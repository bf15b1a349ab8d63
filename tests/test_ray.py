"""executor: ray on a real local Ray instance: each measurement a Ray task, the commit shipped, its log shipped back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import sandbox
from harness.testing import cli, git, make_repo, toy_program
from harness.testing.agents import DOWNHILL_AGENT as AGENT
from harness.testing.repos import SHIPPED_TRAIN as TRAIN

pytest.importorskip("ray")


def test_a_night_on_a_local_ray_instance_ships_each_commit_and_brings_its_log_back(tmp_path: Path):
    repo = make_repo(tmp_path / "repo", {"train.py": TRAIN, "program.md": toy_program(workers=2, executor="ray")})
    agent = tmp_path / "down.py"
    agent.write_text(AGENT)
    out = cli(repo, "run", "--tag", "r", "--agent", str(agent), "--max-experiments", "3", timeout=300)
    assert out.returncode == 0, out.stderr
    lines = (repo / "experiments.log").read_text().splitlines()
    rows = [r for r in map(json.loads, lines) if r["kind"] == "experiment"]
    runs = [r for r in map(json.loads, lines) if r["kind"] == "measurement"]
    assert sorted(r["id"] for r in rows) == list(range(len(rows)))
    assert any("parallel: 2 workers (ray)" in r.get("message", "") for r in map(json.loads, lines))
    # Every run's log came back to where a local run's would be, from the version that run measured.
    for m in runs:
        log = (repo / m["log"]).read_text()
        assert f"val_bpb: {m['value']}" in log
        seen = int(log.split("processes in sight:")[1].split()[0])
        assert seen < 10 or not sandbox.probe("auto").active  # the sandbox, there too
        assert m["worker"]  # Ray's node (and GPU) it ran on
    best = min(r["metric"] for r in rows if r["status"] == "keep")
    assert rows[-1]["best"] == best < 4.0 and git(repo, "status", "--porcelain") == ""
