"""Live steering: program.md edits are noticed, valid ones take over, malformed ones are reported once."""

from __future__ import annotations

from pathlib import Path

from harness.program import load
from harness.steer import Steering
from harness.testing import wait_until


def test_a_valid_edit_becomes_the_program_with_what_changed(tmp_path: Path):
    path = tmp_path / "program.md"
    (tmp_path / "train.py").write_text("X = 1\n")  # the mutable file an edit must name
    path.write_text("---\nbudget: 60\n---\nFirst idea.\n")
    steering = Steering(load(path))
    steering.start()
    try:
        path.write_text("---\nbudget: 90\n---\nSecond idea.\n")
        wait_until(lambda: steering.flagged, 5, "the watchdog's event")
        change = steering.poll()
    finally:
        steering.stop()
    assert change is not None and not change.error
    assert change.changes["budget"] == [60, 90]
    assert change.changes["timeout"] == [120, 150]  # budget + the 60 s grace
    assert "text" in change.changes
    assert steering.program.config.budget == 90
    assert steering.poll() is None  # nothing new


def test_a_malformed_edit_keeps_the_last_valid_program_and_is_reported_once(tmp_path: Path):
    path = tmp_path / "program.md"
    (tmp_path / "train.py").write_text("X = 1\n")  # the mutable file an edit must name
    path.write_text("---\nbudget: 60\n---\nGo.\n")
    steering = Steering(load(path))
    path.write_text("---\nbudget: 60\nsearch: [unclosed\n---\nGo.\n")
    change = steering.poll()
    assert change is not None and change.program is None
    assert change.error.startswith("program.md:")
    assert "invalid YAML" in change.error
    assert steering.program.config.budget == 60
    assert steering.poll() is None  # the same bad file is not reported again
    path.write_text("---\nbudget: 45\n---\nGo.\n")
    fixed = steering.poll()
    assert fixed is not None and fixed.program is not None and steering.program.config.budget == 45


def test_fixing_back_to_the_program_in_force_is_no_change(tmp_path: Path):
    path = tmp_path / "program.md"
    (tmp_path / "train.py").write_text("X = 1\n")  # the mutable file an edit must name
    good = "---\nbudget: 60\n---\nGo.\n"
    path.write_text(good)
    steering = Steering(load(path))
    path.write_text("---\nbudjet: 60\n---\nGo.\n")
    assert "unknown key 'budjet'" in steering.poll().error
    path.write_text(good)
    assert steering.poll() is None


def test_editing_program_md_during_a_run_steers_the_next_experiment(project: Path):
    import json
    import subprocess

    from harness.testing import PY, cli, git, toy_program

    slow = f"{PY} -c 'import time; time.sleep(0.5); import runpy; runpy.run_path(\"train.py\")'"
    (project / "program.md").write_text(toy_program(run=slow))
    git(project, "commit", "-qam", "a slower run")
    ledger = project / "experiments.log"

    def rows(kind: str) -> list[dict]:
        if not ledger.exists():
            return []
        lines = ledger.read_text().split("\n")[:-1]  # a line being written has no newline yet
        return [r for r in map(json.loads, lines) if r["kind"] == kind]

    loop = subprocess.Popen([PY, "-m", "harness", "run", "--tag", "steer", "--agent", "optuna"], cwd=project)
    try:
        wait_until(lambda: len(rows("experiment")) >= 2, 60)
        (project / "program.md").write_text(toy_program(run=slow, min_delta=0.001) + "New idea: go lower.\n")
        wait_until(lambda: len(rows("steer")) >= 1, 60)
        count = len(rows("experiment"))
        wait_until(lambda: len(rows("experiment")) >= count + 2, 60)
        (project / "program.md").write_text("---\nbudget: 5\nsearch: [unclosed\n---\n")
        wait_until(lambda: len(rows("steer")) >= 2, 60)
        count = len(rows("experiment"))
        wait_until(lambda: len(rows("experiment")) >= count + 2, 60, "an experiment after the bad edit")
    finally:
        cli(project, "stop")
        loop.wait(timeout=60)
    # An editor starved between its truncate and its write (a loaded machine) may show the loop an empty file for
    # a moment: that is refused and reported like any bad edit, and the full file applies when it lands.
    steers = [r for r in rows("steer") if "empty" not in r.get("error", "")]
    good, bad = steers[:2]
    assert good["changes"]["min_delta"] == [0.0, 0.001] and "text" in good["changes"]
    assert "New idea: go lower." in good["text"]
    assert bad["error"].startswith("program.md:") and "invalid YAML" in bad["error"]
    exps = rows("experiment")
    shas = [r["program_sha"] for r in exps]
    assert shas[0] != good["program_sha"] and good["program_sha"] in shas
    assert shas[-1] == good["program_sha"]  # the broken edit never took effect
    assert loop.returncode == 0
    # The person's edit is still in the file: no reset of the experiments touched it.
    assert (project / "program.md").read_text().startswith("---\nbudget: 5\nsearch: [unclosed")


def test_an_edit_that_would_break_the_loop_is_refused_and_the_last_program_stays(tmp_path: Path):
    path = tmp_path / "program.md"
    (tmp_path / "train.py").write_text("X = 1\n")  # the mutable file an edit must name
    (tmp_path / "train.py").write_text("X = 1\n")
    good = "---\nbudget: 60\n---\nGo.\n"
    path.write_text(good)
    steering = Steering(load(path))
    path.write_text("---\nmutable: missing.py\n---\nGo.\n")
    change = steering.poll()
    assert change is not None and "'mutable' names missing.py, which does not exist" in change.error
    assert steering.program.config.mutable == "train.py" and steering.program.config.budget == 60
    path.write_text("")
    change = steering.poll()
    assert change is not None and "program.md: the file is empty" in change.error
    assert steering.program.config.budget == 60  # not silently every default
    path.write_text(good)
    assert steering.poll() is None  # back to the program in force: nothing changed


def test_an_editor_that_truncates_then_writes_is_read_once_it_has_written(tmp_path: Path):
    import threading

    path = tmp_path / "program.md"
    (tmp_path / "train.py").write_text("X = 1\n")
    path.write_text("---\nbudget: 300\n---\nAn idea.\n")
    steering = Steering(load(path))
    edited = "---\nbudget: 60\n---\nAn idea.\n"
    path.write_text("")  # the editor truncated the file, and writes its new content a moment later

    writer = threading.Timer(0.2, path.write_text, args=(edited,))
    writer.start()
    change = steering.poll()
    writer.join()
    assert change is not None and not change.error
    assert change.changes["budget"] == [300, 60] and steering.program.config.budget == 60


def test_a_steered_search_space_reaches_the_optuna_agent_before_its_next_proposal(project: Path):
    import json
    import subprocess

    from harness.testing import PY, cli, git, toy_program

    slow = f"{PY} -c 'import time; time.sleep(0.3); import runpy; runpy.run_path(\"train.py\")'"
    (project / "program.md").write_text(toy_program(run=slow))
    git(project, "commit", "-qam", "a slower run")
    ledger = project / "experiments.log"

    def rows() -> list[dict]:
        if not ledger.exists():
            return []
        lines = ledger.read_text().split("\n")[:-1]  # a line being written has no newline yet
        return [r for r in map(json.loads, lines) if r["kind"] in ("experiment", "steer")]

    def after_steer() -> list[dict]:
        kinds = [r["kind"] for r in rows()]
        return [r for r in rows()[kinds.index("steer") :] if r["kind"] == "experiment"] if "steer" in kinds else []

    loop = subprocess.Popen([PY, "-m", "harness", "run", "--tag", "steer", "--agent", "optuna"], cwd=project)
    try:
        wait_until(lambda: len(rows()) >= 3, 120, "the baseline and two experiments")
        narrow = "\n  X: {low: 3.5, high: 4.0}\n  Y: {low: 7, high: 8}"
        (project / "program.md").write_text(toy_program(run=slow, search=narrow))
        wait_until(lambda: len(after_steer()) >= 4, 120, "four experiments after the edit")
    finally:
        cli(project, "stop")
        loop.wait(timeout=60)
    assert loop.returncode == 0
    before = [r for r in rows() if r["kind"] == "experiment" and r["id"] > 0][:2]
    assert any(not 3.5 <= r["extra"]["params"]["X"] <= 4.0 for r in before)  # the old space was wider
    steered = after_steer()
    # Every proposal made after the edit was read is inside the new space.
    for r in steered:
        assert 3.5 <= r["extra"]["params"]["X"] <= 4.0 and 7 <= r["extra"]["params"]["Y"] <= 8, r
