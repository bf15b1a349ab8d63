"""The command line as a person meets it: from any folder of the repository, and with a terminal that goes away."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from harness.testing import PY, cli, wait_until


def rows(repo: Path) -> list[dict]:
    lines = (repo / "experiments.log").read_text().split("\n")[:-1]
    return [r for r in map(json.loads, lines) if r["kind"] == "experiment"]


def test_every_command_finds_the_repository_from_a_folder_inside_it(project: Path):
    inside = project / "data" / "raw"
    inside.mkdir(parents=True)
    out = cli(inside, "status")
    assert out.returncode == 0 and "no loop has run here yet" in out.stdout
    out = cli(inside, "run", "--tag", "sub", "--agent", "optuna", "--max-experiments", "1")
    assert out.returncode == 0, out.stderr
    assert not (inside / "experiments.log").exists() and len(rows(project)) == 2
    status = cli(inside, "status").stdout
    assert "tag sub" in status and "no loop has run" not in status
    log = cli(inside, "log", "--tag", "sub")
    assert log.returncode == 0 and "baseline" in log.stdout
    assert cli(inside, "report", "--tag", "sub", "--out", "r").returncode == 0
    assert (inside / "r" / "progress.png").is_file()  # --out is a path like any other: from where you are


def test_a_folder_outside_any_repository_is_named_in_the_error(tmp_path: Path):
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    out = cli(lonely, "run", "--tag", "x", "--agent", "optuna")
    assert out.returncode == 1 and f"{lonely} is not a git repository" in out.stderr


def test_a_reader_that_goes_away_does_not_end_the_night(project: Path):
    # `autoresearch run ... | head -1`: the pipe closes after the first line, the night runs to its end.
    env = {**os.environ}
    child = subprocess.Popen(
        [PY, "-m", "harness", "run", "--tag", "pipe", "--agent", "optuna", "--max-experiments", "4"],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdout is not None
    first = child.stdout.readline()
    assert first
    child.stdout.close()
    _, err = child.communicate(timeout=300)
    assert child.returncode == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err
    assert [r["id"] for r in rows(project)] == [0, 1, 2, 3, 4]
    assert not (project / "runs" / "pipe" / "crash.log").exists()
    status = json.loads((project / "runs" / "status.json").read_text())
    assert status["phase"] == "stopped" and "max-experiments" in status["description"]


def test_a_terminal_that_hangs_up_does_not_end_the_night(project: Path):
    # A closed window or a dropped ssh: SIGHUP, then every write to the terminal fails.
    slow = project / "train.py"
    slow.write_text("import time\ntime.sleep(0.5)\n" + slow.read_text())
    subprocess.run(["git", "commit", "-qam", "slower"], cwd=project, check=True)
    child = subprocess.Popen(
        [PY, "-m", "harness", "run", "--tag", "hup", "--agent", "optuna", "--max-experiments", "3"],
        cwd=project, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert child.stdout is not None
    child.stdout.readline()
    wait_until(lambda: (project / "runs" / "hup" / "0.log").exists(), what="the baseline started")
    child.send_signal(signal.SIGHUP)
    child.stdout.close()
    child.wait(timeout=300)
    assert child.returncode == 0
    assert [r["id"] for r in rows(project)] == [0, 1, 2, 3]
