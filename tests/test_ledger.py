"""The ledger: rows appended and read back, a torn last line repaired."""

from pathlib import Path

from harness.ledger import Experiment, Ledger


def _row(i: int, status: str = "keep") -> Experiment:
    return Experiment(
        tag="t", id=i, commit="a" * 40, parent="b" * 40, status=status, metric=1.0 - i / 10, best=1.0,
        description=f"exp {i}", seconds=1.5, agent="optuna", program_sha="p", agent_sha="s",
    )  # fmt: skip


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


def test_a_hand_edited_line_that_is_not_json_is_passed_over(tmp_path: Path):
    path = tmp_path / "experiments.log"
    ledger = Ledger(path)
    ledger.append(_row(0))
    with open(path, "a") as f:
        f.write("this is not json\n")
    ledger.append(_row(1))
    assert [r.id for r in ledger.experiments("t")] == [0, 1]


def test_unknown_fields_from_a_newer_version_are_tolerated(tmp_path: Path):
    ledger = Ledger(tmp_path / "experiments.log")
    ledger.append({**_row(3).to_json(), "future_field": 1})
    assert ledger.experiments("t")[0].id == 3
