"""The morning review: summary figures from a real ledger, the log table and JSON, report.md with progress.png."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness import report, review
from harness.errors import HarnessError
from harness.ledger import Experiment, Ledger

# (status, metric, delta, description); the baseline comes first as id 0
NIGHT = [
    ("keep", 1.10, None, "baseline"),
    ("discard", 1.12, 0.02, "double the depth"),
    ("keep", 1.05, -0.05, "raise LR to 3e-3"),
    ("crash", None, None, "fused attention kernel"),
    ("keep", 1.00, -0.05, 'warmup of 200 steps, "cosine" decay'),
    ("timeout", None, None, "batch size 4096"),
]


def _hour(h: int) -> str:
    return f"2026-11-23T{h:02d}:00:00Z"


def _write(path: Path, night: list[tuple[str, float | None, float | None, str]] = NIGHT, tag: str = "nov23") -> Ledger:
    ledger = Ledger(path)
    best = None
    for i, (status, metric, delta, description) in enumerate(night):
        if status == "keep":
            best = metric
        ledger.append(
            Experiment(
                tag=tag, id=i, commit=f"{i:02d}" + "c" * 38, parent="p" * 40, status=status, metric=metric, best=best,
                description=description, seconds=300.0 + i, agent="optuna", program_sha="p1", agent_sha="a1",
                tokens_in=1000, tokens_out=100, cost_usd=0.25, delta=delta, time=_hour(i + 1),
            )
        )  # fmt: skip
        if i == 2:
            ledger.append({"kind": "steer", "tag": tag, "program_sha": "p2", "previous": "p1",
                           "changes": {"budget": [300, 60]}, "time": "2026-11-23T03:30:00Z"})  # fmt: skip
    return ledger


def test_summary_counts_the_night_without_the_baseline(tmp_path: Path):
    ledger = _write(tmp_path / "experiments.log")
    night = review.summarize(ledger.read(), metric="val_bpb")
    assert night.tag == "nov23"
    assert (night.experiments, night.kept) == (5, 2)
    assert night.keep_rate == pytest.approx(0.4)
    assert (night.baseline, night.best) == (1.10, 1.00)
    assert night.change == pytest.approx(-0.10)
    assert night.change_pct == pytest.approx(-100 * 0.10 / 1.10)
    assert night.direction == "minimize"  # inferred from the kept deltas
    assert night.spend_usd == pytest.approx(6 * 0.25)
    assert (night.tokens_in, night.tokens_out) == (6000, 600)
    assert night.hours == pytest.approx(5.0)
    assert night.statuses == {"keep": 2, "discard": 1, "crash": 1, "timeout": 1}
    assert [(s.after, s.changes) for s in night.steers] == [(2, {"budget": [300, 60]})]
    assert [r.id for r in night.rows] == [0, 1, 2, 3, 4, 5]
    assert night.rows[4].description == 'warmup of 200 steps, "cosine" decay'


def test_reading_the_file_gives_the_same_night_and_lines_that_are_not_rows_are_passed_over(tmp_path: Path):
    ledger = _write(tmp_path / "experiments.log")
    by_hand = {**ledger.experiments("nov23")[-1].to_json(), "id": 6, "status": "discard", "metric": 1.3}
    with open(ledger.path, "a") as f:
        f.write(json.dumps(by_hand) + "\n")  # spaced, as a person's tool would write it: a row all the same
        f.write('{"kind": "experiment", "tag": "nov23", "id": 7, "status": "discard"}\n')  # does not fit: no commit...
        f.write("not json\n")
        f.write('{"kind": "generation", "tag": "nov23", "generation": 1, "status": "accepted"}\n')  # a newer kind
        f.write('{"kind":"experiment","tag":"nov23","id":8,"sta')  # a torn last line
    night = review.summarize(ledger.path)
    assert night == review.summarize(ledger.read())
    assert [r.id for r in night.rows] == [0, 1, 2, 3, 4, 5, 6]
    assert night.statuses["discard"] == 2


def test_neither_spacing_nor_field_order_changes_the_night(tmp_path: Path):
    compact = _write(tmp_path / "experiments.log")
    spaced = tmp_path / "spaced.log"
    rows = [json.loads(line) for line in compact.path.read_text().splitlines()]
    spaced.write_text("".join(json.dumps(dict(reversed(r.items())), ensure_ascii=False) + "\n" for r in rows))
    assert b'"kind": "experiment"}' in spaced.read_bytes()  # spaces after ':' and ',', and "kind" last
    assert review.summarize(spaced, metric="val_bpb") == review.summarize(compact.path, metric="val_bpb")


def test_since_keeps_later_rows_and_the_nights_baseline(tmp_path: Path):
    ledger = _write(tmp_path / "experiments.log")
    night = review.summarize(ledger.read(), since="2026-11-23T04:00:00Z")
    assert [r.id for r in night.rows] == [3, 4, 5]
    assert (night.experiments, night.kept, night.baseline, night.best) == (3, 1, 1.10, 1.00)
    assert night.steers == ()  # the edit at 03:30 is before the cutoff
    now = datetime(2026, 11, 23, 6, 30, tzinfo=UTC)
    assert [r.id for r in review.summarize(ledger.read(), since="2h", now=now).rows] == [4, 5]
    assert review.parse_since("90m", now) == "2026-11-23T05:00:00Z"
    with pytest.raises(HarnessError, match="--since 'yesterday'"):
        review.summarize(ledger.read(), since="yesterday")


def test_the_latest_tag_is_the_default_and_an_unknown_tag_names_the_known_ones(tmp_path: Path):
    ledger = _write(tmp_path / "experiments.log", tag="nov22")
    _write(ledger.path, NIGHT[:3], tag="nov23")
    assert review.summarize(ledger.path).tag == "nov23"
    assert review.summarize(ledger.path, "nov22").experiments == 5
    with pytest.raises(HarnessError, match=r"no rows for tag 'dec01'.*nov22, nov23"):
        review.summarize(ledger.path, "dec01")


def test_a_maximized_metric_is_inferred_and_its_gain_is_positive(tmp_path: Path):
    night = [("keep", 0.50, None, "baseline"), ("keep", 0.60, 0.10, "more trees"), ("discard", 0.55, -0.05, "less")]
    summary = review.summarize(_write(tmp_path / "experiments.log", night).read())
    assert summary.direction == "maximize"
    assert summary.change_pct == pytest.approx(20.0)


def test_log_table_is_plain_aligned_text_with_the_last_rows_and_a_summary(tmp_path: Path):
    ledger = _write(tmp_path / "experiments.log")
    text = review.log_table(review.summarize(ledger.read(), metric="val_bpb", limit=3), console_width=100)
    assert "\x1b" not in text
    lines = text.splitlines()
    assert lines[0].split() == ["id", "status", "val_bpb", "delta", "seconds", "description"]
    assert [line.split()[0] for line in lines[1:4]] == ["3", "4", "5"]
    assert "3 earlier rows not shown" in lines[4]
    starts = [lines[0].index("description"), lines[1].index("fused"), lines[2].index("warmup"), lines[3].index("batch")]
    assert len(set(starts)) == 1
    summary = dict(line.split(":", 1) for line in text.split("---\n")[1].splitlines())
    assert len({len(line) - len(line.split(":", 1)[1].lstrip()) for line in text.split("---\n")[1].splitlines()}) == 1
    assert summary["experiments"].strip() == "5 (2 kept, 40.0%)"
    assert summary["best val_bpb"].strip() == "1.000000 (-0.100000, -9.1%; lower is better)"
    assert summary["steer events"].strip() == "1"
    assert summary["statuses"].strip() == "evaluated 3 (keep 2, discard 1), failed 2 (crash 1, timeout 1)"


def test_log_json_is_the_summary_the_steers_and_the_rows(tmp_path: Path):
    ledger = _write(tmp_path / "experiments.log")
    data = json.loads(json.dumps(review.log_json(review.summarize(ledger.read(), limit=2))))
    assert set(data) == {"tag", "metric", "direction", "since", "summary", "steers", "rows", "hidden"}
    assert data["summary"]["kept"] == 2 and data["summary"]["baseline"] == 1.10
    assert data["hidden"] == 4
    assert [r["id"] for r in data["rows"]] == [4, 5]
    assert data["steers"][0]["changes"] == {"budget": [300, 60]}


def test_render_log_names_the_metric_from_program_md(tmp_path: Path):
    _write(tmp_path / "experiments.log")
    (tmp_path / "program.md").write_text("---\nmetric: val_loss\n---\nGo.\n")
    assert "best val_loss:" in review.render_log(tmp_path)
    assert json.loads(review.render_log(tmp_path, as_json=True))["metric"] == "val_loss"
    with pytest.raises(HarnessError, match=r"no experiments\.log"):
        review.render_log(tmp_path / "elsewhere")


def test_report_writes_a_real_png_and_a_markdown_page_with_the_kept_experiments(tmp_path: Path):
    import matplotlib.image

    # A long night: 120 experiments, a kept one every 8th, so labels and points have to stay apart.
    night = [("keep", 2.0, None, "baseline")]
    for i in range(1, 121):
        if i % 8 == 0:
            night.append(("keep", 2.0 - i / 200, -0.04, f"idea number {i} with a long description " * 2))
        elif i % 11 == 0:
            night.append(("crash", None, None, "broken"))
        else:
            night.append(("discard", 2.1 + (i % 5) / 50, 0.1, "no"))
    ledger = _write(tmp_path / "experiments.log", night)
    path = report.write_report(ledger.read(), tmp_path / "report", metric_name="val_bpb")
    png = tmp_path / "report" / "progress.png"
    assert png.stat().st_size > 10_000
    height, width, _ = matplotlib.image.imread(png).shape
    assert width > 1000 and height > 500
    text = path.read_text()
    assert text.startswith("# autoresearch: night `nov23`")
    assert "![val_bpb over the experiments of nov23](progress.png)" in text
    kept_section = text.split("## Kept experiments")[1].split("## Steer events")[0]
    assert kept_section.count("`08cccccc`") == 1 and "idea number 8 with" in kept_section
    assert "budget 300 → 60" in text
    assert "| **8** | **keep** |" in text


def test_since_shows_recent_rows_but_the_best_of_the_whole_night(tmp_path: Path) -> None:

    ledger = Ledger(tmp_path / "experiments.log")
    for i, (status, metric, best, time) in enumerate(
        [("keep", 2.0, 2.0, "2026-11-22T20:00:00Z"), ("keep", 1.5, 1.5, "2026-11-22T21:00:00Z"),
         ("discard", 1.9, 1.5, "2026-11-23T08:00:00Z")]
    ):  # fmt: skip
        ledger.append(Experiment(tag="n", id=i, commit="c" * 40, parent="p" * 40, status=status, metric=metric,
                                 best=best, description=f"e{i}", seconds=1.0, agent="optuna", program_sha="",
                                 agent_sha="", time=time))  # fmt: skip
    night = review.summarize(ledger.path, "n", since="2026-11-23T00:00:00Z")
    assert [r.id for r in night.rows] == [2]
    assert night.experiments == 1 and night.baseline == 2.0 and night.best == 1.5


def test_baseline_and_best_are_weighed_alike_as_their_runs_accumulate(tmp_path: Path):
    # The baseline ran twice (2.50, 2.39) and was re-measured twice (2.39, 2.43); the one candidate lost. The champion
    # is still the baseline, so the night changed nothing, whatever its first two runs averaged.
    ledger = Ledger(tmp_path / "experiments.log")

    def run(sha: str, value: float, purpose: str, experiment: int, contended: bool = False) -> None:
        ledger.append({"kind": "measurement", "tag": "t", "file_sha": sha, "value": value, "purpose": purpose,
                       "experiment": experiment, "contended": contended})  # fmt: skip

    def row(i: int, sha: str, status: str, metric: float, best: float) -> None:
        ledger.append(Experiment(tag="t", id=i, commit=f"{i:040d}", parent="p" * 40, status=status, metric=metric,
                                 best=best, description=f"e{i}", seconds=60.0, agent="optuna", program_sha="p",
                                 agent_sha="a", file_sha=sha))  # fmt: skip

    run("base", 2.50, "baseline", 0)
    run("base", 2.39, "baseline", 0)
    row(0, "base", "keep", 2.445, 2.445)
    run("base", 2.39, "remeasure", 1)
    run("worse", 4.72, "candidate", 1)
    row(1, "worse", "discard", 4.72, 2.39)
    run("base", 2.43, "remeasure", 2)
    night = review.summarize(ledger.read())
    assert night.baseline == night.best == pytest.approx(2.41)  # the median of its 4 runs
    assert night.change == 0.0

    # A candidate that won and was confirmed (2.10 and 2.20; a contended 1.00 does not count) is now the champion.
    run("better", 2.10, "candidate", 2)
    run("better", 1.00, "confirm", 2, contended=True)
    run("better", 2.20, "confirm", 2)
    row(2, "better", "keep", 2.15, 2.15)
    night = review.summarize(ledger.read())
    assert (night.baseline, night.best) == (pytest.approx(2.41), pytest.approx(2.15))
    assert night.change == pytest.approx(-0.26)


def test_report_md_shows_what_a_model_wrote_as_text_never_as_links_images_or_html(tmp_path: Path):
    from markdown_it import MarkdownIt

    hostile = [
        '![x](http://198.51.100.7/beacon.png) <img src="http://198.51.100.7/i.png"> see [docs](http://198.51.100.7/)',
        "<script>fetch('//198.51.100.7')</script> www.example.com/x http://198.51.100.7/a `tick` ``two`` | pipe",
    ]
    night = [("keep", 2.0, None, "baseline"), ("keep", 1.9, -0.1, hostile[0]), ("discard", 2.1, 0.2, hostile[1])]
    ledger = _write(tmp_path / "experiments.log", night)
    path = report.write_report(ledger.read(), tmp_path / "report", metric_name="val_bpb")
    text = path.read_text()
    html = MarkdownIt("commonmark").enable("table").render(text)
    # The one image is the harness's own chart; nothing a model wrote became a tag, a link or an image.
    assert html.count("<img") == 1 and 'src="progress.png"' in html
    assert "<a " not in html and "<script" not in html and 'src="http' not in html
    # ... and every character of it is still there to read, the pipe included, in the right column.
    for line in hostile:
        shown = line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
        assert shown in html
    row = next(x for x in text.splitlines() if x.startswith("| 2 |"))
    assert row.count(" | ") == 6 and "\\| pipe" in row  # the pipe is escaped: the row keeps its seven columns


def test_the_share_of_run_time_on_new_experiments_and_a_deterministic_night(tmp_path: Path):
    ledger = Ledger(tmp_path / "experiments.log")

    def run(sha: str, value: float, purpose: str, experiment: int, seconds: float) -> None:
        ledger.append({"kind": "measurement", "tag": "t", "file_sha": sha, "value": value, "purpose": purpose,
                       "experiment": experiment, "seconds": seconds})  # fmt: skip

    def row(i: int, sha: str, status: str, metric: float, noise: float) -> None:
        ledger.append(Experiment(tag="t", id=i, commit=f"{i:040d}", parent="p" * 40, status=status, metric=metric,
                                 best=metric, description=f"e{i}", seconds=60.0, agent="optuna", program_sha="p",
                                 agent_sha="a", file_sha=sha, extra={"noise": noise}))  # fmt: skip

    run("base", 0.5, "baseline", 0, 60.0)
    row(0, "base", "keep", 0.5, 0.01)
    run("a", 0.6, "candidate", 1, 50.0)
    run("base", 0.5, "remeasure", 2, 60.0)
    row(1, "a", "discard", 0.6, 0.0)
    run("b", 0.4, "candidate", 2, 70.0)
    row(2, "b", "keep", 0.4, 0.0)
    night = review.summarize(ledger.read())
    assert night.new_share == pytest.approx(120.0 / 240.0)  # the two candidates' seconds of all the runs'
    assert night.deterministic
    lines = dict(review.figures(night))
    assert lines["new experiments"] == "50% of run time"
    assert lines["noise"].startswith("0: deterministic")
    run("b", 0.41, "remeasure", 3, 60.0)  # a repeat that disagrees: the metric is not deterministic after all
    assert not review.summarize(ledger.read()).deterministic


def test_the_nights_span_begins_when_its_first_run_began_not_at_the_baselines_row(tmp_path: Path):
    ledger = _write(tmp_path / "experiments.log")
    # The baseline's run ended at 00:40 after 40 minutes: the night began at midnight, an hour before row 0.
    ledger.append({"kind": "measurement", "tag": "nov23", "file_sha": "f" * 40, "value": 1.10, "purpose": "baseline",
                   "experiment": 0, "seconds": 2400.0, "time": "2026-11-23T00:40:00Z"})  # fmt: skip
    night = review.summarize(ledger.read(), metric="val_bpb")
    assert night.first == "2026-11-23T00:00:00Z"
    assert night.hours == pytest.approx(6.0)
    recent = review.summarize(ledger.read(), metric="val_bpb", since="2026-11-23T03:00:00Z")
    assert recent.first == _hour(3)  # a window of the night starts where the window does


def test_the_champions_runs_beside_a_candidate_are_drawn_and_counted_contended_or_not(tmp_path: Path):
    ledger = _write(tmp_path / "experiments.log")

    def run(sha: str, value: float, purpose: str, experiment: int, contended: bool = False) -> None:
        ledger.append({"kind": "measurement", "tag": "nov23", "file_sha": sha * 40, "value": value,
                       "purpose": purpose, "experiment": experiment, "seconds": 60.0, "contended": contended,
                       "time": _hour(3)})  # fmt: skip

    run("a", 1.10, "baseline", 0)
    run("b", 1.05, "candidate", 2)
    run("b", 1.04, "confirm", 2)  # the candidate's own confirmation: its point, not the champion's
    run("a", 1.11, "confirm", 2, contended=True)  # the champion run again beside it, on a busy machine
    run("c", 1.00, "remeasure", 4)
    night = review.summarize(ledger.read(), metric="val_bpb")
    assert sorted(night.champion_runs) == [(-0.5, 1.10), (1.5, 1.11), (3.5, 1.00)]
