"""
Research yield at an equal budget: the best metric each agent finds in the same number of experiments, over seeds.

Usage:
    python bench/yield.py                        # synthetic task: random vs optuna, 20 seeds x 30 experiments
    python bench/yield.py --quick                # the CI size: 3 seeds x 10 experiments, well under a minute
    python bench/yield.py --agents random,optuna,hybrid                 # hybrid and llm need ANTHROPIC_API_KEY
    python bench/yield.py --task bundled --seeds 4 --budget 5 --record nights.jsonl  # hours on a CPU; resumable

Each night is a real `autoresearch run --agent A --max-experiments N` in a fresh repository of its own, with
`seed: K` and `confirm: 0` in its program.md, so every agent gets the same number of experiments of the same budget,
each one run. Nights run in
parallel up to --workers (default: two for the synthetic task, one for the bundled task, whose runs would otherwise
share the CPU under a wall-clock budget). The default agents are random (the control) and optuna, plus hybrid and
llm when ANTHROPIC_API_KEY is set.

Tasks:
  synthetic  a train.py that prints a known function of five constants (the shape of the bundled task's: a learning
             rate on a log scale whose best value depends on the width, a depth, a width among five, warmup, decay)
             plus Gaussian noise of sd 0.003; the optimum is 1.0, the baseline about 1.077. The target is 1.01.
  bundled    this repository's prepare.py, train.py and program.md (its `search:` space), at --budget seconds
             per run; `python prepare.py` is run once first (it is cached). The target defaults to the mean best
             of the control (random) after N: how many experiments each agent needs to match it.

With --record FILE every finished night is appended to FILE as one JSON line, and a night already there (same
task, experiments, budget, agent and seed) is read instead of run again: a bench of hours can be stopped and resumed,
or grown by raising --seeds.

Printed, per agent: the baseline, the best metric after n experiments (mean and 95% t-interval over seeds) at a
few n, the change from the baseline, and the experiments needed to reach the target (mean over the seeds that
reached it, and how many did); then each agent minus the control after N (a Welch interval), and last one JSON
line a script reads: {"bench": "yield", "default": "optuna", "control": "random", "difference", "low", "high",
"verdict", "seeds", ...}, the default agent's mean best after N minus the control's and its 95% interval. The plot
(--out) draws each agent's mean best-so-far curve with its 95% band, and the target. The best after n is the night's
champion, the best metric of the baseline and the first n experiments that ran well (a duplicate or invalid
proposal counts as an experiment: it used the agent's turn).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import queue
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from harness.config import KEYS
from harness.testing import git, make_repo

ROOT = Path(__file__).resolve().parent.parent
TAG = "yield"
DEFAULT, CONTROL = "optuna", "random"  # the default offline agent and the control it must beat
# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom; beyond, the normal's 1.96 is close enough.
T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131)
T95 += (2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)

SYNTHETIC_OPTIMUM = 1.0
SYNTHETIC_TARGET = 1.01
SYNTHETIC_TRAIN = '''\
"""Synthetic task: a known function of the constants below, with noise. Usage: python train.py"""

import math
import random

LEARNING_RATE = 1.0e-3  # its best value shrinks with the width, as a real model's does
DEPTH = 4               # best at 6
WIDTH = 128             # best at 128
WARMUP_FRAC = 0.1       # best at 0.05
WEIGHT_DECAY = 0.0      # best at 0.1

NOISE = 0.003  # run-to-run noise of the metric (sd)
WIDTH_COST = {64: 0.04, 96: 0.015, 128: 0.0, 192: 0.01, 256: 0.03}

best_lr = 3e-3 * (128 / WIDTH) ** 0.5
loss = (1.0 + 0.15 * math.log10(LEARNING_RATE / best_lr) ** 2 + 0.01 * (DEPTH - 6) ** 2 + WIDTH_COST[WIDTH]
        + 0.5 * (WARMUP_FRAC - 0.05) ** 2 + 0.2 * (WEIGHT_DECAY - 0.1) ** 2)
print("---")
print(f"val_bpb: {loss + random.gauss(0.0, NOISE):.6f}")
'''
SYNTHETIC_PROGRAM = """---
run: python train.py
metric: val_bpb
budget: 10
seed: {seed}
search:
  LEARNING_RATE: {{low: 1.0e-4, high: 1.0e-2, log: true}}
  DEPTH: {{low: 2, high: 8}}
  WIDTH: {{choices: [64, 96, 128, 192, 256]}}
  WARMUP_FRAC: {{low: 0.0, high: 0.2}}
  WEIGHT_DECAY: {{low: 0.0, high: 0.3}}
---
# Goal
Make val_bpb as small as possible. train.py computes it from its constants; change only those constants.
"""


@dataclass(frozen=True)
class Night:
    """One agent's night with one seed: the best metric after 0..N experiments, and its wall time."""

    agent: str
    seed: int
    best: list[float]
    seconds: float


def make_task(kind: str, path: Path, seed: int, data: Path | None) -> Path:
    """A fresh repository holding the task, its program.md seeded with `seed` (and, for the bundled task, a copy of
    the data prepared once, so that every night is scored on the same held-out split)."""
    # A candidate that wins is kept on its first run: every experiment costs one run, whichever agent proposed it.
    equal = {"confirm": "0"} if "confirm" in KEYS else {}
    if kind == "synthetic":
        program = _front(SYNTHETIC_PROGRAM.format(seed=seed), **equal)
        files = {"train.py": SYNTHETIC_TRAIN, "program.md": program, "prepare.py": "#\n"}
        return make_repo(path, {**files, "agent.py": (ROOT / "agent.py").read_text()})
    files = {name: (ROOT / name).read_text() for name in ("prepare.py", "train.py", "agent.py", ".gitignore")}
    # One baseline run, as in the synthetic task: the curves count experiments, not the baseline's repeats.
    # The night's copy holds the task's files, not the harness: protecting harness/ there would name nothing.
    keys = {"seed": str(seed), "baseline_runs": "1", "protected": "[prepare.py, program.md, agent.py]", **equal}
    files["program.md"] = _front((ROOT / "program.md").read_text(), **keys)
    path.mkdir(parents=True)
    for name, text in files.items():
        (path / name).write_text(text)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-q", "-m", "the bundled task")
    if data is not None:
        shutil.copytree(data, path / "data")  # git-ignored, like the person's own data/
    return path


def prepare_data(workdir: Path) -> Path:
    """Run the bundled prepare.py once in a scratch folder; the data/ it builds is copied into every night."""
    scratch = workdir / "prepared"
    scratch.mkdir()
    shutil.copy(ROOT / "prepare.py", scratch / "prepare.py")
    env = {k: v for k, v in os.environ.items() if k != "AUTORESEARCH_DATA"}
    subprocess.run([sys.executable, "prepare.py"], cwd=scratch, env=env, check=True, capture_output=True)
    return scratch / "data"


def _front(program: str, **values: str) -> str:
    """program.md with front-matter keys set: replaced where present, added at the top otherwise."""
    for key, value in values.items():
        line = re.compile(rf"^{key}:.*$", re.M)
        program = (
            line.sub(f"{key}: {value}", program, count=1)
            if line.search(program)
            else program.replace("---\n", f"---\n{key}: {value}\n", 1)
        )
    return program


def recorded(path: Path | None, key: dict[str, object]) -> dict[tuple[str, int], Night]:
    """The nights --record already holds for this task, size and budget, by (agent, seed)."""
    if path is None or not path.exists():
        return {}
    found: dict[tuple[str, int], Night] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if all(row.get(k) == v for k, v in key.items()):
                found[(row["agent"], row["seed"])] = Night(row["agent"], row["seed"], row["best"], row["seconds"])
        except (ValueError, KeyError, TypeError) as e:
            raise SystemExit(f"{path}:{number}: not a recorded night ({e})") from e
    return found


def record(path: Path | None, key: dict[str, object], night: Night) -> None:
    """Append one finished night to --record (one line, written whole, so a stopped bench leaves no half line)."""
    if path is not None:
        row = {**key, "agent": night.agent, "seed": night.seed, "best": night.best, "seconds": night.seconds}
        line = json.dumps(row)
        with path.open("a") as f:
            f.write(line + "\n")


def run_night(
    kind: str, agent: str, seed: int, n: int, budget: float | None, workdir: Path, cpus: CPUs, data: Path | None
) -> Night:
    """One `autoresearch run` of `n` experiments in a repository of its own; its best-so-far curve from the ledger."""
    root = make_task(kind, workdir / f"{agent}-{seed}", seed, data)
    command = [sys.executable, "-m", "harness", "run", "--tag", TAG, "--agent", agent, "--max-experiments", str(n)]
    if budget is not None:
        command += ["--budget", str(budget)]
    with cpus.share() as mine:
        started = time.monotonic()
        # Pinned to cores of its own (inherited by the runs), so nights in flight do not steal each other's compute
        # under a wall-clock budget; train.py sizes its threads to the cores it may use.
        pin = None if mine is None else (lambda: os.sched_setaffinity(0, mine))
        out = subprocess.run(command, cwd=root, capture_output=True, text=True, preexec_fn=pin)
        seconds = time.monotonic() - started
    if out.returncode != 0:
        raise SystemExit(f"{agent} (seed {seed}) failed with status {out.returncode}:\n{out.stderr[-3000:]}")
    rows = [json.loads(line) for line in (root / "experiments.log").read_text().splitlines()]
    rows = sorted((r for r in rows if r["kind"] == "experiment" and r["tag"] == TAG), key=lambda r: r["id"])
    best, curve = math.inf, []
    for row in rows[: n + 1]:
        if row["status"] in ("keep", "discard") and row["metric"] is not None:
            best = min(best, row["metric"])
        curve.append(best)
    if len(curve) != n + 1 or not math.isfinite(curve[0]):
        raise SystemExit(f"{agent} (seed {seed}) left {len(curve)} rows for {n} experiments; see {root}")
    return Night(agent, seed, curve, seconds)


class CPUs:
    """The machine's cores split into one share per night in flight (or no pinning at all)."""

    def __init__(self, workers: int, pin: bool) -> None:
        self.free: queue.Queue[set[int] | None] = queue.Queue()
        cores = sorted(os.sched_getaffinity(0)) if pin and hasattr(os, "sched_getaffinity") else []
        for i in range(workers):
            share = set(cores[i::workers]) if len(cores) >= workers else None
            self.free.put(share)

    @contextlib.contextmanager
    def share(self) -> Iterator[set[int] | None]:
        mine = self.free.get()
        try:
            yield mine
        finally:
            self.free.put(mine)


def interval(values: list[float]) -> tuple[float, float]:
    """The mean and the half-width of its 95% t-interval (0 for a single value)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, 0.0
    t = T95[len(values) - 2] if len(values) - 1 <= len(T95) else 1.96
    return mean, t * statistics.stdev(values) / math.sqrt(len(values))


def welch(a: list[float], b: list[float]) -> tuple[float, float]:
    """Mean of a minus mean of b and the half-width of its 95% interval (Welch-Satterthwaite degrees of freedom)."""
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    diff = statistics.fmean(a) - statistics.fmean(b)
    if va + vb == 0:
        return diff, 0.0
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    t = T95[max(0, min(len(T95), round(df)) - 1)] if df <= len(T95) else 1.96
    return diff, t * math.sqrt(va + vb)


def to_reach(curve: list[float], target: float) -> int | None:
    return next((i for i, value in enumerate(curve) if value <= target), None)


def report(nights: dict[str, list[Night]], n: int, target: float, task: str) -> dict[str, dict[str, object]]:
    """Print the table; return the figures (for --json)."""
    points = sorted({max(1, n // 4), max(1, n // 2), n})
    header = f"{'agent':8s} {'baseline':>9s}" + "".join(f"   {'best after ' + str(p):>23s}" for p in points)
    print(header + f"   {'change':>8s}   {'to reach ' + format(target, '.4f'):>20s}   {'s/night':>7s}")
    figures: dict[str, dict[str, object]] = {}
    for agent, runs in nights.items():
        curves = [r.best for r in runs]
        base = statistics.fmean(c[0] for c in curves)
        cells = []
        for p in points:
            mean, half = interval([c[p] for c in curves])
            cells.append(f"{mean:.4f} [{mean - half:.4f}, {mean + half:.4f}]")
        change = statistics.fmean((c[n] - c[0]) / c[0] for c in curves)
        reached = [k for k in (to_reach(c, target) for c in curves) if k is not None]
        reach = (
            f"{statistics.fmean(reached):.1f} ({len(reached)}/{len(curves)} did)" if reached else f"- (0/{len(curves)})"
        )
        seconds = statistics.fmean(r.seconds for r in runs)
        row = f"{agent:8s} {base:9.4f}" + "".join(f"   {c:>23s}" for c in cells)
        print(row + f"   {change:+8.1%}   {reach:>20s}   {seconds:7.0f}")
        mean_curve = [interval([c[i] for c in curves]) for i in range(n + 1)]
        figures[agent] = {"curves": curves, "mean": [m for m, _ in mean_curve], "half": [h for _, h in mean_curve],
                          "reached": reached, "change": change, "seconds": seconds}  # fmt: skip
    control = next(iter(nights))
    for agent, runs in list(nights.items())[1:]:
        if len(runs) > 1 and len(nights[control]) > 1:
            diff, half = welch([r.best[n] for r in runs], [r.best[n] for r in nights[control]])
            print(f"{agent} - {control} after {n}: {diff:+.4f} [{diff - half:+.4f}, {diff + half:+.4f}]  "
                  f"({_verdict(diff, half)})")  # fmt: skip
            figures[agent]["against_control"] = [diff, diff - half, diff + half]
    return figures


def _verdict(diff: float, half: float) -> str:
    return "better" if diff + half < 0 else "worse" if diff - half > 0 else "no significant difference"


def last_line(nights: dict[str, list[Night]], n: int, task: str) -> str:
    """The line a script reads: the default agent (optuna) against the control (random) after n experiments, the
    difference of their mean best (negative: the default found lower) and its 95% Welch interval."""
    line: dict[str, object] = {"bench": "yield", "task": task, "experiments": n, "default": DEFAULT, "control": CONTROL}
    mine, control = nights.get(DEFAULT, []), nights.get(CONTROL, [])
    line["seeds"] = min(len(mine), len(control))
    if len(mine) > 1 and len(control) > 1:
        diff, half = welch([r.best[n] for r in mine], [r.best[n] for r in control])
        line |= {"difference": round(diff, 6), "low": round(diff - half, 6), "high": round(diff + half, 6)}
        line["verdict"] = _verdict(diff, half)
    return json.dumps(line)


def plot(
    figures: dict[str, dict[str, object]], n: int, target: float, optimum: float | None, title: str, out: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    xs = list(range(n + 1))
    for agent, f in figures.items():
        mean, half = f["mean"], f["half"]
        assert isinstance(mean, list) and isinstance(half, list)
        (line,) = ax.plot(xs, mean, label=f"{agent} (n={len(f['curves'])})", linewidth=2)  # type: ignore[arg-type]
        low = [m - h for m, h in zip(mean, half, strict=True)]
        high = [m + h for m, h in zip(mean, half, strict=True)]
        ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"target {target:.4f}")
    if optimum is not None:
        ax.axhline(optimum, color="black", linestyle=":", linewidth=1, label=f"optimum {optimum:.4f}")
    ax.set_xlabel("experiments")
    ax.set_ylabel("best metric so far (mean, 95% band)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--task", choices=["synthetic", "bundled"], default="synthetic")
    parser.add_argument(
        "--agents", default=None, help="comma-separated; default random,optuna (+hybrid,llm with a key)"
    )
    parser.add_argument("--seeds", type=int, default=20, help="nights per agent, seeds 0..K-1")
    parser.add_argument("-n", "--experiments", type=int, default=30, help="experiments per night (the budget)")
    parser.add_argument("--budget", type=float, default=None, help="seconds per run (bundled task)")
    parser.add_argument("--target", type=float, default=None, help="the metric to reach")
    parser.add_argument("--workers", type=int, default=None, help="nights in flight at once")
    parser.add_argument("--quick", action="store_true", help="the CI size: 3 seeds x 10 experiments")
    parser.add_argument("--out", type=Path, default=Path("yield.png"), help="the plot")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--record", type=Path, default=None, help="append each night here; reuse nights found there")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.experiments = 3, 10
    key = bool(os.environ.get("ANTHROPIC_API_KEY"))
    agents = args.agents.split(",") if args.agents else ["random", "optuna", *(["hybrid", "llm"] if key else [])]
    if not key and {"hybrid", "llm"} & set(agents):
        raise SystemExit("--agents hybrid and llm need ANTHROPIC_API_KEY")
    workers = args.workers or (2 if args.task == "synthetic" else 1)
    cpus = CPUs(workers, pin=args.task == "bundled")
    budget = args.budget if args.task == "bundled" else None
    key = {"task": args.task, "experiments": args.experiments, "budget": budget}
    old = recorded(args.record, key)
    jobs = [(agent, seed) for seed in range(args.seeds) for agent in agents]  # seeds outermost: agents share time
    todo = [job for job in jobs if job not in old]
    print(f"task: {args.task}; {args.experiments} experiments per night; seeds 0-{args.seeds - 1}; "
          f"{workers} night(s) at once; {len(jobs) - len(todo)} of {len(jobs)} nights recorded already; "
          f"python {sys.version.split()[0]}")  # fmt: skip
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(workers) as pool:
        data = prepare_data(Path(tmp)) if args.task == "bundled" and todo else None
        night = functools.partial(run_night, args.task, n=args.experiments, budget=budget, workdir=Path(tmp), cpus=cpus)

        def one(agent: str, seed: int) -> Night:
            finished = night(agent=agent, seed=seed, data=data)
            record(args.record, key, finished)
            return finished

        futures = {job: pool.submit(one, *job) for job in todo}
        done = [old[job] if job in old else futures[job].result() for job in jobs]
    nights = {agent: [r for r in done if r.agent == agent] for agent in agents}
    if args.target is not None:
        target = args.target
    elif args.task == "synthetic":
        target = SYNTHETIC_TARGET
    else:
        target = statistics.fmean(r.best[args.experiments] for r in nights[agents[0]])
    figures = report(nights, args.experiments, target, args.task)
    title = f"{args.task} task: best so far over {args.seeds} seeds"
    optimum = SYNTHETIC_OPTIMUM if args.task == "synthetic" else None
    plot(figures, args.experiments, target, optimum, title, args.out)
    print(f"plot: {args.out}; {time.monotonic() - started:.0f} s in all")
    if args.json:
        args.json.write_text(json.dumps({"task": args.task, "experiments": args.experiments, "target": target,
                                         "agents": figures}, indent=1))  # fmt: skip
    print(last_line(nights, args.experiments, args.task))


if __name__ == "__main__":
    main()
