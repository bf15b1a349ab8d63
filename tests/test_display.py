"""The live view of `run`: plain timestamped lines without a terminal, a rich panel with one."""

from __future__ import annotations

import io
import re
import time

from harness.display import Display
from harness.ledger import Experiment

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


def _state(**changes: object) -> dict:
    state = {
        "pid": 4121, "tag": "nov23", "agent": "optuna", "phase": "evaluating", "experiment": 12,
        "description": "raise LR", "started": time.time() - 130, "budget": 300, "timeout": 600, "best": 0.9812,
        "baseline": 1.1, "kept": 4, "experiments": 11, "spend_usd": 0.42, "metric": "val_bpb",
    }  # fmt: skip
    return {**state, **changes}


def _row(exp_id: int, status: str, metric: float | None, delta: float | None, **kw: object) -> Experiment:
    return Experiment(
        tag="nov23", id=exp_id, commit="c" * 40, parent="p" * 40, status=status, metric=metric, best=0.9812,
        description="raise LR", seconds=301.2, agent="optuna", program_sha="p", agent_sha="a", delta=delta, **kw,
    )  # fmt: skip


def test_plain_mode_writes_one_timestamped_line_per_event_without_escape_codes():
    out = io.StringIO()
    display = Display(out)
    assert display.live is False  # a StringIO is not a terminal
    display.update(_state(phase="proposing", experiment=12))
    display.update(_state())
    display.update(_state())  # the same phase again: no new line
    display.row(_row(12, "keep", 0.9812, -0.0022))
    display.row(_row(13, "crash", None, None, reason="exit 1:\nNameError"))
    display.info("program.md changed (budget); in force from the next experiment")
    display.close()
    text = out.getvalue()
    assert "\x1b" not in text and "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 4
    assert re.fullmatch(f"{STAMP} experiment 12 running — 'raise LR'", lines[0])
    assert re.fullmatch(rf"{STAMP} exp 12 keep val_bpb=0\.981200 \(-0\.002200\) 301\.2s raise LR", lines[1])
    assert re.fullmatch(rf"{STAMP} exp 13 crash 301\.2s raise LR \(exit 1: NameError\)", lines[2])
    assert re.fullmatch(f"{STAMP} program.md changed .*", lines[3])


def test_live_mode_draws_a_panel_and_prints_finished_rows_above_it():
    out = io.StringIO()
    display = Display(out, live=True)
    display.update(_state(phase="proposing"))
    display.update(_state())
    display.row(_row(12, "keep", 0.9812, -0.0022))
    display.info("waiting for the API (529 overloaded); retrying in 30s")
    display.update(_state(started=time.time() - 400))  # past the budget: overtime
    time.sleep(0.3)  # at least one refresh by the panel's own thread
    display.close()
    text = out.getvalue()
    assert "autoresearch nov23 · agent optuna" in text
    assert "exp 12" in text and "keep" in text and "waiting for the API" in text
    assert "over (killed at 10m)" in text
    assert "\x1b[" in text  # a terminal gets colour


def test_live_panel_and_lines_show_markup_and_escapes_from_a_model_as_text():
    out = io.StringIO()
    display = Display(out, live=True)
    hostile = "[bold red]pwned[/bold red] [link=http://198.51.100.7]click[/link] \x1b]8;;http://x\x1b\\ \x1b[2J"
    display.update(_state(description=hostile, agent="[blink]agent[/blink]"))
    row = _row(12, "keep", 0.9812, -0.0022)
    display.row(Experiment(**{**{f: getattr(row, f) for f in row.__struct_fields__}, "description": hostile}))
    time.sleep(0.3)
    display.close()
    text = out.getvalue()
    assert "[bold red]pwned[/bold red]" in text and "[link=http://198.51.100.7]click[/link]" in text
    assert "[blink]agent[/blink]" in text
    assert "\x1b]8;;http" not in text and "\x1b[2J" not in text  # rich's own colours only, no escape of a model's
