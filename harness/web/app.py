"""`autoresearch serve`: the review as a read-only ASGI app (Starlette), one URL per thing and JSON beside each page,
live through server-sent events that read only the bytes the ledger gained."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from harness import nights
from harness.detail import detail
from harness.errors import HarnessError
from harness.ledger import Experiment, Generation
from harness.nights import Place, Rows, place
from harness.review import agent_labels
from harness.status import read_status
from harness.text import num
from harness.web import pages, render
from harness.web.follow import Follow, size

POLL = 0.5  # seconds between looks at the ledger and the status: a new row is on the page within a second
HEARTBEAT = 15.0  # seconds between keep-alive comments on a quiet event stream
COOKIE = "autoresearch_token"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGI = Callable[[Scope, Receive, Send], Awaitable[None]]


def loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class _Cache:
    """The last read of the ledger, and the pages made from it, reused while neither the ledger nor the loop's
    status has changed (a page and its JSON, reloads, several people looking)."""

    key: tuple[int, ...] = ()
    rows: Rows | None = None
    pages: dict[str, Response] = field(default_factory=dict)


PAGES_KEPT = 64  # pages kept made from one read of the ledger


def create_app(root: Path, token: str | None = None, poll: float = POLL) -> ASGI:
    """The review of the repository at `root`; with a token, every request must carry it (once in the URL, then
    a cookie)."""
    where = place(root, ledger=False)  # a server may start before the first night
    cache = _Cache()
    live = render.Links()

    def rows() -> Rows:
        if cache.rows is None or _key(where) != cache.key:
            cache.key, cache.pages = _key(where), {}
            cache.rows = nights.read(where.layout.ledger)
        return cache.rows

    def cached(endpoint: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def respond(request: Request) -> Response:
            rows()  # drops the pages made from an older read
            url = str(request.url.path) + "?" + str(request.url.query)
            if url not in cache.pages:
                response = endpoint(request)
                if len(cache.pages) < PAGES_KEPT:
                    cache.pages[url] = response
                return response
            return cache.pages[url]

        return respond

    def html(template: str, json_url: str, **values: Any) -> HTMLResponse:
        return HTMLResponse(render.page(template, live, json_url=json_url, **values))

    def index(request: Request) -> Response:
        lines = nights.lines(where, rows())
        if request.url.path.endswith(".json"):
            return JSONResponse({"nights": [n.to_json() for n in lines]})
        return html("index.html", live.json("/"), nights=lines, pairs=())

    def night(request: Request) -> Response:
        tag = request.path_params["tag"]
        page = pages.night_page(where, rows(), tag)
        if request.url.path.endswith(".json"):
            return JSONResponse(page.to_json())
        return html("night.html", live.json(live.night(tag)), page=page)

    def experiment(request: Request) -> Response:
        tag, exp_id = request.path_params["tag"], request.path_params["id"]
        read = rows()
        d = detail(where, nights.night_of(read, tag, where.metric, where.direction), read.of(tag), exp_id)
        if request.url.path.endswith(".json"):
            return JSONResponse(d.to_json())
        return html("experiment.html", live.json(live.experiment(tag, exp_id)), d=d)

    def compare(request: Request) -> Response:
        a, b = request.query_params.get("a", ""), request.query_params.get("b", "")
        page = pages.compare_page(where, rows(), a, b)
        if request.url.path.endswith(".json"):
            return JSONResponse(page.to_json())
        return html("compare.html", live.json(live.compare(a, b)), page=page)

    async def events(request: Request) -> Response:
        tag = request.path_params["tag"]
        offset = request.query_params.get("offset", "")
        start = int(offset) if offset.isdigit() else size(where.layout.ledger)
        read = rows()
        night = nights.night_of(read, tag, where.metric, where.direction)
        return StreamingResponse(_stream(where, tag, start, night, poll), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})  # fmt: skip

    async def missing(request: Request, exc: Exception) -> Response:
        message = str(exc) if isinstance(exc, HarnessError) else "no such page"
        if request.url.path.endswith(".json"):
            return JSONResponse({"error": message}, status_code=404)
        return HTMLResponse(render.page("error.html", live, json_url="", message=message), status_code=404)

    routes = [
        Route("/", cached(index)),
        Route("/index.json", cached(index)),
        Route("/tag/{tag}.json", cached(night)),
        Route("/tag/{tag}", cached(night)),
        Route("/tag/{tag}/{id:int}.json", cached(experiment)),
        Route("/tag/{tag}/{id:int}", cached(experiment)),
        Route("/compare.json", cached(compare)),
        Route("/compare", cached(compare)),
        Route("/events/{tag}", events),
    ]
    app = Starlette(routes=routes, exception_handlers={HarnessError: missing, 404: missing})
    return Guard(app, token, render.assets().policy, local=token is None)


async def _stream(where: Place, tag: str, offset: int, night: Any, poll: float) -> AsyncIterator[str]:
    """The night's news as server-sent events: `row` for each experiment row the ledger gains (read from the bytes
    after `offset` only), `tail` when the log of the run under way grows, `state` when the loop starts or ends."""
    follow = Follow(where.layout.ledger, offset)
    baseline, generations = night.baseline, list(night.generations)
    labels = agent_labels(generations)
    seen_tail: tuple[str, int] | None = None
    seen_state = ""
    quiet = 0.0
    yield "retry: 1000\n\n"
    while True:
        for line in follow.lines():
            row = pages.decode_row(line)
            if row is None:
                generation = _generation(line, tag)
                if generation is not None:
                    generations.append(generation)
                    labels = agent_labels(generations)
                continue
            if row.tag != tag:
                continue
            if row.id == 0 and row.status == "keep" and baseline is None:
                baseline = row.metric
            yield _event("row", _row_json(row, baseline, night, labels))
            quiet = 0.0
        state = read_status(where.layout.status)
        if state is not None and state.get("tag") == tag:
            now = "running" if _running(where) and state.get("phase") != "stopped" else "stopped"
            if now != seen_state:
                seen_state = now
                yield _event("state", {"state": now})
            if now == "running":
                tail = pages.live_tail(where, tag)
                mark = (tail.log, tail.size) if tail else None
                if tail is not None and mark != seen_tail:
                    seen_tail = mark
                    yield _event("tail", {"doing": tail.doing, "text": tail.text, "log": tail.log})
        quiet += poll
        if quiet >= HEARTBEAT:
            quiet = 0.0
            yield ": still here\n\n"
        await asyncio.sleep(poll)


def _row_json(row: Experiment, baseline: float | None, night: Any, labels: dict[str, str]) -> dict[str, Any]:
    from dataclasses import replace

    r = pages.table_row(row, replace(night, baseline=baseline), labels)
    noise = row.extra.get("noise") if isinstance(row.extra, dict) else None
    best = {"best": row.best, "best_text": num(row.best) if row.best is not None else "",
            "noise": noise if isinstance(noise, int | float) else None}  # fmt: skip
    return {**vars(r), "cells": r.cells(), **best}


def _generation(line: bytes, tag: str) -> Generation | None:
    import msgspec

    try:
        g = msgspec.json.decode(line, type=Generation, strict=False)
    except msgspec.DecodeError:
        return None
    return g if g.tag == tag else None


def _key(where: Place) -> tuple[int, ...]:
    """What a page depends on besides git: the ledger's size and time, the loop's status file, whether it runs."""
    key: list[int] = []
    for path in (where.layout.ledger, where.layout.status):
        try:
            stat = path.stat()
        except FileNotFoundError:
            key += [-1, -1]
            continue
        key += [stat.st_size, stat.st_mtime_ns]
    return (*key, int(_running(where)))


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _running(where: Place) -> bool:
    from harness.lock import holder

    return holder(where.layout.lock) is not None


class Guard:
    """Around the app: read-only methods only, the security headers on every response, and either the token (a
    server others can reach) or a Host of this machine (a loopback server, so no web page can rebind a name to it)."""

    def __init__(self, app: ASGI, token: str | None, policy: str, local: bool) -> None:
        self.app, self.token, self.local = app, token, local
        self.headers = [
            (b"content-security-policy", f"{policy}; frame-ancestors 'none'".encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
            (b"cross-origin-resource-policy", b"same-origin"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, guarded)
            return
        await self.app(scope, receive, guarded)

    def _refusal(self, scope: Scope) -> Response | None:
        if scope["method"] not in ("GET", "HEAD"):
            return Response("read-only: GET and HEAD only\n", status_code=405, headers={"Allow": "GET, HEAD"})
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if self.local:
            host = headers.get("host", "").rsplit(":", 1)[0] if not headers.get("host", "").startswith("[") else (
                headers["host"].split("]")[0] + "]")  # fmt: skip
            return None if host in LOOPBACK_NAMES else Response("unknown host\n", status_code=421)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        given = query.get("token", [""])[0]
        if given and self._valid(given):
            rest = urlencode([(k, v) for k, vs in query.items() if k != "token" for v in vs])
            response = RedirectResponse(scope["path"] + (f"?{rest}" if rest else ""), status_code=303)
            response.set_cookie(COOKIE, given, httponly=True, samesite="strict")
            return response
        cookie = SimpleCookie(headers.get("cookie", ""))
        if COOKIE in cookie and self._valid(cookie[COOKIE].value):
            return None
        return Response("a token is needed: open the URL 'autoresearch serve' printed\n", status_code=403)

    def _valid(self, given: str) -> bool:
        return self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())


def serve(root: Path, host: str, port: int, announce: Callable[[str], None]) -> None:
    """Serve the review until Ctrl-C; `announce` gets the URL to open (with the token when others can reach it)."""
    import secrets

    import uvicorn

    token = None if loopback(host) else secrets.token_urlsafe(24)
    app = create_app(root, token)
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        sock.close()
        raise HarnessError(f"cannot listen on {host}:{port}: {e.strerror}; pick another with --port") from None
    sock.listen(128)  # connections wait from now on, so the URL works the moment it is printed
    shown = f"[{host.strip('[]')}]" if family == socket.AF_INET6 else host
    if host.strip("[]") in ("0.0.0.0", "::"):
        shown = socket.gethostname()  # every address: the URL names this machine as others reach it
    url = f"http://{shown}:{sock.getsockname()[1]}/" + (f"?token={token}" if token else "")
    announce(url)
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
    uvicorn.Server(config).run(sockets=[sock])
