"""Where a model-written process works: its scratch copy of the tree, its output folder, its sandbox view and its
environment, for a run, the trusted evaluator, and an agent child alike."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import cgroup, childenv, limits, process, sandbox
from harness.cgroup import Cgroup
from harness.config import Config
from harness.limits import Enforcement
from harness.paths import LEDGER, PROGRAM, RUNS, Layout
from harness.sandbox import Sandbox, View
from harness.visibility import Sight

if TYPE_CHECKING:  # the jails take a Repo; the views and copies below work without GitPython installed
    from harness.repo import Repo

GIT_DIR = ".git"
# Where a sandboxed run and its evaluator find $AUTORESEARCH_OUT: one path for every run, so that no run can tell
# from it which experiment, or which re-run of one, it is.
OUT = Path("/tmp/autoresearch-out")


@dataclass(frozen=True)
class Jail:
    """How one process is started: inside its sandbox view when the sandbox is active, plainly in `cwd` otherwise."""

    sandbox: Sandbox
    view: View | None  # None: no sandbox in force
    env: dict[str, str]
    cwd: Path
    enforcement: Enforcement | None = None  # the limits of what it starts; None: none (an agent child's own)
    written: tuple[Path, ...] = ()  # the folders whose growth counts toward its output limit

    def spawn(self, argv: Sequence[str], group: Cgroup | None = None, **options: Any) -> process.Child:
        """Start `argv` (a shell runs a command line given as ["/bin/sh", "-c", line]) with the jail's environment,
        inside `group` (made by the caller from `enforcement`) and under the enforcement's rlimits."""
        outer = self.enforcement.wrap([], group) if self.enforcement else []
        if self.view is None:
            return process.spawn([*outer, *argv], cwd=self.cwd, env=self.env, **options)
        return sandbox.spawn(self.sandbox, self.view, argv, env=self.env, outer=outer, **options)


def enforcement(config: Config, root: Path) -> Enforcement:
    """How every run and evaluator of this night is limited on this machine (see harness.limits)."""
    workers = sandbox.worker_count(config.workers, sandbox.visible_gpus())
    found = limits.resolve(config.max_memory, config.max_processes, config.max_output, workers, root)
    return Enforcement(found, cgroup.control())


def guarded(config: Config) -> tuple[str, ...]:
    """Protected paths a run must not change; program.md is left out because the person edits it mid-run."""
    return tuple(p for p in config.protected if p != PROGRAM)


def unprotected(files: Iterable[str], config: Config) -> list[str]:
    """The files a run's scratch copy needs: the protected ones are shown read-only from the repository over it."""
    protected = [p.rstrip("/") for p in guarded(config)]
    return [rel for rel in files if not any(rel == p or rel.startswith(p + "/") for p in protected)]


def sight(root: Path, config: Config) -> Sight:
    """What a run or an agent of the repository at `root` may see, as program.md's `hidden:` and `data:` say."""
    return Sight.of(root, config.hidden, config.data)


def copied(files: Iterable[str], config: Config, seen: Sight) -> list[str]:
    """The files a scratch copy holds: the unprotected ones (the protected are shown read-only over it) that are not
    hidden."""
    return [rel for rel in unprotected(files, config) if not seen.is_hidden(rel)]


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
        yield Jail(sb, None, childenv.run_env(root, config.budget, out=out), root, enforcement(config, root), (out,))
        return
    remove(work)  # what a night killed with -9 left
    scratch(sb, root, work, copied(repo.tracked(), config, sight(root, config)))
    try:
        with tree_jail(sb, root, config, work, out, devices) as jail:
            yield jail
    finally:
        remove(work)


@contextlib.contextmanager
def tree_jail(
    sb: Sandbox,
    root: Path,
    config: Config,
    tree: Path,
    out: Path,
    devices: tuple[str, ...],
    env: Mapping[str, str] | None = None,
) -> Iterator[Jail]:
    """The jail of a run in `tree`, a checkout of one version of the repository at `root` made by the caller: in the
    sandbox, `tree` appears at `root` as run_jail's copy does; without it, the run works in `tree` itself. `env` is
    added to the run's environment (the worker's device)."""
    extra = dict(env or {})
    enforced = enforcement(config, root)
    if not sb.active:
        yield Jail(sb, None, {**childenv.run_env(root, config.budget, out=out), **extra}, tree, enforced, (out,))
        return
    seen = sight(root, config)
    view = repo_view(
        root, tree, protected=guarded(config), hidden=[LEDGER, RUNS, *seen.masked()], data=seen.declared(),
        writable=[(out, OUT)], network=config.network, devices=devices, tmpfs_size=enforced.tmpfs_size(),
    )  # fmt: skip
    run_env = childenv.run_env(root, config.budget, out=OUT, home=sandbox.HOME)
    yield Jail(sb, view, {**run_env, **extra}, root, enforced, (out, tree))


@contextlib.contextmanager
def evaluator_jail(sb: Sandbox, repo: Repo, config: Config, work: Path, out: Path) -> Iterator[Jail]:
    """The jail of the trusted evaluator: the repository as it stands (its protected files and the hidden data
    included) and the run's `out` read-only, an empty scratch folder of its own, no network."""
    with evaluator_jail_at(sb, repo.root, config, work, out) as jail:
        yield jail


@contextlib.contextmanager
def evaluator_jail_at(
    sb: Sandbox, root: Path, config: Config, work: Path, out: Path, env: Mapping[str, str] | None = None
) -> Iterator[Jail]:
    """evaluator_jail for the repository at `root`, with `env` added to the evaluator's environment."""
    extra = dict(env or {})
    enforced = enforcement(config, root)
    if not sb.active:
        yield Jail(sb, None, {**childenv.run_env(root, config.budget, out=out), **extra}, root, enforced)
        return
    _fresh(work)
    sandbox.own(sb, work)
    try:
        # The hidden data outside the repository is shown too, also where the sandbox covers its place (/tmp, ~).
        outside = [(p, p) for p in sight(root, config).masked() if not p.is_relative_to(root.resolve())]
        view = repo_view(
            root, work, protected=guarded(config), hidden=[LEDGER, RUNS], readonly=[(out, OUT), *outside],
            untracked=True, tmpfs_size=enforced.tmpfs_size(),
        )  # fmt: skip
        run_env = childenv.run_env(root, config.budget, out=OUT, home=sandbox.HOME)
        yield Jail(sb, view, {**run_env, **extra}, root, enforced, (work,))
    finally:
        remove(work)


@contextlib.contextmanager
def agent_jail(sb: Sandbox, repo: Repo, config: Config, work: Path, readable: Sequence[Path]) -> Iterator[Jail]:
    """The jail of an agent child: a scratch copy of the repository's tracked files at the champion, read-only (no
    .git, ledger, runs/, hidden data or untracked file but `data:`), `readable` (its own source) shown, its own
    /tmp to write in, never a network."""
    root = repo.root
    _fresh(work)
    if not sb.active:
        yield Jail(sb, None, childenv.agent_env(root), work)
        return
    seen = sight(root, config)
    remove(work)
    scratch(sb, root, work, copied(repo.tracked(), config, seen))
    try:
        hidden = [LEDGER, RUNS, *seen.masked()]
        shown = [(path, path) for path in readable]
        view = repo_view(root, work, protected=guarded(config), hidden=hidden, data=seen.declared(), readonly=shown)
        view = dataclasses.replace(view, tree_readonly=True)
        yield Jail(sb, view, childenv.agent_env(root, home=sandbox.HOME), root)
    finally:
        remove(work)


def repo_view(
    repo: Path,
    tree: Path,
    *,
    protected: Iterable[str] = (),
    hidden: Iterable[str | Path] = (),
    data: Iterable[Path] = (),
    readonly: Iterable[tuple[Path, Path]] = (),
    writable: Iterable[tuple[Path, Path]] = (),
    untracked: bool = False,
    network: bool = False,
    devices: tuple[str, ...] = (),
    tmpfs_size: int | None = None,
) -> View:
    """The view of a process working in `tree`, a scratch copy of `repo`'s tracked files: the copy at the
    repository's own path; over it, read-only from the real tree, the `protected` paths and the `data` (the untracked
    paths program.md declares), with `untracked` every top-level entry the copy lacks too (the evaluator's view);
    the git folders (a worktree's and its main one's too) and `hidden` (relative to `repo`, or absolute, anywhere)
    covered; `readonly` and `writable` (source, where it appears) shown. Every other untracked file of the
    repository is out of sight: the copy does not hold it."""
    repo = repo.resolve()
    covered = {*_git_dirs(repo), *(repo / rel for rel in hidden)}
    covered = {path for path in covered if not any(other in path.parents for other in covered)}  # outermost only
    binds: dict[Path, Path] = {}
    for rel in protected:
        if (repo / rel).exists():
            binds[repo / rel] = repo / rel
    for path in data:
        binds[path] = path
    for name in sorted(os.listdir(repo)) if untracked else ():
        entry = repo / name
        if entry not in covered and not (tree / name).exists() and not (tree / name).is_symlink():
            binds[entry] = entry
    for source, dest in readonly:
        binds[source] = dest
    return View(
        tree=tree,
        at=repo,
        cwd=repo,
        readonly=tuple(binds.items()),
        writable=tuple(writable),
        hidden=tuple(sorted(covered)),
        network=network,
        devices=devices,
        tmpfs_size=tmpfs_size,
    )


def _git_dirs(repo: Path) -> set[Path]:
    """The repository's git folders: its .git, and for a worktree (whose .git is a file naming its own git folder)
    that folder and the main repository's .git, which the root bind would otherwise show."""
    dot = repo / GIT_DIR
    found = {dot}
    if dot.is_file():
        line = dot.read_text().strip()
        if line.startswith("gitdir:"):
            own = (repo / line.removeprefix("gitdir:").strip()).resolve()
            found.add(own)
            if own.parent.name == "worktrees":
                found.add(own.parent.parent)
    return found


def scratch(sb: Sandbox, repo: Path, dest: Path, files: Iterable[str]) -> Path:
    """A fresh copy at `dest` (which must not exist) of the listed files of `repo` (relative paths, as git lists
    them), owned by the sandbox's uid; returns `dest`. Copies, never links: a write must not reach the real file."""
    dest.mkdir(parents=True)
    for rel in files:
        source, target = repo / rel, dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        elif source.is_file():
            shutil.copy2(source, target)  # keeps the mode: an executable script stays one
        # a listed file missing from the working tree (deleted, not yet committed) is absent from the copy too
    sandbox.own(sb, dest)
    return dest


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
        with contextlib.suppress(FileNotFoundError):  # gone meanwhile (a worker ending its run removes it too)
            function(path)

    if folder.is_symlink():
        folder.unlink()
    elif folder.exists():
        shutil.rmtree(folder, onerror=allow)  # onerror, not onexc: Python 3.11
