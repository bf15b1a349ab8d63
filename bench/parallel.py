"""
Many experiments at once: experiments per hour with 1, 2 and 4 workers, and how busy the evaluators are with and
without proposals made ahead of them.

Usage:
    python bench/parallel.py                        # local workers
    python bench/parallel.py --executor ray         # each measurement a task on a Ray instance of this machine
    python bench/parallel.py --run 4 --think 1.5 --fast-think 0.4 -n 8

A task whose run sleeps RUN seconds (so it needs no cores: four workers fit a 2-core machine; the unmodified
champion does not sleep, and runs its 11 baseline runs before the night is timed, so that the keep rule needs no
champion re-runs during it) and an agent that thinks THINK seconds
per proposal, several at once (as an LLM agent's calls can be). Every proposal is a new version that is no better,
so nothing is kept and every experiment costs one run: the figures are the scheduler's alone. Each configuration is
a real night in a fresh repository, with the sandbox this machine has.

Printed per night: experiments per hour in the steady part of the night (from the N-th experiment finished to the
N-th last), its ratio to N x one worker's (goal >= 0.9), and the evaluators' busy share of the night after the
baseline (goal >= 95% with proposals made ahead, the thinking a third of the run). Two tables: thinking a third of
the run (speculation off and on), and thinking an eighth of it (the scaling: with workers + 1 experiments in flight
a worker waits whenever the thinking is longer than run / workers); with --executor ray also the local workers'
figures and the time Ray adds per experiment.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import executors
from harness.config import Config
from harness.engine import Engine
from harness.session import Options, open_session
from harness.task import Proposal, Proposed, Result, Spend, Task

RUN = 2.0  # seconds a run sleeps
PER_WORKER = 8  # experiments per worker in a night
GOAL_SCALE = 0.9  # N workers give at least 0.9 x N one worker's experiments per hour
GOAL_BUSY = 0.95  # the evaluators are busy 95% of the night with proposals made ahead

TRAIN = "X = 1.0  # the knob\n"


class Thinker:
    """An agent that thinks a fixed time, then proposes a new version (a fresh comment line); several at once."""

    name = "thinker"
    sha = "thinker"
    concurrent = True

    def __init__(self, think: float) -> None:
        self.think = think

    def propose(self, task: Task) -> Proposed:
        time.sleep(self.think)
        return Proposed(Proposal(f"note {task.experiment}", task.mutable_content + f"# e{task.experiment}\n"))

    def observe(self, result: Result) -> None:
        pass

    def take_spend(self) -> Spend:
        return Spend()

    def steer(self, config: Config) -> None:
        pass

    def close(self) -> None:
        pass


class Clock:
    """A screen that notes when each experiment finished."""

    def __init__(self) -> None:
        self.finished: list[tuple[float, int]] = []

    def update(self, state: dict[str, Any]) -> None:
        pass

    def row(self, row: Any) -> None:
        self.finished.append((time.monotonic(), row.id))

    def info(self, text: str) -> None:
        pass


def repo(path: Path, run: float, workers: int, kind: str) -> Path:
    path.mkdir()
    (path / "train.py").write_text(TRAIN)
    command = f"grep -q '^# e' train.py && sleep {run}; echo val_bpb: 1.0"  # the champion itself does not sleep
    front = {"run": command, "budget": run + 5, "timeout": run + 30, "workers": workers, "executor": kind,
             "baseline_runs": 11, "remeasure_every": 0}  # fmt: skip
    (path / "program.md").write_text("---\n" + "".join(f"{k}: {json.dumps(v)}\n" for k, v in front.items()) + "---\n")
    (path / "prepare.py").write_text("# fixed\n")
    (path / ".gitignore").write_text("experiments.log\nruns/\n")
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "i"]):
        subprocess.run(["git", *args], cwd=path, check=True)
    return path


def night(workers: int, ahead: int, run: float, think: float, per_worker: int, kind: str) -> dict[str, float]:
    """One night; its experiments per hour (steady part) and the evaluators' busy share after the baseline."""
    with tempfile.TemporaryDirectory() as tmp:
        root = repo(Path(tmp) / "repo", run, workers, kind)
        n = per_worker * workers
        session = open_session(root, Options(tag="bench", agent="thinker", max_experiments=n))
        clock = Clock()
        try:
            ex = executors.load(session.config.executor).build(
                session.config, root, "bench", tuple(session.repo.tracked()), session.sandbox, session.devices
            )
            scheduler = Engine(session, Thinker(think), clock, ex, ahead=ahead)
            try:
                scheduler.until_end()
            finally:
                ex.close()
            rows = [json.loads(line) for line in (root / "experiments.log").read_text().splitlines()]
        finally:
            session.close()
    start = next(t for t, i in clock.finished if i == 0)
    ends = sorted(t for t, i in clock.finished if i != 0)
    steady = (len(ends) - 2 * workers) / (ends[-workers - 1] - ends[workers - 1]) if len(ends) > 2 * workers else 0.0
    runs = [r for r in rows if r["kind"] == "measurement" and r["experiment"] != 0]
    busy = sum(r["seconds"] for r in runs) / (workers * (ends[-1] - start))
    return {"per_hour": 3600 * steady, "busy": busy}


def table(cases: list[tuple[int, int]], args: argparse.Namespace, think: float) -> dict[tuple[int, int], float]:
    """Print one night per (workers, ahead); returns each one's experiments per hour."""
    print(f"\nthinking {think:g} s per proposal, run {args.run:g} s, {args.per_worker} experiments per worker")
    print(f"{'workers':>7}  {'ahead':>5}  {'exp/hour':>8}  {'vs N x 1':>8}  {'busy':>6}")
    rates: dict[tuple[int, int], float] = {}
    for workers, ahead in cases:
        got = night(workers, ahead, args.run, think, args.per_worker, args.executor)
        rates[workers, ahead] = one = got["per_hour"]
        base = rates.get((1, 1))
        scale = f"{one / (workers * base):8.2f}" if base and ahead else f"{'-':>8}"
        mode = "on" if ahead else "off"
        print(f"{workers:7d}  {mode:>5}  {one:8.0f}  {scale}  {100 * got['busy']:5.1f}%")
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=float, default=RUN, help="seconds a run sleeps")
    parser.add_argument("--think", type=float, default=None, help="seconds of thinking per proposal [run / 3]")
    parser.add_argument("--fast-think", type=float, default=None, help="the same, under run / 4 [run / 8]")
    parser.add_argument("-n", "--per-worker", type=int, default=PER_WORKER, help="experiments per worker")
    parser.add_argument("--executor", choices=["local", "ray"], default="local")
    args = parser.parse_args()
    if args.executor == "ray":
        import ray

        ray.init(num_cpus=8, include_dashboard=False, log_to_driver=False)  # sleeping runs: more tasks than cores
    print(f"executor: {args.executor}")
    # With workers + 1 experiments in flight, one proposal is made ahead: a worker waits whenever the thinking is
    # longer than run / workers. So the busy share is measured with slow thinking, the scaling with fast thinking.
    table([(1, 0), (1, 1), (2, 1), (4, 1)], args, args.think or args.run / 3)
    fast = table([(1, 1), (2, 1), (4, 1)], args, args.fast_think or args.run / 8)
    if args.executor == "ray":
        saved, args.executor = args.executor, "local"
        local = table([(1, 1), (4, 1)], args, args.fast_think or args.run / 8)
        args.executor = saved
        for w in (1, 4):
            # A worker's time per experiment, Ray's against the local workers', in the steady part of the night.
            extra = w * 3600 * (1 / fast[w, 1] - 1 / local[w, 1])
            print(f"ray adds {1000 * extra:.0f} ms of a worker's time per experiment at {w} workers")
    print(f"\ngoals: >= {GOAL_SCALE} x N one worker's experiments per hour; >= {100 * GOAL_BUSY:.0f}% busy ahead")


if __name__ == "__main__":
    main()
