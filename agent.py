"""
The meta-agent: reads program.md, looks at what the night has tried, and proposes the next edit of the mutable file.

Usage: the harness calls it; a person edits the prompts below to change the strategy.
    autoresearch run --agent llm          # propose() once per experiment
    autoresearch hyper                    # rewrite() proposes a new version of this very file

The contract: propose(task, llm) and rewrite(task, llm) each return a Proposal (a one-line description, the whole
new file, and notes that come back as task.notes next time). `llm.complete(system=..., messages=...)` is a proxy:
the harness makes the real call, holds the key, meters the tokens and enforces the spend cap.
"""

import difflib
import re

from harness.task import Proposal

# ---------------------------------------------------------------------------------------------------------------
# Strategy: the prompts (edit these first)

SYSTEM = """You are a research engineer running one experiment at a time, all night, to improve a single metric.
Each experiment changes one file; the harness runs it with a fixed time budget, keeps the change if the metric
improves beyond the noise, and resets it otherwise. Good experiments are small, testable ideas with a clear reason.
Read the history: do not repeat what failed, build on what was kept, and fix a crash if the last run crashed.

Answer in exactly this format:
DESCRIPTION: <one line saying what this experiment tries and why>
NOTES: <optional: what you want to remember for the next experiments>
then one or more edit blocks:
<<<<<<< SEARCH
<exact lines of the current file>
=======
<the new lines>
>>>>>>> REPLACE
Each SEARCH must match the current file exactly, including indentation. To replace the whole file instead, send
it in one ```python fenced block after the NOTES line."""

REWRITE = """Now improve yourself: below is your own source, the agent that proposes these experiments. Propose one
change that should make its proposals better (prompts, history handling, the edit format), keeping the contract:
top-level propose(task, llm) and rewrite(task, llm), only imports, defs, classes and constants at top level."""

RETRY = """Edit block {n} did not apply: {why}
{closest}{applied}Send the corrected block(s) only, in the same format (DESCRIPTION and NOTES may be omitted)."""

MAX_TOKENS = 8000  # one reply; the edit blocks of a small change fit easily
TAIL_CHARS = 1500  # how much of the last crash's log the model sees
NOTES_CHARS = 1500  # the notes carried to the next experiment; bounded, like everything in the changing suffix
REASON_CHARS = 200  # of each failure's reason in the review
CACHE = {"type": "ephemeral", "ttl": "1h"}  # a run takes minutes: the default 5-minute cache would lapse between calls

# ---------------------------------------------------------------------------------------------------------------
# Entry points


def propose(task, llm):
    """The next experiment: a description and the new content of the mutable file."""
    prefix = f"# program.md\n{task.program}\n\n# {task.mutable_path} (current champion)\n{task.mutable_content}"
    return _edit(llm, SYSTEM, prefix, _situation(task), task.mutable_content, task.mutable_path)


def rewrite(task, llm):
    """HyperAgent mode: a new version of this file, proposed by the model."""
    prefix = f"# program.md\n{task.program}\n\n# agent.py (your own source)\n{task.agent_source}"
    suffix = _situation(task) + "\n\n" + REWRITE
    return _edit(llm, SYSTEM, prefix, suffix, task.agent_source, "agent.py")


# ---------------------------------------------------------------------------------------------------------------
# The prompt: a stable prefix (cached) and a bounded suffix (the night so far)


def _situation(task):
    """The changing part: where the night stands, a reviewer's reading of recent failures, and the agent's notes."""
    goal = "lower" if task.direction == "minimize" else "higher"
    lines = [f"Metric: {task.metric} ({goal} is better). Baseline {_f(task.baseline)}, champion {_f(task.best)}."]
    if task.kept:
        lines.append("Kept so far (these made the champion):")
        lines += [f"  #{a.id} {_f(a.metric)} {a.description}" for a in task.kept]
    recent = task.history  # already bounded by program.md's `history`
    if recent:
        lines.append("Recent experiments, oldest first (id, status, metric, delta, description):")
        lines += [f"  #{a.id} {a.status} {_f(a.metric)} {_d(a.delta)} {a.description}" for a in recent]
    review = [_review(a) for a in recent[-5:] if a.status not in ("keep",)]
    if review:
        lines.append("Review of the latest failures (issue / evidence / suggested fix):")
        lines += [f"  - {r}" for r in review]
    if task.crash_tail:
        lines.append(f"The last run crashed; the end of its log:\n{task.crash_tail[-TAIL_CHARS:]}")
    if task.notes:
        lines.append(f"Your notes from last time:\n{task.notes[-NOTES_CHARS:]}")
    lines.append(f"Propose experiment #{task.experiment}.")
    return "\n".join(lines)


def _review(a):
    """Why an experiment failed, said the same way every time so the history reads consistently."""
    why = a.reason[:REASON_CHARS]
    if a.status == "discard":
        return f"#{a.id} no gain / {why or _d(a.delta)} / try a different idea"
    if a.status in ("crash", "timeout"):
        return f"#{a.id} {a.status} / {why or 'no metric'} / fix the bug or make it cheaper, or drop the idea"
    if a.status == "duplicate":
        return f"#{a.id} duplicate / {why} / propose something not tried yet"
    return f"#{a.id} {a.status} / {why or 'rejected before running'} / follow the reply format and rules"


def _f(x):
    return "n/a" if x is None else f"{x:.6f}"


def _d(x):
    return "" if x is None else f"{x:+.6f}"


# ---------------------------------------------------------------------------------------------------------------
# The edit format: SEARCH/REPLACE blocks or a whole file; a block that does not apply goes back once with the reason

BLOCK = r"<<<<<<< SEARCH\n(.*?)\n?=======\n(.*?)\n?>>>>>>> REPLACE"
FENCE = r"```[a-zA-Z0-9_+-]*\n(.*?)```"


def _edit(llm, system, prefix, suffix, content, path):
    messages = [{"role": "user", "content": [
        {"type": "text", "text": prefix, "cache_control": CACHE},
        {"type": "text", "text": suffix},
    ]}]  # fmt: skip
    reply = llm.complete(system=system, messages=messages, max_tokens=MAX_TOKENS).text
    description, notes = _field(reply, "DESCRIPTION"), _field(reply, "NOTES")
    new, failure = _apply(reply, content, path)
    if failure:
        messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": failure[1]}]
        retry = llm.complete(system=system, messages=messages, max_tokens=MAX_TOKENS).text
        new, again = _apply(retry, failure[0], path)
        if again:
            raise ValueError(f"edits did not apply after one retry: {again[1].splitlines()[0]}")
        description = description or _field(retry, "DESCRIPTION")
    if not description:
        raise ValueError("the reply has no DESCRIPTION line")
    return Proposal(description=description, content=new, notes=notes)


def _field(reply, name):
    match = re.search(rf"^{name}:[ \t]*(.*)$", reply, re.MULTILINE)
    return match.group(1).strip() if match else ""


def _apply(reply, content, path):
    """(new content, None) or (partly edited content, (that content, message for the model))."""
    blocks = re.findall(BLOCK, reply, re.DOTALL)
    if not blocks:
        fences = [f for f in re.findall(FENCE, reply, re.DOTALL) if len(f) > len(content) // 2]
        if fences:
            return fences[-1], None
        raise ValueError("the reply has neither SEARCH/REPLACE blocks nor a whole file")
    for n, (search, replace) in enumerate(blocks, 1):
        if search and search in content:
            content = content.replace(search, replace, 1)
            continue
        why = "its SEARCH text is empty" if not search else f"its SEARCH text is not in {path}"
        applied = f"Blocks 1-{n - 1} applied; do not re-send them.\n" if n > 1 else ""
        rest = f"Blocks {n + 1}-{len(blocks)} were not tried; send them again too.\n" if n < len(blocks) else ""
        message = RETRY.format(n=n, why=why, closest=_closest(search, content), applied=applied + rest)
        return content, (content, message)
    return content, None


def _closest(search, content):
    """The lines of the file most like a SEARCH text that did not match, so the model can copy them exactly."""
    want, lines = search.splitlines(), content.splitlines()
    if not want or not lines:
        return ""
    size = len(want)
    best, start = 0.0, 0
    for i in range(max(1, len(lines) - size + 1)):
        ratio = difflib.SequenceMatcher(None, "\n".join(want), "\n".join(lines[i : i + size])).quick_ratio()
        if ratio > best:
            best, start = ratio, i
    snippet = "\n".join(lines[start : start + size])
    return f"The closest lines in the file ({start + 1}-{start + size}) are:\n{snippet}\n"
