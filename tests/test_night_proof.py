"""A night that meets a bad API day ends with its reason recorded and an honest exit status, never silently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.pricing import price
from harness.testing import TEST_KEY, FakeAnthropic, cli, git, toy_program

MODEL = "claude-sonnet-4-6"


def env(server: FakeAnthropic) -> dict[str, str]:
    return {"ANTHROPIC_API_KEY": TEST_KEY, "ANTHROPIC_BASE_URL": server.url}


def rows(repo: Path, kind: str = "experiment") -> list[dict]:
    return [r for r in map(json.loads, (repo / "experiments.log").read_text().splitlines()) if r["kind"] == kind]


def edit(search: str, replace: str) -> str:
    return f"DESCRIPTION: {search} to {replace}\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n"


def test_an_outage_past_patience_ends_the_night_with_a_note_and_a_non_zero_exit(project: Path, fake_anthropic):
    (project / "program.md").write_text(toy_program(patience=1))
    git(project, "commit", "-qam", "short patience")
    fake_anthropic.reply("ok", input_tokens=0, output_tokens=0)  # the key check
    fake_anthropic.fault(529, times=50)
    out = cli(project, "run", "--tag", "p", "--agent", "llm", env=env(fake_anthropic))
    assert out.returncode == 4, out.stderr
    assert "the LLM service failed" in out.stdout and "unreachable" in out.stdout
    note = rows(project, "note")[-1]
    assert note["ending"] == "ServiceFailed" and "the LLM service failed" in note["message"]
    assert [r["id"] for r in rows(project)] == [0]
    assert git(project, "status", "--porcelain") == ""


def test_the_spend_cap_is_the_nights_across_restarts(project: Path, fake_anthropic: FakeAnthropic):
    cost = price(MODEL, 10000, 1000, 0, 0)  # about $0.045 a call
    fake_anthropic.reply("ok", input_tokens=0, output_tokens=0)
    fake_anthropic.reply(edit("X = 3.0", "X = 2.0"), input_tokens=10000, output_tokens=1000)
    args = ("run", "--tag", "c", "--agent", "llm", "--max-cost-usd", "0.05", "--max-experiments", "1")
    assert cli(project, *args, env=env(fake_anthropic)).returncode == 0
    fake_anthropic.reply("ok", input_tokens=0, output_tokens=0)
    fake_anthropic.reply(edit("X = 2.0", "X = 1.5"), input_tokens=10000, output_tokens=1000)
    fake_anthropic.reply(edit("X = 1.5", "X = 1.25"), input_tokens=10000, output_tokens=1000)
    out = cli(project, "run", "--tag", "c", "--agent", "llm", "--max-cost-usd", "0.05", env=env(fake_anthropic))
    assert out.returncode == 0, out.stderr
    assert "max_cost_usd" in out.stdout
    exps = rows(project)
    assert [r["id"] for r in exps] == [0, 1, 2]  # the second start did one experiment, not two: the cap is the night's
    assert round(sum(r["cost_usd"] for r in exps), 6) == round(2 * cost, 6)
    assert fake_anthropic.pending == 1


def test_a_night_whose_spend_reached_the_cap_does_not_start_again(project: Path, fake_anthropic: FakeAnthropic):
    fake_anthropic.reply("ok", input_tokens=0, output_tokens=0)
    fake_anthropic.reply(edit("X = 3.0", "X = 2.0"), input_tokens=10000, output_tokens=1000)  # about $0.045
    args = ("run", "--tag", "full", "--agent", "llm", "--max-cost-usd", "0.04")
    assert cli(project, *args, "--max-experiments", "1", env=env(fake_anthropic)).returncode == 0
    requests = len(fake_anthropic.requests)
    out = cli(project, *args, env=env(fake_anthropic))
    assert out.returncode == 0, out.stderr  # a clean stop, said plainly, not a crash
    assert "reached max_cost_usd" in out.stdout
    assert len(fake_anthropic.requests) == requests  # not even the key check was paid for again
    assert rows(project, "note")[-1]["ending"] == "BudgetExceeded"


@pytest.mark.parametrize("workers", [1, 2])
def test_a_full_disk_stops_the_night_cleanly_and_the_next_start_goes_on(project: Path, workers: int):
    import resource
    import signal
    import subprocess

    from harness.testing import PY

    if workers != 1:
        (project / "program.md").write_text(toy_program(workers=workers))
        git(project, "commit", "-qam", f"{workers} workers")
    for sample in (project / ".git" / "hooks").glob("*.sample"):
        sample.unlink()  # so that the ledger is the largest file the harness writes
    assert cli(project, "run", "--tag", "disk", "--agent", "optuna", "--max-experiments", "2").returncode == 0
    ledger = project / "experiments.log"
    before = ledger.read_bytes()
    limit = len(before) + 1500  # room for a row or two: then the disk is "full"

    def full_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as ENOSPC would
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    out = subprocess.run(
        [PY, "-m", "harness", "run", "--tag", "disk", "--agent", "optuna"], cwd=project, capture_output=True,
        text=True, timeout=300, preexec_fn=full_disk,
    )  # fmt: skip
    assert out.returncode == 1, out.stdout[-2000:] + out.stderr[-2000:]
    # What failed, where, and the next step (the ledger, or a file of the run: whichever the disk refused first).
    assert "ulimit" in out.stderr and ("disk is full" in out.stderr or "experiments.log" in out.stderr)
    after = ledger.read_bytes()
    assert after.startswith(before) and after.endswith(b"\n")  # no earlier row lost, no part of a row left
    assert all(json.loads(line) for line in after.splitlines())
    out = cli(project, "run", "--tag", "disk", "--agent", "optuna", "--max-experiments", "1")
    assert out.returncode == 0, out.stderr
    ids = [r["id"] for r in rows(project)]
    assert sorted(ids) == list(range(len(ids))) and len(ids) >= 4  # a parallel night writes rows as they finish
    assert git(project, "status", "--porcelain") == ""
