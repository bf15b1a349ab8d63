"""The spread of one run, from the differences of pairs of repeated runs: a robust estimate that spikes do not move."""

from __future__ import annotations

import math

# |x - y| of two runs of one commit is |N(0, 2 sigma^2)|, whose median is 0.6745 * sqrt(2) * sigma.
PAIR_TO_SIGMA = 1.0 / (0.6744897501960817 * math.sqrt(2.0))
CLIP = 3.0  # pairs further apart than 3 standard deviations of a difference are spikes (0.27% of clean pairs are)
# The standard deviation of a normal variable clipped at +-3 is this share of the unclipped one.
CLIP_CORRECTION = math.sqrt(
    1.0 - 2.0 * CLIP * math.exp(-CLIP * CLIP / 2.0) / math.sqrt(2.0 * math.pi) / math.erf(CLIP / math.sqrt(2.0))
)


def clipped_sigma(pairs: list[tuple[float, float]]) -> float:
    """Sigma from (|x - y|, weight) pairs: a first guess from their weighted median, then the root mean square of the
    pairs within CLIP standard deviations of it, corrected for the clipped tails. The median alone would let the
    pairs of a spiked run (every pair its commit has) push it up; clipping drops them, and the mean square of the
    rest is twice as precise as a median of the same pairs."""
    guess = _weighted_median(pairs) * PAIR_TO_SIGMA
    cut = CLIP * math.sqrt(2.0) * guess
    kept = [(d, w) for d, w in pairs if d <= cut]
    weight = sum(w for _, w in kept)
    if guess == 0.0 or weight == 0.0:
        return guess
    return math.sqrt(sum(w * d * d for d, w in kept) / weight / 2.0) / CLIP_CORRECTION


def _weighted_median(items: list[tuple[float, float]]) -> float:
    items = sorted(items)
    half = sum(w for _, w in items) / 2.0
    total = 0.0
    for i, (x, w) in enumerate(items):
        total += w
        if math.isclose(total, half) and i + 1 < len(items):
            return (x + items[i + 1][0]) / 2.0
        if total > half:
            return x
    return items[-1][0]
