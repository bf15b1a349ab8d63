"""The parts of a page repeated once per experiment or run (table rows, plot points, timeline bars), built as HTML in
one pass with every text escaped: a template loop costs about 50 µs a row, and a big night has 10,000 of each."""

from __future__ import annotations

from collections.abc import Iterable

from markupsafe import Markup, escape

from harness.web.pages import TableRow
from harness.web.svg import Bar, Point


def _v(value: float | None) -> str:
    return "" if value is None else repr(value)


def table_rows(rows: Iterable[TableRow], link: tuple[str, str]) -> Markup:
    """The night's table body: one <tr> per experiment; `link` is what comes before and after an id in its URL."""
    out = []
    before, after = escape(link[0]), escape(link[1])
    seen: dict[str, Markup] = {}  # statuses, agents and workers are few: each escaped once

    def esc(text: str) -> Markup:
        if text not in seen:
            seen[text] = escape(text)
        return seen[text]

    for r in rows:
        c = r.cells()
        status = esc(r.status)
        out.append(
            f'<tr class="{status}" data-id="{r.id}"><td data-v="{r.id}"><a href="{before}{r.id}{after}">{r.id}</a></td>'
            f'<td>{status}</td><td data-v="{_v(r.metric)}">{c["metric"]}</td>'
            f'<td data-v="{_v(r.delta)}">{c["delta"]}</td><td data-v="{_v(r.vs_baseline)}">{c["vs_baseline"]}</td>'
            f'<td class="desc">{escape(r.description)}</td><td>{esc(r.agent)}</td><td>{esc(r.worker or "-")}</td>'
            f'<td data-v="{r.seconds!r}">{c["seconds"]}</td><td data-v="{r.cost_usd!r}">{c["cost"]}</td></tr>\n'
        )
    return Markup("".join(out))


def points(pts: Iterable[Point]) -> Markup:
    """The plot's points: a dot for an experiment with a metric, a cross for a failed run, a triangle for one that
    did not run, a diamond for a locked-test score; each with its tooltip."""
    out = []
    for p in pts:
        title = f"<title>{escape(p.title)}</title>"
        head = (f'class="pt {escape(p.status)}" data-id="{p.id}" data-shape="{p.shape}" data-v="{_v(p.value)}" '
                f'data-b="{_v(p.best)}" data-n="{_v(p.noise)}"')  # fmt: skip
        if p.shape == "dot":
            r = 4.5 if p.status == "keep" else 3
            out.append(f'<circle {head} cx="{p.x:.1f}" cy="{p.y:.1f}" r="{r}">{title}</circle>\n')
        elif p.shape == "cross":
            out.append(f'<path {head} d="M{p.x - 3:.1f},{p.y - 3:.1f} l6,6 m0,-6 l-6,6">{title}</path>\n')
        elif p.shape == "diamond":
            out.append(f'<path {head} d="M{p.x:.1f},{p.y - 5:.1f} l5,5 l-5,5 l-5,-5 z">{title}</path>\n')
        else:
            out.append(f'<path {head} d="M{p.x:.1f},{p.y - 3.5:.1f} l3.5,6 h-7 z">{title}</path>\n')
    return Markup("".join(out))


def bars(items: Iterable[Bar]) -> Markup:
    """The workers' timeline: one bar per run."""
    return Markup("".join(
        f'<rect class="run {escape(b.purpose)}" x="{b.x:.1f}" y="{b.y:.1f}" width="{b.w:.1f}" height="16">'
        f"<title>{escape(b.title)}</title></rect>\n" for b in items
    ))  # fmt: skip
