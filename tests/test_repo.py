"""The git layer: commits, trailers git itself can read, resets that spare program.md, clear errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness.errors import RepoError
from harness.repo import Repo, blob_sha, with_trailers
from harness.testing import git, make_repo


def test_blob_sha_is_what_git_computes(tmp_path: Path):
    text = "X = 1  # é\n"
    out = subprocess.run(["git", "hash-object", "--stdin"], input=text.encode(), capture_output=True, check=True)
    assert blob_sha(text) == out.stdout.decode().strip()


def test_trailers_are_read_by_git_interpret_trailers(tmp_path: Path):
    repo_dir = make_repo(tmp_path / "r", {"train.py": "X = 1\n"})
    repo = Repo(repo_dir)
    first = repo.commit_file("train.py", "X = 2\n", "X to 2\nwith a second line")
    final = repo.amend_message(first, with_trailers("X to 2", {"Experiment": "3", "Status": "keep"}), repo.head())
    message = git(repo_dir, "log", "-1", "--format=%B", final)
    trailers = subprocess.run(["git", "interpret-trailers", "--parse"], input=message, capture_output=True, text=True)
    assert trailers.stdout.splitlines() == ["Experiment: 3", "Status: keep"]
    assert git(repo_dir, "log", "-1", "--format=%s", first) == "X to 2 with a second line"  # one line subject
    assert git(repo_dir, "rev-parse", f"{final}^{{tree}}") == git(repo_dir, "rev-parse", f"{first}^{{tree}}")


def test_reset_keeps_the_persons_program_md_and_reverts_the_rest(tmp_path: Path):
    repo_dir = make_repo(tmp_path / "r", {"train.py": "X = 1\n", "program.md": "old\n", "data.txt": "a\n"})
    repo = Repo(repo_dir)
    base = repo.head()
    repo.commit_file("train.py", "X = 2\n", "try")
    (repo_dir / "program.md").write_text("steered\n")
    (repo_dir / "data.txt").write_text("changed by a run\n")
    repo.reset_hard(base, keep=("program.md",))
    assert (repo_dir / "train.py").read_text() == "X = 1\n"
    assert (repo_dir / "data.txt").read_text() == "a\n"
    assert (repo_dir / "program.md").read_text() == "steered\n"
    assert repo.head() == base
    assert repo.changed() == ["program.md"]


def test_a_folder_that_is_not_a_repository_is_a_clear_error(tmp_path: Path):
    with pytest.raises(RepoError, match="is not a git repository; run 'git init' there first"):
        Repo(tmp_path)


def test_a_failed_git_command_names_the_command_and_gits_words(tmp_path: Path):
    repo = Repo(make_repo(tmp_path / "r", {"a.py": "x = 1\n"}))
    with pytest.raises(RepoError, match=r"git rev-parse --verify nope\^\{commit\} failed: .*"):
        repo.resolve("nope")


def test_commits_work_without_a_git_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    repo_dir = make_repo(tmp_path / "r", {"a.py": "x = 1\n"})
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    sha = Repo(repo_dir).commit_file("a.py", "x = 2\n", "x to 2")
    assert git(repo_dir, "log", "-1", "--format=%an <%ae>", sha) == "autoresearch <autoresearch@localhost>"
