"""The baseline run once as a night runs it (its sandbox, limits and evaluator), creating no branch, ref or ledger row:
what `autoresearch check` shows of a night before it starts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness import sandbox
from harness.evaluate import RunResult, baseline_failed
from harness.lock import LoopLock
from harness.measure import Tree, measure
from harness.paths import Layout
from harness.program import Program
from harness.repo import Repo

TAG = ".check"  # runs/.check/: its logs, apart from every night's (a tag cannot start with a dot)


@dataclass(frozen=True)
class Trial:
    """The baseline run once as a night runs it: the run, the evaluator, and where their logs are."""

    result: RunResult
    protection: str
    failure: str  # "" when it ended well: else why, and the fix


def trial(root: Path, program: Program, started: Callable[[], None] = lambda: None) -> Trial:
    """Run the checked-out tree once in the sandbox a night uses, then the evaluator on it; logs under runs/.check/.
    Holds the loop lock while it runs, so it never runs beside a night of this repository."""
    repo = Repo(root)
    layout = Layout(repo.root)
    config = program.config
    layout.runs.mkdir(exist_ok=True)
    lock = LoopLock(layout.lock)
    lock.acquire()
    try:
        repo.ensure_ignored()
        devices = sandbox.gpu_devices()
        sb = sandbox.probe(config.sandbox, devices=devices)
        measured = measure(Tree(repo, layout, TAG, devices, repo.snapshot_control()), config, 0, started=started)
    finally:
        lock.release()
    result = measured.result
    protection = "bubblewrap" + (f", as uid {sb.user[0]}" if sb.user else "") if sb.active else sb.missing
    failure = ""
    if result.outcome != "ok":
        failure = baseline_failed(result.outcome, result, config.mutable, config.run)
    return Trial(result, protection, failure)


def describe(trial: Trial, program: Program, root: Path) -> list[str]:
    """What the trial did and what a night would record of it, as lines for a person."""
    config, result = program.config, trial.result

    def rel(path: Path) -> str:
        return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)

    memory = f", peak {result.peak_mem_mb:.0f} MB" if result.peak_mem_mb is not None else ""
    lines = [f"the baseline, once, as a night runs it ({trial.protection}):"]
    ran = "timed out" if result.outcome == "timeout" else f"{result.outcome} (exit {result.exit_code})"
    lines.append(
        f"  run:       {config.run}: {ran} in {result.seconds:.1f} s of its {config.budget:g} s budget (killed at "
        f"{config.timeout:g} s){memory}; log {rel(result.log)}"
    )
    if config.evaluate:
        took = f" in {result.eval_seconds:.1f} s" if result.eval_seconds is not None else ""
        said = f"{config.metric} = {result.metric:.6g}" if result.metric is not None else "no metric"
        log = result.log.with_name(result.log.name.replace(".log", ".eval.log"))
        lines.append(
            f"  evaluator: {config.evaluate}: {said}{took} (limit {config.evaluate_timeout:g} s); log {rel(log)}"
        )
        if result.claimed is not None:
            lines.append(f"  the run's own claim, kept apart: {config.metric} = {result.claimed:.6g}")
    if trial.failure:
        lines.append(f"a night would stop here: {trial.failure}")
    else:
        assert result.metric is not None
        lines.append(
            f"a night would record: experiment 0 (baseline) keep, {config.metric}={result.metric:.6f}, "
            f"{result.seconds:.1f} s; the champion then runs again until 3 runs back it, then experiment 1"
        )
    lines.append("nothing was created: no branch, ref or ledger row")
    return lines
