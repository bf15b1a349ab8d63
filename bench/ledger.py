"""
How long the morning review takes on a long ledger: `autoresearch log` end to end, in a fresh interpreter.

Usage:
    python bench/ledger.py              # 100,000 experiment rows
    python bench/ledger.py -n 300000

The ledger is written as Ledger.append writes it (compact JSON Lines, one row per experiment) with what a real night
leaves: LLM descriptions (some with quotes), agent notes, crash tails, optuna parameters, a steer row every 5,000
experiments, and a second tag; then the same rows again with a space after every ':' and ',' (as json.dumps writes
by default, or a person or another tool rewrites the file), which no reader may depend on. Timed, each the median of
3: the real CLI as a subprocess (`python -m harness log`, with and without --tag, and --json), and the library call
in-process; wall seconds, and the CPU seconds the work took (steadier than wall time on a machine others share).
Goal: the CLI under a second, whichever way the rows are written.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.ledger import Experiment, now
from harness.review import summarize

ROOT = Path(__file__).resolve().parent.parent
GOAL_S = 1.0  # `autoresearch log` on 100,000 rows, interpreter start included
REPEATS = 3
TAG = "nov23"

IDEAS = [
    "raise LR to {:.1e}",
    "warmup of {} steps",
    "depth {} with wider MLP",
    'use "cosine" decay, floor {:.2f}',
    "batch size {}",
    "weight decay {:.3f} on matrices only",
    "rotary base {}",
    "tie embeddings, vocab {}",
]
STATUSES = ["keep", "discard", "crash", "timeout", "invalid", "duplicate"]
WEIGHTS = [6, 78, 8, 2, 4, 2]
TAIL = 'Traceback (most recent call last):\n  File "train.py", line 212, in <module>\n' * 12


def write(path: Path, n: int, compact: bool = True) -> None:
    """n experiments of TAG after a short earlier night, with steer rows, as Ledger.append writes them (or spaced)."""
    separators = (",", ":") if compact else (", ", ": ")
    rng = random.Random(0)
    start = time.time() - n * 300
    with open(path, "w", encoding="utf-8") as f:
        for tag, count in (("nov22", 200), (TAG, n)):
            champion = 1.10
            for i in range(count + 1):
                row = experiment(rng, tag, i, champion, time.gmtime(start + i * 300))
                champion = row.best if row.best is not None else champion
                f.write(json.dumps(row.to_json(), ensure_ascii=False, separators=separators) + "\n")
                if i and i % 5000 == 0:
                    steer = {
                        "time": now(),
                        "kind": "steer",
                        "tag": tag,
                        "program_sha": "b",
                        "previous": "a",
                        "changes": {"budget": [300, 240]},
                        "text": "---\nbudget: 240\n---\n# Goal\n" * 20,
                    }
                    f.write(json.dumps(steer, ensure_ascii=False, separators=separators) + "\n")


def experiment(rng: random.Random, tag: str, i: int, champion: float, when: time.struct_time) -> Experiment:
    status = "keep" if i == 0 else rng.choices(STATUSES, WEIGHTS)[0]
    metric = None if status in ("crash", "timeout", "invalid", "duplicate") else champion + rng.gauss(0.01, 0.01)
    if status == "keep" and i:
        metric = champion - abs(rng.gauss(0.0, 0.002))
    crash = status == "crash"
    return Experiment(
        tag=tag, id=i, commit=f"{rng.getrandbits(160):040x}", parent=f"{rng.getrandbits(160):040x}", status=status,
        metric=metric, best=metric if status == "keep" else champion,
        description=rng.choice(IDEAS).format(rng.choice([3e-3, 200, 8, 0.1, 512, 0.05, 10000, 4096])),
        seconds=rng.uniform(280, 320), agent="llm", program_sha=f"{rng.getrandbits(64):016x}",
        agent_sha=f"{rng.getrandbits(64):016x}", tokens_in=rng.randint(9000, 14000), tokens_out=rng.randint(300, 1500),
        cost_usd=rng.uniform(0.01, 0.05), delta=None if metric is None or i == 0 else metric - champion,
        cache_read=8000, file_sha=f"{rng.getrandbits(160):040x}", exit_code=1 if crash else 0,
        peak_mem_mb=rng.uniform(700, 900), log=f"runs/{tag}/{i}.log", reason="exit 1" if crash else "",
        tail=TAIL if crash else "", notes="tried warmup 100-400: flat; next: LR schedule, then depth",
        extra={"LEARNING_RATE": 0.003}, time=time.strftime("%Y-%m-%dT%H:%M:%SZ", when),
    )  # fmt: skip


def timed(fn: object) -> tuple[float, float]:
    """The median wall seconds of fn(), and the median CPU seconds it took (its own and its children's)."""
    walls, cpus = [], []
    for _ in range(REPEATS):
        cpu = cpu_seconds()
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        walls.append(time.perf_counter() - start)
        cpus.append(cpu_seconds() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def figure(name: str, seconds: tuple[float, float], what: str) -> str:
    return f"{name + ':':<17}{seconds[0]:.3f}   cpu {seconds[1]:.3f}   {what}"


def cli(cwd: Path, *args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120"}
    out = subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"autoresearch {' '.join(args)} failed: {out.stderr.strip()}")


def measure(n: int, compact: bool) -> float:
    """Print the figures of one way of writing the rows; returns the slowest `autoresearch log`."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ledger = root / "experiments.log"
        write(ledger, n, compact)
        (root / "program.md").write_text("---\nmetric: val_bpb\n---\nBench.\n")
        lines = ledger.read_bytes().count(b"\n")
        library = timed(lambda: summarize(ledger, TAG, limit=50))
        tagged = timed(lambda: cli(root, "log", "--tag", TAG))
        latest = timed(lambda: cli(root, "log"))
        as_json = timed(lambda: cli(root, "log", "--json"))
        print(f"--- {'compact' if compact else 'spaced after : and ,'}")
        print(f"rows:            {lines:,} ({n:,} experiments of {TAG}, steer rows, an earlier night)")
        print(f"file_mb:         {ledger.stat().st_size / 2**20:.1f}")
        print(figure("log_tag_s", tagged, f"autoresearch log --tag {TAG} (median of {REPEATS})"))
        print(figure("log_latest_s", latest, "autoresearch log"))
        print(figure("log_json_s", as_json, "autoresearch log --json"))
        print(figure("summarize_s", library, "review.summarize(path) in-process"))
        return max(tagged[0], latest[0], as_json[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("-n", type=int, default=100_000, help="experiment rows of the night")
    args = parser.parse_args()
    worst = max(measure(args.n, compact=True), measure(args.n, compact=False))
    bare = timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True))
    print("---")
    print(figure("python_start_s", bare, "python -c pass"))
    print(f"goal:            < {GOAL_S:.1f} s for autoresearch log: {'met' if worst < GOAL_S else 'NOT met'}")


if __name__ == "__main__":
    main()
