"""Child processes: a scrubbed environment, a session of their own, and a kill that leaves no survivor."""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness import process, proctable
from harness.testing import alive, wait_for_line

PY = sys.executable
LINUX = proctable.has_proc()


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def marked(run_id: str) -> list[int]:
    """Pids whose environment carries the run's marker, by an independent scan of /proc."""
    entry = f"{process.MARKER}={run_id}".encode()
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and alive(int(name)):
            try:
                if entry in Path(f"/proc/{name}/environ").read_bytes().split(b"\0"):
                    found.append(int(name))
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                pass
    return found


# --- spawning and waiting ----------------------------------------------------------------------------------------


def test_child_runs_in_its_own_session_with_the_marker(tmp_path: Path) -> None:
    body = """\
        import os
        print(os.getsid(0), os.getpgid(0), os.getpid(), os.environ["AUTORESEARCH_RUN_ID"], os.environ.get("X"))
    """
    out = tmp_path / "out.txt"
    with open(out, "wb") as f:
        child = process.spawn([PY, str(script(tmp_path, "s.py", body))], env={"X": "1"}, stdout=f, cwd=tmp_path)
        assert child.wait(20) == 0
    sid, pgid, pid, run_id, x = out.read_text().split()
    assert int(sid) == int(pgid) == int(pid) == child.pid
    assert run_id == child.run_id and len(run_id) == 32
    assert x == "1"


def test_wait_times_out_then_returns_the_status(tmp_path: Path) -> None:
    body = "import sys, time\ntime.sleep(0.3)\nsys.exit(3)\n"
    child = process.spawn([PY, str(script(tmp_path, "s.py", body))])
    assert child.wait(0.01) is None
    assert child.poll() is None
    assert child.wait(20) == 3
    assert child.returncode == 3
    assert child.wait(0) == 3  # idempotent once reaped


def test_a_death_by_signal_is_a_negative_status(tmp_path: Path) -> None:
    body = "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"
    child = process.spawn([PY, str(script(tmp_path, "s.py", body))])
    assert child.wait(20) == -9


def test_shell_command_and_pipes(tmp_path: Path) -> None:
    child = process.spawn("read line; echo got $line", shell=True, stdin=process.PIPE, stdout=process.PIPE)
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(b"hello\n")
    child.stdin.close()
    assert child.stdout.read() == b"got hello\n"
    assert child.wait(20) == 0
    child.close()


def test_peak_memory_of_a_child_that_allocates_100_mb(tmp_path: Path) -> None:
    body = """\
        block = bytearray(100 * 2**20)
        for i in range(0, len(block), 4096):
            block[i] = 1  # touch every page, so it is resident
    """
    child = process.spawn([PY, str(script(tmp_path, "s.py", body))])
    assert child.peak_mem_mb is None
    assert child.wait(30) == 0
    assert child.peak_mem_mb is not None and child.peak_mem_mb >= 90


# --- killing the tree --------------------------------------------------------------------------------------------


@pytest.mark.skipif(not LINUX, reason="the marker scan reads /proc")
def test_kill_tree_while_running_leaves_nothing(tmp_path: Path) -> None:
    # A child with two grandchildren, one in the group and one that left it with setsid.
    body = """\
        import os, subprocess, sys, time
        here = os.path.dirname(os.path.abspath(__file__))
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
        with open(os.path.join(here, "pid"), "w") as f:
            f.write(f"{os.getpid()}\\n")
        time.sleep(600)
    """
    child = process.spawn([PY, str(script(tmp_path, "tree.py", body))])
    pid = int(wait_for_line(tmp_path / "pid"))
    deadline = time.monotonic() + 20
    while len(child.survivors()) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    tree = child.survivors()
    assert pid in tree and len(tree) == 3
    assert sorted(marked(child.run_id)) == tree
    assert child.kill_tree(grace=0.5) == []
    assert child.survivors() == []
    assert marked(child.run_id) == []
    assert not any(alive(p) for p in tree)
    assert child.returncode == -15  # reaped, ended by SIGTERM


@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_sigterm_comes_first_once_and_sigkill_after_the_grace(tmp_path: Path) -> None:
    # The child and a grandchild in its group each note every SIGTERM they get, then carry on: only SIGKILL ends them.
    body = """\
        import os, signal, sys, time
        here = os.path.dirname(os.path.abspath(__file__))
        def noted(signum, frame):
            with open(os.path.join(here, "terms"), "a") as f:
                f.write(f"{os.getpid()}\\n")
        signal.signal(signal.SIGTERM, noted)
        if len(sys.argv) == 1:
            os.spawnv(os.P_NOWAIT, sys.executable, [sys.executable, __file__, "grandchild"])
        with open(os.path.join(here, f"pid.{len(sys.argv)}"), "w") as f:
            f.write(f"{os.getpid()}\\n")
        while True:
            time.sleep(0.01)
    """
    child = process.spawn([PY, str(script(tmp_path, "stubborn.py", body))])
    pids = [int(wait_for_line(tmp_path / "pid.1")), int(wait_for_line(tmp_path / "pid.2"))]
    started = time.monotonic()
    assert child.kill_tree(grace=0.5) == []
    assert time.monotonic() - started >= 0.45  # they were given their grace
    assert sorted(int(p) for p in (tmp_path / "terms").read_text().split()) == sorted(pids)  # one SIGTERM each
    assert not any(alive(pid) for pid in pids)
    assert child.returncode == -9


@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_a_polite_child_ends_within_the_grace(tmp_path: Path) -> None:
    body = """\
        import os, sys, time
        here = os.path.dirname(os.path.abspath(__file__))
        with open(os.path.join(here, "pid"), "w") as f:
            f.write(f"{os.getpid()}\\n")
        time.sleep(600)
    """
    child = process.spawn([PY, str(script(tmp_path, "s.py", body))])
    wait_for_line(tmp_path / "pid")
    assert child.kill_tree(grace=30) == []  # does not wait out the grace when the tree is already gone
    assert child.returncode == -15


@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_a_double_forked_daemon_that_called_setsid_is_found_by_its_marker(tmp_path: Path) -> None:
    body = """\
        import os, signal, time
        here = os.path.dirname(os.path.abspath(__file__))
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                with open(os.path.join(here, "daemon"), "w") as f:
                    f.write(f"{os.getpid()}\\n")
                time.sleep(600)
            os._exit(0)
        while not os.path.exists(os.path.join(here, "daemon")):
            time.sleep(0.01)
    """
    child = process.spawn([PY, str(script(tmp_path, "d.py", body))])
    assert child.wait(20) == 0
    daemon = int(wait_for_line(tmp_path / "daemon"))
    assert alive(daemon)
    assert os.getpgid(daemon) != child.pgid  # it left the group: killpg alone would miss it
    assert child.survivors() == [daemon]
    assert child.kill_tree(grace=0.3) == []
    assert not alive(daemon)


@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_an_orphan_that_dropped_its_environment_is_found_by_its_group(tmp_path: Path) -> None:
    body = """\
        import os, time
        here = os.path.dirname(os.path.abspath(__file__))
        if os.fork() == 0:
            line = f"echo $$ > {here}/orphan.tmp; mv {here}/orphan.tmp {here}/orphan; exec sleep 600"
            os.execve("/bin/sh", ["sh", "-c", line], {})
        while not os.path.exists(os.path.join(here, "orphan")):
            time.sleep(0.01)
    """
    child = process.spawn([PY, str(script(tmp_path, "o.py", body))])
    assert child.wait(20) == 0
    orphan = int(wait_for_line(tmp_path / "orphan"))
    assert alive(orphan)
    assert marked(child.run_id) == []  # no marker left anywhere
    assert child.survivors() == [orphan]
    assert child.kill_tree(grace=0.3) == []
    assert not alive(orphan)


@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_a_process_that_keeps_forking_away_is_caught(tmp_path: Path) -> None:
    # Each generation forks the next, leaves the session and exits, so its pid keeps changing and no group holds it.
    # It appends one byte per generation to a file: the file stops growing once the chain is dead. Bounded in time
    # and generations, so that even a failure of this test leaves nothing running for long.
    body = """\
        import os, time
        here = os.path.dirname(os.path.abspath(__file__))
        beat = os.open(os.path.join(here, "beat"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        with open(os.path.join(here, "pid"), "w") as f:
            f.write(f"{os.getpid()}\\n")
        end = time.time() + 8
        for _ in range(30000):
            os.write(beat, b".")
            if time.time() > end or os.fork():
                os._exit(0)
            os.setsid()
    """
    child = process.spawn([PY, str(script(tmp_path, "chain.py", body))])
    wait_for_line(tmp_path / "pid")
    beat = tmp_path / "beat"
    while beat.stat().st_size < 20:
        time.sleep(0.01)
    assert child.kill_tree(grace=0.2) == []
    size = beat.stat().st_size
    time.sleep(0.3)
    assert beat.stat().st_size == size, "the chain went on forking after kill_tree"


@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_kill_marked_ends_what_a_dead_harness_left_behind(tmp_path: Path) -> None:
    # The run's owner variable is what a restarted harness knows of runs whose Child handle died with the old one.
    owner = str(tmp_path / "repo")
    body = """\
        import os, signal, time
        here = os.path.dirname(os.path.abspath(__file__))
        if os.fork() == 0:
            os.setsid()
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            with open(os.path.join(here, "left"), "w") as f:
                f.write(f"{os.getpid()}\\n")
            time.sleep(600)
    """
    child = process.spawn([PY, str(script(tmp_path, "left.py", body))], env={**os.environ, "RUN_OWNER_X": owner})
    assert child.wait(20) == 0
    left = int(wait_for_line(tmp_path / "left"))
    assert proctable.scan("RUN_OWNER_X", owner) == [left]
    assert proctable.scan("RUN_OWNER_X", owner + "/other") == []
    assert proctable.kill_marked("RUN_OWNER_X", owner, grace=0.3) == [left]
    assert not alive(left)
    assert proctable.kill_marked("RUN_OWNER_X", owner, grace=0.3) == []


def test_kill_tree_after_a_normal_exit_is_quick_and_clean(tmp_path: Path) -> None:
    child = process.spawn([PY, "-c", "pass"])
    assert child.wait(20) == 0
    assert child.kill_tree(grace=30) == []
    assert child.survivors() == []


def test_context_manager_kills_the_tree(tmp_path: Path) -> None:
    with process.spawn([PY, "-c", "import time; time.sleep(600)"]) as child:
        assert child.wait(0.05) is None
    assert child.returncode is not None
    assert child.survivors() == []
