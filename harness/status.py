"""What a running loop is doing now: the status file it rewrites at each phase, and the sentence that describes it."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Protocol

from harness.config import Config
from harness.ledger import Experiment
from harness.night import Night
from harness.paths import Layout

PHASES = ("baseline", "remeasuring", "proposing", "evaluating", "stopping", "stopped")


class Screen(Protocol):
    """Where a running loop shows itself: the live display in a terminal, plain lines elsewhere."""

    def update(self, state: dict[str, Any]) -> None: ...

    def row(self, row: Experiment) -> None: ...

    def info(self, text: str) -> None: ...


def snapshot(
    tag: str,
    agent: str,
    phase: str,
    experiment: int,
    description: str,
    config: Config,
    night: Night,
    loop_started: float,
) -> dict[str, Any]:
    """The state a loop publishes (runs/status.json and the live display) when its phase changes."""
    now = time.time()
    return {
        "pid": os.getpid(),
        "tag": tag,
        "agent": agent,
        "phase": phase,
        "experiment": experiment,
        "description": description,
        "started": now,
        "budget": config.budget,
        "timeout": config.timeout,
        "best": night.best,
        "baseline": night.baseline,
        "kept": night.kept,
        "experiments": night.experiments,
        "spend_usd": round(night.spend_usd, 6),
        "metric": config.metric,
        "direction": config.direction,
        "updated": now,
        "loop_started": loop_started,
    }


def write_status(path: Path, state: dict[str, Any]) -> None:
    """Replace the status file at once (tmp + os.replace), so a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state, separators=(",", ":")), encoding="utf-8")
    os.replace(tmp, path)


def read_status(path: Path) -> dict[str, Any] | None:
    """The last state a loop wrote, or None when there is none (or it is not a state: a hand edit)."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):  # no loop yet; or not JSON, not UTF-8 (a hand edit)
        return None
    return state if isinstance(state, dict) else None


def pid_alive(pid: Any) -> bool:
    """Whether a process with this pid exists (signal 0 checks without sending anything)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False  # os.kill(0, ...) and negative pids would address whole process groups
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def describe(state: dict[str, Any], now: float | None = None, alive: bool | None = None) -> str:
    """One paragraph for `autoresearch status`: the phase and its time, the best so far, kept count, spend.

    `alive` overrides the pid check (the caller may know better, e.g. from the loop's lock).
    """
    now = time.time() if now is None else now
    pid, tag, agent = state.get("pid"), state.get("tag", "?"), state.get("agent", "?")
    phase = state.get("phase", "")
    if alive is None:
        alive = pid_alive(pid)
    if alive and phase != "stopped":
        return f"running (pid {pid}, tag {tag}, agent {agent}): {doing(state, now)}; {standing(state)}"
    when = _clock(state.get("updated"))
    ago = f" ({duration(now - state['updated'])} ago)" if _number(state.get("updated")) else ""
    if phase == "stopped":
        reason = state.get("description") or "stopped"
        return f"not running; last loop (pid {pid}, tag {tag}) stopped at {when}{ago}: {reason}; {standing(state)}"
    return (
        f"not running; last loop (pid {pid}, tag {tag}) ended without stopping cleanly at {when}{ago}, during "
        f"{doing(state, now, elapsed=False)}; 'autoresearch run --tag {tag}' resumes the night; {standing(state)}"
    )


def doing(state: dict[str, Any], now: float | None = None, elapsed: bool = True) -> str:
    """The current phase in words: 'experiment 12 evaluating for 2m10s of 5m budget — 'raise LR''."""
    now = time.time() if now is None else now
    phase, exp, description = state.get("phase", "?"), state.get("experiment"), state.get("description")
    if phase == "stopped":
        return "stopped" + (f": {description}" if description else "")
    subject = "baseline" if phase == "baseline" or exp == 0 else f"experiment {exp}"
    started, budget, timeout = state.get("started"), state.get("budget"), state.get("timeout")
    if phase == "stopping":
        text = f"stopping after {subject}"
    elif phase == "proposing":
        text = f"{subject}: the agent is proposing"
    elif phase == "remeasuring":
        text = f"the champion runs again, before experiment {exp},"
    else:
        text = f"{subject} evaluating"
    if elapsed and _number(started) and phase in ("baseline", "remeasuring", "proposing", "evaluating"):
        spent = max(0.0, now - started)
        text += f" for {duration(spent)}"
        if phase != "proposing" and _number(budget):
            text += f" of {duration(budget)} budget"
            if spent > budget:
                text += f", overtime (killed at {duration(timeout)})" if _number(timeout) else ", overtime"
    if description:
        text += f" — '{description}'"
    return text


def standing(state: dict[str, Any]) -> str:
    """The night so far: 'best val_bpb 1.0234 (baseline 1.1002, -7.0%); kept 4 of 11; spend $0.42'."""
    metric, best, baseline = state.get("metric") or "metric", state.get("best"), state.get("baseline")
    if _number(best):
        text = f"best {metric} {best:.6g}"
        if _number(baseline):
            pct = f", {100 * (best - baseline) / abs(baseline):+.1f}%" if baseline else ""
            text += f" (baseline {baseline:.6g}{pct})"
    else:
        text = f"no {metric} yet"
    kept, experiments, spend = state.get("kept", 0), state.get("experiments", 0), state.get("spend_usd") or 0.0
    return f"{text}; kept {kept} of {experiments}; spend ${spend:.2f}"


def describe_repo(root: Path) -> str:
    """What `autoresearch status` prints for the repository at `root`."""
    from harness.lock import holder

    layout = Layout(root)
    state = read_status(layout.status)
    if state is None:
        return (
            f"no loop has run here yet (no {layout.status.relative_to(root)}); start one: autoresearch run --tag <name>"
        )
    # The lock is the better witness: the kernel drops it when the loop dies, and a reused pid does not hold it.
    running = holder(layout.lock) is not None
    text = describe(state, alive=running)
    if running and layout.stop_request.exists():
        text += "; stop requested: the loop ends after this experiment"
    return text


def duration(seconds: Any) -> str:
    """A short duration: 45s, 2m10s, 5m, 1h02m."""
    s = round(float(seconds)) if _number(seconds) else 0
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m" + (f"{s % 60:02d}s" if s % 60 else "")
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _clock(epoch: Any) -> str:
    if not _number(epoch):
        return "an unknown time"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))
