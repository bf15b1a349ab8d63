"""What an LLM call costs: USD per token, by model and kind of token (input, output, cache writes and reads)."""

from __future__ import annotations

import re

# USD per million (input, output) tokens. Cache writes cost 1.25× input (the 5-minute cache), cache reads 0.1×.
_OPUS_LEGACY = (15.0, 75.0)
_OPUS_45 = (5.0, 25.0)
_SONNET = (3.0, 15.0)
_HAIKU_45 = (1.0, 5.0)
_HAIKU_35 = (0.8, 4.0)
_HAIKU_3 = (0.25, 1.25)
_CACHE_WRITE_FACTOR = 1.25  # a 5-minute cache write
_CACHE_WRITE_1H_FACTOR = 2.0  # a 1-hour cache write (cache_control ttl "1h")
_CACHE_READ_FACTOR = 0.1

# (family, major, minor) → rates; minor None means a model named without one ("claude-3-haiku").
_RATES: dict[tuple[str, int, int | None], tuple[float, float]] = {
    ("opus", 3, None): _OPUS_LEGACY,
    ("opus", 4, None): _OPUS_LEGACY,
    ("opus", 4, 0): _OPUS_LEGACY,
    ("opus", 4, 1): _OPUS_LEGACY,
    ("sonnet", 3, 5): _SONNET,
    ("sonnet", 3, 7): _SONNET,
    ("haiku", 3, None): _HAIKU_3,
    ("haiku", 3, 5): _HAIKU_35,
    ("haiku", 4, 5): _HAIKU_45,
}
# A model we cannot place exactly is priced at the dearest rate of its family, or of all models when even the family
# is unknown, so that max_cost_usd over-counts rather than under-counts and the cap still protects.
_FAMILY_FALLBACK: dict[str, tuple[float, float]] = {"opus": _OPUS_LEGACY, "sonnet": _SONNET, "haiku": _HAIKU_45}
_UNKNOWN_RATES = _OPUS_LEGACY

# "claude-opus-4-5-20251101", "claude-sonnet-4@20250514", "anthropic.claude-haiku-4-5-v1:0": family, major, minor.
# The minor is one or two digits so that a date stamp ("-20250514") is not read as one.
_NEW_NAME = re.compile(r"claude-(opus|sonnet|haiku)-(\d+)(?:-(\d{1,2})(?!\d))?")
# "claude-3-5-sonnet-20241022", "claude-3-haiku-20240307": major, minor, family.
_OLD_NAME = re.compile(r"claude-(\d+)(?:-(\d{1,2}))?-(opus|sonnet|haiku)")


def _rates(model: str) -> tuple[float, float]:
    name = model.lower()
    family: str | None = None
    version: tuple[int, int | None] | None = None
    if match := _NEW_NAME.search(name):
        family = match.group(1)
        version = (int(match.group(2)), int(match.group(3)) if match.group(3) else None)
    elif match := _OLD_NAME.search(name):
        family = match.group(3)
        version = (int(match.group(1)), int(match.group(2)) if match.group(2) else None)
    if family is not None and version is not None:
        major, minor = version
        if (family, major, minor) in _RATES:
            return _RATES[(family, major, minor)]
        # Every Sonnet 4.x shares one price, and Opus dropped to 5/25 from 4.5 on; later 4.x releases keep it.
        if family == "sonnet" and major == 4:
            return _SONNET
        if family == "opus" and major == 4 and minor is not None and minor >= 5:
            return _OPUS_45
    for word, rates in _FAMILY_FALLBACK.items():
        if word in name:
            return rates
    return _UNKNOWN_RATES


def price(
    model: str,
    input_tokens: int,
    output_tokens: int,
    cache_write_tokens: int = 0,
    cache_read_tokens: int = 0,
    cache_write_1h_tokens: int = 0,
) -> float:
    """USD for one call's tokens; a model not in the table is priced high, never low (see _FAMILY_FALLBACK).
    `cache_write_1h_tokens` is the part of `cache_write_tokens` written with a 1-hour TTL (dearer)."""
    input_rate, output_rate = _rates(model)
    one_hour = min(cache_write_1h_tokens, cache_write_tokens)
    per_million = (
        input_tokens * input_rate
        + output_tokens * output_rate
        + (cache_write_tokens - one_hour) * input_rate * _CACHE_WRITE_FACTOR
        + one_hour * input_rate * _CACHE_WRITE_1H_FACTOR
        + cache_read_tokens * input_rate * _CACHE_READ_FACTOR
    )
    return per_million / 1_000_000
