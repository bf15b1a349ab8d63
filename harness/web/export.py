"""`autoresearch report --html`: the pages of `autoresearch serve` written as static files, readable without a server
(each page carries its script, style and Content-Security-Policy), with the JSON beside each."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from harness import nights
from harness.detail import detail
from harness.ledger import Experiment
from harness.nights import Place, place
from harness.web import pages, render

MAX_PAIRS = 45  # compare pages written at most (every pair of up to ten nights)


def write_site(root: Path, out: Path, tags: list[str] | None = None) -> Path:
    """Write the review of the repository at `root` (every night, or only `tags`) into `out`; returns index.html."""
    where = place(root)
    rows = nights.read(where.layout.ledger)
    lines = [n for n in nights.lines(where, rows) if tags is None or n.tag in tags]
    if tags is not None:
        missing = [t for t in tags if t not in {n.tag for n in lines}]
        if missing:
            nights.night_of(rows, missing[0], where.metric, where.direction)  # raises, naming the nights
    pairs = list(itertools.islice(itertools.combinations([n.tag for n in lines], 2), MAX_PAIRS))
    out.mkdir(parents=True, exist_ok=True)
    top = render.Links(static=True, depth=0)
    _write(out / "index.html", render.page("index.html", top, json_url="", nights=lines, pairs=pairs))
    _json(out / "index.json", {"nights": [n.to_json() for n in lines]})
    for n in lines:
        _night(where, rows, n.tag, out)
    for a, b in pairs:
        page = pages.compare_page(where, rows, a, b)
        name = f"{quote(a, safe='')}--{quote(b, safe='')}"
        links = render.Links(static=True, depth=1)
        _write(out / "compare" / f"{name}.html", render.page("compare.html", links, json_url="", page=page))
        _json(out / "compare" / f"{name}.json", page.to_json())
    return out / "index.html"


def _night(where: Place, rows: nights.Rows, tag: str, out: Path) -> None:
    folder = out / "tag" / quote(tag, safe="")
    page = pages.night_page(where, rows, tag)
    links = render.Links(static=True, depth=2)
    _write(folder / "index.html", render.page("night.html", links, json_url="", page=page))
    _json(folder / "index.json", page.to_json())
    mine = rows.of(tag)
    for exp_id in sorted({r.id for r in mine if type(r) is Experiment}):
        d = detail(where, page.night, mine, exp_id)
        _write(folder / f"{exp_id}.html", render.page("experiment.html", links, json_url="", d=d))
        _json(folder / f"{exp_id}.json", d.to_json())


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _json(path: Path, data: Any) -> None:
    _write(path, json.dumps(data, indent=1) + "\n")
