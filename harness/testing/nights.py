"""Nights written straight into a ledger, for tests and benchmarks of the review: the rows a loop writes, with real
commits when asked (a few), or commit names only (a big night, where only the ledger is read)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec

from harness.ledger import Experiment, MeasurementRow
from harness.repo import blob_sha
from harness.testing.repos import TOY_TRAIN, git

START = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


def _time(start: datetime, seconds: float) -> str:
    return (start + timedelta(seconds=seconds)).isoformat(timespec="seconds").replace("+00:00", "Z")


def experiment_row(tag: str, exp_id: int, **fields: object) -> Experiment:
    """An experiment row as the loop writes it; `fields` set any column."""
    values: dict[str, object] = {
        "tag": tag, "id": exp_id, "commit": None, "parent": "0" * 40, "status": "discard", "metric": None,
        "best": None, "description": f"experiment {exp_id}", "seconds": 30.0, "agent": "optuna",
        "program_sha": "p" * 16, "agent_sha": "a" * 16, **fields,
    }  # fmt: skip
    return Experiment(**values)  # type: ignore[arg-type]


def write_night(
    root: Path,
    tag: str,
    count: int,
    *,
    commits: bool = False,
    workers: int = 1,
    seed: int = 0,
    start: datetime = START,
    descriptions: dict[int, str] | None = None,
) -> list[Experiment]:
    """Append a night of `count` experiments (and the baseline) to the ledger of the repository at `root`: most
    discarded, some kept, some crashed, one in 29 refused; every run a measurement row. With `commits`, each
    experiment is a real commit of train.py (its X constant changed) on branch autoresearch/<tag> or a discarded
    ref, as the loop leaves them."""
    rng = random.Random(seed)
    ledger = _Batch()
    head = git(root, "rev-parse", "HEAD") if commits else "0" * 40
    metric = best = 2.0
    noise = 0.01
    champion = head
    rows: list[Experiment] = []
    for i in range(count + 1):
        worker = f"cpu{i % workers}" if workers > 1 else ""
        t = _time(start, 30 * i)
        x = round(3.0 - 2.0 * i / max(count, 1) + rng.uniform(-0.3, 0.3), 4)
        content = TOY_TRAIN.replace("X = 3.0", f"X = {x}") if i else TOY_TRAIN
        status = "keep" if i == 0 else "invalid" if i % 29 == 0 else "crash" if i % 13 == 0 else "discard"
        value = None if status in ("invalid", "crash") else (metric if i == 0 else best + rng.uniform(-0.03, 0.08))
        if status == "discard" and value is not None and value < best - 2 * noise:
            status = "keep"
        commit = None
        if commits and i and status != "invalid":
            commit = _commit(root, champion, content, f"experiment {i}")
            git(root, "update-ref", f"refs/autoresearch/{tag}/discarded/{i}" if status != "keep" else
                f"refs/heads/autoresearch/{tag}", commit)  # fmt: skip
        elif commits:
            commit = head if i == 0 else None
        elif status != "invalid":
            commit = f"{i:040x}"
        if status != "invalid":
            ledger.append(MeasurementRow(tag=tag, file_sha=blob_sha(content), value=value,
                                         purpose="baseline" if i == 0 else "candidate", experiment=i,
                                         outcome="ok" if value is not None else "crash", seconds=28.0, time=t,
                                         worker=worker, contended=i % 17 == 5))  # fmt: skip
        delta = None if value is None or i == 0 else value - best
        if status == "keep" and value is not None:
            best = value
        description = (descriptions or {}).get(i) or ("baseline" if i == 0 else f"X={x}")
        row = experiment_row(
            tag, i, commit=commit, parent=champion, status=status, metric=value, best=best, delta=delta,
            description=description, seconds=28.0, time=t, worker=worker, cost_usd=0.01 if i else 0.0,
            file_sha=blob_sha(content), reason="" if status != "crash" else "exit status 1",
            tail="Traceback: boom\n" if status == "crash" else "", extra={"noise": noise, "params": {"X": x, "Y": 2}},
        )  # fmt: skip
        ledger.append(row)
        rows.append(row)
        if status == "keep" and commit:
            champion = commit
    with open(root / "experiments.log", "ab") as f:  # written at once: a big night need not wait for 20,000 fsyncs
        f.write(b"".join(msgspec.json.encode(r) + b"\n" for r in ledger.rows))
    return rows


class _Batch:
    """Rows kept to be written at once."""

    def __init__(self) -> None:
        self.rows: list[Experiment | MeasurementRow] = []

    def append(self, row: Experiment | MeasurementRow) -> None:
        self.rows.append(row)


def _commit(root: Path, parent: str, content: str, message: str) -> str:
    """A commit of train.py with `content` on top of `parent`, made without touching the work tree."""
    blob = git_input(root, content, "hash-object", "-w", "--stdin")
    entries = [e for e in git(root, "ls-tree", parent).splitlines() if not e.endswith("\ttrain.py")]
    tree = git_input(root, "\n".join([*entries, f"100644 blob {blob}\ttrain.py"]) + "\n", "mktree")
    return git(root, "commit-tree", tree, "-p", parent, "-m", message)


def git_input(cwd: Path, text: str, *args: str) -> str:
    import subprocess

    out = subprocess.run(["git", *args], cwd=cwd, input=text, check=True, capture_output=True, text=True)
    return out.stdout.strip()
