"""The ledger: rows appended and read back typed, old ledgers read as written, a torn last line repaired, and a full
disk that refuses a row leaving no part of it behind."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from harness.errors import LedgerError
from harness.ledger import (
    EVALUATED,
    FAILED,
    INTERRUPTED,
    STATUSES,
    UNRUN,
    Experiment,
    Generation,
    Ledger,
    Note,
    Steer,
)

ROOT = Path(__file__).resolve().parent.parent


def _row(i: int, status: str = "keep", **fields: Any) -> Experiment:
    values: dict[str, Any] = dict(
        tag="t", id=i, commit="a" * 40, parent="b" * 40, status=status, metric=1.0 - i / 10, best=1.0,
        description=f"exp {i}", seconds=1.5, agent="optuna", program_sha="p", agent_sha="s",
    )  # fmt: skip
    return Experiment(**{**values, **fields})


def test_rows_round_trip_with_every_spec_field(tmp_path: Path):
    ledger = Ledger(tmp_path / "experiments.log")
    ledger.append(_row(0))
    ledger.append({"kind": "steer", "tag": "t", "program_sha": "x"})
    rows = list(ledger.rows())
    assert [r["kind"] for r in rows] == ["experiment", "steer"]
    spec = {"kind", "tag", "id", "commit", "parent", "status", "metric", "best", "description", "seconds", "agent",
            "program_sha", "agent_sha", "tokens_in", "tokens_out", "cost_usd", "time"}  # fmt: skip
    assert spec <= set(rows[0])
    assert rows[0]["time"].endswith("Z")
    assert ledger.experiments("t")[0] == Experiment.from_json(rows[0])
    assert ledger.read() == [_row(0, time=rows[0]["time"]), Steer(tag="t", program_sha="x", time=rows[1]["time"])]


# experiments.log as the writer before this one (json.dumps of a dataclass, "kind" last) wrote it.
OLD_LINES = (
    '{"tag":"nov23","id":0,"commit":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",'
    '"parent":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","status":"keep","metric":1.1,"best":1.1,'
    '"description":"baseline","seconds":301.5,"agent":"llm","program_sha":"p1","agent_sha":"s1","tokens_in":0,'
    '"tokens_out":0,"cost_usd":0.0,"delta":null,"cache_read":0,"cache_write":0,"file_sha":"","exit_code":0,'
    '"peak_mem_mb":812.5,"log":"runs/nov23/0.log","reason":"","tail":"","notes":"","extra":{"noise":0.0004,'
    '"metrics":[1.1,1.1004]},"time":"2026-11-23T01:00:00Z","kind":"experiment"}',
    '{"time":"2026-11-23T01:30:00Z","kind":"steer","tag":"nov23","program_sha":"p2","previous":"p1",'
    '"changes":{"budget":[300,240],"text":[120,180]},'
    '"text":"---\\nbudget: 240\\n---\\n# Réglage: «plus court»\\n"}',
    '{"tag":"nov23","id":1,"commit":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",'
    '"parent":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","status":"crash","metric":null,"best":1.1,'
    '"description":"réglage du taux → 3e-3, \\"cosine\\"","seconds":12.25,"agent":"llm","program_sha":"p2",'
    '"agent_sha":"s1","tokens_in":12000,"tokens_out":800,"cost_usd":0.0425,"delta":null,"cache_read":9000,'
    '"cache_write":1200,"file_sha":"ffffffffffffffffffffffffffffffffffffffff","exit_code":1,"peak_mem_mb":null,'
    '"log":"runs/nov23/1.log","reason":"exit 1",'
    '"tail":"Traceback:\\n  File \\"train.py\\", line 3\\n\\tx = \\\\ 1\\nSyntaxError","notes":"next: warmup",'
    '"extra":{},"time":"2026-11-23T02:00:00Z","kind":"experiment"}',
    '{"time":"2026-11-23T02:10:00Z","kind":"steer","tag":"nov23","program_sha":"p3","previous":"p2",'
    "\"error\":\"program.md:3: unknown key 'budjet' (did you mean 'budget'?)\"}",
    '{"time":"2026-11-23T02:20:00Z","kind":"note","tag":"nov23",'
    '"message":"repaired a torn last line of the ledger (41 bytes kept in runs/torn-ledger-line-1.txt)"}',
    '{"tag":"nov23","id":2,"commit":null,"parent":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",'
    '"status":"interrupted","metric":null,"best":1.1,"description":"batch size 4096","seconds":97.0,'
    '"agent":"optuna","program_sha":"p2","agent_sha":"","tokens_in":0,"tokens_out":0,"cost_usd":0.0,'
    '"delta":null,"cache_read":0,"cache_write":0,"file_sha":"","exit_code":null,"peak_mem_mb":null,"log":"",'
    '"reason":"the harness stopped during this experiment (killed, power cut or Ctrl-C)","tail":"","notes":"",'
    '"extra":{"BATCH":4096},"time":"2026-11-23T03:00:00Z","kind":"experiment"}',
)


def test_a_ledger_written_by_the_previous_writer_reads_back_as_it_was_written(tmp_path: Path):
    path = tmp_path / "experiments.log"
    path.write_bytes("".join(line + "\n" for line in OLD_LINES).encode())
    ledger = Ledger(path)
    a = "a" * 40
    assert ledger.read() == [
        Experiment(
            tag="nov23", id=0, commit=a, parent=a, status="keep", metric=1.1, best=1.1, description="baseline",
            seconds=301.5, agent="llm", program_sha="p1", agent_sha="s1", exit_code=0, peak_mem_mb=812.5,
            log="runs/nov23/0.log", extra={"noise": 0.0004, "metrics": [1.1, 1.1004]}, time="2026-11-23T01:00:00Z",
        ),
        Steer(
            tag="nov23", program_sha="p2", previous="p1", changes={"budget": [300, 240], "text": [120, 180]},
            text="---\nbudget: 240\n---\n# Réglage: «plus court»\n", time="2026-11-23T01:30:00Z",
        ),
        Experiment(
            tag="nov23", id=1, commit="b" * 40, parent=a, status="crash", metric=None, best=1.1,
            description='réglage du taux → 3e-3, "cosine"', seconds=12.25, agent="llm", program_sha="p2",
            agent_sha="s1", tokens_in=12000, tokens_out=800, cost_usd=0.0425, cache_read=9000, cache_write=1200,
            file_sha="f" * 40, exit_code=1, log="runs/nov23/1.log", reason="exit 1",
            tail='Traceback:\n  File "train.py", line 3\n\tx = \\ 1\nSyntaxError', notes="next: warmup",
            time="2026-11-23T02:00:00Z",
        ),
        Steer(
            tag="nov23", program_sha="p3", previous="p2",
            error="program.md:3: unknown key 'budjet' (did you mean 'budget'?)", time="2026-11-23T02:10:00Z",
        ),
        Note(
            tag="nov23", time="2026-11-23T02:20:00Z",
            message="repaired a torn last line of the ledger (41 bytes kept in runs/torn-ledger-line-1.txt)",
        ),
        Experiment(
            tag="nov23", id=2, commit=None, parent=a, status="interrupted", metric=None, best=1.1,
            description="batch size 4096", seconds=97.0, agent="optuna", program_sha="p2", agent_sha="",
            reason="the harness stopped during this experiment (killed, power cut or Ctrl-C)",
            extra={"BATCH": 4096}, time="2026-11-23T03:00:00Z",
        ),
    ]  # fmt: skip
    assert list(ledger.rows()) == [json.loads(line) for line in OLD_LINES]
    assert [r.id for r in ledger.experiments("nov23")] == [0, 1, 2]
    assert ledger.tags() == ["nov23"]


def test_what_this_writer_writes_reads_back_equal_and_stays_readable_utf8_on_one_line(tmp_path: Path):
    ledger = Ledger(tmp_path / "experiments.log")
    row = _row(1, description="réglage → 3e-3", tail='line 1\nline "2"\t\\', extra={"LR": 3e-3, "names": ["é"]})
    steer = Steer(tag="t", program_sha="p2", previous="p", changes={"budget": [300, 60]}, text="# Ziel: größer\n")
    note = Note(tag="t", message="disk nearly full")
    for r in (row, steer, note):
        ledger.append(r)
    data = ledger.path.read_bytes()
    assert data.count(b"\n") == 3
    assert "réglage → 3e-3".encode() in data and "größer".encode() in data
    assert ledger.read() == [row, steer, note]


def test_torn_last_line_is_repaired_and_returned(tmp_path: Path):
    path = tmp_path / "experiments.log"
    ledger = Ledger(path)
    ledger.append(_row(0))
    ledger.append(_row(1))
    with open(path, "ab") as f:
        f.write(b'{"kind":"experiment","tag":"t","id":2,"sta')  # the power went out here
    assert [r.id for r in ledger.experiments("t")] == [0, 1]  # readers pass over it before the repair too
    torn = ledger.repair()
    assert torn.startswith(b'{"kind":"experiment"')
    assert path.read_bytes().endswith(b"\n")
    ledger.append(_row(2))
    assert [r.id for r in ledger.experiments("t")] == [0, 1, 2]
    assert ledger.repair() == b""


def test_a_row_appended_before_a_torn_line_is_repaired_is_not_merged_into_it(tmp_path: Path):
    path = tmp_path / "experiments.log"
    ledger = Ledger(path)
    ledger.append(_row(0))
    with open(path, "ab") as f:
        f.write(b'{"kind":"experiment","tag":"t","id":1,"sta')
    ledger.append(_row(1))
    assert [r.id for r in ledger.experiments("t")] == [0, 1]
    assert path.read_bytes().count(b"\n") == 3  # the torn piece stays on a line of its own, for a person to see


def test_a_hand_edited_line_that_is_not_json_is_passed_over(tmp_path: Path):
    path = tmp_path / "experiments.log"
    ledger = Ledger(path)
    ledger.append(_row(0))
    with open(path, "a") as f:
        f.write("this is not json\n")
    ledger.append(_row(1))
    assert [r.id for r in ledger.experiments("t")] == [0, 1]


def test_newer_kinds_rows_that_do_not_fit_and_lines_that_are_not_objects_are_passed_over(tmp_path: Path):
    path = tmp_path / "experiments.log"
    ledger = Ledger(path)
    ledger.append(_row(0))
    ledger.append({"kind": "audit", "tag": "t", "round": 1, "status": "done"})  # a kind of a newer version
    with open(path, "a") as f:
        f.write(json.dumps({**_row(1).to_json(), "status": "exploded"}) + "\n")  # not a status
        f.write(json.dumps({**_row(2).to_json(), "id": "two"}) + "\n")  # not an id
        f.write('[1, 2]\n"a string"\n\n{"kind": "note"}\n')
    ledger.append(_row(3))
    assert [(type(r), r.id) for r in ledger.read() if isinstance(r, Experiment)] == [(Experiment, 0), (Experiment, 3)]
    assert len(ledger.read()) == 2
    assert [r.get("kind") for r in ledger.rows()] == ["experiment", "audit", "experiment", "experiment", "note",
                                                      "experiment"]  # fmt: skip


def test_a_long_ledger_with_a_bad_line_in_the_middle_loses_only_that_line(tmp_path: Path):
    # Several megabytes, so the reader's blocks end inside rows and one block holds a line that is not a row.
    path = tmp_path / "experiments.log"
    lines = [json.dumps(_row(i, description=f"idea {i} " * 300).to_json()) + "\n" for i in range(3000)]
    lines[1700] = lines[1700][:500] + "\n"  # cut short by hand
    path.write_text("".join(lines))
    assert path.stat().st_size > 3 * 2**20
    rows = Ledger(path).experiments("t")
    assert [r.id for r in rows] == [i for i in range(3000) if i != 1700]
    assert rows[-1] == _row(2999, description="idea 2999 " * 300, time=rows[-1].time)


def test_unknown_fields_from_a_newer_version_are_tolerated(tmp_path: Path):
    ledger = Ledger(tmp_path / "experiments.log")
    ledger.append({**_row(3).to_json(), "future_field": 1})
    assert ledger.experiments("t")[0].id == 3
    assert next(ledger.rows())["future_field"] == 1


def test_a_nan_an_older_writer_wrote_still_reads_and_this_writer_writes_null(tmp_path: Path):
    path = tmp_path / "experiments.log"
    path.write_text(json.dumps({**_row(0).to_json(), "metric": float("nan")}) + "\n")  # json.dumps writes NaN
    ledger = Ledger(path)
    (old,) = ledger.experiments("t")
    assert old.metric is not None and math.isnan(old.metric)
    ledger.append(_row(1, metric=float("inf")))
    assert path.read_text().splitlines()[1].count('"metric":null') == 1  # strict JSON, for jq and every other reader
    assert ledger.experiments("t")[1].metric is None


def test_a_note_keeps_its_extra_fields_in_the_file(tmp_path: Path):
    ledger = Ledger(tmp_path / "experiments.log")
    ledger.note("t", "repaired a torn last line", torn_bytes=41)
    assert next(ledger.rows())["torn_bytes"] == 41
    (note,) = ledger.read()
    assert isinstance(note, Note) and note.message == "repaired a torn last line"


def test_a_row_that_would_not_read_back_is_refused_before_anything_is_written(tmp_path: Path):
    ledger = Ledger(tmp_path / "experiments.log")
    ledger.append(_row(0))
    before = ledger.path.read_bytes()
    with pytest.raises(msgspec.ValidationError, match="status"):
        ledger.append(_row(1, status="exploded"))
    with pytest.raises(msgspec.ValidationError, match="changes"):
        ledger.append({"kind": "steer", "tag": "t", "changes": "budget"})
    assert ledger.path.read_bytes() == before


def test_every_status_is_in_exactly_one_set():
    sets = (EVALUATED, FAILED, UNRUN, INTERRUPTED)
    assert sorted(s for group in sets for s in group) == sorted(STATUSES)
    assert "tampered" in FAILED and "duplicate" in UNRUN and "discard" in EVALUATED


# ---------------------------------------------------------------------------
# A full disk, for real: a child whose file size limit (RLIMIT_FSIZE) ends inside the row it appends, so the kernel
# writes part of the row and then refuses the rest (EFBIG; SIGXFSZ is ignored, or it would kill the child).

CHILD = """
import resource, signal, sys
from pathlib import Path
from harness.errors import LedgerError
from harness.ledger import Experiment, Ledger

path, room = Path(sys.argv[1]), int(sys.argv[2])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = path.stat().st_size + room
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
row = Experiment(tag="t", id=2, commit=None, parent="b" * 40, status="discard", metric=0.9, best=0.8,
                 description="x" * 4000, seconds=1.0, agent="optuna", program_sha="p", agent_sha="s")
try:
    Ledger(path).append(row)
except LedgerError as e:
    print(e)
    sys.exit(3)
"""


@pytest.mark.parametrize("room", [0, 1, 2000], ids=["no-byte", "one-byte", "half-the-row"])
def test_a_row_the_disk_takes_only_in_part_is_an_error_that_leaves_no_part_and_no_earlier_row_lost(
    tmp_path: Path, room: int
):
    path = tmp_path / "experiments.log"
    ledger = Ledger(path)
    ledger.append(_row(0))
    ledger.append(_row(1))
    before = path.read_bytes()
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), str(room)], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert out.returncode == 3, out.stderr
    assert str(path) in out.stdout and "could not take a row" in out.stdout and "ulimit -f" in out.stdout
    assert path.read_bytes() == before  # no partial row for the next row to merge into
    assert ledger.repair() == b""
    ledger.append(_row(2))
    assert [r.id for r in ledger.experiments("t")] == [0, 1, 2]


def test_a_ledger_that_cannot_be_opened_is_an_error_naming_it(tmp_path: Path):
    with pytest.raises(LedgerError, match=f"cannot open the ledger {tmp_path}"):
        Ledger(tmp_path).append(_row(0))  # a directory


def test_a_generation_row_reads_back_typed_beside_the_experiments(tmp_path: Path):
    ledger = Ledger(tmp_path / "experiments.log")
    ledger.append(_row(0))
    row = Generation(tag="t", generation=1, status="rejected", stage="import", error="ModuleNotFoundError: x",
                     agent_sha="a" * 16, champion_sha="b" * 16, commit=None, cost_usd=0.5)  # fmt: skip
    ledger.append(row)
    assert ledger.generations("t") == [row] and ledger.generations("other") == []
    assert [r.id for r in ledger.experiments("t")] == [0]
