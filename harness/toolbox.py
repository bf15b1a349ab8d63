"""The read-only tools an agent's model may use: what they are (TOOLS, sent with each request) and how the harness
answers them from the repository, bounded, never from .git internals, the ledger or outside the tree."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from harness import edits
from harness.errors import RepoError
from harness.task import Attempt, Task
from harness.visibility import Sight

if TYPE_CHECKING:
    from harness.brief import Evidence

VIEW_LINES = 250  # lines of a file one call returns
VIEW_CHARS = 16_000
SHOW_CHARS = 12_000  # of an experiment's diff
LOG_LINES = 80  # default, and ...
LOG_MAX_LINES = 200  # ... most, lines of a run's log one call returns
LOG_CHARS = 12_000

TOOLS: list[dict[str, Any]] = [
    {
        "name": "view_file",
        "description": "Read a file of the repository as the champion commit has it, with line numbers. The path is "
        "relative to the repository root; '.' or a folder lists its files. Long files come in windows of "
        f"{VIEW_LINES} lines: ask for start and end.",
        "input_schema": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "e.g. prepare.py"},
                "start": {"type": "integer", "description": "first line, from 1"},
                "end": {"type": "integer", "description": "last line"},
            },
            "required": ["path"],
        },
    },
    {
        "name": "show_experiment",
        "description": "An earlier experiment of this night by its id: its description, status, metric, run time, "
        "memory, a digest of its log, and its diff of the mutable file against the champion it was tried on.",
        "input_schema": {
            "type": "object",
            "properties": {"id": {"type": "integer", "description": "the experiment's id, e.g. 12"}},
            "required": ["id"],
        },
    },
    {
        "name": "run_log",
        "description": "The last lines of what an earlier experiment's run printed (its log).",
        "input_schema": {
            "type": "object",
            "properties": {
                "id": {"type": "integer", "description": "the experiment's id; 0 is the baseline"},
                "lines": {"type": "integer", "description": f"how many lines from the end (at most {LOG_MAX_LINES})"},
            },
            "required": ["id"],
        },
    },
]


def serve(name: str, args: Any, task: Task, evidence: Evidence) -> tuple[str, bool]:
    """(the answer to one tool call, whether it is not an error); a mistake of the model is an answer, not a raise."""
    if not isinstance(args, dict):
        return "the tool input must be an object", False
    try:
        if name == "view_file":
            return _view(task, evidence, args.get("path"), args.get("start"), args.get("end"))
        if name == "show_experiment":
            return _show(task, evidence, args.get("id"))
        if name == "run_log":
            return _log(task, evidence, args.get("id"), args.get("lines"))
    except (TypeError, ValueError) as e:
        return f"bad input for {name}: {e}", False
    return f"no tool named {name!r}; the tools are {', '.join(t['name'] for t in TOOLS)}", False


def describe(name: str, args: Any) -> str:
    """One line for the agent's log and the ledger: the tool and its input."""
    shown = json.dumps(args, sort_keys=True) if isinstance(args, dict) else repr(args)
    return f"{name} {shown[:200]}"


def _view(task: Task, evidence: Evidence, path: Any, start: Any, end: Any) -> tuple[str, bool]:
    where = _tree_path(path)
    if where is None:
        return f"{path!r} is not a path inside the repository's tree", False
    if Sight.of(evidence.root, task.hidden).is_hidden(where):
        return f"{where} is hidden data (program.md's `hidden:`): only the evaluator sees it", False
    try:
        text = evidence.repo.show(task.champion, where)
    except RepoError:
        return f"no file {where or '.'} in the champion's tree; view '.' to list the files", False
    if text.startswith(f"tree {task.champion}:"):  # a folder: git lists its entries
        return f"{where or '.'}/ holds:\n" + "\n".join(text.splitlines()[2:]), True
    if "\0" in text:
        return f"{where} is a binary file", False
    lines = text.splitlines()
    first = max(1, int(start or 1))
    last = min(len(lines), int(end or first + VIEW_LINES - 1), first + VIEW_LINES - 1)
    body = "\n".join(f"{i:5d}  {lines[i - 1]}" for i in range(first, last + 1))
    body = edits.head(body, VIEW_CHARS, "[... cut; ask for fewer lines]")
    more = " (ask with start/end for the rest)" if first > 1 or last < len(lines) else ""
    return f"{where}: lines {first}-{last} of {len(lines)}{more}\n{body}", True


def _tree_path(path: Any) -> str | None:
    """A path relative to the tree's root, or None when it could leave the tree or reach .git."""
    if not isinstance(path, str) or len(path) > 500 or "\\" in path or "\0" in path:
        return None
    parts = [p for p in path.strip().split("/") if p not in ("", ".")]
    if path.strip().startswith("/") or any(p == ".." or p.startswith(".git") for p in parts):
        return None
    return "/".join(parts)


def _find(task: Task, exp_id: Any) -> Attempt | None:
    wanted = int(exp_id)
    known = [*task.history, *task.kept, *([task.champion_run] if task.champion_run else [])]
    for a in known:
        if a.id == wanted:
            return a
    for i in task.archive:
        if i.id == wanted:
            return Attempt(i.id, i.status, i.metric, i.delta, i.description, commit=i.commit)
    return None


def _show(task: Task, evidence: Evidence, exp_id: Any) -> tuple[str, bool]:
    a = _find(task, exp_id)
    if a is None:
        return f"experiment {exp_id} is not among those this task knows (the recent, kept and archived ones)", False
    head = f"#{a.id} {a.status} {task.metric}={_num(a.metric)} delta={_num(a.delta)}: {a.description}"
    facts = [head]
    if a.reason:
        facts.append(f"reason: {a.reason}")
    if a.seconds is not None:
        facts.append(f"run: {a.seconds:.0f} s, peak memory {_num(a.peak_mem_mb)} MB")
    if a.digest:
        facts.append("log digest:\n" + a.digest)
    if not a.commit:
        return "\n".join([*facts, "nothing was committed for it"]), True
    diff = evidence.diff(a.commit, task.mutable_path) or "(no change to the mutable file)"
    return "\n".join([*facts, edits.head(diff, SHOW_CHARS, "[... diff cut]")]), True


def _log(task: Task, evidence: Evidence, exp_id: Any, lines: Any) -> tuple[str, bool]:
    a = _find(task, exp_id)
    if a is None or not a.log:
        return f"experiment {exp_id} has no run log this task knows of", False
    text = evidence.log_text(a.log)
    wanted = min(LOG_MAX_LINES, max(1, int(lines or LOG_LINES)))
    shown = edits.tail("\n".join(text.splitlines()[-wanted:]), LOG_CHARS)
    return f"{a.log}, the last {wanted} lines:\n{shown}", True


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.6g}"
