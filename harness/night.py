"""The night's state: the experiment rows of one tag, the champion and every measurement of it, what already ran."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from harness.config import Config
from harness.keeprule import Measurement, Purpose, Referee
from harness.ledger import EVALUATED, FAILED, Experiment, Generation, MeasurementRow
from harness.offsets import Offsets
from harness.task import Result

# Content that really ran: a later proposal of the same file is a duplicate of it. An interrupted experiment never
# finished its run, so its content may be proposed (and run) again.
RAN = EVALUATED | FAILED
PURPOSES: tuple[Purpose, ...] = ("baseline", "candidate", "confirm", "remeasure")


@dataclass
class Night:
    """Everything the loop knows of one tag's night; `record` and `measured` are the only places that change it."""

    tag: str
    champion: str  # the commit the next experiment is tried against (the branch head)
    champion_sha: str = ""  # the champion's version of the mutable file (its blob sha): what its runs are keyed by
    rows: list[Experiment] = field(default_factory=list)
    baseline: float | None = None
    seen: dict[str, Experiment] = field(default_factory=dict)  # file sha -> the row that ran that content
    referee: Referee = field(default_factory=Referee)  # every measurement, and the keep rule over them
    runs: Counter[tuple[int, str]] = field(default_factory=Counter)  # (experiment, "" or "remeasure") -> runs so far
    last_best: float | None = None  # the champion's number as the last row said, for ledgers without measurements
    generations: list[Generation] = field(default_factory=list)  # HyperAgent generations, in order
    offsets: Offsets = field(default_factory=Offsets)  # each worker's reading against the others (several workers)
    measured_rows: list[MeasurementRow] = field(default_factory=list)  # the successful runs, as the ledger has them

    @classmethod
    def load(
        cls,
        tag: str,
        rows: list[Experiment],
        measurements: list[MeasurementRow],
        head: str,
        generations: list[Generation] | None = None,
    ) -> Night:
        """The night as the ledger tells it; `head` is the champion until a row keeps something. A ledger written
        before measurements had rows of their own gives its experiments' numbers as the measurements."""
        night = cls(tag, head)
        for m in measurements or _from_rows(rows):
            night.measured(m)
        for row in rows:
            night.record(row)
        # A generation commit was made on the champion of its time: it follows the experiments' champion only when
        # no keep came after it (a later keep's commit has it as an ancestor), which is why order does not matter.
        for generation in generations or ():
            night.adopt(generation)
        return night

    def adopt(self, generation: Generation) -> None:
        """Take in one generation row: an accepted (or reverted-to) agent's commit becomes the champion when it
        was made on it; the mutable file, and so every measurement, stays as it was."""
        self.generations.append(generation)
        moved = generation.status in ("accepted", "reverted") and generation.commit
        if moved and generation.parent == self.champion:
            self.champion = generation.commit or self.champion

    def record(self, row: Experiment) -> None:
        """Take in one finished row: the champion, the baseline and the content map follow it."""
        self.rows.append(row)
        if row.status == "keep" and row.commit:
            self.champion = row.commit
            self.champion_sha = row.file_sha
            self.last_best = row.metric
            if row.id == 0:
                self.baseline = row.metric
        if row.file_sha and row.status in RAN:
            self.seen.setdefault(row.file_sha, row)

    def measured(self, m: MeasurementRow) -> Measurement | None:
        """Take in one run's row; the measurement the keep rule weighs, or None for a failed run."""
        self.runs[m.experiment, "remeasure" if m.purpose == "remeasure" else ""] += 1
        if m.value is None or m.purpose not in PURPOSES:
            return None
        self.measured_rows.append(m)
        if m.worker and self.offsets.add(m.file_sha, m.worker, m.value):
            # The workers' offsets moved: every number is corrected again, so the rule weighs them on one scale.
            self.referee = Referee((self._corrected(row) for row in self.measured_rows), self.referee.declared)
            return self.referee.measurements()[-1]
        found = self._corrected(m)
        self.referee.add(found)
        return found

    def _corrected(self, m: MeasurementRow) -> Measurement:
        """A run as the rule weighs it: its number less its worker's offset (0 with one worker)."""
        value = (m.value or 0.0) - self.offsets.of(m.worker)
        purpose: Purpose = m.purpose  # type: ignore[assignment]
        return Measurement(m.file_sha, value, m.seconds, m.cpu_seconds, m.load, m.contended, purpose)

    def declare(self, config: Config) -> None:
        """Tell the keep rule what program.md says of the metric (`deterministic`), at the start and after an edit."""
        said = config.deterministic
        self.referee.declared = None if said == "auto" else bool(said)

    @property
    def best(self) -> float | None:
        """The champion's number: the median of its trusted runs, not its first run's."""
        value = self.referee.value(self.champion_sha) if self.champion_sha else None
        return value if value is not None else self.last_best

    @property
    def noise(self) -> float:
        """The night's noise: the spread of one run, from repeated runs of the same versions."""
        return self.referee.noise()

    def margin(self, config: Config) -> float:
        """What a gain must beat to be kept, from one run against the champion's."""
        return self.referee.margin(config.min_delta) if self.champion_sha else config.min_delta

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
        """What the night's LLM calls cost: its experiments' and its agent rewrites'."""
        return sum(r.cost_usd for r in self.rows) + sum(g.cost_usd for g in self.generations)

    def results(self) -> list[Result]:
        """Every row as an agent learns from it."""
        return [result_of(r) for r in self.rows]


def result_of(row: Experiment) -> Result:
    """What an agent learns from a row."""
    return Result(row.id, row.status, row.metric, dict(row.extra) if isinstance(row.extra, dict) else {})


def _from_rows(rows: list[Experiment]) -> list[MeasurementRow]:
    """The measurements an older ledger's experiment rows stand for: the baseline's repeats, each run's number."""
    out = []
    for row in rows:
        if row.id == 0 and row.status == "keep":
            for value in row.extra.get("repeats") or [row.metric]:
                if isinstance(value, int | float):
                    out.append(MeasurementRow(row.tag, row.file_sha, float(value), "baseline", 0, seconds=row.seconds))
        elif row.metric is not None and row.status in EVALUATED:
            out.append(MeasurementRow(row.tag, row.file_sha, row.metric, "candidate", row.id, seconds=row.seconds))
    return out
