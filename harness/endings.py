"""How a night ends, the same whatever its worker count: what stops it before its next proposal, and what a failure
that reached the top of the night becomes once the engine has cleaned up (a full disk a clean stop, a bug a crash
log)."""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from pathlib import Path

from harness import crash
from harness.errors import BudgetExceeded, Crashed, DiskFull, HarnessError, LimitReached, LoopEnd, StopRequested
from harness.paths import Layout
from harness.session import Options
from harness.text import one_line

DISK_FULL = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})  # no room left: a stop, never a crash


def spend_cap(spent: float, cap: float, tag: str) -> BudgetExceeded | None:
    """The night's LLM spend (across restarts of the tag) has reached `max_cost_usd`, or None."""
    if spent < cap:
        return None
    return BudgetExceeded(f"LLM spend ${spent:.2f} of night '{tag}' reached max_cost_usd ${cap:.2f}")


def watched(options: Options, layout: Layout, started: float) -> LoopEnd | None:
    """What ends the night even while a proposal is under way, or None: a stop request (consumed), or `--hours`."""
    if layout.stop_request.exists():
        layout.stop_request.unlink(missing_ok=True)
        return StopRequested("stopped by 'autoresearch stop'")
    if options.hours is not None and time.time() - started > options.hours * 3600:
        return LimitReached(f"reached --hours {options.hours:g}")
    return None


def watcher(options: Options, layout: Layout, started: float) -> Callable[[], None]:
    """What an agent at work calls between its steps: raises what `watched` says ends the night."""

    def watch() -> None:
        if end := watched(options, layout, started):
            raise end

    return watch


def due(options: Options, layout: Layout, started: float, asked: int, spent: float, cap: float) -> LoopEnd | None:
    """What ends the night before its next proposal, or None: what `watched` says, `--max-experiments` (it counts the
    proposals asked of the agent in this invocation), or the spend cap."""
    if end := watched(options, layout, started):
        return end
    if options.max_experiments is not None and asked >= options.max_experiments:
        return LimitReached(f"reached --max-experiments {options.max_experiments}")
    return spend_cap(spent, cap, options.tag)


def disk_full(error: BaseException) -> bool:
    """Whether `error` is the disk (or the file size limit) refusing a write."""
    return isinstance(error, OSError) and error.errno in DISK_FULL


def failed(error: Exception, crash_log: Path, tag: str) -> Crashed:
    """A failure the engine has cleaned up after: a person's mistake is raised as it is, a full disk is raised as
    DiskFull (a clean stop, exit status 1: whatever was under way is reconciled on the next start), and a bug is
    written to the crash log and becomes Crashed (exit status 3)."""
    if isinstance(error, HarnessError):
        raise error
    if isinstance(error, OSError) and disk_full(error):
        raise DiskFull(
            f"the disk is full ({error.strerror}: {error.filename}); free some space (or raise 'ulimit -f'), then "
            f"'autoresearch run --tag {tag}' goes on where this night stopped"
        ) from None
    log = crash.write(crash_log, error, context=f"autoresearch run --tag {tag}")
    return Crashed(f"crashed ({type(error).__name__}: {one_line(str(error))}); the traceback is in {log}")
