"""
The hybrid agent's LLM side, an agent file: it reviews the optimizer's suggested point and accepts it or overrides it.

Usage: `autoresearch run --agent hybrid` runs it in a child process, like agent.py, once per experiment in which an
override is allowed (at most `override_share` of them). It sees what agent.py sees (program.md, the champion file,
the recent experiments) and task.suggestion: the optimizer's next point and the file it would run, the trials so
far, the best one and the best region. It answers with the suggested file (accept) or its own edit (override),
and a reason either way. Its `llm` is the harness's proxy: the key stays in the harness.
"""

import re
from typing import Any

from harness.task import Proposal, Task

# ---------------------------------------------------------------------------------------------------------------
# Strategy: the prompts

SYSTEM = """You are a research engineer working beside a Bayesian optimizer (Optuna TPE) on one file and one metric.
Each experiment the optimizer suggests values for the constants of its search space; the harness runs the change
with a fixed time budget and keeps it only if the metric improves beyond the noise. You see the optimizer's state
and its suggestion. Accept it unless you have a concrete reason to expect something better: a region the optimizer
has not explored but the evidence points to, a value outside its space, or a code change it cannot make. Overrides
are rationed, so spend them where your knowledge beats the optimizer's statistics.

Answer in exactly this format:
DECISION: accept  (or: override)
REASON: <one line: why>
For an override, also:
DESCRIPTION: <one line saying what this experiment tries>
NOTES: <optional: what you want to remember for the next experiments>
then one or more edit blocks against the current champion file:
<<<<<<< SEARCH
<exact lines of the current file>
=======
<the new lines>
>>>>>>> REPLACE"""

MAX_TOKENS = 4000  # an accept is one line; an override is a small edit
TRIALS_SHOWN = 25  # of the trials the optimizer shares, the latest this many go into the prompt
TAIL_CHARS = 1500
NOTES_CHARS = 1500
CACHE = {"type": "ephemeral", "ttl": "1h"}  # the prefix (program.md and the champion) changes only on a keep

# ---------------------------------------------------------------------------------------------------------------
# Entry points


def propose(task: Task, llm: Any) -> Proposal:
    """Accept the optimizer's suggestion (its file, unchanged) or override it with an edit of the champion."""
    s = task.suggestion
    if not s:
        raise ValueError("no optimizer suggestion in the task; this agent runs under --agent hybrid")
    prefix = f"# program.md\n{task.program}\n\n# {task.mutable_path} (current champion)\n{task.mutable_content}"
    messages = [{"role": "user", "content": [
        {"type": "text", "text": prefix, "cache_control": CACHE},
        {"type": "text", "text": _situation(task)},
    ]}]  # fmt: skip
    reply = llm.complete(system=SYSTEM, messages=messages, max_tokens=MAX_TOKENS)
    if reply.stop_reason == "max_tokens":
        raise ValueError("the reply was cut at max_tokens; nothing of it is applied")
    text = reply.text
    decision, reason, notes = _field(text, "DECISION").lower(), _field(text, "REASON"), _field(text, "NOTES")
    blocks = re.findall(BLOCK, text, re.DOTALL)
    if decision.startswith("accept") or (not decision and not blocks):
        return Proposal(s["description"], s["content"], notes=notes, reason=reason or "accepted")
    description = _field(text, "DESCRIPTION")
    if not description:
        raise ValueError("an override needs a DESCRIPTION line")
    return Proposal(description, _apply(blocks, task.mutable_content, task.mutable_path), notes=notes, reason=reason)


def rewrite(task: Task, llm: Any) -> Proposal:
    raise ValueError("the hybrid's advisor does not rewrite itself")


# ---------------------------------------------------------------------------------------------------------------
# The prompt's changing part: the optimizer's state, the night so far, the decision asked for


def _situation(task: Task) -> str:
    s = task.suggestion
    goal = "lower" if task.direction == "minimize" else "higher"
    lines = [f"Metric: {task.metric} ({goal} is better). Baseline {_f(task.baseline)}, champion {_f(task.best)}."]
    if task.noise:
        noise = f"one run varies by about {task.noise:.3g}; a keep must beat the champion by {task.margin:g}"
        lines.append(f"Noise: {noise}.")
    lines.append(f"Budget: each run has {task.budget:g} s of wall clock.")
    lines.append(f"The optimizer ({s.get('sampler', 'TPE')}) has learned {s.get('told', 0)} results. Its space:")
    lines += [f"  {name}: {_space(spec)}" for name, spec in task.search.items()]
    if s.get("fresh_at") is not None:
        lines.append(f"A kept change of the code started a fresh study at #{s['fresh_at']}: trials on older code "
                     "measured another program and are not in it.")  # fmt: skip
    importance = s.get("importance") or {}
    if importance:
        lines.append("Importance of each parameter (its share of the results' variation): "
                     + ", ".join(f"{k} {v:.2f}" for k, v in importance.items()))  # fmt: skip
    best = s.get("best") or {}
    if best:
        lines.append(f"Best trial: #{best.get('experiment')} {_f(best.get('value'))} {_params(best.get('params'))}")
    if s.get("region"):
        region = "; ".join(f"{k} {_region(v)}" for k, v in s["region"].items())
        top, of = s.get("region_of") or (0, 0)
        lines.append(f"Best region (the best {top} of {of} trials): {region}")
    trials = s.get("trials", [])[-TRIALS_SHOWN:]
    if trials:
        lines.append("Latest trials, oldest first (experiment, value or status, point, code version):")
        lines += [f"  #{t.get('experiment')} {_outcome(t)} {_params(t.get('params'))} [code {t.get('code') or '?'}]"
                  for t in trials]  # fmt: skip
    if task.history:
        lines.append("Recent experiments of the night, oldest first (id, status, metric, delta, description):")
        lines += [f"  #{a.id} {a.status} {_f(a.metric)} {_d(a.delta)} {a.description}" for a in task.history]
    if task.crash_tail:
        lines.append(f"The last run crashed; the end of its log:\n{task.crash_tail[-TAIL_CHARS:]}")
    if task.notes:
        lines.append(f"Your notes from last time:\n{task.notes[-NOTES_CHARS:]}")
    share = s.get("override_share", 0.3)
    lines.append(
        f"Overrides so far: {s.get('overrides', 0)} of {s.get('experiments', 0)} experiments "
        f"(at most {share:.0%} may be overrides)."
    )
    lines.append(f"The current code is version {s.get('code') or '?'}.")
    lines.append(f"The optimizer suggests for experiment #{task.experiment}: {_params(s.get('params'))}")
    lines.append("Accept it, or override it with your own edit.")
    return "\n".join(lines)


def _outcome(trial: dict[str, Any]) -> str:
    """A trial's value, or what became of it when its run gave none (a crash is told as the worst value seen)."""
    status = trial.get("status") or ""
    if status in ("keep", "discard", "") and trial.get("value") is not None:
        return _f(trial.get("value"))
    told = f" (told as {_f(trial['value'])})" if trial.get("value") is not None else ""
    return f"{status or 'failed'}{told}"


def _space(spec: dict[str, Any]) -> str:
    if "choices" in spec:
        return "one of " + ", ".join(map(str, spec["choices"]))
    return f"{spec.get('low')} .. {spec.get('high')}" + (" (log scale)" if spec.get("log") else "")


def _region(spec: dict[str, Any]) -> str:
    """A region as it is: the choices the best trials took, or the range of their values."""
    if "choices" in spec:
        return "{" + ", ".join(map(str, spec["choices"])) + "}"
    return f"{_g(spec.get('low'))}..{_g(spec.get('high'))}"


def _params(params: dict[str, Any] | None) -> str:
    return ", ".join(f"{k}={_g(v)}" for k, v in (params or {}).items())


def _g(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.6f}"


def _d(x: float | None) -> str:
    return "" if x is None else f"{x:+.6f}"


def _field(reply: str, name: str) -> str:
    match = re.search(rf"^{name}:[ \t]*(.*)$", reply, re.MULTILINE)
    return match.group(1).strip() if match else ""


# ---------------------------------------------------------------------------------------------------------------
# The edit: SEARCH/REPLACE blocks against the champion; one that does not apply fails the override (the optimizer's
# point runs instead, so a bad edit costs no experiment)

BLOCK = r"<<<<<<< SEARCH\n(.*?)\n?=======\n(.*?)\n?>>>>>>> REPLACE"


def _apply(blocks: list[tuple[str, str]], content: str, path: str) -> str:
    if not blocks:
        raise ValueError("an override needs SEARCH/REPLACE blocks")
    for n, (search, replace) in enumerate(blocks, 1):
        if not search or search not in content:
            raise ValueError(f"edit block {n} does not apply: its SEARCH text is not in {path}")
        content = content.replace(search, replace, 1)
    return content
