"""The append-only ledger, experiments.log: JSON Lines, fsynced, a torn last line repaired on start."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

Status = Literal["keep", "discard", "crash", "timeout", "invalid", "duplicate", "tampered", "interrupted"]
STATUSES: tuple[str, ...] = ("keep", "discard", "crash", "timeout", "invalid", "duplicate", "tampered", "interrupted")


def now() -> str:
    """The current time as ISO 8601 UTC, to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Experiment:
    """One experiment row of the ledger (kind "experiment"); id 0 is the baseline."""

    tag: str
    id: int
    commit: str | None  # full sha of the experiment's commit (None when nothing was committed)
    parent: str  # the champion commit it was tried against
    status: Status
    metric: float | None
    best: float | None  # the champion's metric after this row
    description: str
    seconds: float  # wall time of the evaluation, measured by the harness
    agent: str  # "optuna", "llm", or the agent file's name
    program_sha: str
    agent_sha: str
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    delta: float | None = None  # metric minus the champion's metric before this row
    cache_read: int = 0
    cache_write: int = 0
    file_sha: str = ""  # git blob sha of the mutable file's content
    exit_code: int | None = None
    peak_mem_mb: float | None = None
    log: str = ""  # the run's log file, relative to the repository root
    reason: str = ""  # why it was invalid/crashed/tampered, in one line
    tail: str = ""  # the tail of the run's log for crash and timeout
    notes: str = ""  # the agent's notes, its memory across experiments
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. repeated baseline metrics, proposal params
    time: str = field(default_factory=now)
    kind: str = "experiment"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Experiment:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in row.items() if k in known})


class Ledger:
    """experiments.log: every event of every night, one JSON object per line."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, row: dict[str, Any] | Experiment) -> None:
        """Write one row and fsync it, so the row is on disk before anything that depends on it."""
        data = row.to_json() if isinstance(row, Experiment) else {"time": now(), **row}
        line = json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    def note(self, tag: str, message: str, **fields: Any) -> None:
        self.append({"kind": "note", "tag": tag, "message": message, **fields})

    def repair(self) -> bytes:
        """Cut a torn last line (a write cut short by a power cut) and return its bytes; b"" when intact."""
        if not self.path.exists():
            return b""
        with open(self.path, "rb+") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return b""
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return b""
            # Walk back to the last complete line; the ledger's lines are short, so read the tail in chunks.
            pos = size
            while pos > 0:
                step = min(65536, pos)
                f.seek(pos - step)
                chunk = f.read(step)
                idx = chunk.rfind(b"\n")
                if idx >= 0:
                    pos = pos - step + idx + 1
                    break
                pos -= step
            f.seek(pos)
            torn = f.read()
            f.truncate(pos)
            f.flush()
            os.fsync(f.fileno())
        return torn

    def rows(self) -> Iterator[dict[str, Any]]:
        """Every complete row, in order; a line that is not JSON (a hand edit) is passed over."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            for raw in f:
                if not raw.endswith(b"\n"):
                    return  # a torn last line is not a row
                try:
                    row = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(row, dict):
                    yield row

    def experiments(self, tag: str) -> list[Experiment]:
        """The experiment rows of one tag, in order."""
        return [Experiment.from_json(r) for r in self.rows() if r.get("kind") == "experiment" and r.get("tag") == tag]

    def tags(self) -> list[str]:
        """Tags in the order they first appear."""
        seen: dict[str, None] = {}
        for r in self.rows():
            if "tag" in r:
                seen.setdefault(str(r["tag"]), None)
        return list(seen)
