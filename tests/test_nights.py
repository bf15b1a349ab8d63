"""The review in the terminal: `autoresearch nights`, `autoresearch show` and `autoresearch log --csv`, over real
repositories whose ledgers hold nights as the loop writes them."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from harness.ledger import Ledger
from harness.testing import cli, git
from harness.testing.nights import experiment_row, write_night

HOSTILE = '=HYPERLINK("http://example.invalid","x") <script>alert(1)</script>'


@pytest.fixture
def reviewed(project: Path) -> Path:
    """The project with two nights: n1 with real commits (and a hostile description), n2 with commit names only."""
    write_night(project, "n1", 14, commits=True, descriptions={3: HOSTILE})
    write_night(project, "n2", 30, workers=2, seed=1)
    (project / "runs" / "n1").mkdir(parents=True)
    (project / "runs" / "n1" / "2.log").write_text("step 1\nstep 2\nval_bpb: 2.01\n")
    (project / "runs" / "n1" / "2.eval.log").write_text("checked the graph\nval_bpb: 2.02\n")
    return project


def test_nights_lists_each_night_with_its_figures(reviewed: Path):
    out = cli(reviewed, "nights", "--json")
    assert out.returncode == 0, out.stderr
    nights = {n["tag"]: n for n in json.loads(out.stdout)}
    assert set(nights) == {"n1", "n2"}
    rows = [r for r in Ledger(reviewed / "experiments.log").read() if getattr(r, "id", 0) and r.tag == "n2"]
    n2 = nights["n2"]
    assert n2["experiments"] == 30
    assert n2["kept"] == sum(1 for r in rows if r.status == "keep")
    assert n2["crashes"] == sum(1 for r in rows if r.status == "crash") > 0
    assert n2["contended"] > 0 and n2["workers"] == 2
    assert n2["cost_usd"] == pytest.approx(0.3)
    assert n2["state"] == "done" and n2["baseline"] == 2.0
    table = cli(reviewed, "nights")
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split()[:2] == ["tag", "state"]
    assert any(line.startswith("n1 ") for line in lines) and any(line.startswith("n2 ") for line in lines)


def test_show_gives_the_verdict_runs_parameters_diff_and_log_tails(reviewed: Path):
    out = cli(reviewed, "show", "2", "--tag", "n1")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.startswith("experiment 2 of n1: X=")
    assert "-X = 3.0  # the knob the agent tunes" in text and "+X = " in text  # the diff against its parent
    assert "parameters:   X=" in text
    assert "candidate" in text  # its run
    assert "step 2\nval_bpb: 2.01" in text and "checked the graph" in text
    assert "refs/autoresearch/n1/discarded/2" in text or "(autoresearch/n1)" in text
    as_json = json.loads(cli(reviewed, "show", "2", "--tag", "n1", "--json").stdout)
    assert as_json["experiment"]["id"] == 2 and as_json["params"]["Y"] == 2
    assert as_json["diff"].startswith("diff --git a/train.py b/train.py")


def test_show_names_the_ids_a_night_has_when_asked_for_another(reviewed: Path):
    out = cli(reviewed, "show", "99", "--tag", "n1")
    assert out.returncode == 1
    assert "night 'n1' has no experiment 99; its ids run 0 to 14" in out.stderr
    missing = cli(reviewed, "show", "1", "--tag", "nope")
    assert missing.returncode == 1 and "no night 'nope' in the ledger; its nights: n1, n2" in missing.stderr


def test_log_csv_has_one_row_per_experiment_and_a_column_per_parameter(reviewed: Path):
    out = cli(reviewed, "log", "--tag", "n1", "--csv")
    assert out.returncode == 0, out.stderr
    table = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [int(r["id"]) for r in table] == list(range(15))
    assert {"X", "Y"} <= set(table[0]) and list(table[0])[-2:] == ["X", "Y"]  # the search: constants, in order
    rows = {r.id: r for r in Ledger(reviewed / "experiments.log").read() if getattr(r, "tag", "") == "n1"
            and hasattr(r, "status")}  # fmt: skip
    for r in table[1:]:
        assert float(r["X"]) == rows[int(r["id"])].extra["params"]["X"]
    # A spreadsheet opening it must not run a description as a formula.
    assert table[3]["description"].startswith("'=HYPERLINK")


def test_log_csv_reads_the_search_constants_from_the_file_when_the_agent_recorded_none(project: Path):
    head = git(project, "rev-parse", "HEAD")
    Ledger(project / "experiments.log").append(
        experiment_row("llm", 0, commit=head, parent=head, status="keep", metric=1.0, best=1.0, agent="llm")
    )
    table = list(csv.DictReader(io.StringIO(cli(project, "log", "--csv").stdout)))
    assert table[0]["X"] == "3.0" and table[0]["Y"] == "2" and table[0]["agent"] == "llm"


def test_a_running_night_says_what_it_does_and_when_it_should_end(project: Path):
    import time

    from harness import nights
    from harness.lock import LoopLock
    from harness.paths import Layout
    from harness.status import write_status

    write_night(project, "n1", 4)
    layout = Layout(project)
    started = time.time() - 600
    state = {"pid": 1, "tag": "n1", "phase": "evaluating", "experiment": 5, "description": "raise LR",
             "started": time.time() - 10, "budget": 300, "loop_started": started, "max_experiments": None,
             "hours": 2.0}  # fmt: skip
    write_status(layout.status, state)
    with LoopLock(layout.lock):  # the loop's lock, held: the night runs
        line = nights.lines(nights.place(project))[0]
        assert line.state == "running" and line.doing.startswith("experiment 5 running for 10s of its 5m budget")
        end = time.strftime("%H:%M", time.gmtime(started + 7200))
        assert line.eta == f"ends about {end} UTC (in 1h50m)"
        write_status(layout.status, state | {"hours": None})
        assert nights.lines(nights.place(project))[0].eta == "until stopped; this run is due in 4m50s"
    write_status(layout.status, state | {"phase": "stopped"})
    line = nights.lines(nights.place(project))[0]
    assert line.state == "stopped" and line.eta == "" and line.doing == ""
