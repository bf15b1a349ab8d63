"""One loop per repository: the lock, who holds it, and the stop request."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import LockedError
from harness.lock import LoopLock, holder, request_stop


def test_a_second_holder_is_refused_with_the_pid_and_the_way_out(tmp_path: Path):
    path = tmp_path / "runs" / "loop.lock"
    with LoopLock(path):
        assert holder(path) == os.getpid()
        code = f"from harness.lock import LoopLock; from pathlib import Path; LoopLock(Path({str(path)!r})).acquire()"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.returncode != 0
        assert f"another loop is running on this repository (pid {os.getpid()})" in out.stderr
        assert "autoresearch stop" in out.stderr
    assert holder(path) is None


def test_a_holder_killed_with_sigkill_leaves_no_stale_lock(tmp_path: Path):
    path = tmp_path / "loop.lock"
    code = (
        f"from harness.lock import LoopLock; from pathlib import Path; LoopLock(Path({str(path)!r})).acquire()\n"
        "import time; time.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        while holder(path) is None:
            pass
        assert holder(path) == child.pid
    finally:
        child.kill()
        child.wait()
    with LoopLock(path):  # the kernel dropped the dead holder's lock
        pass


def test_stop_needs_a_running_loop_and_names_it(tmp_path: Path):
    lock, stop = tmp_path / "loop.lock", tmp_path / "stop"
    with pytest.raises(LockedError, match="no loop is running"):
        request_stop(lock, stop)
    with LoopLock(lock):
        assert request_stop(lock, stop) == os.getpid()
    assert stop.read_text() == str(os.getpid())
