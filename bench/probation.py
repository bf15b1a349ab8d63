"""
How often HyperAgent's probation accepts a candidate, by how good it truly is: the pair rule, the keep-rate rule it
was replaced by, and the rule in force.

Usage:
    python bench/probation.py                    # 20,000 simulated probations per case, window 10
    python bench/probation.py --n 2000 --keep 0.1 --seed 3
    python bench/probation.py --n 2000 --drift 100   # a converging night: keeps and their gains halve every 100

A synthetic agent of known quality. Each experiment it proposes is kept with its keep rate (gaining MARGIN plus an
exponential, in the metric's units), and otherwise discarded (a delta drawn worse than the margin) or, in a share
FAILED of the rest, gives no metric (an invalid proposal). The rows are real ledger rows (harness.ledger.Experiment)
fed to the real verdict code, one experiment at a time as the night feeds them. With --drift D the night converges:
the keep rate and the gains of every agent shrink by half every D experiments of the night.

Pairs: harness/probation.py as of commit PAIRS, read from git: the window shared in pairs of turns between the
candidate and the live champion; the candidate wins its place with at least as many pairs as the champion. Before:
harness/hyper/probation.py as of commit BEFORE, read from git: a sequential Mann-Whitney test of the gains (at most
4 windows) against the champion's record of 3 windows. After: harness.hyper.probation as it is. The cases:

  equal      the candidate is exactly as good as the champion (the champion keeps --keep of its experiments)
  ties       as good as a champion that keeps less often (--keep / 2.5) and whose metric moves in steps of the
             margin (each keep gains 1, 2, 3... margins): most experiments, and many keeps, tie
  worse      half the champion's keep rate
  never      never keeps anything
  better     twice the champion's keep rate
  bigger     the champion's keep rate, each keep gaining twice as much on average
  bigger1.5  the champion's keep rate, each keep gaining 1.5 times as much on average
  thrower    as good as the champion, which throws its own turns (never keeps): before, its probation turns; after,
             its windows as champion, which make its record and which it answers for after each window against the
             record of the agent before it (it gives its place back before it may rewrite if that rule catches it)
  halfthrow  the same, the champion keeping half as often as it could in its windows: a bar lowered less, and
             less often caught
  reverted   not a probation: an honest champion, as good as the agent before it, answering for its record after
             each of SERVED windows; the share that gives its place back

Printed: the share accepted per case and rule, and for the two sequential rules the mean and 90th percentile of the
candidate's turns a probation took (the experiments before its verdict; for "reverted", the windows' experiments
before the champion gave its place back, or all SERVED windows).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from harness.errors import RepoError
from harness.hyper import probation
from harness.ledger import Experiment
from harness.repo import Repo

ROOT = Path(__file__).resolve().parent.parent
PAIRS = "a6873ab3681cc22e29ab23840672530f0746ddc8"  # the last commit of the pair rule
BEFORE = "4bf9c2cd981fe520b87e115e1e3a9bba9530a582"  # the last commit of the Mann-Whitney rule
MARGIN = 0.01  # the keep threshold, in the metric's units
GAIN = 0.02  # mean gain of a keep (MARGIN plus an exponential)
FAILED = 0.3  # share of the experiments not kept that give no metric
SERVED = 8  # windows an honest champion answers for in the "reverted" case
DIRECTION = "minimize"
# Bounds the README and harness.hyper.probation state: accepted at most (or, for "better", at least) this share.
BOUNDS = {
    "equal": ("<=", 0.10), "ties": ("<=", 0.10), "worse": ("<=", 0.02), "never": ("<=", 0.02),
    "better": (">=", 0.70), "bigger": (">=", 0.70),
}  # fmt: skip


@dataclass(frozen=True)
class Quality:
    """An agent as the simulation knows it: its keep rate, the mean gain of its keeps, the step its metric moves in
    (0: continuous), and the experiments after which the night has halved both (0: a night that does not converge)."""

    keep: float
    gain: float = GAIN
    step: float = 0.0
    drift: float = 0.0

    def row(self, rng: random.Random, n: int) -> Experiment:
        """Experiment `n` of the night, proposed by this agent, as its ledger row."""
        shrink = 0.5 ** (n / self.drift) if self.drift else 1.0
        if rng.random() < self.keep * shrink:
            gain = (MARGIN + rng.expovariate(1 / (self.gain - MARGIN))) * shrink
            if self.step:
                gain = self.step * max(1, math.ceil(gain / self.step - 1e-9))
            status, delta = "keep", -gain
        elif rng.random() < FAILED:
            status, delta = "invalid", None
        else:
            status, delta = "discard", max(rng.gauss(MARGIN, 2 * MARGIN), -MARGIN)  # it did not beat the margin
        metric = None if delta is None else 1.0 + delta
        return Experiment(
            tag="bench", id=n, commit=None, parent="", status=status, metric=metric, best=None, description="",
            seconds=0.0, agent="", program_sha="", agent_sha="", delta=delta,
        )  # fmt: skip


def rows(rng: random.Random, quality: Quality, count: int, first: int = 1) -> list[Experiment]:
    return [quality.row(rng, first + i) for i in range(count)]


# --- the evidence rules: the one in force, and the one it replaced -------------------------------------------------


def trial(
    rule: types.ModuleType, rng: random.Random, candidate: Quality, champion: Quality, window: int
) -> tuple[bool, int]:
    """One probation: (accepted, the candidate's turns)."""
    reference = rows(rng, champion, rule.RECORD * window)
    on = rule.Probation(window, tuple(reference), DIRECTION)
    n = len(reference)
    while not on.done:
        n += 1
        on.add(candidate.row(rng, n))
    assert on.verdict is not None
    return on.verdict.accepted, len(on.turns)


def thrower(rule: types.ModuleType, rng: random.Random, honest: Quality, window: int, keep: float) -> tuple[bool, int]:
    """A champion that keeps `keep` of its experiments as champion: it answers for its record after every window
    against the record of the agent before it (as good as it is honestly); if it is still champion when its record
    is long enough, its candidate (as good as it is honestly) is judged against that thrown record."""
    before = rows(rng, honest, rule.RECORD * window)
    thrown = Quality(keep, drift=honest.drift)
    record: list[Experiment] = []
    for _ in range(rule.RECORD):
        record += rows(rng, thrown, window, len(before) + len(record) + 1)
        if rule.answers(record, before, window, DIRECTION):
            return False, 0  # it gave its place back: its rewrite is never asked for
    on = rule.Probation(window, tuple(record), DIRECTION, floor=tuple(before))
    n = len(before) + len(record)
    while not on.done:
        n += 1
        on.add(honest.row(rng, n))
    assert on.verdict is not None
    return on.verdict.accepted, len(on.turns)


def reverted(rule: types.ModuleType, rng: random.Random, honest: Quality, window: int) -> tuple[bool, int]:
    """An honest champion answering for SERVED windows of its record against the record it was accepted on."""
    before = rows(rng, honest, rule.RECORD * window)
    record: list[Experiment] = []
    for i in range(SERVED):
        record += rows(rng, honest, window, len(before) + len(record) + 1)
        if rule.answers(record, before, window, DIRECTION):
            return True, (i + 1) * window
    return False, len(record)


# --- pairs: the pair rule, from git ---------------------------------------------------------------------------


def pairs(rule: types.ModuleType, rng: random.Random, candidate: Quality, champion: Quality, window: int) -> bool:
    """One probation by the pair rule: the window shared by turns with the live champion."""
    on = rule.Probation(max(1, window // 2))
    n = 0
    while not on.done:
        n += 1
        role = on.next_role()
        on.add(role, (candidate if role == "candidate" else champion).row(rng, n))
    accepted, _, _ = on.verdict(DIRECTION, MARGIN)
    return bool(accepted)


def old_rule(commit: str, path: str) -> types.ModuleType | None:
    """`path` as of `commit`, loaded under a name of its own; None outside a git checkout that has it."""
    try:
        source = Repo(ROOT).show(commit, path)
    except RepoError:
        return None
    module = types.ModuleType(f"probation_{commit[:8]}")
    sys.modules[module.__name__] = module  # dataclasses look their module up while the class is made
    exec(compile(source, f"{commit[:8]}:{path}", "exec"), module.__dict__)
    return module


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--n", type=int, default=20_000, help="simulated probations per case")
    parser.add_argument("--keep", type=float, default=0.25, help="the champion's keep rate")
    parser.add_argument("--window", type=int, default=10, help="experiments per window")
    parser.add_argument("--drift", type=float, default=0.0, help="experiments in which the night halves its keeps")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    drift, keep = args.drift, args.keep
    champion = Quality(keep, drift=drift)
    ties = Quality(keep / 2.5, step=MARGIN, drift=drift)
    cases = {  # name: (candidate, champion)
        "equal": (champion, champion),
        "ties": (ties, ties),
        "worse": (Quality(keep / 2, drift=drift), champion),
        "never": (Quality(0.0), champion),
        "better": (Quality(min(1.0, 2 * keep), drift=drift), champion),
        "bigger": (Quality(keep, 2 * GAIN, drift=drift), champion),
        "bigger1.5": (Quality(keep, 1.5 * GAIN, drift=drift), champion),
    }
    throws = {"thrower": 0.0, "halfthrow": keep / 2}
    paired, before = old_rule(PAIRS, "harness/probation.py"), old_rule(BEFORE, "harness/hyper/probation.py")
    print(f"champion keeps {keep:.0%}; window {args.window}; {args.n:,} probations per case; seed {args.seed}"
          + (f"; the night halves its keeps every {drift:g} experiments" if drift else ""))  # fmt: skip
    print(f"{'case':10} {'pairs':>7} {'before':>7} {'turns':>6} {'p90':>4} {'after':>7} {'turns':>6} {'p90':>4}  bound")
    for name in [*cases, *throws, "reverted"]:
        rng = random.Random(f"{args.seed}-{name}")
        run: Callable[[types.ModuleType], tuple[bool, int]]
        if name in throws:
            thrown = Quality(throws[name], drift=drift)
            old = [pairs(paired, rng, champion, thrown, args.window) for _ in range(args.n)] if paired else []
            run = partial(thrower, rng=rng, honest=champion, window=args.window, keep=throws[name])
        elif name == "reverted":
            old = []
            run = partial(reverted, rng=rng, honest=champion, window=args.window)
        else:
            candidate, reference = cases[name]
            old = [pairs(paired, rng, candidate, reference, args.window) for _ in range(args.n)] if paired else []
            run = partial(trial, rng=rng, candidate=candidate, champion=reference, window=args.window)
        was = [run(before) for _ in range(args.n)] if before else []
        now = [run(probation) for _ in range(args.n)]
        sense, bound = BOUNDS.get(name, ("", None))
        print(
            f"{name:10} {_share(old)} {_share([a for a, _ in was])} {_turns(was)} {_share([a for a, _ in now])} "
            f"{_turns(now)}  " + (f"{sense} {bound:.0%}" if bound is not None else "")
        )
    if paired is None or before is None:
        print(f"pairs, before: n/a (read from git at {PAIRS[:8]} and {BEFORE[:8]}, which this checkout lacks)",
              file=sys.stderr)  # fmt: skip


def _turns(runs: list[tuple[bool, int]]) -> str:
    """The mean and the 90th percentile of the turns the runs took."""
    if not runs:
        return f"{'n/a':>6} {'':>4}"
    turns = sorted(t for _, t in runs)
    return f"{sum(turns) / len(turns):6.1f} {turns[int(0.9 * (len(turns) - 1))]:4d}"


def _share(accepted: list[bool]) -> str:
    return f"{sum(accepted) / len(accepted):7.1%}" if accepted else f"{'n/a':>7}"


if __name__ == "__main__":
    main()
