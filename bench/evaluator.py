"""
The bundled evaluator's wall time on one model.pt2, as the harness runs it (`python -I prepare.py --evaluate`).

Usage:
    python bench/evaluator.py --out runs/demo/0.out             # 3 evaluations of that run's model, this prepare.py
    python bench/evaluator.py --out runs/demo/0.out -n 5 --prepare /tmp/old/prepare.py   # another version of it

The data folder is the one that prepare.py uses ($AUTORESEARCH_DATA, else data/ next to it); it is built first if
it is missing (not timed). Printed: each evaluation's wall time and the evaluator's own `eval_seconds` (loading,
checking and scoring; the rest is the interpreter and torch starting), their medians, and the share of a run of
`--run-seconds` (default 60 s of budget plus its start-up and export, as a run's ledger row gives them) they are.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="a run's output folder holding model.pt2")
    parser.add_argument("-n", type=int, default=3, help="evaluations to time")
    parser.add_argument("--prepare", type=Path, default=ROOT / "prepare.py", help="the prepare.py to time")
    parser.add_argument("--run-seconds", type=float, default=None, help="a run's wall time, to give the share")
    args = parser.parse_args()
    prepare = args.prepare.resolve()
    built = subprocess.run([sys.executable, str(prepare)], cwd=prepare.parent, capture_output=True, text=True)
    if built.returncode != 0:
        raise SystemExit(f"{prepare} could not build its data: {built.stderr.strip()[-500:]}")
    walls, inner = [], []
    for i in range(args.n):
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-I", str(prepare), "--evaluate", "--out", str(args.out.resolve())],
            cwd=prepare.parent, capture_output=True, text=True, env=dict(os.environ),
        )  # fmt: skip
        wall = time.monotonic() - started
        if done.returncode != 0:
            raise SystemExit(f"the evaluator failed: {(done.stdout + done.stderr).strip()[-800:]}")
        found = re.search(r"^eval_seconds:\s+([\d.]+)", done.stdout, re.M)
        metric = re.search(r"^val_bpb: ([\d.]+)", done.stdout, re.M)
        inner.append(float(found.group(1)) if found else float("nan"))
        walls.append(wall)
        print(f"evaluation {i + 1}: {wall:.1f} s wall, eval_seconds {inner[-1]:.1f}, "
              f"val_bpb {metric.group(1) if metric else '?'}", flush=True)  # fmt: skip
    wall, own = statistics.median(walls), statistics.median(inner)
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    line = f"median: {wall:.1f} s wall ({own:.1f} s loading, checking and scoring); load {load:.2f} per core"
    if args.run_seconds:
        line += f"; {100 * wall / args.run_seconds:.0f}% of a {args.run_seconds:.0f} s run"
    print(line)


if __name__ == "__main__":
    main()
