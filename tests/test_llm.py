"""Tests of harness.llm through the real anthropic SDK against the local fake Messages API server."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

import pytest

from harness.errors import BudgetExceeded, LLMError, RequestRefused
from harness.llm import LLMClient
from harness.pricing import price
from harness.task import Spend
from harness.testing import TEST_KEY, FakeAnthropic, message_body

MODEL = "claude-sonnet-4-6"
PROMPT = [{"role": "user", "content": "propose an edit"}]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The developer's own settings must not leak into a test, nor a test reach the real API.
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "ANTHROPIC_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", "/nonexistent-anthropic-config")


@pytest.fixture
def fake(fake_anthropic: FakeAnthropic) -> FakeAnthropic:
    return fake_anthropic


@dataclass
class Recorder:
    """Stands in for time.sleep and on_wait so retries are observed instead of waited for."""

    waits: list[float] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


def client(fake: FakeAnthropic, rec: Recorder | None = None, **kwargs: object) -> LLMClient:
    rec = rec or Recorder()
    options: dict[str, object] = {"api_key": TEST_KEY, "base_url": fake.url}
    options.update(kwargs)
    return LLMClient(MODEL, sleep=rec.waits.append, on_wait=rec.notices.append, **options)  # type: ignore[arg-type]


def sonnet_cost(input_tokens: int, output_tokens: int, cache_write: int = 0, cache_read: int = 0) -> float:
    # By hand: $3 / $15 per million, cache writes 1.25× input, cache reads 0.1× input.
    return (input_tokens * 3 + output_tokens * 15 + cache_write * 3.75 + cache_read * 0.3) / 1e6


# -- replies and pricing -------------------------------------------------------------------------------------------


def test_scripted_reply_comes_back_with_priced_usage(fake: FakeAnthropic) -> None:
    fake.reply("use a larger batch", input_tokens=1000, output_tokens=200, cache_write=400, cache_read=5000)
    llm = client(fake)

    reply = llm.complete(system="You edit train.py.", messages=PROMPT, max_tokens=500)

    assert reply.text == "use a larger batch"
    assert reply.stop_reason == "end_turn"
    assert reply.model == MODEL
    assert reply.usage == Spend(1000, 200, 400, 5000, pytest.approx(sonnet_cost(1000, 200, 400, 5000)))
    assert llm.spent_usd == pytest.approx(0.009)
    [request] = fake.requests
    assert request.path == "/v1/messages"
    assert request.json["model"] == MODEL
    assert request.json["max_tokens"] == 500
    assert request.json["system"] == "You edit train.py."
    assert request.json["messages"] == PROMPT
    assert "temperature" not in request.json


def test_text_joins_text_blocks_and_skips_others(fake: FakeAnthropic) -> None:
    body = message_body("", model=MODEL, input_tokens=10, output_tokens=10)
    body["content"] = [
        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
        {"type": "text", "text": "first "},
        {"type": "text", "text": "second"},
    ]
    fake.responder = lambda request: body

    reply = client(fake).complete(system="s", messages=PROMPT, temperature=0.2)

    assert reply.text == "first second"
    assert fake.requests[0].json["temperature"] == 0.2


def test_usage_totals_and_take_per_experiment(fake: FakeAnthropic) -> None:
    fake.reply("a", input_tokens=100, output_tokens=10)
    fake.reply("b", input_tokens=300, output_tokens=30, cache_read=50)
    llm = client(fake)

    llm.complete(system="s", messages=PROMPT)
    first = llm.take()
    llm.complete(system="s", messages=PROMPT)

    assert (first.input_tokens, first.output_tokens) == (100, 10)
    assert llm.take() == Spend(300, 30, 0, 50, pytest.approx(sonnet_cost(300, 30, 0, 50)))
    assert llm.take() == Spend()
    assert llm.usage.input_tokens == 400
    assert llm.usage.cost_usd == pytest.approx(sonnet_cost(400, 40, 0, 50))
    assert llm.spent_usd == llm.usage.cost_usd


def test_usage_adds_field_by_field() -> None:
    total = Spend(1, 2, 3, 4, 0.5) + Spend(10, 20, 30, 40, 0.25)
    assert total == Spend(11, 22, 33, 44, 0.75)


@pytest.mark.parametrize(
    ("model", "rates"),
    [
        # (input, output, cache read) in USD per million tokens, from the published price list.
        ("claude-fable-5-1", (10, 50, 0.25)),
        ("claude-mythos-5", (10, 50, 1.0)),
        ("claude-opus-5-5", (4, 20, 0.20)),
        ("claude-opus-5", (5, 25, 0.5)),
        ("claude-opus-4-8", (5, 25, 0.5)),
        ("claude-opus-4-5-20251101", (5, 25, 0.5)),
        ("claude-opus-4-1-20250805", (15, 75, 1.5)),
        ("claude-opus-4-20250514", (15, 75, 1.5)),
        ("claude-sonnet-5-5", (2, 10, 0.2)),
        ("claude-sonnet-5", (2, 10, 0.2)),
        ("claude-sonnet-4-6", (3, 15, 0.3)),
        ("claude-sonnet-4-5-20250929", (3, 15, 0.3)),
        ("claude-3-7-sonnet-latest", (3, 15, 0.3)),
        ("claude-haiku-5-5", (0.10, 0.50, 0.01)),
        ("anthropic.claude-haiku-5-5-v1:0", (0.10, 0.50, 0.01)),
        ("claude-haiku-4-5", (1, 5, 0.1)),
        ("claude-3-5-haiku-20241022", (0.8, 4, 0.08)),
        ("claude-3-haiku-20240307", (0.25, 1.25, 0.03)),
        # A version not on the list: its known neighbours' dearer rate, or the family's newest generation's.
        ("claude-opus-4-9", (5, 25, 0.5)),
        ("claude-opus-6", (5, 25, 0.5)),
        ("claude-sonnet-5-2", (2, 10, 0.2)),
        ("claude-sonnet-7-1", (2, 10, 0.2)),
        ("claude-haiku-6", (0.10, 0.50, 0.01)),
        ("claude-fable-6", (10, 50, 1.0)),
        # No version at all: the dearest rate of the family, or of all models.
        ("claude-opus-next", (15, 75, 1.5)),
        ("my-proxy-sonnet", (3, 15, 0.3)),
        ("some-other-model", (15, 75, 1.5)),
    ],
)
def test_price_per_million_tokens(model: str, rates: tuple[float, float, float]) -> None:
    input_rate, output_rate, read_rate = rates
    per_million = 1_000_000 / 1000  # priced on 1,000 tokens, under every long-prompt band
    assert price(model, 1000, 0) * per_million == pytest.approx(input_rate)
    assert price(model, 0, 1000) * per_million == pytest.approx(output_rate)
    assert price(model, 0, 0, 1000, 0) * per_million == pytest.approx(input_rate * 1.25, rel=0.2)
    assert price(model, 0, 0, 1000, 0, 1000) * per_million == pytest.approx(input_rate * 2)
    assert price(model, 0, 0, 0, 1000) * per_million == pytest.approx(read_rate)


def test_long_prompts_are_priced_at_the_long_context_rate() -> None:
    # Haiku 5.5: five times the rate on every token of a request whose prompt is over 100K tokens.
    assert price("claude-haiku-5-5", 90_000, 1000, 0, 10_000) == pytest.approx(
        (90_000 * 0.1 + 1000 * 0.5 + 10_000 * 0.01) / 1e6
    )
    assert price("claude-haiku-5-5", 90_000, 1000, 0, 10_001) == pytest.approx(
        (90_000 * 0.5 + 1000 * 2.5 + 10_001 * 0.05) / 1e6
    )
    assert price("claude-sonnet-4-5", 300_000, 0) == pytest.approx(300_000 * 6 / 1e6)
    assert price("claude-sonnet-4-6", 300_000, 0) == pytest.approx(300_000 * 3 / 1e6)


# -- retries -------------------------------------------------------------------------------------------------------


def test_storm_of_overloads_and_rate_limits_is_survived(fake: FakeAnthropic) -> None:
    fake.fault(529, times=4)
    fake.fault(429, retry_after=7, times=2)
    fake.fault(500)
    fake.fault(429, retry_after_ms=1500)
    fake.reply("recovered", input_tokens=10, output_tokens=5)
    rec = Recorder()

    reply = client(fake, rec).complete(system="s", messages=PROMPT)

    assert reply.text == "recovered"
    assert len(fake.requests) == 9
    assert len(rec.waits) == 8
    # The server's retry-after is obeyed exactly, in seconds or in milliseconds.
    assert rec.waits[4:6] == [7.0, 7.0]
    assert rec.waits[7] == pytest.approx(1.5)
    # Otherwise the waits back off exponentially from about 2 s, with jitter of at most half.
    for failures, wait in enumerate(rec.waits[:4], start=1):
        ceiling = 2.0 * 2 ** (failures - 1)
        assert ceiling / 2 <= wait <= ceiling
    assert 60 <= rec.waits[6] <= 120
    assert rec.notices[0].startswith("API overloaded (529); retrying in ")
    assert rec.notices[0].endswith("(outage 0 min of 360)")
    assert rec.notices[4].startswith("API rate-limited (429); retrying in 7 s")
    assert rec.notices[6].startswith("API server error (500)")
    # Each retry tells the server how many came before it.
    assert [r.headers["x-stainless-retry-count"] for r in fake.requests] == [str(n) for n in range(9)]


def test_backoff_is_capped(fake: FakeAnthropic) -> None:
    fake.fault(503, times=10)
    fake.reply("up again")
    rec = Recorder()

    client(fake, rec).complete(system="s", messages=PROMPT)

    assert max(rec.waits) <= 120
    assert rec.waits[-1] >= 60


def test_patience_exhausted_raises_with_the_last_error(fake: FakeAnthropic) -> None:
    fake.fault(529, times=50)
    rec = Recorder()

    with pytest.raises(LLMError, match=r"unreachable for 1 min \(patience 1 min\).*529 overloaded_error: Overloaded"):
        client(fake, rec, patience=60).complete(system="s", messages=PROMPT)

    # The last wait is trimmed so the final attempt lands at the deadline, not past it.
    assert sum(rec.waits) == pytest.approx(60, abs=1)
    assert len(fake.requests) == len(rec.waits) + 1 < 50


def test_unreachable_endpoint_is_retried_then_reported() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{closed_port}"
    rec = Recorder()
    llm = LLMClient(
        MODEL, api_key=TEST_KEY, base_url=url, patience=30, sleep=rec.waits.append, on_wait=rec.notices.append
    )

    with pytest.raises(LLMError, match=f"cannot connect to {url}"):
        llm.complete(system="s", messages=PROMPT)

    assert rec.notices[0].startswith("API unreachable (")
    assert llm.spent_usd == 0


def test_timeout_is_retried(fake: FakeAnthropic) -> None:
    fake.timeout(5)
    fake.reply("slow but fine")
    rec = Recorder()

    reply = client(fake, rec, request_timeout=0.5).complete(system="s", messages=PROMPT)

    assert reply.text == "slow but fine"
    assert len(fake.requests) == 2
    assert rec.notices[0].startswith("API request timed out after 0.5 s; retrying in ")


def test_a_body_that_trickles_is_cut_at_the_deadline_and_retried(fake: FakeAnthropic) -> None:
    fake.trickle("a byte at a time", interval=0.05)  # a ~400-byte body: 20 s, each read well inside any timeout
    fake.reply("on time")
    rec = Recorder()
    started = time.monotonic()

    reply = client(fake, rec, request_timeout=5, request_deadline=1.0).complete(system="s", messages=PROMPT)

    assert reply.text == "on time"
    assert time.monotonic() - started < 5
    assert len(fake.requests) == 2
    assert rec.notices[0].startswith("API request timed out after 1 s; retrying in ")


def test_a_connection_dropped_mid_body_is_retried(fake: FakeAnthropic) -> None:
    fake.drop()
    fake.reply("whole")
    rec = Recorder()

    reply = client(fake, rec).complete(system="s", messages=PROMPT)

    assert reply.text == "whole"
    assert len(fake.requests) == 2
    assert rec.notices[0].startswith("API unreachable (RemoteProtocolError")


def test_malformed_body_is_retried(fake: FakeAnthropic) -> None:
    fake.malformed()
    fake.fault(200, body="<html>bad gateway</html>")
    fake.fault(200, body={"type": "message", "role": "assistant"})
    fake.reply("clean", input_tokens=10, output_tokens=1)
    rec = Recorder()

    reply = client(fake, rec).complete(system="s", messages=PROMPT)

    assert reply.text == "clean"
    assert len(rec.waits) == 3
    assert all("unreadable" in notice for notice in rec.notices)


def test_persistently_malformed_body_gives_up(fake: FakeAnthropic) -> None:
    for _ in range(10):
        fake.malformed()

    with pytest.raises(LLMError, match="5 unreadable replies"):
        client(fake).complete(system="s", messages=PROMPT)

    assert len(fake.requests) == 5


# -- refusals ------------------------------------------------------------------------------------------------------


def test_refused_key_is_named_but_never_shown(fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong_key = "sk-ant-wrong-0000000000000000"
    monkeypatch.setenv("ANTHROPIC_API_KEY", wrong_key)
    rec = Recorder()
    llm = LLMClient(MODEL, base_url=fake.url, sleep=rec.waits.append, on_wait=rec.notices.append)

    with pytest.raises(LLMError) as caught:
        llm.complete(system="s", messages=PROMPT)

    message = str(caught.value)
    assert message.startswith(
        "ANTHROPIC_API_KEY was refused (401 authentication_error: invalid x-api-key); check the key"
    )
    assert wrong_key not in message
    assert len(fake.requests) == 1
    assert rec.waits == []


def test_key_echoed_by_the_server_is_redacted(fake: FakeAnthropic) -> None:
    fake.fault(403, body={"type": "error", "error": {"type": "permission_error", "message": f"{TEST_KEY}"}})

    with pytest.raises(LLMError) as caught:
        client(fake).complete(system="s", messages=PROMPT)

    assert TEST_KEY not in str(caught.value)
    assert "[redacted]" in str(caught.value)


@pytest.mark.parametrize("status", [400, 404, 413, 422])
def test_bad_request_fails_at_once(fake: FakeAnthropic, status: int) -> None:
    fake.fault(status, body={"type": "error", "error": {"type": "invalid_request_error", "message": "nope"}})
    rec = Recorder()

    with pytest.raises(LLMError, match=rf"model 'claude-sonnet-4-6' \({status} invalid_request_error: nope\)"):
        client(fake, rec).complete(system="s", messages=PROMPT)

    assert len(fake.requests) == 1
    assert rec.waits == []


@pytest.mark.parametrize("status", [400, 413])
def test_a_refusal_of_this_request_is_told_apart_from_one_that_stays(fake: FakeAnthropic, status: int) -> None:
    fake.fault(status)

    with pytest.raises(RequestRefused, match=rf"\({status} "):
        client(fake).complete(system="s", messages=PROMPT)


@pytest.mark.parametrize(
    ("status", "message"),
    [(401, "invalid x-api-key"), (403, "no permission"), (404, "model: claude-nonesuch"),
     (400, "Your credit balance is too low to access the Anthropic API")],
)  # fmt: skip
def test_refusals_that_stay_are_not_request_refusals(fake: FakeAnthropic, status: int, message: str) -> None:
    fake.fault(status, body={"type": "error", "error": {"type": "invalid_request_error", "message": message}})

    with pytest.raises(LLMError) as caught:
        client(fake).complete(system="s", messages=PROMPT)

    assert not isinstance(caught.value, RequestRefused)


def test_spend_limit_is_not_waited_out(fake: FakeAnthropic) -> None:
    body = {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "spend limit reached",
            "details": {"error_code": "enforced_spend_limit_reached"},
        },
    }
    fake.fault(429, body=body, retry_after=60)

    with pytest.raises(LLMError, match="spend limit was reached"):
        client(fake).complete(system="s", messages=PROMPT)

    assert len(fake.requests) == 1


def test_missing_key_is_reported_before_any_call() -> None:
    with pytest.raises(LLMError, match="ANTHROPIC_API_KEY is not set"):
        LLMClient(MODEL)


# -- budget --------------------------------------------------------------------------------------------------------


def test_budget_stops_the_call_after_the_cap_is_reached(fake: FakeAnthropic) -> None:
    for _ in range(3):
        fake.reply("edit", input_tokens=1000, output_tokens=400)  # $0.009 each
    llm = client(fake, max_cost_usd=0.01)

    llm.complete(system="s", messages=PROMPT)
    llm.complete(system="s", messages=PROMPT)
    with pytest.raises(BudgetExceeded, match=r"LLM spend \$0.02 reached max_cost_usd \$0.01"):
        llm.complete(system="s", messages=PROMPT)

    assert len(fake.requests) == 2
    assert llm.spent_usd == pytest.approx(0.018)


# -- configuration and check() -------------------------------------------------------------------------------------


def test_base_url_from_the_environment(fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", TEST_KEY)
    fake.reply("routed")

    reply = LLMClient("claude-haiku-4-5").complete(system="s", messages=PROMPT)

    assert reply.text == "routed"
    assert len(fake.requests) == 1


def test_check_succeeds_with_a_good_key(fake: FakeAnthropic) -> None:
    fake.reply("p", input_tokens=8, output_tokens=1)
    llm = client(fake)

    llm.check()

    [request] = fake.requests
    assert request.json["max_tokens"] == 1
    assert request.json["model"] == MODEL
    assert llm.spent_usd == pytest.approx(sonnet_cost(8, 1))


def test_check_fails_clearly_on_a_bad_key(fake: FakeAnthropic) -> None:
    llm = client(fake, api_key="sk-ant-not-the-right-one")

    with pytest.raises(LLMError, match=r"API key .*was refused \(401 authentication_error") as caught:
        llm.check()

    assert "sk-ant-not-the-right-one" not in str(caught.value)


def test_check_names_an_unknown_model(fake: FakeAnthropic) -> None:
    error = {"type": "error", "error": {"type": "not_found_error", "message": "model: claude-nonesuch"}}
    fake.fault(404, body=error)

    with pytest.raises(LLMError, match=r"model 'claude-sonnet-4-6' \(404 not_found_error: model: claude-nonesuch\)"):
        client(fake).check()


def test_check_retries_transient_errors(fake: FakeAnthropic) -> None:
    fake.fault(529, times=2)
    fake.reply("p")
    rec = Recorder()

    client(fake, rec).check()

    assert len(rec.waits) == 2


# -- the fake server itself ----------------------------------------------------------------------------------------


def test_unscripted_request_gets_a_loud_500(fake: FakeAnthropic) -> None:
    rec = Recorder()

    with pytest.raises(LLMError, match="no scripted reply"):
        client(fake, rec, patience=5).complete(system="s", messages=PROMPT)


def test_responder_text_gets_estimated_usage(fake: FakeAnthropic) -> None:
    fake.responder = lambda request: f"echo {request['messages'][0]['content']}"

    reply = client(fake).complete(system="s", messages=PROMPT)

    assert reply.text == "echo propose an edit"
    assert reply.usage.input_tokens > 1
    assert reply.usage.output_tokens == len(reply.text) // 4


def test_one_hour_cache_writes_are_priced_at_twice_the_input_rate(fake: FakeAnthropic) -> None:
    body = message_body("ok", model=MODEL, input_tokens=100, output_tokens=10)
    body["usage"]["cache_creation_input_tokens"] = 3000
    body["usage"]["cache_creation"] = {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000}
    fake.responder = lambda request: body
    llm = client(fake)
    reply = llm.complete(system="s", messages=[{"role": "user", "content": "hi"}], max_tokens=10)
    by_hand = (100 * 3 + 10 * 15 + 1000 * 3 * 1.25 + 2000 * 3 * 2.0) / 1e6
    assert reply.usage.cost_usd == pytest.approx(by_hand)
    assert reply.usage.cache_write_tokens == 3000


@pytest.mark.parametrize(("ttl", "rate"), [("1h", 2.0), ("5m", 1.25), (None, 1.25)])
def test_cache_writes_without_a_breakdown_are_priced_as_the_request_asked(fake: FakeAnthropic, ttl, rate) -> None:
    fake.reply("ok", input_tokens=100, output_tokens=10, cache_write=3000)
    mark = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
    prompt = [{"role": "user", "content": [{"type": "text", "text": "long prefix", "cache_control": mark}]}]

    reply = client(fake).complete(system="s", messages=prompt, max_tokens=10)

    assert reply.usage.cost_usd == pytest.approx((100 * 3 + 10 * 15 + 3000 * 3 * rate) / 1e6)


def test_tools_and_thinking_go_through_and_the_content_blocks_come_back(fake: FakeAnthropic) -> None:
    blocks = [
        {"type": "thinking", "thinking": "look first", "signature": "sig"},
        {"type": "text", "text": "Reading it."},
        {"type": "tool_use", "id": "toolu_9", "name": "view_file", "input": {"path": "prepare.py"}},
    ]
    fake.reply("", content=blocks, stop_reason="tool_use", input_tokens=10, output_tokens=900)
    tools = [{"name": "view_file", "description": "read", "input_schema": {"type": "object"}}]

    reply = client(fake).complete(
        system="s", messages=PROMPT, max_tokens=4000, tools=tools, tool_choice={"type": "auto"},
        thinking={"type": "enabled", "budget_tokens": 2048},
    )  # fmt: skip

    sent = fake.requests[0].json
    assert sent["tools"] == tools and sent["tool_choice"] == {"type": "auto"}
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert reply.stop_reason == "tool_use" and reply.text == "Reading it."
    assert list(reply.content) == blocks and reply.tool_uses == [blocks[2]]
    assert reply.usage.cost_usd == pytest.approx(sonnet_cost(10, 900))  # thinking tokens are output tokens
