"""The night's state: the experiment rows of one tag, the champion and its metric, the noise, what already ran."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from harness.config import Config
from harness.ledger import Experiment
from harness.task import Result

# Content that really ran: a later proposal of the same file is a duplicate of it. An interrupted experiment never
# finished its run, so its content may be proposed (and run) again.
RAN = frozenset({"keep", "discard", "crash", "timeout", "tampered"})


@dataclass
class Night:
    """Everything the loop knows of one tag's night; `record` is the one place that changes it."""

    tag: str
    champion: str  # the commit the next experiment is tried against (the branch head)
    rows: list[Experiment] = field(default_factory=list)
    best: float | None = None  # the champion's metric; None until the baseline ran
    baseline: float | None = None
    noise: float = 0.0  # what a gain must beat besides min_delta
    seen: dict[str, Experiment] = field(default_factory=dict)  # file sha -> the row that ran that content

    @classmethod
    def load(cls, tag: str, rows: list[Experiment], head: str) -> Night:
        """The night as the ledger tells it; `head` is the champion until a row keeps something."""
        night = cls(tag, head)
        for row in rows:
            night.record(row)
        return night

    def record(self, row: Experiment) -> None:
        """Take in one finished row: the champion, its metric, the baseline and the content map follow it."""
        self.rows.append(row)
        if row.status == "keep" and row.commit:
            self.champion = row.commit
            self.best = row.metric
            if row.id == 0:
                self.baseline = row.metric
                self.noise = float(row.extra.get("noise", 0.0) or 0.0)
        if row.file_sha and row.status in RAN:
            self.seen.setdefault(row.file_sha, row)

    def beats(self, metric: float, config: Config) -> bool:
        """True when `metric` improves on the champion by more than max(min_delta, the measured noise)."""
        if self.best is None or not math.isfinite(metric):
            return False
        return config.sign * (metric - self.best) > self.margin(config)

    def margin(self, config: Config) -> float:
        """What a gain must beat to be kept."""
        return max(config.min_delta, self.noise)

    def next_id(self) -> int:
        return max((r.id for r in self.rows), default=-1) + 1

    @property
    def has_baseline(self) -> bool:
        return self.baseline is not None

    @property
    def experiments(self) -> int:
        """Experiments of the night so far, the baseline not counted."""
        return sum(1 for r in self.rows if r.id != 0)

    @property
    def kept(self) -> int:
        return sum(1 for r in self.rows if r.id != 0 and r.status == "keep")

    @property
    def spend_usd(self) -> float:
        return sum(r.cost_usd for r in self.rows)

    def results(self) -> list[Result]:
        """Every row as an agent learns from it."""
        return [result_of(r) for r in self.rows]


def result_of(row: Experiment) -> Result:
    """What an agent learns from a row."""
    return Result(row.id, row.status, row.metric, dict(row.extra) if isinstance(row.extra, dict) else {})
