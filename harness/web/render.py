"""The review's pages as HTML: Jinja2 templates with autoescape, the script and style inlined under a
Content-Security-Policy that names them by hash and allows nothing else, and the links of a live or a static site."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any
from urllib.parse import quote, urlencode

ASSETS = files("harness.web") / "assets"


@dataclass(frozen=True)
class Assets:
    script: str
    style: str

    @property
    def policy(self) -> str:
        """Nothing from outside: only this script and style (by hash) and same-origin requests (the live events);
        no image, font, frame or plugin from anywhere, no base URL, forms only to the server itself. A static page
        carries it in a <meta> element; the server also sends it as a header, with frame-ancestors (which only a
        header can carry)."""
        return (
            f"default-src 'none'; script-src '{_sha(self.script)}'; style-src '{_sha(self.style)}'; "
            "connect-src 'self'; base-uri 'none'; form-action 'self'"
        )


@cache
def assets() -> Assets:
    return Assets((ASSETS / "review.js").read_text(encoding="utf-8"), (ASSETS / "review.css").read_text("utf-8"))


def _sha(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()


@dataclass(frozen=True)
class Links:
    """The URL of each page: absolute paths for the server, relative file names for a static site (`depth` folders
    below its root)."""

    static: bool = False
    depth: int = 0

    def _up(self) -> str:
        return "../" * self.depth

    def index(self) -> str:
        return self._up() + "index.html" if self.static else "/"

    def night(self, tag: str) -> str:
        return f"{self._up()}tag/{quote(tag, safe='')}/index.html" if self.static else f"/tag/{quote(tag, safe='')}"

    def experiment(self, tag: str, exp_id: int) -> str:
        if self.static:
            return f"{self._up()}tag/{quote(tag, safe='')}/{exp_id}.html"
        return f"/tag/{quote(tag, safe='')}/{exp_id}"

    def experiments(self, tag: str) -> tuple[str, str]:
        """What comes before and after an experiment's id in its URL."""
        return self.experiment(tag, 0).rsplit("0", 1)  # type: ignore[return-value]

    def compare(self, a: str, b: str) -> str:
        if self.static:
            return f"{self._up()}compare/{quote(a, safe='')}--{quote(b, safe='')}.html"
        return "/compare?" + urlencode({"a": a, "b": b})

    def json(self, page: str) -> str:
        """The JSON beside a page of the server ("" for a static site: the data is in the page)."""
        if self.static:
            return ""
        path, _, query = page.partition("?")
        return (path.rstrip("/") or "/index") + ".json" + (f"?{query}" if query else "")

    def events(self, tag: str) -> str:
        return "" if self.static else f"/events/{quote(tag, safe='')}"


@cache
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("harness.web", "templates"),
        autoescape=True,  # everything the model wrote is text on the page, never markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    from harness.nights import change, span
    from harness.text import num, signed
    from harness.web import fragments

    env.globals.update(change=change, span=span, diff_class=diff_class, fragments=fragments)
    env.filters["num"] = num
    env.filters["signed"] = signed
    env.filters["pct"] = lambda v: "-" if v is None else f"{100 * v:.1f}%"
    return env


def diff_class(line: str) -> str:
    """How a line of a diff is coloured."""
    if line.startswith(("+++", "---", "diff ", "index ")):
        return "meta"
    return {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "")


def page(template: str, links: Links, **values: Any) -> str:
    """One page as HTML."""
    a = assets()
    return _environment().get_template(template).render(links=links, script=a.script, style=a.style,
                                                       policy=a.policy, **values)  # fmt: skip
