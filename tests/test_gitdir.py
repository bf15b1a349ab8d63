"""The git directory's control files put back after a hostile run, and the locks a killed git leaves cleared on the
next start without a person, while the locks of a live process are left."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness.gitdir import ControlSnapshot
from harness.repo import Repo
from harness.testing import alive, git, make_repo

FILES = {"train.py": "X = 1\n", "program.md": "the person's\n", "data.txt": "a\n"}


# --- the control files of .git ----------------------------------------------------------------------------------


def test_restore_control_undoes_what_a_run_did_to_config_and_hooks(tmp_path: Path):
    root = make_repo(tmp_path / "r", FILES)
    dot_git = root / ".git"
    repo = Repo(root)
    before = repo.snapshot_control()
    config = (dot_git / "config").read_bytes()
    sample = (dot_git / "hooks" / "pre-commit.sample").read_bytes()
    mode = (dot_git / "hooks" / "pre-push.sample").stat().st_mode
    (dot_git / "hooks" / "post-commit").write_text("#!/bin/sh\necho planted\n")
    (dot_git / "hooks" / "pre-commit.sample").unlink()
    (dot_git / "hooks" / "pre-push.sample").chmod(0o6777)
    (dot_git / "hooks" / "nested").mkdir()
    (dot_git / "hooks" / "nested" / "x").write_text("x")
    with open(dot_git / "config", "a") as f:
        f.write("[core]\n\tfsmonitor = /tmp/anything\n")
    (dot_git / "info" / "attributes").write_text("* filter=lfs\n")
    changed = repo.restore_control(before)
    assert changed == [
        ".git/config",
        ".git/hooks/nested",
        ".git/hooks/post-commit",
        ".git/hooks/pre-commit.sample",
        ".git/hooks/pre-push.sample",
        ".git/info/attributes",
    ]
    assert (dot_git / "config").read_bytes() == config
    assert (dot_git / "hooks" / "pre-commit.sample").read_bytes() == sample
    assert (dot_git / "hooks" / "pre-push.sample").stat().st_mode == mode
    assert not (dot_git / "hooks" / "post-commit").exists() and not (dot_git / "hooks" / "nested").exists()
    assert not (dot_git / "info" / "attributes").exists()
    assert repo.snapshot_control() == before
    assert repo.restore_control(before) == []


def test_a_config_replaced_by_a_link_is_restored_as_a_file_without_writing_through_it(tmp_path: Path):
    root = make_repo(tmp_path / "r", FILES)
    dot_git = root / ".git"
    repo = Repo(root)
    kept = repo.snapshot_control().dumps()  # as a restarted harness would read it back
    config = (dot_git / "config").read_bytes()
    theirs = tmp_path / "theirs.gitconfig"
    theirs.write_text(f"[core]\n\thooksPath = {tmp_path}\n")
    (dot_git / "config").unlink()
    (dot_git / "config").symlink_to(theirs)
    shutil.rmtree(dot_git / "hooks")
    (dot_git / "hooks").symlink_to(tmp_path)
    assert repo.restore_control(ControlSnapshot.loads(kept)) == [".git/config", ".git/hooks"]
    assert not (dot_git / "config").is_symlink() and (dot_git / "config").read_bytes() == config
    assert theirs.read_text() == f"[core]\n\thooksPath = {tmp_path}\n"
    assert (dot_git / "hooks").is_dir() and not (dot_git / "hooks").is_symlink()
    assert (dot_git / "hooks" / "pre-commit.sample").is_file()


def test_a_fifo_in_place_of_the_config_is_replaced_without_hanging(tmp_path: Path):
    root = make_repo(tmp_path / "r", FILES)
    repo = Repo(root)
    before = repo.snapshot_control()
    (root / ".git" / "config").unlink()
    os.mkfifo(root / ".git" / "config")
    assert repo.restore_control(before) == [".git/config"]
    assert (root / ".git" / "config").is_file()
    assert repo.changed() == []


# --- stale locks ------------------------------------------------------------------------------------------------


def git_stuck_in_a_hook(root: Path, flag: Path) -> subprocess.Popen[bytes]:
    """A plain git commit paused between locking and renaming (in its reference-transaction hook), in a session
    of its own: the state a kill -9 can leave behind."""
    hook = root / ".git" / "hooks" / "reference-transaction"
    hook.write_text(f'#!/bin/sh\nif [ "$1" = prepared ]; then touch "{flag}"; exec sleep 60; fi\n')
    hook.chmod(0o755)
    (root / "data.txt").write_text("by hand\n")
    proc = subprocess.Popen(["git", "commit", "-qam", "by hand"], cwd=root, start_new_session=True)
    deadline = time.monotonic() + 30
    while not flag.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the git commit never reached its hook"
        time.sleep(0.02)
    return proc


LOCKS = [".git/HEAD.lock", ".git/index.lock", ".git/refs/heads/main.lock"]


def test_locks_of_a_git_killed_mid_commit_are_cleared_on_the_next_call(tmp_path: Path):
    root = make_repo(tmp_path / "r", FILES)
    before = git(root, "rev-parse", "HEAD")
    proc = git_stuck_in_a_hook(root, tmp_path / "in-hook")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert all((root / lock).exists() for lock in LOCKS)
    refused = subprocess.run(["git", "commit", "-qam", "again"], cwd=root, capture_output=True, text=True)
    assert "index.lock': File exists" in refused.stderr
    repo = Repo(root)
    assert repo.clear_stale_locks() == [f"removed {lock}: no live process held it" for lock in LOCKS]
    assert repo.head() == before
    assert repo.commit_file("train.py", "X = 2\n", "X to 2") == repo.head()


def test_locks_of_a_git_still_running_are_left_and_it_is_named(tmp_path: Path):
    root = make_repo(tmp_path / "r", FILES)
    proc = git_stuck_in_a_hook(root, tmp_path / "in-hook")
    try:
        lines = Repo(root).clear_stale_locks(patience=0.2)
        assert len(lines) == 3
        for lock, line in zip(LOCKS, lines, strict=True):
            assert line.startswith(f"kept {lock}: pid {proc.pid} (git commit -qam by hand, which runs in this repo")
        assert all((root / lock).exists() for lock in LOCKS)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert len(Repo(root).clear_stale_locks()) == 3
    assert not any((root / lock).exists() for lock in LOCKS)


def test_a_lock_held_open_by_a_live_process_is_left_until_it_ends(tmp_path: Path):
    root = make_repo(tmp_path / "r", FILES)
    lock = root / ".git" / "index.lock"
    hold = "import os, sys, time; os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_EXCL); print(1, flush=True)\n"
    hold += "time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", hold, str(lock)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline()
        repo = Repo(root)
        [line] = repo.clear_stale_locks()
        assert line.startswith(f"kept .git/index.lock: pid {holder.pid} (") and "which has it open" in line
        assert lock.exists()
    finally:
        holder.kill()
        holder.wait()
    assert not alive(holder.pid)
    assert repo.clear_stale_locks() == ["removed .git/index.lock: no live process held it"]


def test_every_kind_of_lock_a_dead_git_left_is_cleared_whatever_its_age(tmp_path: Path):
    root = make_repo(tmp_path / "r", FILES)
    locks = [
        "packed-refs.lock",
        "config.lock",
        "ORIG_HEAD.lock",
        "refs/heads/autoresearch/t.lock",
        "refs/autoresearch/t/discarded/3.lock",
    ]
    # Made the way git makes them (exclusive create), by a process that then dies.
    make = "import os, sys\nfor p in sys.argv[1:]:\n    os.makedirs(os.path.dirname(p), exist_ok=True)\n"
    make += "    os.open(p, os.O_RDWR | os.O_CREAT | os.O_EXCL)\nos._exit(0)"
    subprocess.run([sys.executable, "-c", make, *(str(root / ".git" / lock) for lock in locks)], check=True)
    refused = subprocess.run(["git", "update-ref", "refs/autoresearch/t/discarded/3", "HEAD"], cwd=root)
    assert refused.returncode != 0
    repo = Repo(root)
    assert sorted(repo.clear_stale_locks()) == sorted(f"removed .git/{lock}: no live process held it" for lock in locks)
    repo.set_ref("refs/autoresearch/t/discarded/3", repo.head())
    repo.checkout_branch("autoresearch/t")
    assert repo.branch() == "autoresearch/t"


def test_a_git_started_after_a_lock_was_left_does_not_keep_it(tmp_path: Path):
    root = make_repo(tmp_path / "r", FILES)
    make = "import os, sys; os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_EXCL)"
    subprocess.run([sys.executable, "-c", make, str(root / ".git" / "index.lock")], check=True)
    time.sleep(2)  # more than the second of doubt given to a process's start time
    # A person's git left waiting in the repository, started after the crash: it cannot have made the lock.
    reader = subprocess.Popen(["git", "hash-object", "--stdin"], cwd=root, stdin=subprocess.PIPE)
    try:
        assert Repo(root).clear_stale_locks() == ["removed .git/index.lock: no live process held it"]
    finally:
        reader.communicate(b"")
