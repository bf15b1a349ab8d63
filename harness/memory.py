"""The night's memory, kept by the harness: the family of each change, the table of families with what became of
them, when the night has stalled, and the refusal of a near-duplicate of a tried point before a run is spent."""

from __future__ import annotations

import ast
import difflib
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from harness.ledger import EVALUATED, FAILED, Experiment
from harness.task import Family, Proposed, Task

NEAR = 0.01  # constants within 1% of a tried point's (relative), with the rest of the file the same, are that point
DEAD_TRIES = 2  # a family tried this often without a result on the better side is a dead end
HYPOTHESIS_CHARS = 60  # of the model's own name for its idea, when the change is not only constants
# Broadening: the night is stalled after about this many times the experiments per keep up to the last keep (a prior
# of one keep in four experiments while there are few), within these bounds; a third sooner when most results since
# the last keep were inside the noise (the changes were too small for it to resolve them).
STALL_KEEPS = 1.5
MIN_PATIENCE, MAX_PATIENCE = 3, 12
PRIOR_KEEPS, PRIOR_TRIES = 1, 4


# --- a point: the constants of a file and the rest of it ----------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """A version of the mutable file as the memory compares it: its top-level constants, and the rest of its text
    with their values masked and whitespace runs collapsed (indentation kept: in Python it is code)."""

    constants: dict[str, object]
    rest: str


def point(content: str) -> Point:
    """The Point of a file; a file that does not parse as Python is all rest."""
    constants: dict[str, object] = {}
    lines = content.splitlines()
    try:
        tree = ast.parse(content)
    except (SyntaxError, ValueError):
        tree = None
    masked = set()
    for node in tree.body if tree else ():
        if not isinstance(node, ast.Assign) or len(node.targets) != 1 or node.end_lineno != node.lineno:
            continue
        target = node.targets[0]
        if not (isinstance(target, ast.Name) and target.id.isupper()):
            continue
        try:
            constants[target.id] = ast.literal_eval(node.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            continue
        masked.add(node.lineno - 1)
    rest = []
    for i, line in enumerate(lines):
        if i in masked:
            line = line.split("=", 1)[0] + "= #"
        body = line.rstrip()
        if body.strip():
            lead = len(body) - len(body.lstrip())
            rest.append(body[:lead] + " ".join(body.split()))
    return Point(constants, "\n".join(rest))


def near(a: Point, b: Point) -> str:
    """Why `a` is the point `b` (the same text modulo whitespace, or its constants within NEAR of b's), or ""."""
    if a.rest != b.rest or a.constants.keys() != b.constants.keys():
        return ""
    moved = [k for k in a.constants if a.constants[k] != b.constants[k]]
    if not moved:
        return "the same file modulo whitespace"
    for k in moved:
        x, y = a.constants[k], b.constants[k]
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (x, y))
        if not numbers or abs(x - y) > NEAR * max(abs(x), abs(y)):  # type: ignore[operator, arg-type]
            return ""
    shown = ", ".join(f"{k} {a.constants[k]!r} vs {b.constants[k]!r}" for k in moved[:3])
    return f"its constants are within {NEAR:.0%} of it ({shown})"


class Tried:
    """The points the night has spent a run on (and those in flight), to refuse a near-duplicate before its run."""

    def __init__(self) -> None:
        self.points: dict[int, tuple[str, Point]] = {}  # experiment -> (what it was, its point)

    def sync(self, rows: Iterable[Experiment], show: Callable[[str], str | None]) -> None:
        """Take in the rows that spent a run (their content read once, by `show(commit)`; None: unreadable)."""
        for row in rows:
            if row.id in self.points or row.status not in EVALUATED | FAILED or not row.commit:
                continue
            content = show(row.commit)
            if content is not None:
                self.add(row.id, "the baseline" if row.id == 0 else row.status, content)

    def add(self, exp_id: int, label: str, content: str) -> None:
        self.points[exp_id] = (label, point(content))

    def drop(self, exp_id: int) -> None:
        self.points.pop(exp_id, None)

    def refuse(self, content: str) -> tuple[int, str] | None:
        """(the tried experiment `content` is a near-duplicate of, the reason to refuse it before it runs), or None
        when it is a point not tried yet."""
        p = point(content)
        for exp_id, (label, q) in self.points.items():
            why = near(p, q)
            if why:
                return exp_id, f"a near-duplicate of experiment {exp_id} ({label}): {why}; not run"
        return None


# --- a family: what a change is about -----------------------------------------------------------------------------


def family(champion: str, content: str, hypothesis: str = "") -> str:
    """The family of a change: the constants it moved when it moves only constants, else the model's own one-line
    hypothesis, else the top-level definitions whose code it changed."""
    old, new = point(champion), point(content)
    both = old.constants.keys() | new.constants.keys()
    names = sorted(k for k in both if old.constants.get(k) != new.constants.get(k))
    if old.rest == new.rest and names:
        return "constants: " + ", ".join(names)
    if hypothesis.strip():
        words = " ".join(re.sub(r"[^\w .,+/-]", " ", hypothesis.lower()).split())
        return words[:HYPOTHESIS_CHARS].rstrip(" .,")
    where = _definitions(content, _changed_lines(champion, content))
    parts = (["constants: " + ", ".join(names)] if names else []) + (["code: " + ", ".join(where)] if where else [])
    return " + ".join(parts) or "other"


def _changed_lines(old: str, new: str) -> set[int]:
    """The 1-based lines of `new` that a diff from `old` adds or changes (or next to which it deletes)."""
    out: set[int] = set()
    matcher = difflib.SequenceMatcher(None, old.splitlines(), new.splitlines(), autojunk=False)
    for tag, _, _, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            out.update(range(j1 + 1, max(j2, j1 + 1) + 1))
    return out


def _definitions(source: str, lines: set[int]) -> list[str]:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    found = []
    for node in tree.body:
        named = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        if named and any(node.lineno <= i <= (node.end_lineno or node.lineno) for i in lines):
            found.append(node.name)
    return found[:4] or (["top level"] if lines else [])


@dataclass(frozen=True)
class Try:
    """One finished experiment as the memory weighs it."""

    id: int
    family: str
    status: str
    delta: float | None


def families(tries: Iterable[Try], sign: int, margin: float) -> tuple[Family, ...]:
    """The table of families, the most recently tried first: tries, the best result, and a status: promising (kept
    once at least), dead end (DEAD_TRIES tries or more, none on the better side), else inconclusive. `sign` is +1
    when higher is better, -1 when lower is."""
    groups: dict[str, list[Try]] = {}
    for t in tries:
        if t.family:
            groups.setdefault(t.family, []).append(t)
    table = []
    for name, group in groups.items():
        deltas = [t.delta for t in group if t.delta is not None]
        best = max(deltas, key=lambda d: sign * d) if deltas else None
        kept = sum(t.status == "keep" for t in group)
        better = any(sign * d > 0 for d in deltas)
        if kept:
            status = "promising"
        elif len(group) >= DEAD_TRIES and not better:
            status = "dead end"
        else:
            status = "inconclusive"
        inside = best is not None and abs(best) <= margin
        table.append(Family(name, len(group), kept, best, inside, status, max(t.id for t in group)))
    return tuple(sorted(table, key=lambda f: -f.last))


def patience(kept: int, tried: int) -> int:
    """Experiments without a keep after which the night broadens, from its keep rate so far."""
    rate = (kept + PRIOR_KEEPS) / (tried + PRIOR_TRIES)
    return max(MIN_PATIENCE, min(MAX_PATIENCE, math.ceil(STALL_KEEPS / rate)))


def stalled(tries: list[Try], margin: float) -> tuple[int, int]:
    """(experiments since the last keep, the patience the night allows before it broadens), from finished tries
    in order."""
    since = 0
    for t in reversed(tries):
        if t.status == "keep":
            break
        since += 1
    kept = sum(t.status == "keep" for t in tries)
    allowed = patience(kept, len(tries) - since)  # the rate before the stall: the stall must not excuse itself
    recent = [t.delta for t in tries[len(tries) - since :] if t.delta is not None]
    if recent and sum(abs(d) <= margin for d in recent) * 2 > len(recent):
        allowed = max(MIN_PATIENCE, allowed - allowed // 3)
    return since, allowed


def refusal(found: tuple[int, str], rows: Iterable[Experiment]) -> tuple[str, dict[str, object]]:
    """The reason and the row's extra of a refused near-duplicate: the experiment it repeats and its metric, which
    an optimizer learns as this point's result."""
    k, why = found
    earlier = next((r.metric for r in rows if r.id == k), None)
    return why, {"same_as": k, "earlier_metric": earlier, "near": True}


def tagged(proposed: Proposed, task: Task, champion: str) -> Proposed:
    """The proposal with what the memory keeps of it in its row: its family, the night's mode, its prediction."""
    p = proposed.proposal
    extra = {**proposed.extra, "family": family(champion, p.content, p.hypothesis), "mode": task.mode}
    if p.expected:
        extra["expected"] = p.expected
    return replace(proposed, extra=extra)
