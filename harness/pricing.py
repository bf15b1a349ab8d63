"""What an LLM call costs: USD per token, by model and kind of token (input, output, cache writes and reads)."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Rates:
    """USD per million tokens of one model; `long` applies to every token of a request whose prompt (input, cache
    writes and cache reads) is over `long_above` tokens."""

    input: float
    output: float
    write_5m: float  # a cache write with the default 5-minute TTL
    write_1h: float  # a cache write with cache_control ttl "1h"
    read: float  # a cache hit
    long: Rates | None = None
    long_above: int = 0


def _rates(input_: float, output: float, read_factor: float = 0.1) -> Rates:
    # The usual multipliers: 5-minute writes 1.25× input, 1-hour writes 2×, hits 0.1× unless the table says less.
    return Rates(input_, output, input_ * 1.25, input_ * 2.0, input_ * read_factor)


# From Anthropic's price list (platform.claude.com/docs/en/about-claude/pricing and each model's overview page,
# read in October 2026). Where two sources disagree the dearer figure stands, so the spend cap over-counts: Sonnet
# 5.5's cache hits are listed at $0.20 on its model page and reported cut to $0.10 since 2026-10-07.
_FABLE_51 = _rates(10.0, 50.0, 0.025)
_FABLE_5 = _rates(10.0, 50.0)
_OPUS_55 = _rates(4.0, 20.0, 0.05)
_OPUS_45 = _rates(5.0, 25.0)  # Opus 4.5 to 5
_OPUS_LEGACY = _rates(15.0, 75.0)  # Opus 3, 4, 4.1
_SONNET_5 = _rates(2.0, 10.0)  # Sonnet 5 and 5.5
_SONNET = _rates(3.0, 15.0)  # Sonnet 3.5 to 4.6
# Sonnet 4 and 4.5 with the 1M-token context: a prompt over 200K tokens is billed at 2× input and 1.5× output.
_SONNET_LONG = Rates(3.0, 15.0, 3.75, 6.0, 0.30, long=Rates(6.0, 22.5, 7.5, 12.0, 0.60), long_above=200_000)
# Haiku 5.5 is priced by prompt length: 5× on every token of a request whose prompt is over 100K tokens.
_HAIKU_55 = Rates(0.10, 0.50, 0.125, 0.20, 0.01, long=_rates(0.50, 2.50), long_above=100_000)
_HAIKU_45 = _rates(1.0, 5.0)
_HAIKU_35 = _rates(0.8, 4.0)
_HAIKU_3 = Rates(0.25, 1.25, 0.30, 0.50, 0.03)

# (family, major, minor) → rates; a name without a minor ("claude-opus-4-20250514") is minor 0.
_TABLE: dict[tuple[str, int, int], Rates] = {
    ("fable", 5, 1): _FABLE_51,
    ("mythos", 5, 1): _FABLE_51,
    ("fable", 5, 0): _FABLE_5,
    ("mythos", 5, 0): _FABLE_5,
    ("opus", 5, 5): _OPUS_55,
    ("opus", 5, 0): _OPUS_45,
    ("opus", 4, 8): _OPUS_45,
    ("opus", 4, 7): _OPUS_45,
    ("opus", 4, 6): _OPUS_45,
    ("opus", 4, 5): _OPUS_45,
    ("opus", 4, 1): _OPUS_LEGACY,
    ("opus", 4, 0): _OPUS_LEGACY,
    ("opus", 3, 0): _OPUS_LEGACY,
    ("sonnet", 5, 5): _SONNET_5,
    ("sonnet", 5, 0): _SONNET_5,
    ("sonnet", 4, 6): _SONNET,
    ("sonnet", 4, 5): _SONNET_LONG,
    ("sonnet", 4, 0): _SONNET_LONG,
    ("sonnet", 3, 7): _SONNET,
    ("sonnet", 3, 5): _SONNET,
    ("haiku", 5, 5): _HAIKU_55,
    ("haiku", 4, 5): _HAIKU_45,
    ("haiku", 3, 5): _HAIKU_35,
    ("haiku", 3, 0): _HAIKU_3,
}
_FAMILIES = "|".join(sorted({family for family, _, _ in _TABLE}))
# "claude-opus-4-5-20251101", "claude-sonnet-4@20250514", "anthropic.claude-haiku-5-5-v1:0": family, major, minor.
# The minor is one or two digits so that a date stamp ("-20250514") is not read as one.
_NEW_NAME = re.compile(rf"claude-({_FAMILIES})-(\d+)(?:-(\d{{1,2}})(?!\d))?")
# "claude-3-5-sonnet-20241022", "claude-3-haiku-20240307": major, minor, family.
_OLD_NAME = re.compile(rf"claude-(\d+)(?:-(\d{{1,2}}))?-({_FAMILIES})")


def _dearer(a: Rates, b: Rates) -> Rates:
    """Each rate at the higher of the two, so that a guess never under-counts."""
    names = [f.name for f in fields(Rates) if f.name not in ("long", "long_above")]
    top = Rates(*(max(getattr(a, n), getattr(b, n)) for n in names))
    if a.long is None and b.long is None:
        return top
    long = _dearer(a.long or a, b.long or b)
    above = min(x.long_above for x in (a, b) if x.long is not None)
    return Rates(*(getattr(top, n) for n in names), long=long, long_above=above)


def _dearest(rates: list[Rates]) -> Rates:
    out = rates[0]
    for r in rates[1:]:
        out = _dearer(out, r)
    return out


_UNKNOWN = _dearest(list(_TABLE.values()))


def rates_of(model: str) -> Rates:
    """The rates of a model name. A version not on the list is priced at its nearest known neighbours (the dearer
    of the one below and the one above), a version newer than all at the dearest of its family's newest
    generation, and anything else at the dearest rate of its family or of all models: a guess may over-count the
    spend, never under-count it, so max_cost_usd still protects."""
    name = model.lower()
    if match := _NEW_NAME.search(name):
        family, major, minor = match.group(1), int(match.group(2)), int(match.group(3) or 0)
    elif match := _OLD_NAME.search(name):
        family, major, minor = match.group(3), int(match.group(1)), int(match.group(2) or 0)
    else:
        known = [r for (f, _, _), r in _TABLE.items() if f in name]
        return _dearest(known) if known else _UNKNOWN
    if (family, major, minor) in _TABLE:
        return _TABLE[(family, major, minor)]
    versions = sorted((ma, mi) for f, ma, mi in _TABLE if f == family)
    same = [v for v in versions if v[0] == major]
    if same:
        below = [v for v in same if v < (major, minor)][-1:]
        above = [v for v in same if v > (major, minor)][:1]
        return _dearest([_TABLE[(family, *v)] for v in below + above])
    if major > versions[-1][0]:
        newest = versions[-1][0]
        return _dearest([_TABLE[(family, *v)] for v in versions if v[0] == newest])
    return _dearest([_TABLE[(family, *v)] for v in versions])


def price(
    model: str,
    input_tokens: int,
    output_tokens: int,
    cache_write_tokens: int = 0,
    cache_read_tokens: int = 0,
    cache_write_1h_tokens: int = 0,
) -> float:
    """USD for one call's tokens (see rates_of for a model not on the list). `cache_write_1h_tokens` is the part of
    `cache_write_tokens` written with a 1-hour TTL (dearer)."""
    rates = rates_of(model)
    if rates.long is not None and input_tokens + cache_write_tokens + cache_read_tokens > rates.long_above:
        rates = rates.long
    one_hour = min(cache_write_1h_tokens, cache_write_tokens)
    per_million = (
        input_tokens * rates.input
        + output_tokens * rates.output
        + (cache_write_tokens - one_hour) * rates.write_5m
        + one_hour * rates.write_1h
        + cache_read_tokens * rates.read
    )
    return per_million / 1_000_000
