"""The rule that judges an agent on evidence: a candidate's probation, and the record a champion answers for.

The evidence. Each experiment counts for what it gained the night: a kept experiment its improvement over the
champion it was tried on (in the metric's units, larger is better), every other outcome 0 (discarded, crashed,
timed out, invalid, unchanged, duplicate, or no proposal at all: a failure of any kind is no gain). An interrupted
experiment is no evidence either way.

The reference. A candidate is judged against the champion's own record from before the rewrite: the experiments the
champion agent proposed (on its own probation and as champion), the latest `REFERENCE` windows of them, all in the
ledger before the candidate existed. The champion plays no turn while a candidate is on probation, so neither the
candidate nor the agent that wrote it can play the other side. A champion that was itself accepted on probation also
leaves a floor: the candidate must do better than the record it was accepted against as well, so a champion that
throws some of its own turns to lower its record lowers no bar below the one it cleared. A rewrite is asked for only
once that record holds `RECORD` windows of experiments.

The test. An agent can be better in two ways: it keeps more often, or its keeps gain more. Two one-sided tests weigh
the candidate against the reference, each as a z (a normal quantile of its p-value):
- keeps: how often an experiment gained anything, by the two-proportion z test (the signed square root of the
  chi-square statistic of the 2x2 table);
- sizes: how much a keep gained, by Welch's t test on the logarithms of the keeps' gains, its p-value from the t
  distribution (scipy.special.stdtr). On the log scale "twice as large" is the same step in a night whose gains are
  thousandths as in one whose gains are tenths. With one keep on a side it says nothing (z 0); when a side kept
  nothing, keeps alone decide.
The score is the larger of the two z, the guard the smaller. The candidate is accepted at look k when the score
reaches ACCEPT[k] and the guard is at least -GUARD (more keeps, but much smaller ones, or larger keeps but far
fewer, are not better); rejected when the score falls to REJECT[k], or when the last look ends under its bound; and
probation goes on otherwise, at most `LOOKS` windows of the candidate's turns (a group-sequential design). Equal
records give z = 0 on both: ties keep the champion.

The keeps test, sides swapped, is the record a champion answers for after every window: when the reference it was
accepted against kept more often than its experiments as champion (the latest LOOKS windows), by the bound of
probation for as many windows, it gives its place back to the agent before it. Every failure (a raise, no proposal,
an invalid or unchanged file, a discard) is an experiment that kept nothing. The sizes of its keeps are left out:
gains shrink as a night converges, and the record it answers for is always older than its own experiments.

Error rates with the default window of 10 (bench/probation.py prints them; 20,000 simulated probations each, the
champion keeping 25% of its experiments, so 60 of them are the reference) are in the README's HyperAgent section,
which these constants were calibrated to: at most 10% of candidates as good as the champion accepted, at most 2% of
those half as good or never keeping, at least 70% of those keeping twice as often or whose keeps gain twice as much.

The reference is older than the candidate's turns. In a night whose keeps grow rarer and smaller as it converges,
the rule leans to the champion: fewer rewrites accepted, never more (bench/probation.py --drift). The sizes test
weighs ratios, so a night's units do not matter; its convergence does, and only a reference measured beside the
candidate could take that out, which would be turns the champion plays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from scipy import special

from harness.ledger import Experiment

LOOKS = 8  # at most this many looks at the evidence, one after each window of the candidate's turns
ACCEPT = (3.55, 2.88, 2.55, 2.34, 2.19, 2.07, 1.98, 1.90)  # the score at look k that accepts: 1.9 * (8 / k) ** 0.3
REJECT = (-0.5, -0.31, -0.13, 0.06, 0.24, 0.43, 0.61)  # the score at look k that rejects before the last look
GUARD = 1.25  # the other test may not say the candidate is worse by more than this
RECORD = 6  # windows of experiments the champion's record must hold before it may rewrite itself
REFERENCE = 6  # windows of the champion's latest experiments that are the reference
Z_MAX = 8.0  # a p-value too small to tell apart from 0 is this z
Rows = Sequence[Experiment]


@dataclass(frozen=True)
class Verdict:
    """What the rule decided: accepted or not, why in one line, and the evidence for the ledger."""

    accepted: bool
    why: str
    scores: dict[str, Any]


@dataclass(frozen=True)
class Evidence:
    """How much better one record did than another: the z of its keep rate, and of its keeps' sizes (None when
    either side kept nothing)."""

    keeps: float
    sizes: float | None

    @property
    def score(self) -> float:
        return self.keeps if self.sizes is None else max(self.keeps, self.sizes)

    @property
    def guard(self) -> float:
        return self.keeps if self.sizes is None else min(self.keeps, self.sizes)

    def shows(self, k: int) -> bool:
        """Whether it shows the first record better at look k (0-based): the score at the bound, the guard above."""
        return self.score >= ACCEPT[k] and self.guard >= -GUARD

    def __str__(self) -> str:
        sizes = "n/a" if self.sizes is None else f"{self.sizes:+.2f}"
        return f"z {self.score:+.2f} (keeps {self.keeps:+.2f}, sizes {sizes})"


def gains(rows: Rows, direction: str) -> list[float]:
    """What each experiment gained the night (its improvement when kept, 0 otherwise); interrupted ones left out."""
    sign = -1.0 if direction == "minimize" else 1.0
    out = []
    for row in rows:
        if row.status == "interrupted":
            continue
        kept = row.status == "keep" and row.delta is not None
        out.append(max(0.0, sign * row.delta) if kept and row.delta is not None else 0.0)
    return out


def weigh(sample: Sequence[float], reference: Sequence[float]) -> Evidence:
    """How much better the gains `sample` are than `reference`: z > 0 when it keeps more often (keeps) or its keeps
    gain more (sizes), 0 when the two cannot be told apart (equal, or either side empty)."""
    return Evidence(_keeps(sample, reference), _sizes([g for g in sample if g > 0], [g for g in reference if g > 0]))


def _keeps(sample: Sequence[float], reference: Sequence[float]) -> float:
    """The two-proportion z of how often each side gained anything (pooled variance)."""
    n1, n2 = len(sample), len(reference)
    if not n1 or not n2:
        return 0.0
    k1, k2 = sum(1 for g in sample if g > 0), sum(1 for g in reference if g > 0)
    pooled = (k1 + k2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    return 0.0 if variance <= 0 else (k1 / n1 - k2 / n2) / math.sqrt(variance)


def _sizes(sample: Sequence[float], reference: Sequence[float]) -> float | None:
    """Welch's one-sided t test of the keeps' log gains, as a z: 0 (no evidence either way) with one keep on a side,
    None when a side kept nothing (it has no size to show: keeps alone decide)."""
    if not sample or not reference:
        return None
    if len(sample) < 2 or len(reference) < 2:
        return 0.0
    a, b = [math.log(g) for g in sample], [math.log(g) for g in reference]
    (m1, v1), (m2, v2) = _moments(a), _moments(b)
    s1, s2 = v1 / len(a), v2 / len(b)
    if s1 + s2 <= 0:
        return 0.0
    t = (m1 - m2) / math.sqrt(s1 + s2)
    df = (s1 + s2) ** 2 / (s1**2 / (len(a) - 1) + s2**2 / (len(b) - 1))
    z = float(special.ndtri(special.stdtr(df, t)))  # the normal quantile of t's place in its distribution
    return max(-Z_MAX, min(Z_MAX, z))


def _moments(values: Sequence[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    return mean, sum((v - mean) ** 2 for v in values) / (len(values) - 1)


def look(turns: int, window: int) -> int | None:
    """Which look (0, 1, ...) `turns` experiments make with looks every `window`, or None between two looks."""
    if turns == 0 or turns % window:
        return None
    return min(turns // window, LOOKS) - 1


def judge(candidate: Rows, reference: Rows, window: int, direction: str, floor: Rows = ()) -> Verdict | None:
    """The verdict on a candidate after its turns so far, or None while the evidence is undecided. With a `floor`
    (the record the champion was itself accepted against) the candidate must do better than it too: a champion that
    throws its own turns lowers its record, never the bar it cleared."""
    k = look(len(candidate), window)
    if k is None:
        return None
    ours = gains(candidate, direction)
    evidence = weigh(ours, gains(reference, direction))
    scores = _scores(candidate, reference, direction, evidence)
    tally = (
        f"{evidence} after {len(candidate)} turn(s) (kept {scores['candidate_keeps']}) against the champion's record "
        f"of {len(reference)} (kept {scores['reference_keeps']})"
    )
    if floor:
        low = weigh(ours, gains(floor, direction))
        scores |= {"floor": [r.id for r in floor], "floor_z": round(low.score, 4)}
        if low.score < evidence.score or low.guard < evidence.guard:
            evidence = Evidence(min(evidence.keeps, low.keeps), _lower(evidence.sizes, low.sizes))
            tally += f"; {low} against the record the champion was accepted on ({len(floor)})"
    if evidence.shows(k):
        return Verdict(True, f"did better than the champion's record: {tally}, bound {ACCEPT[k]:+.2f}", scores)
    if k == LOOKS - 1 or evidence.score <= REJECT[k]:
        return Verdict(False, f"not shown better than the champion's record: {tally}", scores)
    return None


def _lower(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def answers(record: Rows, reference: Rows, window: int, direction: str) -> str:
    """Why a champion whose experiments as champion are `record` gives its place back (the `reference` it was
    accepted against kept more often, by the bound probation would need as many windows to accept), or ""."""
    record = list(record)[-LOOKS * window :]
    if len(record) < window or not reference:
        return ""
    k = min(len(record) // window, LOOKS) - 1
    evidence = Evidence(_keeps(gains(reference, direction), gains(record, direction)), None)  # keeps alone
    if not evidence.shows(k):
        return ""
    kept = sum(1 for r in record if r.status == "keep")
    failed = sum(1 for r in record if r.status not in ("keep", "discard"))
    return (
        f"its {len(record)} experiments as champion (kept {kept}, {failed} gave no metric) did worse than the "
        f"record of the agent before it: {evidence} for that record, bound {ACCEPT[k]:+.2f}"
    )


@dataclass
class Probation:
    """One candidate's probation: every turn is the candidate's, judged against a reference fixed before it began."""

    window: int  # the candidate's turns between two looks
    reference: tuple[Experiment, ...]  # the champion's record from before the rewrite
    direction: str
    floor: tuple[Experiment, ...] = ()  # the record the champion was accepted against (none for the seed)
    turns: list[Experiment] = field(default_factory=list)
    verdict: Verdict | None = None

    def add(self, row: Experiment) -> None:
        """One more experiment of the candidate; the rule looks at the evidence after each window of them."""
        if row.status == "interrupted" or self.verdict is not None:
            return
        self.turns.append(row)
        self.verdict = judge(self.turns, self.reference, self.window, self.direction, self.floor)

    @property
    def done(self) -> bool:
        return self.verdict is not None


def _scores(candidate: Rows, reference: Rows, direction: str, evidence: Evidence) -> dict[str, Any]:
    return {
        "rule": "keeps-and-sizes",
        "z": round(evidence.score, 4),
        "z_keeps": round(evidence.keeps, 4),
        "z_sizes": None if evidence.sizes is None else round(evidence.sizes, 4),
        "candidate": [r.id for r in candidate],
        "reference": [r.id for r in reference],
        "candidate_keeps": sum(1 for r in candidate if r.status == "keep"),
        "reference_keeps": sum(1 for r in reference if r.status == "keep"),
        "candidate_gain": round(sum(gains(candidate, direction)), 9),
        "reference_gain": round(sum(gains(reference, direction)), 9),
    }
