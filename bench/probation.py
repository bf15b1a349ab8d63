"""
How often HyperAgent's probation accepts a candidate, by how good it truly is: the pair rule, and the rule in force.

Usage:
    python bench/probation.py                    # 20,000 simulated probations per case, window 10
    python bench/probation.py --n 2000 --keep 0.1 --seed 3

A synthetic agent of known quality. Each experiment it proposes is kept with its keep rate (gaining MARGIN plus an
exponential of mean GAIN, in the metric's units), and otherwise discarded (a delta drawn worse than the margin) or,
in a share FAILED of the rest, gives no metric (an invalid proposal). The rows are real ledger rows
(harness.ledger.Experiment) fed to the real verdict code, one experiment at a time as the night feeds them.

Before: harness/probation.py as of commit BEFORE, read from git: the window shared in pairs of turns between the
candidate and the live champion; the candidate wins its place with at least as many pairs as the champion. After:
harness.hyper.probation as it is: every turn the candidate's, judged against the champion's record from before the
rewrite (RECORD windows of it), looked at after every window. The cases:

  equal      the candidate is exactly as good as the champion (the champion keeps --keep of its experiments)
  worse      half the champion's keep rate
  never      never keeps anything
  better     twice the champion's keep rate
  bigger     the champion's keep rate, each keep gaining twice as much
  thrower    as good as the champion, which throws its own turns (never keeps): before, its probation turns; after,
             its windows as champion, which make its record and which it answers for after each window against the
             record of the agent before it (it gives its place back before it may rewrite if that rule catches it)
  halfthrow  the same, the champion keeping half as often as it could in its windows: a bar lowered less, and
             less often caught

Printed: the share accepted per case and rule, and the mean turns a probation took.
"""

from __future__ import annotations

import argparse
import random
import sys
import types
from dataclasses import dataclass
from pathlib import Path

from harness.errors import RepoError
from harness.hyper import probation
from harness.ledger import Experiment
from harness.repo import Repo

ROOT = Path(__file__).resolve().parent.parent
BEFORE = "a6873ab3681cc22e29ab23840672530f0746ddc8"  # the last commit of the pair rule
MARGIN = 0.01  # the keep threshold, in the metric's units
GAIN = 0.01  # mean gain of a keep beyond the margin
FAILED = 0.3  # share of the experiments not kept that give no metric
DIRECTION = "minimize"
# Bounds the README and harness.hyper.probation state: accepted at most (or, for "better", at least) this share.
BOUNDS = {"equal": ("<=", 0.10), "worse": ("<=", 0.02), "never": ("<=", 0.02), "better": (">=", 0.70)}


@dataclass(frozen=True)
class Quality:
    """An agent as the simulation knows it: its keep rate and the mean gain of its keeps."""

    keep: float
    gain: float = GAIN

    def row(self, rng: random.Random, n: int) -> Experiment:
        """One experiment it proposes, as its ledger row."""
        if rng.random() < self.keep:
            status, delta = "keep", -(MARGIN + rng.expovariate(1 / self.gain))
        elif rng.random() < FAILED:
            status, delta = "invalid", None
        else:
            status, delta = "discard", rng.gauss(MARGIN, 2 * MARGIN)
            delta = max(delta, -MARGIN)  # a discard did not beat the margin
        metric = None if delta is None else 1.0 + delta
        return Experiment(
            tag="bench", id=n, commit=None, parent="", status=status, metric=metric, best=None, description="",
            seconds=0.0, agent="", program_sha="", agent_sha="", delta=delta,
        )  # fmt: skip


def rows(rng: random.Random, quality: Quality, count: int, first: int = 1) -> list[Experiment]:
    return [quality.row(rng, first + i) for i in range(count)]


# --- after: harness.hyper.probation -----------------------------------------------------------------------------


def after(rng: random.Random, candidate: Quality, champion: Quality, window: int) -> tuple[bool, int]:
    """One probation by the rule in force: (accepted, the candidate's turns)."""
    reference = rows(rng, champion, probation.RECORD * window)
    trial = probation.Probation(window, tuple(reference), DIRECTION)
    n = len(reference)
    while not trial.done:
        n += 1
        trial.add(candidate.row(rng, n))
    assert trial.verdict is not None
    return trial.verdict.accepted, len(trial.turns)


def thrower_after(rng: random.Random, honest: Quality, window: int, keep: float = 0.0) -> tuple[bool, int]:
    """A champion that never keeps as champion: it answers for its record after every window against the record of
    the agent before it (as good as it is honestly); if it is still champion when its record is long enough, its
    candidate (as good as it is honestly) is judged against that thrown record."""
    before = rows(rng, honest, probation.RECORD * window)
    thrown = Quality(keep)
    record: list[Experiment] = []
    for _ in range(probation.RECORD):
        record += rows(rng, thrown, window, len(before) + len(record) + 1)
        if probation.answers(record, before, window, DIRECTION):
            return False, 0  # it gave its place back: its rewrite is never asked for
    trial = probation.Probation(window, tuple(record), DIRECTION, floor=tuple(before))
    n = len(before) + len(record)
    while not trial.done:
        n += 1
        trial.add(honest.row(rng, n))
    assert trial.verdict is not None
    return trial.verdict.accepted, len(trial.turns)


# --- before: the pair rule, from git ----------------------------------------------------------------------------


def old_rule() -> types.ModuleType | None:
    """harness/probation.py as of BEFORE, loaded under its own name; None outside a git checkout that has it."""
    try:
        source = Repo(ROOT).show(BEFORE, "harness/probation.py")
    except RepoError:
        return None
    module = types.ModuleType("probation_before")
    sys.modules[module.__name__] = module  # dataclasses look their module up while the class is made
    exec(compile(source, f"{BEFORE[:8]}:harness/probation.py", "exec"), module.__dict__)
    return module


def before(rule: types.ModuleType, rng: random.Random, candidate: Quality, champion: Quality, window: int) -> bool:
    """One probation by the pair rule: the window shared by turns with the live champion."""
    trial = rule.Probation(max(1, window // 2))
    n = 0
    while not trial.done:
        n += 1
        role = trial.next_role()
        trial.add(role, (candidate if role == "candidate" else champion).row(rng, n))
    accepted, _, _ = trial.verdict(DIRECTION, MARGIN)
    return bool(accepted)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--n", type=int, default=20_000, help="simulated probations per case")
    parser.add_argument("--keep", type=float, default=0.25, help="the champion's keep rate")
    parser.add_argument("--window", type=int, default=10, help="experiments per window")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    champion = Quality(args.keep)
    cases = {
        "equal": Quality(args.keep),
        "worse": Quality(args.keep / 2),
        "never": Quality(0.0),
        "better": Quality(min(1.0, 2 * args.keep)),
        "bigger": Quality(args.keep, 2 * GAIN),
    }
    rule = old_rule()
    print(f"champion keeps {args.keep:.0%}; window {args.window}; {args.n:,} probations per case; seed {args.seed}")
    print(f"{'case':10} {'before':>8} {'after':>8} {'turns':>6}  bound")
    throws = {"thrower": 0.0, "halfthrow": args.keep / 2}
    for name in [*cases, *throws]:
        rng = random.Random(f"{args.seed}-{name}")
        if name in throws:
            thrown = Quality(throws[name])
            old = [before(rule, rng, champion, thrown, args.window) for _ in range(args.n)] if rule else []
            new = [thrower_after(rng, champion, args.window, throws[name]) for _ in range(args.n)]
        else:
            old = [before(rule, rng, cases[name], champion, args.window) for _ in range(args.n)] if rule else []
            new = [after(rng, cases[name], champion, args.window) for _ in range(args.n)]
        shown = f"{sum(old) / len(old):8.1%}" if old else f"{'n/a':>8}"
        accepted = sum(a for a, _ in new) / len(new)
        turns = sum(t for _, t in new) / len(new)
        sense, bound = BOUNDS.get(name, ("", None))
        print(f"{name:10} {shown} {accepted:8.1%} {turns:6.1f}  {f'{sense} {bound:.0%}' if bound is not None else ''}")
    if rule is None:
        print(
            f"before: n/a (the pair rule is read from git at {BEFORE[:8]}, which this checkout lacks)", file=sys.stderr
        )


if __name__ == "__main__":
    main()
