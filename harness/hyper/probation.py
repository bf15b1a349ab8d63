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

The test. A one-sided Mann-Whitney test of the candidate's gains against the reference's (the normal approximation
with the correction for ties), looked at after every window of the candidate's turns, at most `LOOKS` times (a group
sequential design): the candidate is accepted when z reaches ACCEPT[k] at look k, rejected when z falls to REJECT[k]
or when the last look ends under its bound, and probation goes on otherwise. z is 0 when the two do equally well:
ties keep the champion.

The same test, sides swapped, is the record a champion answers for after every window: when its experiments as
champion (the latest LOOKS windows) did worse than the reference it was accepted against, by the bound of probation
for as many windows, it gives its place back to the agent before it.

Error rates with the default window of 10 (bench/probation.py prints them, 20,000 simulated probations each, the
champion keeping 25% of its experiments): a candidate as good as the champion is accepted 8.0% of the time (the
bound: 10%), one with half its keep rate 0.4% (2%), one that never keeps never (2%), and one with twice its keep
rate 73.9% (at least 70%). A candidate with its keep rate and keeps twice as large is accepted only ~11% of the
time: gains are too noisy to tell apart in 40 experiments. The reference is older than the candidate's turns: in a
night whose keeps grow rarer and smaller as it converges, the rule leans to the champion (fewer accepts, not more).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.ledger import Experiment

LOOKS = 4  # looks at the evidence, one after each window of the candidate's turns
ACCEPT = (2.4, 2.1, 1.8, 1.45)  # z at look k that accepts: high early, when a few lucky keeps could reach it
REJECT = (-1.5, -1.0, -0.5)  # z at look k that rejects before the last look; at the last, anything under ACCEPT
RECORD = 3  # windows of experiments the champion's record must hold before it may rewrite itself
REFERENCE = 6  # windows of the champion's latest experiments that are the reference
Rows = Sequence[Experiment]


@dataclass(frozen=True)
class Verdict:
    """What the rule decided: accepted or not, why in one line, and the evidence for the ledger."""

    accepted: bool
    why: str
    scores: dict[str, Any]


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


def weigh(sample: Sequence[float], reference: Sequence[float]) -> float:
    """The Mann-Whitney z of `sample` against `reference`: > 0 when its values tend to be larger, 0 when the two
    cannot be told apart (every value equal, or either side empty)."""
    n1, n2 = len(sample), len(reference)
    if not n1 or not n2:
        return 0.0
    pooled = sorted([(v, 0) for v in sample] + [(v, 1) for v in reference])
    n = n1 + n2
    rank_sum, ties, i = 0.0, 0.0, 0
    while i < n:
        j = i
        while j < n and pooled[j][0] == pooled[i][0]:
            j += 1
        midrank = (i + j + 1) / 2  # ranks are 1-based: the tied block i..j-1 shares the mean of i+1..j
        rank_sum += midrank * sum(1 for k in range(i, j) if pooled[k][1] == 0)
        ties += (j - i) ** 3 - (j - i)
        i = j
    u = rank_sum - n1 * (n1 + 1) / 2
    variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    return 0.0 if variance <= 0 else (u - n1 * n2 / 2) / math.sqrt(variance)


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
    z = weigh(gains(candidate, direction), gains(reference, direction))
    scores = _scores(candidate, reference, direction, z)
    tally = (
        f"z {z:+.2f} after {len(candidate)} turn(s) (kept {scores['candidate_keeps']}) against the champion's record "
        f"of {len(reference)} (kept {scores['reference_keeps']})"
    )
    if floor:
        low = weigh(gains(candidate, direction), gains(floor, direction))
        scores |= {"floor": [r.id for r in floor], "floor_z": round(low, 4)}
        if low < z:
            z = low
            tally += f"; z {low:+.2f} against the record the champion was accepted on ({len(floor)})"
    if z >= ACCEPT[k]:
        return Verdict(True, f"did better than the champion's record: {tally}, bound {ACCEPT[k]:+.2f}", scores)
    if k == LOOKS - 1 or z <= REJECT[k]:
        return Verdict(False, f"not shown better than the champion's record: {tally}", scores)
    return None


def answers(record: Rows, reference: Rows, window: int, direction: str) -> str:
    """Why a champion whose experiments as champion are `record` gives its place back (they did worse than the
    `reference` it was accepted against, by the bound probation would need as many windows to accept), or ""."""
    record = list(record)[-LOOKS * window :]
    if len(record) < window or not reference:
        return ""
    k = min(len(record) // window, LOOKS) - 1
    z = weigh(gains(record, direction), gains(reference, direction))
    if z > -ACCEPT[k]:
        return ""
    kept = sum(1 for r in record if r.status == "keep")
    failed = sum(1 for r in record if r.status not in ("keep", "discard"))
    return (
        f"its {len(record)} experiments as champion (kept {kept}, {failed} gave no metric) did worse than the "
        f"record of the agent before it: z {z:+.2f}, bound {-ACCEPT[k]:+.2f}"
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


def _scores(
    candidate: Sequence[Experiment], reference: Sequence[Experiment], direction: str, z: float
) -> dict[str, Any]:
    return {
        "rule": "mann-whitney",
        "z": round(z, 4),
        "candidate": [r.id for r in candidate],
        "reference": [r.id for r in reference],
        "candidate_keeps": sum(1 for r in candidate if r.status == "keep"),
        "reference_keeps": sum(1 for r in reference if r.status == "keep"),
        "candidate_gain": round(sum(gains(candidate, direction)), 9),
        "reference_gain": round(sum(gains(reference, direction)), 9),
    }
