"""Where a model-written process works: its scratch copy of the tree, its output folder, its sandbox view and its
environment, for a run, the trusted evaluator, and an agent child alike."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import childenv, process, sandbox
from harness.config import Config
from harness.paths import LEDGER, PROGRAM, RUNS, Layout
from harness.repo import Repo
from harness.sandbox import Sandbox, View


@dataclass(frozen=True)
class Jail:
    """How one process is started: inside its sandbox view when the sandbox is active, plainly in `cwd` otherwise."""

    sandbox: Sandbox
    view: View | None  # None: no sandbox in force
    env: dict[str, str]
    cwd: Path

    def spawn(self, argv: Sequence[str], **options: Any) -> process.Child:
        """Start `argv` (a shell runs a command line given as ["/bin/sh", "-c", line]) with the jail's environment."""
        if self.view is None:
            return process.spawn(list(argv), cwd=self.cwd, env=self.env, **options)
        return sandbox.spawn(self.sandbox, self.view, argv, env=self.env, **options)


def guarded(config: Config) -> tuple[str, ...]:
    """Protected paths a run must not change; program.md is left out because the person edits it mid-run."""
    return tuple(p for p in config.protected if p != PROGRAM)


def hidden_paths(root: Path, patterns: Sequence[str]) -> list[str]:
    """The paths (relative to `root`) that program.md's `hidden:` names now: each pattern as a glob, or as itself."""
    found: set[str] = set()
    for pattern in patterns:
        matches = [p for p in root.glob(pattern) if p.exists() or p.is_symlink()]
        found.update(str(p.relative_to(root)) for p in matches)
        if not matches and (root / pattern).exists():
            found.add(pattern)
    return sorted(found)


@contextlib.contextmanager
def run_jail(
    sb: Sandbox, repo: Repo, layout: Layout, config: Config, work: Path, out: Path, devices: tuple[str, ...]
) -> Iterator[Jail]:
    """The jail of one evaluation run: a scratch copy of the checked-out tree at `work` (removed afterwards), the
    protected files read-only over it, `.git`, the ledger, runs/ and the `hidden:` data out of sight, and `out`
    writable (kept). Without a sandbox the run works in the repository itself, with the same environment."""
    root = repo.root
    _fresh(out)
    sandbox.own(sb, out)
    if not sb.active:
        yield Jail(sb, None, childenv.run_env(root, config.budget, out=out), root)
        return
    remove(work)  # what a night killed with -9 left
    sandbox.scratch(sb, root, work, repo.tracked())
    try:
        view = sandbox.repo_view(
            root, work, protected=guarded(config), hidden=[LEDGER, RUNS, *hidden_paths(root, config.hidden)],
            writable=[out], network=config.network, devices=devices,
        )  # fmt: skip
        yield Jail(sb, view, childenv.run_env(root, config.budget, out=out, home=sandbox.HOME), root)
    finally:
        remove(work)


@contextlib.contextmanager
def evaluator_jail(sb: Sandbox, repo: Repo, config: Config, work: Path, out: Path) -> Iterator[Jail]:
    """The jail of the trusted evaluator: the repository as it stands (its protected files and the hidden data
    included) and the run's `out` read-only, an empty scratch folder of its own, no network."""
    root = repo.root
    if not sb.active:
        yield Jail(sb, None, childenv.run_env(root, config.budget, out=out), root)
        return
    _fresh(work)
    sandbox.own(sb, work)
    try:
        view = sandbox.repo_view(root, work, protected=guarded(config), hidden=[LEDGER, RUNS], readonly=[out])
        yield Jail(sb, view, childenv.run_env(root, config.budget, out=out, home=sandbox.HOME), root)
    finally:
        remove(work)


@contextlib.contextmanager
def agent_jail(sb: Sandbox, repo: Repo, config: Config, work: Path, readable: Sequence[Path]) -> Iterator[Jail]:
    """The jail of an agent child: the repository at the champion read-only (no .git, ledger, runs/ or hidden
    data), `readable` (its own source) shown, a scratch folder to work in, never a network."""
    root = repo.root
    _fresh(work)
    if not sb.active:
        yield Jail(sb, None, childenv.agent_env(root), work)
        return
    sandbox.own(sb, work)
    try:
        hidden = [LEDGER, RUNS, *hidden_paths(root, config.hidden)]
        view = sandbox.repo_view(root, work, protected=guarded(config), hidden=hidden, readonly=readable)
        yield Jail(sb, view, childenv.agent_env(root, home=sandbox.HOME), root)
    finally:
        remove(work)


def _fresh(folder: Path) -> None:
    remove(folder)
    folder.mkdir(parents=True)


def remove(folder: Path) -> None:
    """Remove a scratch folder a sandboxed process wrote in, whatever modes it left on what it made there."""

    def allow(function: Any, path: str, error: object) -> None:
        parent = os.path.dirname(path)
        with contextlib.suppress(OSError):
            os.chmod(parent, stat.S_IRWXU)
            if os.path.isdir(path) and not os.path.islink(path):
                os.chmod(path, stat.S_IRWXU)
        function(path)

    if folder.is_symlink():
        folder.unlink()
    elif folder.exists():
        shutil.rmtree(folder, onerror=allow)  # onerror, not onexc: Python 3.11
