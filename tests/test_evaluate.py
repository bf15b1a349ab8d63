"""One evaluation: real runs, hostile ones included, judged by exit, metric line, time limit and protected files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from harness import childenv, proctable, sandbox
from harness.evaluate import RunResult, evaluate, hash_paths
from harness.jails import Jail
from harness.runlog import parse_metric
from harness.testing import alive

PY = sys.executable
LINUX = proctable.has_proc()


def run(root: Path, body: str, **options: object) -> RunResult:
    """Evaluate `python run.py` with `body` as run.py; short limits unless told otherwise."""
    (root / "run.py").write_text(textwrap.dedent(body))
    settings: dict = {"metric": "val_bpb", "timeout": 20, "grace": 0.5, "log": root / "runs" / "1.log"}
    settings.update(options)
    budget = settings.pop("budget", 1)
    settings["jail"] = plain(root, settings.pop("env", None) or childenv.run_env(root, budget))
    return evaluate(root, f"{PY} run.py", **settings)


def plain(root: Path, env: dict[str, str]) -> Jail:
    """No sandbox: these tests are of the time limit, the log and the judgement, which work the same inside it."""
    return Jail(sandbox.probe("off"), None, env, root)


def pids_in(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()]


WRITE_PID = """\
import os, sys, time
def note(name):
    with open(name + ".tmp", "w") as f:
        f.write(f"{os.getpid()}\\n")
    os.replace(name + ".tmp", name)
"""

# --- metric parsing ----------------------------------------------------------------------------------------------


def test_parse_metric_takes_the_last_matching_line() -> None:
    text = "step 1\nval_bpb: 2.5\nloss: 0.1\n  val_bpb: 1.23  \nval_bpb_x: 3\nval_bpb: oops\nval_bpbs: 9\n"
    assert parse_metric(text, "val_bpb") == 1.23
    assert parse_metric("val_bpb_x: 3\n", "val_bpb") is None
    assert parse_metric("xval_bpb: 3\n", "val_bpb") is None
    assert parse_metric("val_bpb: 3 (best)\n", "val_bpb") is None
    assert parse_metric("", "val_bpb") is None


def test_parse_metric_forms_of_numbers() -> None:
    assert parse_metric("val_bpb: -1.5e-3", "val_bpb") == -1.5e-3
    assert parse_metric("val_bpb:7", "val_bpb") == 7.0
    assert parse_metric("val_bpb: .5\r\n", "val_bpb") == 0.5
    assert parse_metric("progress 10%\rval_bpb: 0.25", "val_bpb") == 0.25
    assert parse_metric("acc@1: 0.75", "acc@1") == 0.75  # the name is taken literally, not as a pattern


def test_parse_metric_nan_and_inf_are_none_and_win_as_the_last_line() -> None:
    assert parse_metric("val_bpb: nan", "val_bpb") is None
    assert parse_metric("val_bpb: NaN", "val_bpb") is None
    assert parse_metric("val_bpb: inf", "val_bpb") is None
    assert parse_metric("val_bpb: -Infinity", "val_bpb") is None
    # A run that ended in nan diverged: an earlier finite value does not stand for it.
    assert parse_metric("val_bpb: 1.0\nval_bpb: nan\n", "val_bpb") is None


# --- hashing protected paths -------------------------------------------------------------------------------------


def test_hash_paths_walks_directories_and_marks_missing_files(tmp_path: Path) -> None:
    (tmp_path / "prepare.py").write_text("a")
    data = tmp_path / "data"
    (data / "sub" / "__pycache__").mkdir(parents=True)
    (data / "sub" / "x.txt").write_text("x")
    (data / "y.pyc").write_text("compiled")
    (data / "sub" / "__pycache__" / "z.py").write_text("z")
    hashes = hash_paths(tmp_path, ["prepare.py", "data", "gone.py"])
    assert sorted(hashes) == ["data/sub/x.txt", "gone.py", "prepare.py"]
    assert hashes["prepare.py"] != hashes["gone.py"]
    assert hashes == hash_paths(tmp_path, ["prepare.py", "data", "gone.py"])
    (data / "sub" / "x.txt").write_text("X")
    assert hash_paths(tmp_path, ["data"])["data/sub/x.txt"] != hashes["data/sub/x.txt"]


def test_hash_paths_sees_through_links_and_sees_them_retargeted(tmp_path: Path) -> None:
    (tmp_path / "real.py").write_text("a")
    (tmp_path / "other.py").write_text("a")
    (tmp_path / "prepare.py").symlink_to("real.py")
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "val.bin").write_text("v")
    (tmp_path / "data").symlink_to("store")
    first = hash_paths(tmp_path, ["prepare.py", "data"])
    assert sorted(first) == ["data", "data/val.bin", "prepare.py"]
    (tmp_path / "real.py").write_text("b")  # edited through the link
    (tmp_path / "store" / "val.bin").write_text("w")
    second = hash_paths(tmp_path, ["prepare.py", "data"])
    assert second["prepare.py"] != first["prepare.py"] and second["data/val.bin"] != first["data/val.bin"]
    (tmp_path / "prepare.py").unlink()
    (tmp_path / "prepare.py").symlink_to("other.py")  # same content as before, another file
    (tmp_path / "other.py").write_text("b")
    assert hash_paths(tmp_path, ["prepare.py"])["prepare.py"] != second["prepare.py"]


# --- ordinary runs -----------------------------------------------------------------------------------------------


def test_a_good_run(tmp_path: Path) -> None:
    body = """\
        import os
        print("training...")
        print("---")
        print(f"val_bpb: 0.997")
        print("budget", os.environ["AUTORESEARCH_BUDGET"], os.environ["PYTHONUNBUFFERED"])
    """
    result = run(tmp_path, body, budget=300)
    assert result.outcome == "ok"
    assert result.metric == 0.997
    assert result.exit_code == 0
    assert result.reason == "" and result.tail == "" and result.tampered == ()
    assert 0 < result.seconds < 20
    assert result.peak_mem_mb is not None and result.peak_mem_mb > 0
    assert result.log == tmp_path / "runs" / "1.log"
    assert "budget 300 1" in result.log.read_text()


def test_budget_keeps_its_fraction_and_the_command_runs_through_the_shell(tmp_path: Path) -> None:
    result = evaluate(
        tmp_path,
        'echo "val_bpb: $AUTORESEARCH_BUDGET" && pwd >&2',
        metric="val_bpb",
        timeout=20,
        log=tmp_path / "a" / "b" / "run.log",
        jail=plain(tmp_path, childenv.run_env(tmp_path, 2.5)),
    )
    assert result.outcome == "ok" and result.metric == 2.5
    assert str(tmp_path) in result.log.read_text()  # stderr is in the same log, and cwd is the root


def test_a_run_without_the_metric_is_a_crash_with_the_tail(tmp_path: Path) -> None:
    body = """\
        for i in range(200):
            print(f"step {i}")
        print("the last words")
    """
    result = run(tmp_path, body)
    assert result.outcome == "crash"
    assert result.metric is None
    assert result.exit_code == 0
    assert result.reason == f"the run printed no 'val_bpb: <float>' line (its log: {result.log})"
    assert result.tail.endswith("the last words")
    assert "step 0\n" not in result.tail  # only the end of the log
    assert len(result.tail) <= 3000


def test_a_run_that_exits_1_after_its_metric_is_a_crash(tmp_path: Path) -> None:
    body = """\
        import sys
        print("val_bpb: 1.0")
        print("Traceback: boom", file=sys.stderr)
        sys.exit(1)
    """
    result = run(tmp_path, body)
    assert result.outcome == "crash"
    assert result.exit_code == 1
    assert result.reason == "exit status 1"
    assert "Traceback: boom" in result.tail


def test_a_nan_metric_is_a_crash_that_says_so(tmp_path: Path) -> None:
    result = run(tmp_path, 'print("val_bpb: nan")\n')
    assert result.outcome == "crash"
    assert result.metric is None
    assert result.reason == "val_bpb was nan"


def test_a_command_that_does_not_exist_is_a_crash(tmp_path: Path) -> None:
    result = evaluate(
        tmp_path,
        "no-such-program-here",
        metric="val_bpb",
        timeout=20,
        log=tmp_path / "run.log",
        jail=plain(tmp_path, childenv.run_env(tmp_path, 1)),
    )
    assert result.outcome == "crash"
    assert result.exit_code == 127
    assert "not found" in result.tail


def test_peak_memory_of_a_run_that_allocates_100_mb(tmp_path: Path) -> None:
    body = """\
        block = bytearray(100 * 2**20)
        for i in range(0, len(block), 4096):
            block[i] = 1
        print("val_bpb: 1.0")
    """
    result = run(tmp_path, body)
    assert result.outcome == "ok"
    assert result.peak_mem_mb is not None and result.peak_mem_mb >= 90


# --- hostile runs ------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not LINUX, reason="checks /proc")
def test_a_run_that_sleeps_forever_times_out_and_leaves_nothing(tmp_path: Path) -> None:
    body = (
        WRITE_PID
        + """\
note("pid")
print("started", flush=True)
time.sleep(600)
"""
    )
    result = run(tmp_path, body, timeout=1)
    assert result.outcome == "timeout"
    assert result.exit_code is None
    assert result.reason == "timed out after 1 s"
    assert result.seconds >= 1
    assert "started" in result.tail
    assert not alive(pids_in(tmp_path / "pid")[0])


@pytest.mark.skipif(not LINUX, reason="checks /proc")
def test_a_run_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    body = (
        WRITE_PID
        + """\
import signal
import subprocess
signal.signal(signal.SIGTERM, signal.SIG_IGN)
note("pid")
while True:
    time.sleep(0.01)
"""
    )
    result = run(tmp_path, body, timeout=1, grace=0.5)
    assert result.outcome == "timeout"
    assert result.seconds >= 1.5  # the timeout, then the grace it ignored
    assert not alive(pids_in(tmp_path / "pid")[0])


@pytest.mark.skipif(not LINUX, reason="checks /proc")
def test_a_grandchild_that_left_the_session_dies_at_the_timeout(tmp_path: Path) -> None:
    # The child forks; the grandchild calls setsid and forks again (a daemon, reparented to init), ignores SIGTERM
    # and sleeps. The child sleeps too, so the run times out.
    body = (
        WRITE_PID
        + """\
import signal
import subprocess
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        note("daemon")
        time.sleep(600)
    os._exit(0)
while not os.path.exists("daemon"):
    time.sleep(0.01)
note("pid")
time.sleep(600)
"""
    )
    result = run(tmp_path, body, timeout=1.5, grace=0.3)
    assert result.outcome == "timeout"
    assert not alive(pids_in(tmp_path / "daemon")[0])
    assert not alive(pids_in(tmp_path / "pid")[0])


@pytest.mark.skipif(not LINUX, reason="checks /proc")
def test_a_daemon_left_after_a_normal_exit_is_killed_and_does_not_hold_the_log(tmp_path: Path) -> None:
    # The daemon keeps the output pipe open: the harness must not wait for its EOF.
    body = (
        WRITE_PID
        + """\
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.write(1, b"daemon still here\\n")
        note("daemon")
        while True:
            time.sleep(0.05)
            os.write(1, b"daemon still here\\n")
    os._exit(0)
while not os.path.exists("daemon"):
    time.sleep(0.01)
os.write(1, b"val_bpb: 1.5\\n")  # one write: print() makes two, and the daemon's line could land between them
"""
    )
    started = time.monotonic()
    result = run(tmp_path, body, timeout=60, grace=0.5)
    assert time.monotonic() - started < 30  # far from the timeout: the run's own exit ended the wait
    assert result.outcome == "ok"
    assert result.metric == 1.5
    assert "daemon still here" in result.log.read_text()
    # Killed: once SIGKILL has taken its memory (its environment reads empty, so no sweep finds it) a busy machine may
    # take a moment more to show it as a zombie. A daemon the harness missed would still be alive 10 s on.
    daemon = pids_in(tmp_path / "daemon")[0]
    gone = time.monotonic() + 10
    while alive(daemon) and time.monotonic() < gone:
        time.sleep(0.05)
    assert not alive(daemon)


def test_a_run_that_rewrites_a_protected_file_is_tampered(tmp_path: Path) -> None:
    (tmp_path / "prepare.py").write_text("EVAL = 'fair'\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "val.bin").write_bytes(b"\x00" * 10)
    body = """\
        with open("prepare.py", "w") as f:
            f.write("EVAL = 'rigged'\\n")
        print("val_bpb: 0.001")
    """
    result = run(tmp_path, body, protected=["prepare.py", "data"])
    assert result.outcome == "tampered"
    assert result.tampered == ("prepare.py",)
    assert result.reason == "changed protected files: prepare.py"
    assert result.metric == 0.001  # reported, but the outcome says it does not count


def test_deleting_or_adding_under_a_protected_path_is_tampering(tmp_path: Path) -> None:
    (tmp_path / "prepare.py").write_text("x\n")
    (tmp_path / "data").mkdir()
    body = """\
        import os
        os.remove("prepare.py")
        open("data/extra.bin", "w").close()
        os.makedirs("data/__pycache__", exist_ok=True)
        open("data/__pycache__/m.cpython-311.pyc", "w").close()
        print("val_bpb: 1.0")
    """
    result = run(tmp_path, body, protected=["prepare.py", "data"])
    assert result.outcome == "tampered"
    assert result.tampered == ("data/extra.bin", "prepare.py")


def test_a_flood_is_capped_and_the_final_metric_survives(tmp_path: Path) -> None:
    body = """\
        import sys
        line = ("x" * 99 + "\\n").encode()
        block = line * 10000  # 1 MB
        for _ in range(50):
            sys.stdout.buffer.write(block)
        sys.stdout.buffer.flush()
        print("val_bpb: 0.5")
    """
    result = run(tmp_path, body, log_cap=2**20)
    assert result.outcome == "ok"
    assert result.metric == 0.5
    data = result.log.read_bytes()
    assert 2**20 <= len(data) <= 1.1 * 2**20
    head, rest = data[: 2**20], data[2**20 :]
    assert head == (("x" * 99 + "\n") * 20000).encode()[: 2**20]
    _, marker, tail = rest.split(b"\n", 2)
    assert marker.endswith(b" bytes dropped by autoresearch: log capped at 1 MiB ...]")
    dropped = int(marker.split()[1])
    assert dropped == 50 * 10**6 + len(b"val_bpb: 0.5\n") - 2**20 - len(tail)
    assert tail.startswith(b"x" * 99 + b"\n")  # the kept tail starts on a whole line
    assert tail.endswith(b"x" * 99 + b"\nval_bpb: 0.5\n")


def test_output_just_past_the_cap_is_kept_whole(tmp_path: Path) -> None:
    # The cap falls exactly at the end of a line, so the first line after it is whole and must not be cut as a
    # part line.
    body = """\
        import sys
        sys.stdout.write(("x" * 99 + "\\n") * 10)
        sys.stdout.write("val_bpb: 0.5\\ndone\\n")
    """
    result = run(tmp_path, body, log_cap=1000)
    assert result.metric == 0.5
    assert result.log.read_text() == ("x" * 99 + "\n") * 10 + "val_bpb: 0.5\ndone\n"  # nothing was dropped


@pytest.mark.skipif(not LINUX, reason="checks /proc")
def test_ctrl_c_while_waiting_kills_the_tree_and_goes_on(tmp_path: Path) -> None:
    body = (
        WRITE_PID
        + """\
if os.fork() == 0:
    os.setsid()
    note("grandchild")
    time.sleep(600)
while not os.path.exists("grandchild"):
    time.sleep(0.01)
note("pid")
time.sleep(600)
"""
    )

    def interrupt() -> None:
        deadline = time.monotonic() + 20
        while not (tmp_path / "pid").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)  # what the terminal sends the harness on Ctrl-C

    thread = threading.Thread(target=interrupt)
    thread.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run(tmp_path, body, timeout=60, grace=0.5)
    finally:
        thread.join()
    assert not alive(pids_in(tmp_path / "pid")[0])
    assert not alive(pids_in(tmp_path / "grandchild")[0])


@pytest.mark.slow  # it keeps every core busy for seconds
@pytest.mark.skipif(not LINUX, reason="the cores' busy time comes from /proc/stat")
def test_other_work_on_the_runs_cores_shows_in_its_load_and_marks_it_contended(tmp_path: Path) -> None:
    from harness.keeprule import contended

    # A run that needs little CPU (it mostly sleeps) beside a process that spins on every core the run may use: the
    # cores were busy, and not with the run. That is a run a wall-clock metric cannot trust.
    cores = sorted(os.sched_getaffinity(0))
    spin = "import os, sys, time\nos.sched_setaffinity(0, {int(sys.argv[1])})\nend = time.time() + 30\n"
    spin += "while time.time() < end: pass\n"
    spinners = [subprocess.Popen([PY, "-c", spin, str(c)]) for c in cores]
    try:
        busy = run(tmp_path, "import time\ntime.sleep(6)\nprint('val_bpb: 1.0')\n")
    finally:
        for s in spinners:
            s.kill()
            s.wait()
    assert busy.outcome == "ok" and busy.load is not None and busy.cpu_seconds is not None
    assert busy.load > 0.8  # every core was busy, nearly all the time
    assert contended(busy.cpu_seconds, busy.seconds, busy.load, len(cores), typical=None)


def test_a_metric_the_evaluator_never_prints_points_at_metric_and_its_log(tmp_path: Path):
    from harness.testing import PY, TOY_TRAIN, cli, make_repo, toy_program

    scorer = "print('fitting done')\nprint('mse: 3153.1')\n"
    program = toy_program(metric="rmse", evaluate=f"{PY} score.py", protected="[score.py]")
    repo = make_repo(tmp_path / "p", {"train.py": TOY_TRAIN, "program.md": program, "score.py": scorer})
    out = cli(repo, "run", "--tag", "m", "--agent", "optuna", "--max-experiments", "1")
    assert out.returncode == 1
    said = out.stderr
    assert "the evaluator printed no 'rmse: <float>' line, but printed 'mse'" in said
    assert "set 'metric: mse' in program.md" in said
    assert "runs/m/0.eval.log" in said and "fix train.py" not in said


def test_a_metric_the_run_never_prints_names_what_it_printed(tmp_path: Path):
    from harness.testing import TOY_TRAIN, cli, make_repo, toy_program

    repo = make_repo(tmp_path / "p", {"train.py": TOY_TRAIN, "program.md": toy_program(metric="val_loss")})
    out = cli(repo, "run", "--tag", "m", "--agent", "optuna", "--max-experiments", "1")
    assert out.returncode == 1
    assert "the run printed no 'val_loss: <float>' line, but printed 'val_bpb'" in out.stderr
    assert "set 'metric: val_bpb' in program.md" in out.stderr and "runs/m/0.log" in out.stderr


def test_a_parallel_night_whose_baseline_prints_another_metric_says_the_fix(tmp_path: Path):
    from harness.testing import TOY_TRAIN, cli, make_repo, toy_program

    repo = make_repo(tmp_path / "p", {"train.py": TOY_TRAIN, "program.md": toy_program(metric="val_loss", workers=2)})
    out = cli(repo, "run", "--tag", "m", "--agent", "optuna", "--max-experiments", "1")
    assert out.returncode == 1
    assert "the run printed no 'val_loss: <float>' line, but printed 'val_bpb'" in out.stderr
    assert "set 'metric: val_bpb' in program.md" in out.stderr
