"""The night as CSV (`autoresearch log --csv`): one row per experiment, each parameter a column of its own."""

from __future__ import annotations

import csv
import io
from typing import Any

from harness import nights
from harness.detail import params
from harness.errors import HarnessError
from harness.ledger import Experiment
from harness.nights import Place
from harness.text import flat

COLUMNS = ("tag", "id", "status", "metric", "delta", "best", "seconds", "cost_usd", "tokens_in", "tokens_out",
           "agent", "worker", "commit", "parent", "time", "description")  # fmt: skip
FORMULA = ("=", "+", "-", "@", "\t", "\r")  # a text cell starting so would run as a formula in a spreadsheet


def night_csv(where: Place, tag: str | None = None) -> str:
    """The experiments of night `tag` (default: the latest) as CSV, their parameters as the last columns: the
    `search:` constants first, in program.md's order, then any other parameter an agent recorded."""
    from harness.repo import Repo

    rows = nights.read(where.layout.ledger)
    tag = tag or (rows.rows[-1].tag if rows.rows else None)
    if tag is None:
        raise HarnessError("the ledger has no rows yet; start a night with 'autoresearch run --tag <name>'")
    nights.night_of(rows, tag, where.metric, where.direction)  # a clear error for a tag the ledger lacks
    experiments = [r for r in rows.of(tag) if type(r) is Experiment]
    repo = Repo(where.root)
    points = [params(r, where, repo) for r in experiments]
    names = list(dict.fromkeys([*where.search, *(k for p in points for k in p)]))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*COLUMNS, *names])
    for row, point in zip(experiments, points, strict=True):
        cells: list[Any] = [getattr(row, c) for c in COLUMNS]
        cells[-1] = _text(flat(row.description))
        cells[COLUMNS.index("agent")] = _text(row.agent)
        writer.writerow(["" if c is None else c for c in cells] + [_cell(point.get(n)) for n in names])
    return out.getvalue()


def _text(value: str) -> str:
    """Model-written text as data in a spreadsheet, never a formula."""
    return "'" + value if value.startswith(FORMULA) else value


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    return _text(value) if isinstance(value, str) else value
