"""A local HTTP server that speaks the Anthropic Messages API, with scripted replies and injected faults for tests."""

from __future__ import annotations

import collections
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# The key the fixture expects; tests pass it to the client explicitly or through ANTHROPIC_API_KEY.
TEST_KEY = "sk-ant-test-0123456789abcdef"

# The error type the real API reports for each status, so an injected fault looks like the real thing.
_ERROR_TYPES: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "invalid request"),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "your API key does not have permission to use the specified resource"),
    404: ("not_found_error", "not found"),
    408: ("timeout_error", "request timed out"),
    409: ("conflict_error", "conflict"),
    413: ("request_too_large", "request exceeds the maximum allowed number of bytes"),
    422: ("invalid_request_error", "unprocessable entity"),
    429: ("rate_limit_error", "number of request tokens has exceeded your per-minute rate limit"),
    500: ("api_error", "Internal server error"),
    503: ("api_error", "service unavailable"),
    529: ("overloaded_error", "Overloaded"),
}

Responder = Callable[[dict[str, Any]], "dict[str, Any] | str"]


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the server saw it; header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any


@dataclass(frozen=True)
class _Reply:
    text: str
    input_tokens: int | None
    output_tokens: int | None
    cache_write: int
    cache_read: int
    stop_reason: str
    content: tuple[dict[str, Any], ...] | None = None  # blocks in place of one text block


@dataclass(frozen=True)
class _Trickle:
    reply: _Reply
    interval: float  # seconds between two bytes of the body


@dataclass(frozen=True)
class _Drop:
    reply: _Reply  # the reply whose body is cut half-way by closing the connection


@dataclass(frozen=True)
class _Fault:
    status: int
    body: dict[str, Any] | str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Hold:
    seconds: float


@dataclass(frozen=True)
class _Malformed:
    pass


_Action = _Reply | _Fault | _Hold | _Malformed | _Trickle | _Drop


def error_body(status: int, message: str | None = None, error_type: str | None = None) -> dict[str, Any]:
    """The body the real API sends with an error status."""
    default_type, default_message = _ERROR_TYPES.get(status, ("api_error", f"HTTP {status}"))
    return {
        "type": "error",
        "error": {"type": error_type or default_type, "message": message or default_message},
        "request_id": "req_fake",
    }


def estimate_tokens(text: str) -> int:
    # About four characters a token, the usual rule of thumb; never zero so prices are never zero.
    return max(1, len(text) // 4)


def message_body(
    text: str,
    *,
    model: str,
    input_tokens: int,
    output_tokens: int,
    cache_write: int = 0,
    cache_read: int = 0,
    stop_reason: str = "end_turn",
    message_id: str = "msg_fake",
    content: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A successful Messages API response body with the real shape; `content` replaces the one text block."""
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": list(content) if content is not None else [{"type": "text", "text": text}],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": cache_write,
            "cache_read_input_tokens": cache_read,
        },
    }


class FakeAnthropic:
    """Serves POST /v1/messages on 127.0.0.1 from a queue of scripted actions, then from `responder`.

    Each request consumes one queued action (a reply, a fault, a hold or a malformed body), in the order they
    were queued. A request without the expected key (x-api-key or a Bearer token) gets 401 and consumes nothing.
    """

    def __init__(self, *, expected_key: str | None = TEST_KEY, responder: Responder | None = None) -> None:
        self.expected_key = expected_key
        # Used when the queue is empty; None answers 500 "no scripted reply" so a test that forgot to script notices.
        self.responder: Responder | None = responder
        self.requests: list[ReceivedRequest] = []
        self._queue: collections.deque[_Action] = collections.deque()
        self._lock = threading.Lock()
        # Set on stop so requests held by timeout() let go at once instead of keeping the test waiting.
        self._stopping = threading.Event()
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- scripting -------------------------------------------------------------------------------------------

    def reply(
        self,
        text: str,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cache_write: int = 0,
        cache_read: int = 0,
        stop_reason: str = "end_turn",
        content: list[dict[str, Any]] | None = None,
    ) -> None:
        """Queue a successful reply; token counts left out are estimated from the request and the text. `content`
        (text, tool_use, thinking blocks) replaces the one text block."""
        blocks = tuple(content) if content is not None else None
        self._push(_Reply(text, input_tokens, output_tokens, cache_write, cache_read, stop_reason, blocks))

    def trickle(self, text: str, *, interval: float = 0.2) -> None:
        """Queue a reply whose headers come at once and whose body comes one byte every `interval` seconds."""
        self._push(_Trickle(_Reply(text, None, None, 0, 0, "end_turn"), interval))

    def drop(self, text: str = "never finished") -> None:
        """Queue a reply whose connection closes half-way through the body, as a dying proxy would."""
        self._push(_Drop(_Reply(text, None, None, 0, 0, "end_turn")))

    def fault(
        self,
        status: int,
        *,
        retry_after: float | str | None = None,
        retry_after_ms: float | None = None,
        body: dict[str, Any] | str | None = None,
        times: int = 1,
    ) -> None:
        """Queue `times` error responses with the real error body shape unless `body` is given."""
        headers: dict[str, str] = {}
        if retry_after is not None:
            headers["retry-after"] = _header_number(retry_after)
        if retry_after_ms is not None:
            headers["retry-after-ms"] = _header_number(retry_after_ms)
        for _ in range(times):
            self._push(_Fault(status, body if body is not None else error_body(status), headers))

    def timeout(self, seconds: float) -> None:
        """Queue a request that the server holds for `seconds` (longer than the client's timeout) before a 500."""
        self._push(_Hold(seconds))

    def malformed(self) -> None:
        """Queue a 200 whose JSON body is cut off half-way, like a proxy hiccup."""
        self._push(_Malformed())

    @property
    def pending(self) -> int:
        """How many queued actions have not been served yet."""
        with self._lock:
            return len(self._queue)

    def _push(self, action: _Action) -> None:
        with self._lock:
            self._queue.append(action)

    # -- lifecycle -------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeAnthropic is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeAnthropic:
        handler = type("_BoundHandler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        # A short poll interval so stop() (which waits for the serving loop to notice) takes milliseconds, not 0.5 s.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, name="fake-anthropic", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serving ---------------------------------------------------------------------------------------------

    def _next_action(self) -> _Action | None:
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def _record(self, request: ReceivedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _message(self, request_json: dict[str, Any], reply: _Reply) -> dict[str, Any]:
        raw = json.dumps(request_json)
        said = reply.text if reply.content is None else json.dumps(reply.content)
        return message_body(
            reply.text,
            model=str(request_json.get("model", "claude-fake")),
            input_tokens=reply.input_tokens if reply.input_tokens is not None else estimate_tokens(raw),
            output_tokens=reply.output_tokens if reply.output_tokens is not None else estimate_tokens(said),
            cache_write=reply.cache_write,
            cache_read=reply.cache_read,
            stop_reason=reply.stop_reason,
            message_id=f"msg_fake_{next(self._ids)}",
            content=list(reply.content) if reply.content is not None else None,
        )


def _header_number(value: float | str) -> str:
    # Whole numbers go out as integers, as the real API sends them.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _presented_keys(headers: Any) -> set[str]:
    # Older SDKs send the key as x-api-key, newer ones (2.x) as "Authorization: Bearer <key>"; the API takes both.
    keys = {headers.get("x-api-key") or ""}
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer":
        keys.add(token.strip())
    return keys - {""}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeAnthropic
    # HTTP/1.1 keeps connections alive between requests, as the real API does.
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        # Quiet: a test's output should show the test, not the access log.
        pass

    def do_GET(self) -> None:
        self._read_body()
        self._record(None)
        self._send_json(404, error_body(404, f"no route for GET {self.path}"))

    def do_POST(self) -> None:
        raw = self._read_body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self._record(body)
        fake = self.fake
        if fake.expected_key is not None and fake.expected_key not in _presented_keys(self.headers):
            self._send_json(401, error_body(401))
            return
        if self.path.split("?")[0] == "/v1/messages/count_tokens" and isinstance(body, dict):
            self._send_json(200, {"input_tokens": estimate_tokens(json.dumps(body.get("messages")))})
            return
        if self.path.split("?")[0] != "/v1/messages":
            self._send_json(404, error_body(404, f"no route for POST {self.path}"))
            return
        if not isinstance(body, dict):
            self._send_json(400, error_body(400, "request body is not a JSON object"))
            return
        action = fake._next_action()
        if action is None:
            self._respond_from_responder(body)
        elif isinstance(action, _Reply):
            self._send_json(200, fake._message(body, action))
        elif isinstance(action, _Fault):
            self._send_json(action.status, action.body, action.headers)
        elif isinstance(action, _Hold):
            fake._stopping.wait(action.seconds)
            self._send_json(500, error_body(500, "held past the client's timeout"))
        elif isinstance(action, _Trickle):
            self._send_slowly(json.dumps(fake._message(body, action.reply)).encode(), action.interval)
        elif isinstance(action, _Drop):
            payload = json.dumps(fake._message(body, action.reply)).encode()
            self._send_raw(200, payload[: len(payload) // 2], length=len(payload))
            self.close_connection = True
        else:
            self._send_raw(200, b'{"id": "msg_fake", "type": "message", "content": [{"type": "te')

    def _respond_from_responder(self, body: dict[str, Any]) -> None:
        if self.fake.responder is None:
            self._send_json(500, error_body(500, "no scripted reply"))
            return
        produced = self.fake.responder(body)
        if isinstance(produced, str):
            produced = self.fake._message(body, _Reply(produced, None, None, 0, 0, "end_turn"))
        self._send_json(200, produced)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _record(self, body: Any) -> None:
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.fake._record(ReceivedRequest(self.command, self.path, headers, body))

    def _send_json(self, status: int, body: dict[str, Any] | str, headers: dict[str, str] | None = None) -> None:
        payload = body if isinstance(body, str) else json.dumps(body)
        self._send_raw(status, payload.encode(), headers)

    def _send_slowly(self, payload: bytes, interval: float) -> None:
        self._send_raw(200, b"", length=len(payload))
        try:
            for i in range(len(payload)):
                if self.fake._stopping.is_set():
                    break
                self.wfile.write(payload[i : i + 1])
                self.wfile.flush()
                time.sleep(interval)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up at its deadline: what trickle() is for
        self.close_connection = True

    def _send_raw(
        self, status: int, payload: bytes, headers: dict[str, str] | None = None, *, length: int | None = None
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload) if length is None else length))
            self.send_header("request-id", "req_fake")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (its timeout fired); that is the point of timeout(), not a server failure.
            self.close_connection = True
