"""The git layer against hostile runs: planted hooks and config-driven programs never run, secrets never reach git,
tampered control files are put back, and the locks a killed git leaves never need a person."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness import repo as repo_module
from harness.errors import RepoError
from harness.repo import Repo, with_trailers
from harness.testing import git, make_repo

HOOKS = [
    *("applypatch-msg", "pre-applypatch", "post-applypatch", "pre-commit", "pre-merge-commit", "prepare-commit-msg"),
    *("commit-msg", "post-commit", "pre-rebase", "post-checkout", "post-merge", "pre-push", "pre-receive", "update"),
    *("proc-receive", "post-receive", "post-update", "reference-transaction", "push-to-checkout", "pre-auto-gc"),
    *("post-rewrite", "post-index-change", "fsmonitor-watchman"),
]
FILES = {"train.py": "X = 1\n", "program.md": "the person's\n", "data.txt": "a\n"}
SECRET = "sk-ant-api03-not-a-real-key"


def hostile(path: Path, marker: Path) -> Path:
    """A program a run could plant: it records that it ran, with its arguments and environment, in `marker`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\n{{ echo "ran: $0 $*"; env; }} >> "{marker}"\nexit 0\n')
    path.chmod(0o755)
    return path


def passthrough(path: Path, marker: Path) -> Path:
    """A hostile filter or textconv: it records that it ran and passes the content through, as a driver must."""
    path.write_text(f'#!/bin/sh\necho "ran: $0 $*" >> "{marker}"\nexec cat "$@"\n')
    path.chmod(0o755)
    return path


def plant_hooks(hooks_dir: Path, marker: Path) -> None:
    for name in HOOKS:
        hostile(hooks_dir / name, marker)


def exercise(repo: Repo, root: Path) -> None:
    """Every git operation the loop and recovery use, in the order a night uses them."""
    base = repo.head()
    repo.ensure_ignored()
    repo.changed()
    repo.checkout_branch("autoresearch/t")
    first = repo.commit_file("train.py", "X = 2\n", "X to 2")
    final = repo.amend_message(first, with_trailers("X to 2", {"Status": "keep"}), base)
    repo.set_ref("refs/autoresearch/t/discarded/1", first)
    assert repo.show(first, "train.py") == "X = 2\n"
    assert repo.message(final).startswith("X to 2")
    assert repo.refs("refs/autoresearch/") == {"refs/autoresearch/t/discarded/1": first}
    assert repo.exists("HEAD") and repo.resolve("HEAD") == first and repo.parent_of(first) == base
    (root / "data.txt").write_text("changed by a run\n")
    repo.restore(["data.txt"])
    repo.reset_hard(base, keep=("program.md",))
    repo.set_ref("refs/heads/autoresearch/t", final)
    repo.reset_hard(final)
    (root / "data.txt").write_text("b\n")
    repo.commit_all("data to b", ["data.txt"])
    repo.tag("autoresearch/t/seed-agent", base)
    repo.checkout_branch("main")
    assert repo.branch() == "main"


def test_planted_hooks_never_run_during_the_harnesss_commands(tmp_path: Path):
    root = make_repo(tmp_path / "r", FILES)
    marker = tmp_path / "ran.txt"
    plant_hooks(root / ".git" / "hooks", marker)
    exercise(Repo(root), root)
    assert not marker.exists()
    # The same hooks do run for a plain git: the plant is real.
    git(root, "commit", "-q", "--allow-empty", "-m", "by hand")
    assert "post-commit" in marker.read_text()


def test_programs_planted_in_git_config_never_run(tmp_path: Path):
    root = make_repo(tmp_path / "r", {**FILES, ".gitattributes": "* filter=evil diff=evil\n"})
    marker = tmp_path / "ran.txt"
    plant_hooks(tmp_path / "elsewhere", marker)
    program = hostile(tmp_path / "program.sh", marker)
    driver = passthrough(tmp_path / "driver.sh", marker)
    for key, value in {
        "core.hooksPath": tmp_path / "elsewhere",
        "core.fsmonitor": program,
        "diff.external": program,
        "filter.evil.clean": driver,
        "filter.evil.smudge": driver,
        "filter.evil.required": "true",
        "diff.evil.textconv": driver,
        "commit.gpgSign": "true",
        "gpg.program": program,
        "log.showSignature": "true",
    }.items():
        git(root, "config", key, str(value))
    exercise(Repo(root), root)
    assert not marker.exists()
    (root / "data.txt").write_text("by hand\n")
    subprocess.run(["git", "commit", "-qam", "by hand"], cwd=root, capture_output=True)
    ran = marker.read_text()
    assert "fsmonitor" in ran or "program.sh" in ran
    assert "driver.sh" in ran


def test_the_global_and_system_config_cannot_install_programs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = make_repo(tmp_path / "r", {**FILES, ".gitattributes": "* filter=evil\n"})
    marker, trace = tmp_path / "ran.txt", tmp_path / "trace.json"
    plant_hooks(tmp_path / "hooks", marker)
    program = hostile(tmp_path / "program.sh", marker)
    driver = passthrough(tmp_path / "driver.sh", marker)
    home = tmp_path / "home"
    home.mkdir()
    planted = (
        f"[core]\n\thooksPath = {tmp_path / 'hooks'}\n\tfsmonitor = {program}\n"
        f'[filter "evil"]\n\tclean = {driver}\n\tsmudge = {driver}\n[diff]\n\texternal = {program}\n'
        f"[trace2]\n\teventTarget = {trace}\n\tenvVars = ANTHROPIC_API_KEY\n"
    )
    (home / ".gitconfig").write_text(planted)
    (tmp_path / "system.gitconfig").write_text(planted)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_SYSTEM", str(tmp_path / "system.gitconfig"))
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    exercise(Repo(root), root)
    assert not marker.exists()
    assert not trace.exists() or SECRET not in trace.read_text()
    subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "by hand"], cwd=root, capture_output=True)
    assert "ran:" in marker.read_text()
    assert SECRET in trace.read_text()


def test_no_git_the_harness_starts_gets_its_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = make_repo(tmp_path / "r", FILES)
    # A git on PATH that writes down the environment it was given, then runs the real one.
    shim, seen = tmp_path / "bin" / "git", tmp_path / "seen"
    seen.mkdir()
    shim.parent.mkdir()
    # Python, unlike a shell, adds no variable of its own to what it writes down.
    shim.write_text(
        f"#!{sys.executable}\nimport os, sys\nreal = {shutil.which('git')!r}\n"
        f"lines = [f'{{k}}={{v}}' for k, v in os.environ.items()] + ['ARGS=' + ' '.join(sys.argv[1:])]\n"
        f"open(os.path.join({str(seen)!r}, str(os.getpid())), 'w').write(chr(10).join(lines) + chr(10))\n"
        f"os.execv(real, [real, *sys.argv[1:]])\n"
    )
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim.parent}:{os.environ['PATH']}")
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_notarealtokenatall000000000000000000")
    repo = Repo(root)
    repo.head()  # GitPython answers through a long-lived `git cat-file --batch-check`
    exercise(repo, root)
    cat_files = [pid for pid in _children() if b"cat-file" in _read(f"/proc/{pid}/cmdline")]
    assert cat_files
    environs = [_read(f"/proc/{pid}/environ").decode().replace("\0", "\n") for pid in cat_files]
    environs += [f.read_text() for f in seen.iterdir()]
    assert len(environs) > 10
    identity = {f"GIT_{role}_{what}" for role in ("AUTHOR", "COMMITTER") for what in ("NAME", "EMAIL")}
    ours = {"GIT_WORK_TREE", "GIT_CONFIG_COUNT", "ARGS"}  # ARGS: the shim's own line
    allowed = {*repo_module.GIT_ENV, *repo_module.PASSED, *repo_module.PERSON, *identity, *ours}
    for environ in environs:
        assert SECRET not in environ and "ghp_" not in environ
        names = {line.split("=", 1)[0] for line in environ.splitlines() if "=" in line}
        assert {n for n in names - allowed if not re.fullmatch(r"GIT_CONFIG_(KEY|VALUE)_\d+", n)} == set()
        # Only the one read of the person's own config (identity, safe.directory) sees their home.
        assert "HOME=/dev/null\n" in environ or "ARGS=config --list --show-scope -z" in environ


def _children() -> list[int]:
    me = str(os.getpid())
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _read(f"/proc/{entry}/stat").decode()
            if stat and stat[stat.rfind(")") + 2 :].split()[1] == me:
                pids.append(int(entry))
    return pids


def _read(path: str) -> bytes:
    """A /proc file's bytes, or none when its process ended after the listing named it (the machine runs others)."""
    try:
        return Path(path).read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return b""


def test_the_persons_identity_is_read_once_from_their_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = make_repo(tmp_path / "r", FILES)
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = Ada Lovelace\n\temail = ada@example.com\n")
    monkeypatch.setenv("HOME", str(home))
    sha = Repo(root).commit_file("train.py", "X = 2\n", "X to 2")
    assert git(root, "log", "-1", "--format=%an <%ae> / %cn <%ce>", sha) == (
        "Ada Lovelace <ada@example.com> / Ada Lovelace <ada@example.com>"
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a repository to another user needs root")
def test_a_repository_of_another_user_works_where_the_persons_config_trusts_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    root = make_repo(tmp_path / "r", FILES)
    for path in [root, *root.rglob("*")]:
        os.lchown(path, 65534, 65534)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    with pytest.raises(RepoError, match="dubious ownership"):
        Repo(root).changed()
    (home / ".gitconfig").write_text(f"[safe]\n\tdirectory = {root}\n")
    repo = Repo(root)
    assert repo.commit_file("train.py", "X = 2\n", "X to 2") == repo.head()


def test_a_driver_a_run_adds_to_an_included_file_is_switched_off_after_restore(tmp_path: Path):
    root = make_repo(tmp_path / "r", {**FILES, ".gitattributes": "* filter=late\n"})
    marker, included = tmp_path / "ran.txt", tmp_path / "included.gitconfig"
    included.write_text("")
    git(root, "config", "include.path", str(included))
    repo = Repo(root)
    before = repo.snapshot_control()
    driver = passthrough(tmp_path / "driver.sh", marker)
    included.write_text(f'[filter "late"]\n\tclean = {driver}\n\tsmudge = {driver}\n')  # outside .git
    assert repo.restore_control(before) == []
    exercise(repo, root)
    assert not marker.exists()
    (root / "data.txt").write_text("by hand\n")
    git(root, "commit", "-qam", "by hand")
    assert "driver.sh" in marker.read_text()


def test_a_worktree_slipped_into_the_config_cannot_send_git_elsewhere(tmp_path: Path):
    root = make_repo(tmp_path / "r", FILES)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "data.txt").write_text("the person's other files\n")
    git(root, "config", "core.worktree", str(elsewhere))
    exercise(Repo(root), root)
    assert (elsewhere / "data.txt").read_text() == "the person's other files\n"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["data.txt"]
    assert (root / "data.txt").read_text() == "a\n"  # main, where exercise() ends, has data.txt as committed
