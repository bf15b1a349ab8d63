"""Every call to the Anthropic API: the client, its retry loop through outages, token pricing and the spend cap."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anthropic

from harness.errors import BudgetExceeded, LLMError, RequestRefused
from harness.reply import MalformedReply, asks_one_hour, read_reply
from harness.task import Reply, Spend

try:  # the SDK's HTTP layer: httpx2 from anthropic 2.x on, httpx before; its errors surface while a body streams
    import httpx2 as _http
except ImportError:  # pragma: no cover - an older SDK
    import httpx as _http  # type: ignore[no-redef]

log = logging.getLogger(__name__)

# Our own loop does the retrying so that an outage of hours is survived and every wait is visible; the SDK's
# built-in retries (a few tries over seconds) would only hide the first part of an outage.
_SDK_MAX_RETRIES = 0
TIME_SCALE_ENV = "AUTORESEARCH_LLM_TIME_SCALE"
_FIRST_BACKOFF_S = 2.0
_MAX_BACKOFF_S = 120.0
# A server asking for a longer pause than this is most likely misconfigured; we would rather ask again.
_MAX_RETRY_AFTER_S = 600.0
# A 200 whose body cannot be read is a proxy hiccup once or twice; many in a row means something between us and
# the API is broken, and waiting six hours will not fix it.
_MAX_MALFORMED = 5
_CONNECT_TIMEOUT_S = 10.0
# The SDK's timeouts are per read, so a server that trickles a byte a second never trips them; the body is read in
# chunks against this deadline for the whole request instead, and a request past it is retried like a timeout.
_DEADLINE_S = 900.0
# Long enough for a short, one-line error message, short enough to keep that message on one line.
_MAX_DETAIL_CHARS = 300

_TRANSIENT_STATUSES = frozenset({408, 409, 429})
_ONE_REQUEST = frozenset({400, 413, 422})  # statuses that refuse this request, not the account
_ACCOUNT_WORDS = ("credit balance", "billing", "model:")


@dataclass(frozen=True)
class _Failure:
    """A failed attempt that waiting may fix: what to show, and how long the server asked us to wait, if it did."""

    summary: str
    detail: str
    retry_after: float | None = None
    malformed: bool = False


class _DeadlinePassed(Exception):
    pass


class LLMClient:
    """Makes, retries, meters and caps calls to one model; the only holder of the API key."""

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        key_name: str = "",
        base_url: str | None = None,
        patience: float = 6 * 3600,
        max_cost_usd: float | None = None,
        request_timeout: float = 600,
        request_deadline: float = _DEADLINE_S,
        on_wait: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        time_scale: float | None = None,
        spent_before: float = 0.0,
    ) -> None:
        self.model = model
        self.patience = patience
        self.max_cost_usd = max_cost_usd
        # Every wait of the client (backoff, retry-after, the read timeout and the request deadline) times this:
        # 1 in earnest; a drill or a test compresses an hour of faults into seconds with $AUTORESEARCH_LLM_TIME_SCALE.
        self.scale = time_scale if time_scale is not None else float(os.environ.get(TIME_SCALE_ENV) or 1.0)
        self.request_deadline = request_deadline * self.scale
        # No single read may wait longer than the whole request may take.
        self.request_timeout = min(request_timeout * self.scale, self.request_deadline)
        self._on_wait = on_wait or log.warning
        self._sleep = sleep
        default_name = "ANTHROPIC_API_KEY" if api_key is None else "the API key given to the harness"
        self._key_name = key_name or default_name
        key = api_key if api_key is not None else os.environ.get("ANTHROPIC_API_KEY", "")
        if not key.strip():
            raise LLMError(f"{self._key_name} is not set; export ANTHROPIC_API_KEY=<your key> before starting the run")
        self._key = key.strip()
        # Resolved here rather than left to the SDK so that ANTHROPIC_BASE_URL wins over any SDK profile or config
        # file, whatever the SDK version.
        self.base_url = base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        self._client = anthropic.Anthropic(
            api_key=self._key,
            base_url=self.base_url,
            max_retries=_SDK_MAX_RETRIES,
            timeout=self._timeout(),
        )
        self._lock = threading.Lock()
        self._total = Spend(cost_usd=spent_before)  # the night's spend before this client: the cap is the night's
        self._untaken = Spend()
        self._random = random.Random()

    # -- accounting ----------------------------------------------------------------------------------------------

    @property
    def spent_usd(self) -> float:
        with self._lock:
            return self._total.cost_usd

    @property
    def usage(self) -> Spend:
        """Everything used since this client was made."""
        with self._lock:
            return self._total

    def take(self) -> Spend:
        """Usage since the previous take(), so each experiment is charged for its own calls."""
        with self._lock:
            taken, self._untaken = self._untaken, Spend()
            return taken

    def _charge(self, usage: Spend) -> None:
        with self._lock:
            self._total = self._total + usage
            self._untaken = self._untaken + usage

    def _check_budget(self) -> None:
        spent = self.spent_usd
        if self.max_cost_usd is not None and spent >= self.max_cost_usd:
            raise BudgetExceeded(f"LLM spend ${spent:.2f} reached max_cost_usd ${self.max_cost_usd:.2f}")

    # -- calls ---------------------------------------------------------------------------------------------------

    def check(self) -> None:
        """Spend one output token to prove the key, endpoint and model work before the night starts."""
        self.complete(system="", messages=[{"role": "user", "content": "ping"}], max_tokens=1)

    def count(self) -> int:
        """Prove the key, the endpoint and the model with a call that costs nothing (the tokens of one word counted);
        LLMError, with the service's words, when it refuses or cannot be reached."""
        try:
            counted = self._client.messages.count_tokens(
                model=self.model, messages=[{"role": "user", "content": "ping"}]
            )
        except anthropic.APIStatusError as e:
            kind, message, _ = _error_fields(e)
            raise LLMError(f"{self._key_name}: {e.status_code} {kind}: {message}{_hint(e.status_code)}") from None
        except anthropic.APIConnectionError as e:
            raise LLMError(f"cannot reach {self.base_url or 'the Anthropic API'}: {_one_line(str(e))}") from None
        return counted.input_tokens

    def complete(
        self,
        *,
        system: str | list[dict[str, Any]],
        messages: list[dict[str, Any]],
        max_tokens: int = 8000,
        temperature: float | None = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: dict[str, Any] | None = None,
        thinking: dict[str, Any] | None = None,
    ) -> Reply:
        """One Messages API call, retried through outages for up to `patience` seconds; `tools`, `tool_choice` and
        `thinking` go to the API as they are, and the Reply carries the content blocks and the stop reason."""
        self._check_budget()
        params: dict[str, Any] = {"model": self.model, "max_tokens": max_tokens, "messages": messages}
        if system:
            params["system"] = system
        for name, value in (("tools", tools), ("tool_choice", tool_choice), ("thinking", thinking)):
            if value:
                params[name] = value
        if temperature is not None:
            # Sent as a raw body field: SDK 2.x dropped the `temperature` argument from messages.create, while the
            # API still reads it for the models that support it (others answer 400, which we report at once).
            params["extra_body"] = {"temperature": temperature}
        reply = self._call_with_retries(params)
        self._charge(reply.usage)
        return reply

    def _call_with_retries(self, params: dict[str, Any]) -> Reply:
        # The outage clock counts the time failed attempts took plus the time we chose to wait, rather than reading
        # the wall clock, so an injected `sleep` makes the whole schedule testable without waiting for it.
        outage = 0.0
        failures = 0
        malformed = 0
        while True:
            started = time.monotonic()
            outcome = self._attempt(params, retries_taken=failures)
            if isinstance(outcome, Reply):
                return outcome
            failure = outcome
            failures += 1
            outage += time.monotonic() - started
            if failure.malformed:
                malformed += 1
                if malformed >= _MAX_MALFORMED:
                    raise LLMError(
                        self._redact(
                            f"The LLM endpoint sent {malformed} unreadable replies to one request ({failure.detail}); "
                            "check ANTHROPIC_BASE_URL and any proxy in between"
                        )
                    )
            if outage >= self.patience:
                raise LLMError(
                    self._redact(
                        f"The Anthropic API has been unreachable for {_minutes(outage)} min "
                        f"(patience {_minutes(self.patience)} min); last error: {failure.detail}"
                    )
                )
            wait = min(self._delay(failures, failure.retry_after), self.patience - outage)
            self._on_wait(
                self._redact(
                    f"{failure.summary}; retrying in {_seconds(wait)} s "
                    f"(outage {_minutes(outage)} min of {_minutes(self.patience)})"
                )
            )
            self._sleep(wait)
            outage += wait

    def _attempt(self, params: dict[str, Any], *, retries_taken: int) -> Reply | _Failure:
        """One request: a Reply, a _Failure worth retrying, or LLMError for a refusal that waiting will not fix."""
        deadline = time.monotonic() + self.request_deadline
        try:
            with self._client.messages.with_streaming_response.create(
                **params,
                # Passed per call so the SDK does not swap in its own timeout or refuse a large max_tokens outright.
                timeout=self._timeout(),
                # The SDK counts only its own retries (none); this tells the server how many of ours came before.
                extra_headers={"x-stainless-retry-count": str(retries_taken)},
            ) as response:
                body = bytearray()
                for chunk in response.iter_bytes():  # as the bytes come, not in fixed sizes, so no wait is hidden
                    body += chunk
                    if time.monotonic() > deadline:
                        raise _DeadlinePassed
            return read_reply(json.loads(bytes(body)), self.model, one_hour_asked=asks_one_hour(params))
        except anthropic.APIStatusError as err:
            return self._status_failure(err)
        except (anthropic.APITimeoutError, _http.TimeoutException, _DeadlinePassed) as err:
            limit = self.request_deadline if isinstance(err, _DeadlinePassed) else self.request_timeout
            timed_out = f"API request timed out after {_seconds(limit)} s"
            return _Failure(timed_out, timed_out)
        except (anthropic.APIConnectionError, _http.TransportError) as err:
            # The SDK wraps the transport's error; one raised while the body streams comes bare.
            cause = (err.__cause__ or err.__context__) if isinstance(err, anthropic.APIConnectionError) else err
            reason = _one_line(f"{type(cause).__name__}: {cause}" if cause is not None else str(err))
            where = self.base_url or "the default endpoint"
            return _Failure(f"API unreachable ({reason})", f"cannot connect to {where} ({reason})")
        except (anthropic.APIResponseValidationError, json.JSONDecodeError, UnicodeDecodeError, MalformedReply) as err:
            # A 200 we cannot read: most likely a proxy cut the body short; asking again usually works.
            reason = f"{type(err).__name__}: {_one_line(str(err))}"
            return _Failure(f"API reply unreadable ({reason})", f"unreadable reply ({reason})", malformed=True)

    def _status_failure(self, err: anthropic.APIStatusError) -> _Failure:
        status = err.status_code
        error_type, message, code = _error_fields(err)
        detail = f"{status} {error_type}: {message}"
        if status in (401, 403):
            raise LLMError(
                self._redact(
                    f"{self._key_name} was refused ({detail}); check the key at console.anthropic.com "
                    f"and that it may use model {self.model!r}"
                )
            ) from err
        if status == 429 and code and "spend_limit" in code:
            # A monthly spend limit does not lift in hours; retrying all night would only hide it.
            raise LLMError(self._redact(f"The organisation's API spend limit was reached ({detail})")) from err
        if status not in _TRANSIENT_STATUSES and status < 500:
            refused = f"The API refused the request to model {self.model!r} ({detail}){_hint(status)}"
            # A 400 or 413 is about this prompt (too long, a malformed block): the next one may well pass. Billing
            # and a missing model are not, whatever the status says.
            persistent = status not in _ONE_REQUEST or any(w in message.lower() for w in _ACCOUNT_WORDS)
            raise (LLMError if persistent else RequestRefused)(self._redact(refused)) from err
        return _Failure(f"API {_status_label(status)} ({status})", detail, retry_after=_retry_after(err))

    # -- helpers -------------------------------------------------------------------------------------------------

    def _timeout(self) -> anthropic.Timeout:
        return anthropic.Timeout(self.request_timeout, connect=min(self.request_timeout, _CONNECT_TIMEOUT_S))

    def _delay(self, failures: int, retry_after: float | None) -> float:
        if retry_after is not None and retry_after > 0:
            return min(retry_after, _MAX_RETRY_AFTER_S) * self.scale
        ceiling = min(_FIRST_BACKOFF_S * 2 ** min(failures - 1, 32), _MAX_BACKOFF_S) * self.scale
        # Half fixed, half random: waits still grow, but many clients hit by one outage do not return in step.
        return ceiling / 2 + self._random.uniform(0, ceiling / 2)

    def _redact(self, text: str) -> str:
        # Our messages are built from server text; a proxy echoing the key back must not carry it into a log.
        return text.replace(self._key, "[redacted]") if len(self._key) >= 8 else text


def _error_fields(err: anthropic.APIStatusError) -> tuple[str, str, str | None]:
    """(error type, message, error code) from the body {"type": "error", "error": {...}}, tolerating other bodies."""
    body = err.body
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        details = error.get("details")
        code = details.get("error_code") if isinstance(details, dict) else None
        return (
            str(error.get("type") or "error"),
            _one_line(str(error.get("message") or "")),
            code if isinstance(code, str) else None,
        )
    text = body if isinstance(body, str) and body else err.message
    return "http_error", _one_line(str(text)), None


def _retry_after(err: anthropic.APIStatusError) -> float | None:
    """Seconds the server asked us to wait: retry-after-ms first (finer), then retry-after in seconds."""
    headers = err.response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            seconds = float(raw) * scale
        except ValueError:
            # An HTTP-date or garbage; the API sends seconds, so fall back to our own backoff.
            continue
        if math.isfinite(seconds) and seconds > 0:
            return seconds
    return None


def _status_label(status: int) -> str:
    labels = {408: "request timeout", 409: "conflict", 429: "rate-limited", 529: "overloaded"}
    return labels.get(status, "server error")


def _hint(status: int) -> str:
    hints = {
        400: "; check the model name and the request",
        404: "; check the model name and ANTHROPIC_BASE_URL",
        413: "; the prompt is too large for the API",
    }
    return hints.get(status, "")


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_DETAIL_CHARS else flat[: _MAX_DETAIL_CHARS - 1] + "…"


def _minutes(seconds: float) -> str:
    # Whole minutes for a long outage; a tenth of a minute for a short one, so "0" never stands for 40 seconds.
    minutes = seconds / 60
    return f"{minutes:.0f}" if minutes >= 10 else f"{minutes:.1f}".removesuffix(".0")


def _seconds(seconds: float) -> str:
    return f"{seconds:.0f}" if seconds >= 10 else f"{seconds:.1f}".removesuffix(".0")
