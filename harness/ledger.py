"""The append-only ledger, experiments.log: its row types, each row written whole or not at all, read back typed."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

import msgspec

from harness.errors import LedgerError

Status = Literal["keep", "discard", "crash", "timeout", "invalid", "duplicate", "tampered", "interrupted"]
STATUSES: tuple[Status, ...] = get_args(Status)
# Every status is in exactly one of these sets.
EVALUATED: frozenset[Status] = frozenset({"keep", "discard"})  # the run gave a metric, weighed against the champion
FAILED: frozenset[Status] = frozenset({"crash", "timeout", "tampered"})  # it ran, and left no metric that counts
UNRUN: frozenset[Status] = frozenset({"invalid", "duplicate"})  # refused before any compute was spent on it
INTERRUPTED: frozenset[Status] = frozenset({"interrupted"})  # the harness stopped while it ran (a kill, a power cut)

BLOCK = 2**20  # bytes of the ledger decoded at once; a line that is not a row sends only its block line by line
_SKIP = object()  # what a line that is not a row decodes to


def now() -> str:
    """The current time as ISO 8601 UTC, to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# ---------------------------------------------------------------------------
# The rows: one type per kind, told apart by the "kind" field. A night's review holds every row of a long ledger at
# once, so the rows are not tracked by the garbage collector (gc=False: they hold only JSON values and can never be
# part of a reference cycle); tracking them made reading 100,000 rows about a fifth slower.


class Experiment(msgspec.Struct, frozen=True, gc=False, tag_field="kind", tag="experiment"):
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
    extra: dict[str, Any] = msgspec.field(default_factory=dict)  # e.g. repeated baseline metrics, proposal params
    sandbox: str = ""  # what protected its run: "bwrap", or "none (<mode>)" when the OS sandbox was not in force
    time: str = msgspec.field(default_factory=now)
    worker: str = ""  # the worker of its candidate run when several run at once (its device); "" with one worker

    def to_json(self) -> dict[str, Any]:
        """The row as plain JSON values, "kind" included."""
        return msgspec.to_builtins(self)

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Experiment:
        """The experiment a decoded row holds; raises msgspec.ValidationError when the row does not fit."""
        return msgspec.convert(row, cls, strict=False)


class Steer(msgspec.Struct, frozen=True, gc=False, tag_field="kind", tag="steer"):
    """An edit of program.md during a night (kind "steer"): what changed, or the error that kept the last program."""

    tag: str
    program_sha: str = ""  # sha of program.md as it was read
    previous: str = ""  # sha of the program in force before
    changes: dict[str, list[Any]] = msgspec.field(default_factory=dict)  # front-matter key -> [old, new]; or "text"
    error: str = ""  # why the edit was not applied; "" when it was
    text: str = ""  # the whole file as it was read, so the ledger keeps every version of the program
    time: str = msgspec.field(default_factory=now)


class Note(msgspec.Struct, frozen=True, gc=False, tag_field="kind", tag="note"):
    """Anything else worth keeping (kind "note"), such as a torn line repaired on start."""

    tag: str
    message: str
    time: str = msgspec.field(default_factory=now)


class MeasurementRow(msgspec.Struct, frozen=True, gc=False, tag_field="kind", tag="measurement"):
    """One run of one version of the mutable file (kind "measurement"): every run the keep rule weighed, the
    baseline's, a candidate's, a confirmation's and the champion's re-measures alike; never an experiment itself."""

    tag: str
    file_sha: str  # git blob sha of the mutable file that ran: the version measured, whatever commit carried it
    value: float | None  # the metric; None when the run failed
    purpose: str  # "baseline", "candidate", "confirm" or "remeasure"
    experiment: int  # the experiment it served (the one under way, or the next one for a re-measure)
    outcome: str = "ok"  # ok, crash, timeout or tampered
    seconds: float = 0.0
    cpu_seconds: float | None = None  # CPU time of the run's processes; None when not measured
    load: float | None = None  # how busy the run's cores were while it ran, per core, its own work included
    contended: bool = False  # measured while the machine was clearly busy: not trusted alone
    log: str = ""
    time: str = msgspec.field(default_factory=now)
    worker: str = ""  # the worker (its device) that ran it when several run at once; "" with one worker


GenerationStatus = Literal["accepted", "rejected", "reverted"]
# The stages of a HyperAgent generation, in order: the rewrite itself, then the gates, cheapest first.
STAGES = ("rewrite", "scope", "compile", "contract", "import", "signature", "smoke", "probation")


class Generation(msgspec.Struct, frozen=True, gc=False, tag_field="kind", tag="generation"):
    """One HyperAgent generation (kind "generation"): a candidate agent.py from the champion's rewrite(), accepted
    after every gate and probation, or rejected at the first stage it failed. "reverted" (stage "record") records a
    champion whose experiments did worse than the record it was accepted against, which gave its place back to the
    agent before it (its commit puts that agent back; its error says why)."""

    tag: str
    generation: int  # 1, 2, ...: the rewrites of the tag, in order
    status: GenerationStatus
    stage: str  # one of STAGES: where it was rejected, or "probation" when accepted
    error: str  # why it was rejected, in one line ("" when accepted)
    agent_sha: str  # the candidate's version (sha256 of agent.py, 16 hex digits, as experiment rows' agent_sha)
    champion_sha: str  # the champion agent's version it was tried against
    commit: str | None  # accepted: on the branch; rejected: under refs/autoresearch/<tag>/agents/<n>
    scores: dict[str, Any] = msgspec.field(default_factory=dict)  # probation's evidence: ids, keeps, gains and z
    parent: str = ""  # the branch's champion commit when the candidate was made
    description: str = ""  # the candidate's own one-line description of its change
    after: int | None = None  # the last experiment before this row
    tokens_in: int = 0  # the rewrite's LLM calls: counted in the night's spend like an experiment's
    tokens_out: int = 0
    cost_usd: float = 0.0
    time: str = msgspec.field(default_factory=now)

    def to_json(self) -> dict[str, Any]:
        """The row as plain JSON values, "kind" included."""
        return msgspec.to_builtins(self)


class LockedTest(msgspec.Struct, frozen=True, gc=False, tag_field="kind", tag="test"):
    """The locked test of one new champion (kind "test"): program.md's `test:` command on a split nothing else sees.
    It is for the person: no decision, no agent and no LLM request ever reads it (see harness.lockedtest)."""

    tag: str
    id: int  # the experiment that made the champion (0: the baseline)
    commit: str | None
    metric: float | None  # None when the test failed (reason says why)
    selection: float | None = None  # the champion's selection metric (its experiment row's), shown beside it
    outcome: str = "ok"  # ok, crash or timeout
    reason: str = ""
    seconds: float = 0.0
    log: str = ""  # the test's log, relative to the repository root
    time: str = msgspec.field(default_factory=now)


# Every kind this version reads. A kind it does not know (one a newer version added) is passed over, so a new kind
# is one more type here, and older readers keep working on a ledger that has it.
Row = Experiment | Steer | Note | MeasurementRow | Generation | LockedTest
KINDS: dict[str, type[msgspec.Struct]] = {
    str(t.__struct_config__.tag): t for t in (Experiment, Steer, Note, MeasurementRow, Generation, LockedTest)
}

# strict=False: a hand edit that writes 2.0 for an int or "1.5" for a float still reads as the number it means.
_TYPED = msgspec.json.Decoder(Row, strict=False)
_PLAIN = msgspec.json.Decoder()
_ENCODER = msgspec.json.Encoder()


# ---------------------------------------------------------------------------
# The file


class Ledger:
    """experiments.log: every event of every night, one JSON object per line."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, row: Row | dict[str, Any]) -> None:
        """Write one whole row and fsync it before anything depends on it; raises LedgerError, leaving the file as
        it was, when the disk does not take all of it."""
        line = _encode(row) + b"\n"
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as e:
            raise LedgerError(f"cannot open the ledger {self.path}: {e.strerror}; fix that, then start again") from e
        try:
            start = os.fstat(fd).st_size
            if start and os.pread(fd, 1, start - 1) != b"\n":
                line = b"\n" + line  # a torn last line not yet repaired: the row starts a line of its own
            try:
                _write_all(fd, line)
                os.fsync(fd)  # a full disk may only say so here, when the data is really written
            except OSError as e:
                # A partial row would merge with the next row written into one line that no reader can read.
                os.ftruncate(fd, start)
                raise LedgerError(
                    f"the ledger {self.path} could not take a row ({e.strerror}); the rows before it are intact: "
                    f"{_remedy(e)}, then start the loop again (it resumes where it stopped)"
                ) from e
        finally:
            os.close(fd)

    def note(self, tag: str, message: str, **fields: Any) -> None:
        """Append a note row; `fields` are written beside the message (rows() shows them, read() passes them over)."""
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

    def read(self) -> list[Row]:
        """Every row of a kind this version knows, typed, in order. A line that is not one (a hand edit, a newer
        kind, a row that does not fit its type) is passed over, and a torn last line is not a row."""
        rows: list[Row] = []
        for block in self._blocks():
            rows += _decode(block, _TYPED)
        return rows

    def rows(self) -> Iterator[dict[str, Any]]:
        """Every complete row as a plain dict, in order, whatever its kind; a line that is not an object is skipped."""
        for block in self._blocks():
            yield from (row for row in _decode(block, _PLAIN) if isinstance(row, dict))

    def experiments(self, tag: str) -> list[Experiment]:
        """The experiment rows of one tag, in order."""
        return [r for r in self.read() if type(r) is Experiment and r.tag == tag]

    def night(self, tag: str) -> tuple[list[Experiment], list[MeasurementRow]]:
        """The experiment rows and the measurement rows of one tag, each in order, from one read of the file."""
        rows = [r for r in self.read() if r.tag == tag]
        return [r for r in rows if type(r) is Experiment], [r for r in rows if type(r) is MeasurementRow]

    def generations(self, tag: str) -> list[Generation]:
        """The HyperAgent generation rows of one tag, in order."""
        return [r for r in self.read() if type(r) is Generation and r.tag == tag]

    def tags(self) -> list[str]:
        """Tags in the order they first appear."""
        return list(dict.fromkeys(r.tag for r in self.read()))

    def _blocks(self) -> Iterator[memoryview]:
        """The file in blocks of whole lines; what follows the last newline (a torn line) is never in one."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            rest = b""
            while block := f.read(BLOCK):
                data = rest + block
                cut = data.rfind(b"\n") + 1
                rest = data[cut:]
                if cut:
                    yield memoryview(data)[:cut]


def _encode(row: Row | dict[str, Any]) -> bytes:
    """One row as compact JSON (non-ASCII text as UTF-8, readable as it is); raises msgspec.ValidationError for a row
    of a known kind that would not read back, so no row is written to be passed over later."""
    if isinstance(row, dict):
        data = {"time": now(), **row}
        line = _ENCODER.encode(data)
        if data.get("kind") not in KINDS:
            return line  # a kind of a newer version: written as given, its readers check it
    else:
        line = _ENCODER.encode(row)
    _TYPED.decode(line)
    return line


def _write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written; a full disk or a size limit first writes short, then raises OSError."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written == 0:
            raise OSError(errno.EIO, "the file system took no byte of it")
        view = view[written:]


def _remedy(e: OSError) -> str:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free some disk space"
    if e.errno == errno.EFBIG:
        return "raise the file size limit (ulimit -f)"
    return "fix that"


def _decode(block: memoryview, decoder: msgspec.json.Decoder[Any]) -> list[Any]:
    """The rows of a block of whole lines: all at once, or line by line when one line does not decode."""
    try:
        return decoder.decode_lines(block)
    except msgspec.DecodeError:
        rows = (_decode_line(line, decoder) for line in block.tobytes().split(b"\n"))
        return [row for row in rows if row is not _SKIP]


def _decode_line(line: bytes, decoder: msgspec.json.Decoder[Any]) -> Any:
    try:
        return decoder.decode(line)
    except msgspec.ValidationError:
        return _SKIP  # JSON, but not a row of a kind this version knows
    except msgspec.DecodeError:
        pass
    # Not strict JSON. Older versions wrote NaN and Infinity (json.dumps does), which msgspec refuses; json reads
    # them. Anything else (a hand edit, an empty line) is passed over.
    try:
        return msgspec.convert(json.loads(line), decoder.type, strict=False)
    except ValueError:
        return _SKIP
