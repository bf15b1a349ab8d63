"""Probation of a candidate agent: the turns it and the champion take, and the rule that says whether it did as well.

The rule. The probation window is split into pairs of experiments, one proposed by the candidate and one by the
champion, one right after the other; the order alternates from pair to pair, so neither side always meets the
champion first or the harder late phase of the night alone. Each experiment is ranked by what became of its
proposal: kept (2) above evaluated but discarded (1) above everything that gave no metric (0: invalid, duplicate,
crash, timeout, tampered). A pair is won by the higher rank; at equal ranks of two evaluated experiments, by the
better delta against the champion each was tried on, when the two deltas differ by more than the keep threshold
(max(min_delta, noise)); otherwise it is a tie. A pair with an interrupted experiment does not count.

The candidate replaces the champion when it won at least as many pairs as the champion did, at least one pair
counted, and at least one of its own proposals ran: a candidate that proposes clearly worse edits loses more pairs
than it wins and is rejected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from harness.ledger import Experiment

Role = Literal["candidate", "champion"]
RANK = {"keep": 2, "discard": 1}


@dataclass
class Probation:
    """The pairs of one candidate's probation, filled one experiment at a time."""

    pairs: int  # pairs of experiments in the window
    turns: list[tuple[Role, Experiment]] = field(default_factory=list)

    def next_role(self) -> Role:
        """Who proposes the next experiment: pair i starts with the candidate when i is even, the champion when odd."""
        pair, second = divmod(len(self.turns), 2)
        first: Role = "candidate" if pair % 2 == 0 else "champion"
        return first if not second else ("champion" if first == "candidate" else "candidate")

    def add(self, role: Role, row: Experiment) -> None:
        self.turns.append((role, row))

    @property
    def done(self) -> bool:
        return len(self.turns) >= 2 * self.pairs

    def verdict(self, direction: str, margin: float) -> tuple[bool, str, dict[str, Any]]:
        """(accepted, why in one line, the scores for the ledger) by the rule in this module's docstring."""
        sign = -1.0 if direction == "minimize" else 1.0
        pairs: list[dict[str, Any]] = []
        wins = {"candidate": 0, "champion": 0}
        ran = 0
        for i in range(0, len(self.turns) - 1, 2):
            sides = {role: row for role, row in self.turns[i : i + 2]}
            cand, champ = sides.get("candidate"), sides.get("champion")
            if cand is None or champ is None:
                continue
            ran += cand.status in RANK
            if "interrupted" in (cand.status, champ.status):
                winner = "not counted"
            else:
                winner = _winner(cand, champ, sign, margin)
                if winner in wins:
                    wins[winner] += 1
            pairs.append({"candidate": cand.id, "champion": champ.id, "winner": winner})
        counted = sum(1 for p in pairs if p["winner"] != "not counted")
        scores = {"pairs": pairs, "candidate": wins["candidate"], "champion": wins["champion"]}
        tally = f"won {wins['candidate']} pair(s), the champion {wins['champion']}, of {counted}"
        if not counted:
            return False, "no pair of the probation counted (interrupted)", scores
        if not ran:
            return False, f"none of the candidate's proposals ran ({tally})", scores
        if wins["candidate"] < wins["champion"]:
            return False, f"the candidate proposed worse experiments than the champion: {tally}", scores
        return True, f"the candidate did at least as well as the champion: {tally}", scores


def _winner(cand: Experiment, champ: Experiment, sign: float, margin: float) -> str:
    ranks = RANK.get(cand.status, 0), RANK.get(champ.status, 0)
    if ranks[0] != ranks[1]:
        return "candidate" if ranks[0] > ranks[1] else "champion"
    if ranks[0] == 0 or cand.delta is None or champ.delta is None:
        return "tie"
    gain = sign * (cand.delta - champ.delta)
    if abs(gain) <= margin:
        return "tie"
    return "candidate" if gain > 0 else "champion"
