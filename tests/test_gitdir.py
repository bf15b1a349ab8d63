"""The git directory's control files put back after a hostile run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from conftest import make_repo

from harness.gitdir import ControlSnapshot
from harness.repo import Repo

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
