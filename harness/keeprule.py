"""Keep decisions under noise: a run's measurement, contention, the night's noise estimate and the keep rule."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from harness.spread import clipped_sigma

Purpose = Literal["baseline", "candidate", "confirm", "remeasure"]
Action = Literal["keep", "discard", "measure"]
Direction = Literal["minimize", "maximize"]

# --- the rule ---------------------------------------------------------------------------------------------------------
# A commit's number is the median of its runs; the noise is the spread of repeated runs of the same commits, pooled
# over the night. A candidate's first run must beat the champion by Z standard errors to earn CONFIRM more runs, and
# those fresh runs, which were not picked for looking good, must win again for it to be kept; a win beyond REACH
# standard errors of a trusted noise is out of the noise's reach and is kept without them. The champion runs again
# while it has fewer than MIN_CHAMPION_RUNS clean runs (the baseline, a fresh keep), when the machine changed since its
# last run (clean runs get a CPU share MACHINE_CHANGE away from its own), and every REMEASURE_EVERY experiments when
# asked; one such run goes between two candidates, never ahead of the first candidate after the baseline or a keep.
# A run measured under contention counts for nothing while its commit has a clean run: a candidate whose only run was
# contended runs again before it is judged, and a champion runs again until it has its clean runs (one extra run at
# most). When every run of a commit was contended, those runs are all there is, and the verdict says so.
# A deterministic metric (repeats agree exactly: the printed numbers are equal) has no noise: after the first exact
# repeat nothing runs twice, but for a spot check every SPOT_CHECK experiments; a disagreement turns it all back on.

# --- the rule's constants (REMEASURE_EVERY and CONFIRM are the defaults of program.md's keys, in config.py) --------
REMEASURE_EVERY = 0  # the champion runs again only when it must (0); N: also after every N experiments
CONFIRM = 1  # a candidate that wins its first run runs once more and must win again: lucky single runs are not kept
Z = 1.0  # a run wins if it beats the champion by one standard error of their difference; an equal candidate: 1 in 20
MIN_CHAMPION_RUNS = 3  # a champion's number is the median of at least 3 runs: the fewest where one bad run is outvoted
MIN_REPEATS = 10  # the noise is trusted once 10 repeats (runs of a commit beyond its first) back it: ~7 runs a night
PRIOR = 0.02  # before that it is widened by sqrt(10 / repeats), never above 2% of the metric: a spoiled run is more
FLOOR = 1e-4  # the noise is never under 0.01% of the metric, so the rounding of a printed number never decides a keep
CONTENDED_RETRIES = 1  # a run measured under contention is run again once; its number never decides alone
LOAD_EXCESS = 0.25  # contended: other work kept a quarter of the run's cores busy (half a core of 2) meanwhile
CPU_SHARE = 0.7  # contended: the run got under 70% of the CPU seconds per wall second this night's clean runs get
MIN_SECONDS = 5.0  # a run shorter than this is never marked: a moment's load says little about it
TYPICAL_RUNS = 3  # the night's usual CPU share is the median of at least 3 clean runs
MACHINE_CHANGE = 0.15  # the machine changed: clean runs got 15% more or less CPU per second than the champion's
SPOT_CHECK = 50  # a metric found deterministic (not said so) is checked by a champion repeat every 50 experiments
REACH = 4.0  # a first run beyond 4 standard errors of a trusted noise is kept unconfirmed: an equal one, 1 in 30,000


@dataclass(frozen=True)
class Measurement:
    """One run of one version of the mutable file: its metric, and what the machine was doing meanwhile."""

    file_sha: str  # the version's blob sha (what "commit" means in this module: the file, whichever commit holds it)
    value: float  # the metric this run measured
    seconds: float = 0.0  # wall time of the run
    cpu_seconds: float | None = None  # CPU time of the run's whole process tree (user + system); None: not measured
    load: float | None = None  # how busy the run's cores were meanwhile, per core, its own work included; None: unknown
    contended: bool = False  # the machine was clearly shared while it ran (see `contended`)
    purpose: Purpose = "candidate"  # only "candidate" runs are experiments; the others are re-runs of one

    def __post_init__(self) -> None:
        if not math.isfinite(self.value):
            raise ValueError(f"a measurement of {self.file_sha[:10]} is not a finite number: {self.value!r}")


@dataclass(frozen=True)
class Verdict:
    """What to do with a candidate: keep it, discard it, or first run `measure` again; `reason` is one ledger line."""

    action: Action
    reason: str
    measure: tuple[str, ...] = ()  # commits to run once more each, in this order, before judging again
    value: float | None = None  # the candidate's number: the median of its trusted runs
    champion_value: float | None = None  # the champion's number it was judged against
    margin: float = 0.0  # what the deciding run had to beat the champion by


def contended(cpu_seconds: float | None, seconds: float, load: float | None, cores: int, typical: float | None) -> bool:
    """True when a run clearly shared the machine: others' load reached LOAD_EXCESS per core, or its CPU seconds per
    wall second fell under CPU_SHARE of `typical` (the night's usual share)."""
    if seconds < MIN_SECONDS:
        return False
    ratio = cpu_seconds / seconds if cpu_seconds is not None else None
    if load is not None:
        # The load counts the run's own busy threads; the rest is other work. Without the run's CPU time it
        # is taken to have used every core, so only load beyond a whole machine counts against it.
        cores = max(cores, 1)
        own = min(ratio, cores) / cores if ratio is not None else 1.0
        if load - own >= LOAD_EXCESS:
            return True
    return ratio is not None and typical is not None and ratio < CPU_SHARE * typical


class Referee:
    """Every measurement of a night and the decisions they support; rebuilt from the ledger's rows after a restart."""

    def __init__(self, measurements: Iterable[Measurement] = (), declared: bool | None = None) -> None:
        self._declared = declared  # program.md's `deterministic`: True, False, or None to learn it from the repeats
        self._all: list[Measurement] = []
        self._runs: dict[str, list[Measurement]] = {}
        self._last: dict[str, int] = {}  # commit -> experiments measured up to its latest run
        self._index: dict[str, int] = {}  # commit -> the place of its latest run among all runs
        self._experiments = 0  # "candidate" runs so far
        self._ratios: list[float] = []  # CPU seconds per wall second of clean runs
        self._sizes: list[float] = []  # |value| of every run: the scale of the metric
        self._pairs: dict[str, list[tuple[float, float]]] = {}  # commit -> (|x - y|, weight) of its trusted runs
        self._repeats: dict[str, int] = {}  # commit -> its trusted runs beyond the first
        self._noise: float | None = None  # cached until the next add
        self._repeated = False  # some commit ran twice or more
        self._disagreed: Measurement | None = None  # the first run that differed from an earlier run of its commit
        for m in measurements:
            self.add(m)

    def add(self, m: Measurement) -> None:
        """Record one measurement."""
        self._all.append(m)
        earlier = self._runs.setdefault(m.file_sha, [])
        if earlier:
            self._repeated = True
            if self._disagreed is None and any(e.value != m.value for e in earlier):
                self._disagreed = m
        earlier.append(m)
        self._experiments += m.purpose == "candidate"
        self._last[m.file_sha] = self._experiments
        self._index[m.file_sha] = len(self._all) - 1
        if (ratio := _ratio(m)) is not None:
            self._ratios.append(ratio)
        self._sizes.append(abs(m.value))
        # Each pair of runs of one commit measures the spread free of what commits changed. A pair weighs 2/n, so a
        # commit weighs its n - 1 repeats however many pairs its n runs make.
        xs = [t.value for t in self.trusted(m.file_sha)]
        self._pairs[m.file_sha] = [(abs(a - b), 2.0 / len(xs)) for i, a in enumerate(xs) for b in xs[i + 1 :]]
        self._repeats[m.file_sha] = len(xs) - 1
        self._noise = None

    def measurement(
        self,
        commit: str,
        value: float,
        *,
        seconds: float,
        cpu_seconds: float | None,
        load: float | None,
        cores: int,
        purpose: Purpose,
    ) -> Measurement:
        """A new Measurement (not yet added), marked contended against this night's usual CPU share."""
        mark = contended(cpu_seconds, seconds, load, cores, self.typical_ratio())
        return Measurement(commit, value, seconds, cpu_seconds, load, mark, purpose)

    def measurements(self) -> tuple[Measurement, ...]:
        """Every measurement, in the order they were added (a Referee built from them is this one again)."""
        return tuple(self._all)

    def runs(self, commit: str) -> tuple[Measurement, ...]:
        """Every measurement of `commit`, oldest first."""
        return tuple(self._runs.get(commit, ()))

    def trusted(self, commit: str) -> tuple[Measurement, ...]:
        """The runs a commit is judged on: its uncontended runs, or all of them when every one was contended."""
        runs = self._runs.get(commit, [])
        return tuple(m for m in runs if not m.contended) or tuple(runs)

    def value(self, commit: str) -> float | None:
        """The commit's number, the median of its trusted runs; None when it was never measured."""
        runs = self.trusted(commit)
        return statistics.median(m.value for m in runs) if runs else None

    def typical_ratio(self) -> float | None:
        """The median CPU seconds per wall second of this night's clean runs; None before TYPICAL_RUNS of them."""
        return statistics.median(self._ratios) if len(self._ratios) >= TYPICAL_RUNS else None

    def repeats(self) -> int:
        """How many repeats the noise rests on: trusted runs of each commit beyond its first."""
        return sum(self._repeats.values())

    @property
    def declared(self) -> bool | None:
        """What program.md says of the metric: deterministic (True), noisy (False), or None to learn it."""
        return self._declared

    @declared.setter
    def declared(self, value: bool | None) -> None:
        self._declared = value
        self._noise = None

    def deterministic(self) -> bool:
        """Whether the metric has no noise: every repeat so far agreed exactly (and there was one), or program.md said
        so; False once two runs of one commit differ, whatever program.md said, or when it said the metric is noisy."""
        if self._declared is False or self._disagreed is not None:
            return False
        return self._declared is True or self._repeated

    def disagreement(self) -> Measurement | None:
        """The first run whose number differed from an earlier run of its commit (None: every repeat agreed)."""
        return self._disagreed

    def noise(self) -> float:
        """The standard deviation of one run, pooled over every commit measured more than once; 0.0 before any run
        and for a deterministic metric."""
        if self._noise is None:
            self._noise = 0.0 if self.deterministic() else self._estimate()
        return self._noise

    def trusted_noise(self) -> bool:
        """Whether the noise rests on enough repeats to be taken as it is (always, for a deterministic metric)."""
        return self.deterministic() or self.repeats() >= MIN_REPEATS

    def _estimate(self) -> float:
        if not self._all:
            return 0.0
        scale = statistics.median(self._sizes)
        pairs = [pair for pairs in self._pairs.values() for pair in pairs]
        prior = PRIOR * scale
        raw = max(clipped_sigma(pairs) if pairs else prior, FLOOR * scale)
        repeats = self.repeats()
        if repeats >= MIN_REPEATS:
            return raw
        # A few repeats can be far off either way (one of them spoiled, or two that agree by chance): until there are
        # enough, the spread is widened by sqrt(MIN_REPEATS / repeats), and a spoiled run cannot lift it past the prior.
        return min(prior, raw * math.sqrt(MIN_REPEATS / max(repeats, 1)))

    def margin(self, min_delta: float, candidate_runs: int = 1, champion_runs: int = MIN_CHAMPION_RUNS) -> float:
        """What a median of `candidate_runs` must beat a median of `champion_runs` by: max(min_delta, Z standard
        errors of their difference)."""
        spread = self.noise() * math.sqrt(1.0 / max(candidate_runs, 1) + 1.0 / max(champion_runs, 1))
        return max(min_delta, Z * spread)

    def judge(
        self,
        candidate: str,
        champion: str,
        direction: Direction,
        min_delta: float = 0.0,
        confirm: int = CONFIRM,
        *,
        pair: bool = True,
    ) -> Verdict:
        """Keep, discard, or run something again first; raises ValueError when either commit was never measured."""
        if direction not in ("minimize", "maximize"):
            raise ValueError(f"direction must be 'minimize' or 'maximize', not {direction!r}")
        runs, base = self._runs.get(candidate, []), self.trusted(champion)
        if not runs or not base:
            missing = candidate if not runs else champion
            raise ValueError(f"{missing[:10]} has no measurement to judge by")
        sign = 1.0 if direction == "maximize" else -1.0
        best = statistics.median(m.value for m in base)
        champ = f"champion {_f(best)} (median of {len(base)})"
        if all(m.contended for m in runs) and len(runs) <= CONTENDED_RETRIES and not self.deterministic():
            seen = f" (load {runs[-1].load:.2f} per core)" if runs[-1].load is not None else ""
            return Verdict("measure", f"run again: its run was contended{seen}", (candidate,), champion_value=best)
        trusted = self.trusted(candidate)
        value = statistics.median(m.value for m in trusted)
        first, later = trusted[0].value, [m.value for m in trusted[1:]]

        def verdict(action: Action, why: str, margin: float, measure: tuple[str, ...] = ()) -> Verdict:
            if trusted[0].contended:
                why += f"; all {len(trusted)} of its runs were contended"
            return Verdict(action, why, measure, value=value, champion_value=best, margin=margin)

        margin = self.margin(min_delta, 1, len(base))
        gain = sign * (first - best)
        if gain <= margin:
            return verdict("discard", f"discarded: {_f(first)} does not beat {champ} by more than {_f(margin)}", margin)
        kept = f"kept: {_f(first)} beats {champ} by {_f(gain)} > margin {_f(margin)}"
        if confirm <= 0:
            return verdict("keep", kept, margin)
        if self.deterministic():
            return verdict("keep", f"{kept} (deterministic: repeats agree exactly, no confirmation)", margin)
        reach = REACH * self.margin(0.0, 1, len(base)) / Z
        if self.trusted_noise() and gain > reach and not later:
            return verdict("keep", f"{kept}, beyond the noise's reach ({_f(reach)}): kept unconfirmed", margin)
        if len(later) < confirm:
            if len(runs) >= 1 + confirm + CONTENDED_RETRIES:
                why = f"{_f(first)} won, then {len(runs) - len(trusted)} of its {len(runs)} runs were contended"
                return verdict("discard", f"discarded, not confirmed: {why}", margin)
            # A champion of few runs is measured beside the candidate rather than trusted. Before anything ran twice,
            # the champion goes alone first: if its repeat agrees exactly, the metric is deterministic and the
            # candidate's one run is all it needs.
            need = (champion, candidate) if pair and self._short(champion) else (candidate,)
            if len(need) == 2 and not self._repeated and self._declared is None:
                need = (champion,)
            who = {1: "it", 2: "it and the champion"}[len(need)] if need != (champion,) else "the champion"
            why = f"confirming: {_f(first)} beats {champ} by {_f(gain)} > {_f(margin)}; run {who} again"
            return verdict("measure", why, margin, need)
        # The first run was chosen for looking good; only the runs after it are free of that luck.
        again = statistics.median(later)
        margin = self.margin(min_delta, len(later), len(base))
        gain = sign * (again - best)
        rerun = f"re-run at {_f(again)}" if len(later) == 1 else f"median {_f(again)} of {len(later)} re-runs"
        rerun += f" (first run {_f(first)})"
        if gain > margin:
            return verdict("keep", f"kept: {rerun} beats {champ} by {_f(gain)} > margin {_f(margin)}", margin)
        why = f"{rerun} beats {champ} by {_f(gain)}, not more than {_f(margin)}"
        return verdict("discard", f"discarded, not confirmed: {why}", margin)

    def remeasure_due(self, champion: str, every: int = REMEASURE_EVERY) -> bool:
        """True when the champion should run again before the next experiment: while it has too few clean runs to
        trust its number, when the machine changed since its last run, or `every` experiments after it (0: never for
        that alone); never twice between two candidates (one runs first after the baseline or a keep). A metric found
        deterministic (program.md did not say so) is checked by a repeat every SPOT_CHECK experiments, no more."""
        if champion not in self._last:
            return False
        since = self._experiments - self._last[champion]
        if self.deterministic():
            # Learned from the repeats, not said by program.md: now and then a repeat checks that they still agree.
            return self._declared is None and since >= SPOT_CHECK
        if since == 0:
            return False  # it has just run (or just won): the next run is a candidate's
        if self._short(champion):
            return True  # its number is not trusted yet: one run between two candidates
        if self._machine_changed(champion):
            return True  # its number was measured on a machine that ran differently: it may be stale
        return every > 0 and since >= every

    def remeasure_reason(self, champion: str, every: int = REMEASURE_EVERY) -> str:
        """Why remeasure_due asked for a run of the champion (ask it first), in words for a person watching."""
        clean = sum(not m.contended for m in self._runs.get(champion, []))
        return (f"a spot check of a metric exact so far, once every {SPOT_CHECK} experiments" if self.deterministic()
                else f"its number rests on {clean} clean run(s); {MIN_CHAMPION_RUNS} back a champion"
                if self._short(champion) else "the machine runs otherwise since its last run: its number may be stale"
                if self._machine_changed(champion) else f"kept current, every {every} experiments")  # fmt: skip

    def _machine_changed(self, champion: str) -> bool:
        """Whether the clean runs since the champion's last run got a CPU share per wall second more than
        MACHINE_CHANGE away from its own runs' (a new job on the machine, a throttled or a faster one): a lasting
        change, where a contended run is a moment's."""
        mine = [r for m in self._runs[champion] if (r := _ratio(m)) is not None]
        since = [r for m in self._all[self._index[champion] + 1 :] if (r := _ratio(m)) is not None]
        if not mine or len(since) < TYPICAL_RUNS:
            return False
        recent = statistics.median(since[-TYPICAL_RUNS:])
        return abs(recent / statistics.median(mine) - 1.0) > MACHINE_CHANGE

    def _short(self, commit: str) -> bool:
        """Whether a champion has too few clean runs to trust, and has not yet used the runs allowed to get them."""
        if self.deterministic():
            return False  # one run is its number
        runs = self._runs.get(commit, [])
        clean = sum(not m.contended for m in runs)
        return clean < MIN_CHAMPION_RUNS and len(runs) < MIN_CHAMPION_RUNS + CONTENDED_RETRIES


def settle(
    referee: Referee,
    candidate: str,
    champion: str,
    measure: Callable[[str, Purpose], Measurement | None],
    direction: Direction,
    min_delta: float = 0.0,
    confirm: int = CONFIRM,
    told: Callable[[str, str], None] = lambda commit, reason: None,
) -> Verdict:
    """Judge a measured candidate to the end, calling `measure(commit, "confirm")` for every run a verdict asks for
    (after `told(commit, reason)`: the verdict's reason for that run, which a person watching the night is shown);
    `measure` runs it and adds it to `referee` (the loop records it in the ledger first), and returns it, or None
    when that run failed. Returns the final keep or discard."""
    pair = True
    # Each round adds runs the judge counts against fixed caps, so rounds are few; the bound only guards that.
    for _ in range(2 * (1 + confirm + CONTENDED_RETRIES + MIN_CHAMPION_RUNS)):
        verdict = referee.judge(candidate, champion, direction, min_delta, confirm, pair=pair)
        if verdict.action != "measure":
            return verdict
        for commit in verdict.measure:
            told(commit, verdict.reason)
            m = measure(commit, "confirm")
            if m is None and commit == candidate:
                why = "discarded, not confirmed: its re-run failed"
                return Verdict(
                    "discard", why, value=verdict.value, champion_value=verdict.champion_value, margin=verdict.margin
                )
            elif m is None:
                pair = False  # the champion's own re-run failed: judge on the runs it has
    raise AssertionError(f"judging {candidate[:10]} against {champion[:10]} did not settle")


def _ratio(m: Measurement) -> float | None:
    """CPU seconds per wall second of a clean run long enough to tell; None otherwise."""
    if m.contended or not m.cpu_seconds or m.seconds < MIN_SECONDS:
        return None
    return m.cpu_seconds / m.seconds


def _f(x: float) -> str:
    return f"{x:.5g}"


__all__ = [
    "CONFIRM",
    "REMEASURE_EVERY",
    "Action",
    "Direction",
    "Measurement",
    "Purpose",
    "Referee",
    "Verdict",
    "contended",
    "settle",
]
