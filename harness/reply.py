"""A Messages API reply body read into a Reply: its content blocks, why it stopped, and its usage, priced."""

from __future__ import annotations

from typing import Any

from harness.pricing import price
from harness.task import Reply, Spend

USAGE = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


class MalformedReply(Exception):
    """A 200 whose body is not a Messages API reply (a proxy's error page, a body cut short)."""


def asks_one_hour(params: dict[str, Any]) -> bool:
    """Whether a request marks any block for the 1-hour cache (cache_control ttl "1h")."""
    found = False

    def walk(node: Any) -> None:
        nonlocal found
        if isinstance(node, dict):
            mark = node.get("cache_control")
            if isinstance(mark, dict) and mark.get("ttl") == "1h":
                found = True
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk([params.get("system"), params.get("tools"), params.get("messages"), params.get("cache_control")])
    return found


def read_reply(body: Any, model: str, *, one_hour_asked: bool) -> Reply:
    """The Reply of a parsed body, priced by `model` (the one we asked for: an endpoint that names another must not
    make the call look cheap); MalformedReply when the body lacks what we use."""
    if not isinstance(body, dict) or not isinstance(body.get("content"), list):
        raise MalformedReply(f"the reply has no content list (got {type(body).__name__})")
    content = tuple(_clean(block) for block in body["content"] if isinstance(block, dict))
    text = "".join(str(block.get("text") or "") for block in content if block.get("type") == "text")
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    tokens = {name: _count(usage.get(name)) for name in USAGE}
    writes = tokens["cache_creation_input_tokens"]
    breakdown = usage.get("cache_creation")
    if isinstance(breakdown, dict):
        one_hour = _count(breakdown.get("ephemeral_1h_input_tokens"))
    else:
        # No breakdown (an older API version, a proxy): price the writes as the request asked for them; where it
        # asked for both TTLs we cannot tell them apart, and the dearer one keeps the cap on the safe side.
        one_hour = writes if one_hour_asked else 0
    cost = price(
        model,
        tokens["input_tokens"],
        tokens["output_tokens"],
        writes,
        tokens["cache_read_input_tokens"],
        one_hour,
    )
    spend = Spend(
        input_tokens=tokens["input_tokens"],
        output_tokens=tokens["output_tokens"],  # thinking tokens are billed, and counted, as output
        cache_write_tokens=writes,
        cache_read_tokens=tokens["cache_read_input_tokens"],
        cost_usd=cost,
    )
    stop = body.get("stop_reason")
    answered = str(body.get("model") or model)
    return Reply(text=text, stop_reason=stop if isinstance(stop, str) else None, model=answered, usage=spend,
                 content=content)  # fmt: skip


def _clean(block: dict[str, Any]) -> dict[str, Any]:
    # A block goes back to the API as it came (a thinking block must, byte for byte); only nulls are dropped,
    # since some fields the API sends as null it does not accept back.
    return {k: v for k, v in block.items() if v is not None}


def _count(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0
