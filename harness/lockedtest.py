"""The locked test: each new champion (the baseline and every keep) scored once by program.md's `test:` command on a
split nothing else sees. Its number is a ledger row of its own, for the person: no decision, agent, reflection or
LLM request ever reads it, so a night's search cannot fit that split the way it fits the selection split."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from harness import jails, sandbox
from harness.config import Config
from harness.evaluate import execute
from harness.ledger import Experiment, LockedTest
from harness.runlog import parse_metric, tail
from harness.text import flat, num, one_line, short, signed

if TYPE_CHECKING:  # `log` and `report` read the rows without what runs a test
    from harness.measure import Tree


def after(tree: Tree, config: Config, row: Experiment, out: Path | None) -> LockedTest | None:
    """When `row` made a new champion and program.md has `test:`, run the test on what its run left in `out` (its
    $AUTORESEARCH_OUT, or None when that is not on this machine): its row, for the ledger; None otherwise. A test
    that fails is recorded on its row, never raised: the night goes on."""
    if not config.test or row.status != "keep":
        return None
    return score(tree, config, row, out)


def score(tree: Tree, config: Config, row: Experiment, out: Path | None) -> LockedTest:
    """The locked test of champion `row`, run in the evaluators' jail over its run's output folder `out`."""
    layout, tag = tree.layout, tree.tag
    log = layout.test_log(tag, row.id)
    shown = str(log.relative_to(tree.repo.root))
    base = LockedTest(tag=tag, id=row.id, commit=row.commit, metric=None, selection=row.metric, log=shown)
    if out is None or not out.is_dir():
        reason = "the champion's output folder is not on this machine (its run was a remote task)"
        return _replace(base, outcome="crash", reason=reason)
    try:
        sb = sandbox.probe(config.sandbox, devices=tree.devices)
        with jails.evaluator_jail(sb, tree.repo, config, layout.work(tag, "test"), out) as jail:
            ran = execute(jail, config.test, timeout=config.evaluate_timeout, log=log)
    except OSError as e:
        return _replace(base, outcome="crash", reason=f"the test could not start: {one_line(str(e))}")
    value = parse_metric(ran.text, config.metric)
    seconds = round(ran.seconds, 3)
    if ran.code == 0 and value is not None:
        return _replace(base, metric=value, seconds=seconds)
    if ran.code is None:
        return _replace(base, outcome="timeout", reason=f"timed out after {config.evaluate_timeout:g} s",
                        seconds=seconds)  # fmt: skip
    lines = [line.strip() for line in tail(ran.text).splitlines() if line.strip()]
    said = one_line(lines[-1]) if lines else f"exit status {ran.code}"
    why = f"gave no {config.metric}: {said}" if ran.code == 0 else f"failed: {said}"
    return _replace(base, outcome="crash", reason=why, seconds=seconds)


def _replace(row: LockedTest, **changes: object) -> LockedTest:
    return msgspec.structs.replace(row, **changes)


def line(row: LockedTest, metric: str) -> str:
    """One line for the person's terminal: the champion's locked test beside its selection number."""
    selection = "-" if row.selection is None else f"{row.selection:.6g}"
    if row.metric is None:
        return f"locked test of #{row.id} {row.outcome}: {row.reason} (selection {metric} {selection})"
    return f"locked test of #{row.id}: {metric} {row.metric:.6g} (selection {selection})"


def summary(tests: Sequence[LockedTest]) -> str:
    """The night's gain on the locked test beside its gain on the selection split, from the first champion (the
    baseline) to the last one the test scored: whether the gains hold up on bytes the search never saw."""
    scored = [t for t in tests if t.metric is not None]
    failed = len(tests) - len(scored)
    note = f"; {failed} failed" if failed else ""
    if not scored:
        return f"no champion scored ({len(tests)} tried{note})"
    first, last = scored[0], scored[-1]
    test = f"#{first.id} {num(first.metric)} → #{last.id} {num(last.metric)}"
    if first is not last and first.metric is not None and last.metric is not None:
        test += f" ({signed(last.metric - first.metric)})"
    selection = ""
    if first.selection is not None and last.selection is not None:
        selection = f"; selection {num(first.selection)} → {num(last.selection)}"
        if first is not last:
            selection += f" ({signed(last.selection - first.selection)})"
    return f"{test}{selection} ({len(scored)} champions{note})"


def rows(tests: Sequence[LockedTest]) -> list[tuple[str, str, str, str, str]]:
    """Each champion's (id, commit, selection, locked test, gap) for the table of `log` and report.md."""
    out = []
    for t in tests:
        test = num(t.metric) if t.metric is not None else f"{t.outcome}: {flat(t.reason)}"
        gap = signed(t.metric - t.selection) if t.metric is not None and t.selection is not None else "-"
        out.append((str(t.id), short(t.commit), num(t.selection), test, gap))
    return out


def table(tests: Sequence[LockedTest]) -> list[str]:
    """The lines `autoresearch log` shows after its table: each champion's selection against its locked test."""
    if not tests:
        return []
    cells = [("champion", "commit", "selection", "locked test", "gap"), *rows(tests)]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    lines = ["  ".join([*(c[i].rjust(widths[i]) for i in range(4)), c[4]]).rstrip() for c in cells]
    return ["", "selection against the locked test, each champion:", *lines]
