"""What a running loop is doing now: the status file it rewrites at each phase, and the sentence that describes it."""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path
from typing import Any, Protocol

from harness.config import Config
from harness.ledger import Experiment
from harness.night import Night
from harness.paths import Layout
from harness.text import flat

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
        "evaluate_timeout": config.evaluate_timeout if config.evaluate else None,
        "pace": pace(night),
        "last_run": night.measured_rows[-1].value if night.measured_rows else None,
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


PACE_WINDOW = 20  # experiments the pace is measured over: recent enough to follow a change of budget


def pace(night: Night) -> float | None:
    """Seconds per experiment lately: the median gap between the last experiments' rows (runs, re-runs, the champion
    re-measured and the agent's time included); None before two experiments are in."""
    times = [_epoch(row.time) for row in night.rows[-PACE_WINDOW - 1 :] if row.id > 0]
    gaps = sorted(b - a for a, b in itertools.pairwise(times) if a is not None and b is not None and b >= a)
    if gaps:
        return gaps[len(gaps) // 2]
    base = next((row for row in night.rows if row.id == 0 and row.status == "keep"), None)
    if base is None:
        return None
    # Before two experiments are in: two runs and their evaluator, as the baseline took them (a candidate's, and the
    # champion's re-run that the first experiments bring while its number is not yet trusted).
    scored = base.extra.get("eval_seconds")
    return 2 * (base.seconds + (scored if isinstance(scored, int | float) else 0.0))


def _epoch(iso: str) -> float | None:
    from datetime import datetime

    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


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
        ahead = outlook(state, now)
        ahead = f"; {ahead}" if ahead else ""
        return f"running (pid {pid}, tag {tag}, agent {agent}): {doing(state, now)}; {standing(state)}{ahead}"
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
    """The current phase in words, each step against its own limit: 'experiment 12 running for 2m10s of its 5m
    budget — 'raise LR'', '... the evaluator scoring it for 40s of its 5m limit', and why a re-run is made."""
    now = time.time() if now is None else now
    phase, exp, description = state.get("phase", "?"), state.get("experiment"), flat(state.get("description") or "")
    if phase == "stopped":
        return "stopped" + (f": {description}" if description else "")
    subject = "baseline" if phase == "baseline" or exp == 0 else f"experiment {exp}"
    started, step = state.get("started"), state.get("step") or "run"
    rerun, why = state.get("rerun") or "", state.get("why") or ""
    if phase == "stopping":
        text = f"stopping after {subject}"
    elif phase == "proposing":
        text = f"{subject}: the agent is proposing"
    else:
        if phase == "remeasuring":
            who = f"the champion (before experiment {exp})"
        elif rerun == "champion":
            who = f"{subject} (the champion beside it)"
        else:
            who = subject
        again = " again" if phase == "remeasuring" or rerun else ""
        text = f"{who}, the evaluator scoring it" if step == "evaluator" else f"{who} running{again}"
    if elapsed and _number(started) and phase in ("baseline", "remeasuring", "proposing", "evaluating"):
        spent = max(0.0, now - started)
        text += f" for {duration(spent)}"
        text += _against_limit(state, spent, step) if phase != "proposing" else ""
    if (rerun or phase == "remeasuring") and why:
        text += f" ({why})"
    if description:
        text += f" — '{description}'"
    return text


def _against_limit(state: dict[str, Any], spent: float, step: str) -> str:
    """', of its 5m budget' for a run (overtime past it until the kill), ', of its 5m limit' for the evaluator."""
    if step == "evaluator":
        limit = state.get("evaluate_timeout")
        return f" of its {duration(limit)} limit" if _number(limit) else ""
    budget, timeout = state.get("budget"), state.get("timeout")
    if not _number(budget):
        return ""
    text = f" of its {duration(budget)} budget"
    if spent > budget:
        text += f", overtime (killed at {duration(timeout)})" if _number(timeout) else ", overtime"
    return text


def outlook(state: dict[str, Any], now: float | None = None) -> str:
    """The pace of the night and when the next result lands: '~14 experiments/hour; the next result in ~3m'."""
    now = time.time() if now is None else now
    seconds = state.get("pace")
    if not _number(seconds) or seconds <= 0:
        return ""
    text = f"~{3600 / seconds:.3g} experiments/hour"
    since = state.get("since")  # when the experiment under way began (its proposal)
    if state.get("phase") in ("proposing", "evaluating", "remeasuring") and _number(since):
        left = seconds - (now - since)
        text += f"; the next result in ~{duration(left)}" if left > 0 else "; the next result any moment"
    return text


def standing(state: dict[str, Any]) -> str:
    """The night so far: 'best val_bpb 1.0234 (baseline 1.1002, -7.0%); kept 4 of 11; spend $0.42'."""
    metric, best, baseline = state.get("metric") or "metric", state.get("best"), state.get("baseline")
    last = state.get("last_run")
    if _number(best):
        text = f"best {metric} {best:.6g}"
        if _number(baseline):
            pct = f", {100 * (best - baseline) / abs(baseline):+.1f}%" if baseline else ""
            text += f" (baseline {baseline:.6g}{pct})"
    elif _number(last):
        text = f"first {metric} {last:.6g} (the baseline's; its best once its runs are in)"
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
