"""One measurement of the checked-out commit: its run in its jail, the guards around it, then the trusted evaluator."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness import jails, sandbox
from harness.config import Config
from harness.evaluate import RunResult, evaluate, trusted_metric
from harness.gitdir import ControlSnapshot
from harness.paths import LEDGER, RUNS, Layout
from harness.repo import Repo

REMOVED_SHOWN = 20  # of the files a run left in the tree, how many its ledger row names
_HARNESS_FILES = frozenset({LEDGER, RUNS})  # the harness's own files beside the tree, never a run's leftovers


@dataclass(frozen=True)
class Tree:
    """The repository's own working tree as a night (or `autoresearch check`) measures in it."""

    repo: Repo
    layout: Layout
    tag: str  # whose logs and folders under runs/ the runs use
    devices: tuple[str, ...]  # the GPU device nodes runs get
    control: ControlSnapshot  # .git's control files as the harness left them: a run that changes them is tampered


@dataclass(frozen=True)
class Measured:
    """A run's result, and what the guards around it found and undid."""

    result: RunResult
    removed: list[str] = field(default_factory=list)  # files it left in the working tree (no sandbox), now gone
    control: list[str] = field(default_factory=list)  # .git control files it changed, now put back


def measure(
    tree: Tree,
    config: Config,
    exp_id: int,
    repeat: int = 0,
    started: Callable[[], None] = lambda: None,
    kind: str = "",
    scoring: Callable[[], None] = lambda: None,
) -> Measured:
    """Run the checked-out tree once as experiment `exp_id` (the `repeat`-th time), sandboxed when the sandbox is in
    force, and judge it; with `evaluate:` in program.md, the evaluator decides the metric. `started` is called just
    before the run starts. Whatever the run did to .git's control files is undone (and makes it tampered); without
    a sandbox, files it left in the working tree are removed, so the next run starts from the committed tree alone.
    `scoring` is called just before the evaluator starts (a phase of its own, under its own limit)."""
    repo, layout, tag = tree.repo, tree.layout, tree.tag
    sb = sandbox.probe(config.sandbox, devices=tree.devices)
    root = repo.root
    out = layout.run_out(tag, exp_id, repeat, kind)
    before = set() if sb.active else repo.untracked()
    compiled = {} if sb.active else compiled_files(root, jails.guarded(config))
    ledger = b"" if sb.active else _read(layout.ledger)  # without a sandbox a run could write rows of its own
    with jails.run_jail(sb, repo, layout, config, layout.work(tag, "run"), out, tree.devices) as jail:
        started()
        result = evaluate(
            root, config.run, metric=config.metric, timeout=config.timeout,
            log=layout.run_log(tag, exp_id, repeat, kind), jail=jail, protected=jails.guarded(config),
        )  # fmt: skip
    result = dataclasses.replace(result, out=out)
    control = repo.restore_control(tree.control)
    if not sb.active and _read(layout.ledger) != ledger:
        _write(layout.ledger, ledger)
        control.append(layout.ledger.name)
    if control:
        reason = "changed harness files (put back): " + ", ".join(control)
        result = dataclasses.replace(result, outcome="tampered", metric=None, reason=reason)
    removed: list[str] = []
    if not sb.active:
        left = repo.untracked() - before
        removed = sorted(p for p in left if p.split("/")[0] not in _HARNESS_FILES)
        repo.clean(removed)
        removed += purge_compiled(root, jails.guarded(config), compiled)
    if config.evaluate and result.outcome != "tampered":
        if result.outcome in ("ok", "crash") and result.exit_code == 0:
            scoring()
        with jails.evaluator_jail(sb, repo, config, layout.work(tag, "evaluator"), out) as jail:
            result = trusted_metric(
                result, jail, config.evaluate, metric=config.metric, timeout=config.evaluate_timeout,
                log=layout.eval_log(tag, exp_id, repeat, kind), out=out,
            )  # fmt: skip
    return Measured(result, removed[:REMOVED_SHOWN], control)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def _write(path: Path, data: bytes) -> None:
    """Put the ledger back as the harness wrote it: whole, by a rename, never through a link a run put there."""
    tmp = path.with_name(f".{path.name}.restore")
    tmp.unlink(missing_ok=True)
    tmp.write_bytes(data)
    os.replace(tmp, path)


def compiled_files(root: Path, protected: Sequence[str]) -> dict[Path, tuple[int, int, int]]:
    """Every compiled file (*.pyc) under the protected paths, with what identifies its version on disk."""
    found: dict[Path, tuple[int, int, int]] = {}
    for rel in protected:
        top = root / rel
        for path in top.rglob("*.pyc") if top.is_dir() else ():
            with contextlib.suppress(OSError):
                st = path.lstat()
                found[path] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return found


def purge_compiled(root: Path, protected: Sequence[str], before: dict[Path, tuple[int, int, int]]) -> list[str]:
    """Remove every compiled file under the protected paths that appeared or changed since `before`; returns them.

    Without a sandbox a run can write a .pyc into the harness's __pycache__ that would run the next time the harness
    imports that module. A .pyc written by Python itself (an `autoresearch log` in another terminal) cannot be told
    apart from a planted one cheaply, so both go: Python writes its own again from the source."""
    purged = []
    for path, identity in compiled_files(root, protected).items():
        if before.get(path) != identity:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            purged.append(str(path.relative_to(root)))
    return sorted(purged)
