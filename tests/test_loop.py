"""The experiment loop end to end: real repositories, real runs, the CLI as a real process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from harness import childenv, proctable
from harness.testing import PY, TOY_TRAIN, cli, git, make_repo, toy_program, wait_until

SPEC_FIELDS = {
    "kind", "tag", "id", "commit", "parent", "status", "metric", "best", "description", "seconds", "agent",
    "program_sha", "agent_sha", "tokens_in", "tokens_out", "cost_usd", "time",
}  # fmt: skip


def rows(repo: Path, kind: str = "experiment") -> list[dict]:
    lines = (repo / "experiments.log").read_text().split("\n")[:-1]  # a line being written has no newline yet
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def write_agent(path: Path, body: str) -> Path:
    """An agent file with the propose(task, llm) contract; `body` is the inside of propose."""
    text = "from harness.task import Proposal\n\n\ndef propose(task, llm):\n" + "".join(
        f"    {line}\n" for line in body.strip().splitlines()
    )
    path.write_text(text)
    return path


def test_a_night_with_the_optuna_agent_leaves_a_readable_branch(project: Path):
    out = cli(project, "run", "--tag", "t1", "--agent", "optuna", "--max-experiments", "8")
    assert out.returncode == 0, out.stderr
    exps = rows(project)
    assert [r["id"] for r in exps] == list(range(9))
    assert exps[0]["status"] == "keep" and exps[0]["description"] == "baseline"
    for row in exps:
        assert set(row) >= SPEC_FIELDS
        assert row["agent"] == "optuna"
    kept = [r for r in exps[1:] if r["status"] == "keep"]
    discarded = [r for r in exps[1:] if r["status"] == "discard"]
    assert kept, "TPE should improve a smooth toy metric at least once in 8 tries"
    # Kept experiments are on the branch with their trailers, newest first.
    log = git(project, "log", "--format=%H%n%B%n--end--", "autoresearch/t1")
    for row in kept:
        assert row["commit"] in log
        assert f"Experiment: {row['id']}" in log
        assert f"Metric: val_bpb={row['metric']:.6f}" in log
        assert "Status: keep" in log
    # Discarded ones stay reachable under their own refs.
    refs = git(project, "for-each-ref", "--format=%(refname) %(objectname)", "refs/autoresearch/t1/discarded")
    for row in discarded:
        assert f"refs/autoresearch/t1/discarded/{row['id']} {row['commit']}" in refs
    # The champion is the branch head, the tree is clean, and the best is what the ledger says.
    assert git(project, "rev-parse", "HEAD") == kept[-1]["commit"]
    assert git(project, "status", "--porcelain") == ""
    assert exps[-1]["best"] == min(r["metric"] for r in [exps[0], *kept])
    # Each kept commit's parent is the champion it was tried against.
    for row in kept:
        assert git(project, "rev-parse", row["commit"] + "^") == row["parent"]


def test_resume_continues_ids_and_the_optuna_agent_relearns_from_the_ledger(project: Path):
    assert cli(project, "run", "--tag", "r", "--agent", "optuna", "--max-experiments", "3").returncode == 0
    out = cli(project, "run", "--tag", "r", "--agent", "optuna", "--max-experiments", "3")
    assert out.returncode == 0, out.stderr
    exps = rows(project)
    assert [r["id"] for r in exps] == list(range(7))  # one baseline, no id reused
    assert len({r["file_sha"] for r in exps if r["status"] != "duplicate"}) == len(
        [r for r in exps if r["status"] != "duplicate"]
    )


def test_checks_before_compute_invalid_duplicate_and_no_change(project: Path, tmp_path: Path):
    agent = write_agent(
        tmp_path / "scripted.py",
        """
n = task.experiment
if n == 1:
    return Proposal("X to 2", task.mutable_content.replace("X = 3.0", "X = 2.0"))
if n == 2:
    return Proposal("the same again", task.mutable_content.replace("X = 2.0", "X = 3.0"))
if n == 3:
    return Proposal("syntax error", task.mutable_content + "def broken(:\\n")
if n == 4:
    return Proposal("no change", task.mutable_content)
raise RuntimeError("out of ideas")
""",
    )
    out = cli(project, "run", "--tag", "c", "--agent", str(agent), "--max-experiments", "5")
    assert out.returncode == 0, out.stderr
    exps = {r["id"]: r for r in rows(project)}
    assert exps[1]["status"] == "keep"
    assert exps[2]["status"] == "duplicate" and "experiment 0" in exps[2]["reason"]
    assert exps[2]["commit"] is None
    assert exps[3]["status"] == "invalid" and "train.py:" in exps[3]["reason"]
    assert exps[4]["status"] == "invalid" and "does not change" in exps[4]["reason"]
    assert exps[5]["status"] == "invalid" and "out of ideas" in exps[5]["reason"]
    # Nothing that was not run was committed.
    assert git(project, "rev-list", "--count", "autoresearch/c") == "2"
    assert git(project, "status", "--porcelain") == ""


def test_a_crash_is_recorded_with_its_tail_and_shown_to_the_agent(project: Path, tmp_path: Path):
    agent = write_agent(
        tmp_path / "crasher.py",
        """
if task.experiment == 1:
    return Proposal("typo", task.mutable_content.replace("loss = (X", "loss = (Xx"))
return Proposal("fix: " + task.crash_tail.strip().splitlines()[-1], task.mutable_content.replace("Y = 2", "Y = 4"))
""",
    )
    out = cli(project, "run", "--tag", "k", "--agent", str(agent), "--max-experiments", "2")
    assert out.returncode == 0, out.stderr
    exps = {r["id"]: r for r in rows(project)}
    assert exps[1]["status"] == "crash"
    assert "NameError" in exps[1]["tail"]
    assert exps[1]["metric"] is None and exps[1]["exit_code"] == 1
    assert exps[2]["description"].startswith("fix: NameError")
    assert exps[2]["status"] == "keep"
    assert (project / exps[1]["log"]).read_text().count("NameError") >= 1


def test_a_run_that_tampers_with_a_protected_file_is_discarded_and_the_file_restored(project: Path, tmp_path: Path):
    # Without the sandbox a run can write the file: that is caught, undone and recorded.
    (project / "program.md").write_text(toy_program(sandbox="off"))
    git(project, "commit", "-qam", "no sandbox")
    agent = write_agent(
        tmp_path / "cheat.py",
        """
cheat = "open('prepare.py', 'w').write('# rewritten by the run\\\\n')\\n"
return Proposal("cheat", cheat + task.mutable_content.replace("X = 3.0", "X = 1.25"))
""",
    )
    out = cli(project, "run", "--tag", "x", "--agent", str(agent), "--max-experiments", "1")
    assert out.returncode == 0, out.stderr
    row = rows(project)[-1]
    assert row["status"] == "tampered"
    assert "prepare.py" in row["reason"]
    assert (project / "prepare.py").read_text() == "# fixed evaluation\n"
    assert git(project, "status", "--porcelain") == ""
    assert git(project, "rev-parse", "HEAD") == rows(project)[0]["commit"]


# A run that prints the next number of a scripted sequence, whatever train.py holds: the keep rule alone decides.
SCRIPTED = (
    "import os\nX = 3.0\nY = 2\n"
    "n = int(open('runs/count').read()) if os.path.exists('runs/count') else 0\n"
    "open('runs/count', 'w').write(str(n + 1))\n"
    "print('val_bpb:', open('runs/sequence').read().split()[n])\n"
)


def scripted_night(tmp_path: Path, sequence: list[float]) -> list[dict]:
    # The counter lives in runs/, which only a run outside the sandbox can reach: this test is of the keep rule.
    program = toy_program(sandbox="off", baseline_runs=3)  # the champion's number rests on 3 runs from the start
    repo = make_repo(tmp_path / "scripted", {"train.py": SCRIPTED, "program.md": program})
    (repo / "runs").mkdir()
    (repo / "runs" / "sequence").write_text(" ".join(map(str, sequence)))
    agent = write_agent(
        tmp_path / "small.py", 'return Proposal("X a bit lower", task.mutable_content.replace("X = 3.0", "X = 2.9"))'
    )
    out = cli(repo, "run", "--tag", "s", "--agent", str(agent), "--max-experiments", "1")
    assert out.returncode == 0, out.stderr
    return [r for r in map(json.loads, (repo / "experiments.log").read_text().splitlines()) if r["kind"] != "note"]


def test_a_candidate_that_wins_only_by_a_lucky_run_is_not_kept(tmp_path: Path):
    # The baseline's three runs, the candidate's lucky run, its re-run.
    night = scripted_night(tmp_path, [3.0, 3.01, 2.99, 2.0, 3.0])
    runs = [(r["purpose"], r["value"]) for r in night if r["kind"] == "measurement"]
    assert runs == [("baseline", 3.0), ("baseline", 3.01), ("baseline", 2.99), ("candidate", 2.0), ("confirm", 3.0)]
    exp = [r for r in night if r["kind"] == "experiment"][-1]
    assert exp["status"] == "discard" and exp["reason"].startswith("discarded, not confirmed: re-run at 3")
    assert exp["best"] == 3.0  # the champion's median, not any single run


def test_a_genuine_improvement_is_kept_after_it_wins_again(tmp_path: Path):
    night = scripted_night(tmp_path, [3.0, 3.01, 2.99, 2.0, 2.02])
    exp = [r for r in night if r["kind"] == "experiment"][-1]
    assert exp["status"] == "keep" and exp["reason"].startswith("kept: re-run at 2.02")
    assert exp["metric"] == 2.01 and exp["extra"]["runs"] == 2  # the median of its two runs
    log = cli(tmp_path / "scripted", "log", "--tag", "s").stdout  # the morning review shows what the rule did
    assert re.search(r"noise:\s+\S+ per run \(0 champion re-runs, 1 confirmations\)", log), log
    assert re.search(r"new experiments:\s+\d+% of run time", log), log


def test_a_deterministic_metric_costs_one_run_per_experiment_and_the_log_says_so(tmp_path: Path):
    # The score is a pure function of the file (a scikit-learn score with a fixed seed, say): every repeat agrees.
    train = "X = 40\nY = 2\nprint('val_bpb:', round(abs(X - 17) / 7, 6))\n"
    repo = make_repo(tmp_path / "exact", {"train.py": train, "program.md": toy_program(sandbox="off")})
    agent = write_agent(
        tmp_path / "step.py",
        "import re\nx = int(re.search(r'X = (\\d+)', task.mutable_content).group(1))\n"
        "step = -3 if task.experiment % 3 else 5\n"
        "return Proposal(f'X {x + step}', task.mutable_content.replace(f'X = {x}', f'X = {x + step}'))",
    )
    out = cli(repo, "run", "--tag", "d", "--agent", str(agent), "--max-experiments", "9")
    assert out.returncode == 0, out.stderr
    night = [json.loads(line) for line in (repo / "experiments.log").read_text().splitlines()]
    measured = [r for r in night if r["kind"] == "measurement"]
    runs = [r["purpose"] for r in measured]
    exps = [r for r in night if r["kind"] == "experiment" and r["id"] > 0]
    # The first candidate won: the champion ran again beside it, agreed exactly, and nothing ran twice after that.
    assert runs == ["baseline", "candidate", "confirm", *["candidate"] * 8]
    assert measured[2]["file_sha"] == measured[0]["file_sha"] and measured[2]["value"] == measured[0]["value"]
    assert [r["status"] for r in exps] == ["keep", "keep", "discard"] * 3  # any gain is kept, none confirmed
    log = cli(repo, "log", "--tag", "d").stdout
    assert re.search(r"noise:\s+0: deterministic", log), log
    assert re.search(r"new experiments:\s+\d+% of run time", log), log  # 9 of 11 runs, weighed by their seconds


def test_a_malformed_program_at_start_exits_2_naming_the_line(project: Path):
    (project / "program.md").write_text("---\nbudget: 5\nbudjet: 3\n---\n")
    git(project, "commit", "-qam", "typo")
    out = cli(project, "run", "--tag", "m", "--agent", "optuna")
    assert out.returncode == 2
    assert "program.md:3: unknown key 'budjet' (did you mean 'budget'?)" in out.stderr
    assert not (project / "experiments.log").exists() or not rows(project)


def test_a_dirty_tree_is_refused_before_anything_runs(project: Path):
    (project / "prepare.py").write_text("# local edit\n")
    out = cli(project, "run", "--tag", "d", "--agent", "optuna")
    assert out.returncode == 1
    assert "uncommitted changes to prepare.py" in out.stderr
    assert (project / "prepare.py").read_text() == "# local edit\n"


def test_one_loop_per_repository(project: Path):
    slow = toy_program(budget=30, timeout=60, run=f"{PY} -c 'import time; time.sleep(30)'")
    (project / "program.md").write_text(slow)
    git(project, "commit", "-qam", "slow")
    first = subprocess.Popen([PY, "-m", "harness", "run", "--tag", "a", "--agent", "optuna"], cwd=project)
    try:
        wait_until(lambda: any((project / "runs" / "a" / "inflight").glob("*.json")))
        out = cli(project, "run", "--tag", "b", "--agent", "optuna")
        assert out.returncode == 1
        assert f"another loop is running on this repository (pid {first.pid})" in out.stderr
        assert "autoresearch stop" in out.stderr
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(timeout=30)


def test_kill_9_during_an_evaluation_is_reconciled_on_the_next_start(project: Path, tmp_path: Path):
    # Experiment 1 sleeps; the harness is killed with SIGKILL in the middle of it.
    agent = write_agent(
        tmp_path / "sleepy.py",
        """
if task.experiment == 1:
    sleeper = "import os, time\\nopen(os.environ['AUTORESEARCH_OUT'] + '/sleeper.pid', 'w').write(str(os.getpid()))\\n"
    sleeper += "time.sleep(60)\\n"
    return Proposal("sleep", sleeper + task.mutable_content)
return Proposal("X to 1.5", task.mutable_content.replace("X = 3.0", "X = 1.5"))
""",
    )
    (project / "program.md").write_text(toy_program(budget=60, timeout=120))
    git(project, "commit", "-qam", "longer budget")
    harness = subprocess.Popen([PY, "-m", "harness", "run", "--tag", "k9", "--agent", str(agent)], cwd=project)
    pid_file = project / "runs" / "k9" / "1.out" / "sleeper.pid"
    wait_until(lambda: _phase(project) == "evaluating" and pid_file.exists())
    tried = git(project, "rev-parse", "autoresearch/k9")
    assert tried != rows(project)[0]["commit"]
    os.kill(harness.pid, signal.SIGKILL)
    harness.wait()
    out = cli(project, "run", "--tag", "k9", "--agent", str(agent), "--max-experiments", "1")
    assert out.returncode == 0, out.stderr
    exps = rows(project)
    assert [(r["id"], r["status"]) for r in exps] == [(0, "keep"), (1, "interrupted"), (2, "keep")]
    assert exps[1]["commit"] == tried
    assert git(project, "rev-parse", "refs/autoresearch/k9/discarded/1") == tried
    assert git(project, "rev-parse", "HEAD") == exps[2]["commit"]
    assert git(project, "status", "--porcelain") == ""
    # The run of experiment 1, orphaned by the kill, did not outlive the reconciliation.
    # (Inside the sandbox the run sees its own pid namespace, so it is found by its owner marker instead.)
    assert proctable.scan(childenv.OWNER, str(project)) == []


def test_ctrl_c_stops_the_evaluation_and_resets_to_the_champion(project: Path, tmp_path: Path):
    agent = write_agent(
        tmp_path / "sleepy.py",
        'return Proposal("sleep", "import time\\ntime.sleep(60)\\n" + task.mutable_content)',
    )
    (project / "program.md").write_text(toy_program(budget=60, timeout=120))
    git(project, "commit", "-qam", "longer budget")
    harness = subprocess.Popen(
        [PY, "-m", "harness", "run", "--tag", "cc", "--agent", str(agent)], cwd=project, stderr=subprocess.PIPE
    )
    wait_until(lambda: _phase(project) == "evaluating")
    harness.send_signal(signal.SIGINT)
    assert harness.wait(timeout=30) == 0
    exps = rows(project)
    assert exps[-1]["status"] == "interrupted"
    assert git(project, "rev-parse", "HEAD") == exps[0]["commit"]
    assert git(project, "status", "--porcelain") == ""
    assert not list((project / "runs" / "cc" / "inflight").glob("*.json"))


def test_stop_ends_the_loop_after_the_current_experiment(project: Path):
    (project / "program.md").write_text(toy_program(run=f"{PY} -c 'import time; time.sleep(1); print(\"val_bpb: 1\")'"))
    git(project, "commit", "-qam", "slower")
    harness = subprocess.Popen([PY, "-m", "harness", "run", "--tag", "s", "--agent", "optuna"], cwd=project)
    wait_until(lambda: (project / "experiments.log").exists() and len(rows(project)) >= 2)
    out = cli(project, "stop")
    assert out.returncode == 0, out.stderr
    assert harness.wait(timeout=30) == 0
    assert git(project, "status", "--porcelain") == ""
    out = cli(project, "stop")
    assert out.returncode == 1 and "no loop is running" in out.stderr


def _phase(repo: Path) -> str:
    try:
        return json.loads((repo / "runs" / "status.json").read_text()).get("phase", "")
    except (OSError, ValueError):
        return ""


def test_status_from_another_terminal_says_what_the_loop_does_and_that_a_stop_was_asked(project: Path):
    (project / "program.md").write_text(toy_program(run=f"{PY} -c 'import time; time.sleep(3); print(\"val_bpb: 1\")'"))
    git(project, "commit", "-qam", "slower")
    harness = subprocess.Popen([PY, "-m", "harness", "run", "--tag", "st", "--agent", "optuna"], cwd=project)
    try:
        wait_until(lambda: _phase(project) == "evaluating")
        out = cli(project, "status")
        assert out.returncode == 0
        assert f"running (pid {harness.pid}, tag st, agent optuna)" in out.stdout
        assert "running for" in out.stdout
        cli(project, "stop")
        assert "stop requested" in cli(project, "status").stdout
    finally:
        assert harness.wait(timeout=60) == 0
    assert cli(project, "status").stdout.startswith("not running; last loop")


def test_an_interrupted_experiment_is_run_again_after_a_restart_not_called_a_duplicate(project: Path, tmp_path: Path):
    agent = write_agent(
        tmp_path / "same.py",
        'slow = "import time\\ntime.sleep(2)\\n"\n'
        'return Proposal("X to 1.5, slowly", slow + task.mutable_content.replace("X = 3.0", "X = 1.5"))',
    )
    harness = subprocess.Popen([PY, "-m", "harness", "run", "--tag", "ir", "--agent", str(agent)], cwd=project)
    wait_until(lambda: _phase(project) == "evaluating" and len(rows(project)) == 1)
    harness.send_signal(signal.SIGINT)
    assert harness.wait(timeout=30) == 0
    out = cli(project, "run", "--tag", "ir", "--agent", str(agent), "--max-experiments", "1")
    assert out.returncode == 0, out.stderr
    exps = rows(project)
    assert [(r["id"], r["status"]) for r in exps] == [(0, "keep"), (1, "interrupted"), (2, "keep")]
    assert exps[2]["file_sha"] == exps[1]["file_sha"]  # the same content, run this time


def test_status_after_a_failed_baseline_says_why(project: Path):
    (project / "train.py").write_text("X = 3.0\nY = 2\nraise SystemExit('no data here')\n")
    git(project, "commit", "-qam", "broken")
    out = cli(project, "run", "--tag", "fb", "--agent", "optuna")
    assert out.returncode == 1
    assert "the baseline failed (crash: exit status 1)" in out.stderr
    status = cli(project, "status").stdout
    assert "stopped: stopped" not in status
    assert "the baseline failed (crash: exit status 1)" in status
    note = rows(project, "note")[-1]
    assert note["message"].startswith("loop ended: stopped: the baseline failed") and note["ending"] == "HarnessError"


@pytest.mark.parametrize("mode", ["auto", "off"])
def test_files_a_run_leaves_in_the_tree_never_reach_the_next_run(project: Path, mode: str):
    # With the sandbox a run writes into a throwaway copy of the tree; without it, what it left is removed after
    # it and named in its row. Either way every run finds the committed tree alone, and the repository stays clean.
    writes = (
        "import os, pathlib\n"
        "print('saw a checkpoint' if os.path.exists('ckpt.pt') else 'fresh tree')\n"
        "pathlib.Path('ckpt.pt').write_text('weights')\n"
        "os.makedirs('cache', exist_ok=True)\n"
        "pathlib.Path('cache/x.bin').write_text('x')\n"
    )
    (project / "train.py").write_text(writes + TOY_TRAIN)
    (project / "program.md").write_text(toy_program(sandbox=mode))
    git(project, "commit", "-qam", "a run that leaves files behind")
    out = cli(project, "run", "--tag", "lf", "--agent", "optuna", "--max-experiments", "2")
    assert out.returncode == 0, out.stderr
    ran = [r for r in rows(project) if r["status"] in ("keep", "discard")]
    assert len(ran) == 3
    for row in ran:
        assert "fresh tree" in (project / row["log"]).read_text()
        assert row["extra"].get("removed") == (["cache/", "ckpt.pt"] if mode == "off" else None)
    assert not (project / "ckpt.pt").exists() and not (project / "cache").exists()
    ignored = {line[3:] for line in git(project, "status", "--porcelain", "--ignored").splitlines()}
    assert ignored <= {"experiments.log", "runs/"}  # nothing of the runs' own beside the harness's files
    assert git(project, "status", "--porcelain") == ""


# --- what a night does whatever its worker count --------------------------------------------------------------------


def _workers(project: Path, workers: int) -> None:
    if workers != 1:
        (project / "program.md").write_text(toy_program(workers=workers))
        git(project, "commit", "-qam", f"{workers} workers")


def _in_flight(project: Path, tag: str) -> list[Path]:
    """The markers of experiments under way a night left (one per experiment; a single file from earlier versions)."""
    folder = project / "runs" / tag
    return [*folder.glob("inflight.json"), *folder.glob("inflight/*.json")]


@pytest.mark.parametrize("workers", [1, 2])
def test_max_experiments_counts_the_proposals_asked_of_the_agent(project: Path, workers: int):
    from harness import runner
    from harness.session import Options
    from harness.testing import FixedEdit, Quiet

    _workers(project, workers)
    options = Options(tag="n", agent="fixed", max_experiments=3)
    ending = runner.run(project, options, screen=Quiet(), make_agent=lambda *a: FixedEdit())
    assert ending.exit_code == 0 and ending.reason == "reached --max-experiments 3"
    assert ending.experiments == 3
    assert sorted(r["id"] for r in rows(project)) == [0, 1, 2, 3]  # comment lines change nothing: none re-based
    again = runner.run(project, options, screen=Quiet(), make_agent=lambda *a: FixedEdit())
    assert again.experiments == 3 and sorted(r["id"] for r in rows(project)) == list(range(7))


def test_one_worker_with_a_proposal_ahead_measures_beside_the_tree_and_keeps_the_same_books(project: Path):
    from harness import runner
    from harness.session import Options
    from harness.testing import FixedEdit, Quiet

    (project / "program.md").write_text(toy_program(ahead=1))
    git(project, "commit", "-qam", "one ahead")
    options = Options(tag="a", agent="fixed", max_experiments=3)
    ending = runner.run(project, options, screen=Quiet(), make_agent=lambda *a: FixedEdit())
    assert ending.exit_code == 0 and ending.experiments == 3
    notes = [r for r in rows(project, "note") if r["message"].startswith("parallel: 1 workers (local)")]
    assert len(notes) == 1 and notes[0]["ahead"] == 1
    assert sorted(r["id"] for r in rows(project)) == [0, 1, 2, 3]
    assert git(project, "status", "--porcelain") == "" and not _in_flight(project, "a")


@pytest.mark.parametrize("workers", [1, 2])
def test_a_bug_leaves_a_crash_log_and_its_reason_in_the_ledger_and_status(project: Path, workers: int):
    from harness import runner
    from harness.session import Options
    from harness.testing import FixedEdit, Quiet

    class Buggy(FixedEdit):
        def propose(self, task):
            if task.experiment == 2:
                raise RuntimeError("an index went out of range")
            return super().propose(task)

    _workers(project, workers)
    screen = Quiet()
    ending = runner.run(project, Options(tag="bug", agent="buggy"), screen=screen, make_agent=lambda *a: Buggy())
    assert ending.exit_code == 3
    log = project / "runs" / "bug" / "crash.log"
    assert ending.reason.startswith("crashed (RuntimeError: an index went out of range)") and str(log) in ending.reason
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "RuntimeError: an index went out of range" in text
    assert "versions: autoresearch " in text and "python:" in text
    assert rows(project, "note")[-1]["message"] == f"loop ended: {ending.reason}"
    status = json.loads((project / "runs" / "status.json").read_text())
    assert status["phase"] == "stopped" and status["description"] == ending.reason
    ids = [r["id"] for r in rows(project)]
    assert {0, 1} <= set(ids) and sorted(ids) == list(range(len(ids)))  # what was recorded before the bug stays
    assert git(project, "status", "--porcelain") == "" and not _in_flight(project, "bug")


@pytest.mark.parametrize("workers", [1, 2])
def test_a_bug_whose_crash_log_cannot_be_written_still_leaves_the_night_clean(project: Path, workers: int):
    from harness import runner
    from harness.session import Options
    from harness.testing import FixedEdit, Quiet

    class Buggy(FixedEdit):
        def propose(self, task):
            if task.experiment == 2:
                raise RuntimeError("an index went out of range")
            return super().propose(task)

    _workers(project, workers)
    (project / "runs" / "bug" / "crash.log").mkdir(parents=True)  # the crash log's write fails
    with pytest.raises(IsADirectoryError):
        runner.run(project, Options(tag="bug", agent="buggy"), screen=Quiet(), make_agent=lambda *a: Buggy())
    # The cleanup came first: every experiment started is recorded, no marker is left, the tree is at the champion.
    ids = [r["id"] for r in rows(project)]
    assert {0, 1} <= set(ids) and sorted(ids) == list(range(len(ids)))
    assert git(project, "status", "--porcelain") == "" and not _in_flight(project, "bug")


def test_a_hostile_proposal_is_only_ever_data(project: Path, tmp_path: Path):
    agent = write_agent(
        tmp_path / "hostile.py",
        """
if task.experiment == 1:
    return Proposal("nested", "x = " + "-" * 100000 + "1\\n")
if task.experiment == 2:
    return Proposal("\\x1b[2J\\x1b[31mred\\ud800 and a bell\\x07", task.mutable_content.replace("X = 3.0", "X = 2.0"),
                    notes="line one\\n\\x1b]0;title\\x07line two")
return Proposal("X to 2.5", task.mutable_content.replace("X = 2.0", "X = 2.5"))
""",
    )
    out = cli(project, "run", "--tag", "hp", "--agent", str(agent), "--max-experiments", "3")
    assert out.returncode == 0, out.stderr
    exps = rows(project)
    assert [r["status"] for r in exps] == ["keep", "invalid", "keep", "discard"]
    assert "too deeply nested to compile" in exps[1]["reason"]
    assert exps[2]["description"] == "[2J[31mred\ufffd and a bell"
    assert exps[2]["notes"] == "line one\n]0;titleline two"
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout
    assert "\x1b" not in git(project, "log", "--format=%B", "autoresearch/hp")


def test_a_kill_9_during_the_baseline_leaves_one_baseline(project: Path):
    # The baseline is slow until a flag file appears, so the first start is killed in the middle of it.
    slow_once = f"sh -c 'test -f flags/fast.flag || sleep 30; {PY} train.py'"
    (project / "program.md").write_text(toy_program(run=slow_once, data="[flags/]"))  # untracked, shown to the run
    git(project, "commit", "-qam", "a baseline that is slow once")
    (project / "flags").mkdir()
    harness = subprocess.Popen([PY, "-m", "harness", "run", "--tag", "kb", "--agent", "optuna"], cwd=project)
    wait_until(lambda: _phase(project) == "baseline")
    os.kill(harness.pid, signal.SIGKILL)
    harness.wait()
    (project / "flags" / "fast.flag").write_text("")
    out = cli(project, "run", "--tag", "kb", "--agent", "optuna", "--max-experiments", "2")
    assert out.returncode == 0, out.stderr
    assert [r["id"] for r in rows(project)] == [0, 1, 2]
    assert any("the baseline was interrupted" in r["message"] for r in rows(project, "note"))
