"""The locked test (program.md's `test:`): each new champion scored once on a split nothing else sees, recorded as a
row of its own, shown to the person beside the selection number, and never seen by an agent or the LLM."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.testing import PY, TEST_KEY, FakeAnthropic, cli, git, make_repo, message_body, toy_program

ROOT = Path(__file__).resolve().parent.parent
# The run leaves its answer (X) for the evaluators and claims nothing; selection and test score it against targets
# they read from hidden files. The locked test prints a sentinel that must never reach the model.
TRAIN = '''\
"""Toy run: hands its knob over to the evaluators."""
import os

X = 3.0  # the knob the agent tunes

with open(os.path.join(os.environ["AUTORESEARCH_OUT"], "answer"), "w") as f:
    f.write(repr(X))
print("trained")
'''
SCORE = """\
import os, sys
split = sys.argv[1]
x = float(open(os.path.join(os.environ["AUTORESEARCH_OUT"], "answer")).read())
target = float(open(f"heldout/{split}.txt").read())
if split == "test":
    print("locked test: SENTINEL-0f3c9e")
    if x < 1.0:
        raise SystemExit("the test refuses x under 1")
print(f"val_bpb: {(x - target) ** 2 + (0.7319 if split == 'test' else 0.5):.6f}")
"""


def rows(repo: Path, kind: str) -> list[dict]:
    return [r for r in map(json.loads, (repo / "experiments.log").read_text().splitlines()) if r["kind"] == kind]


def project(tmp_path: Path, **front: object) -> Path:
    program = toy_program(
        evaluate=json.dumps(f"{PY} score.py val"), test=json.dumps(f"{PY} score.py test"), hidden="[heldout]",
        protected="[score.py, program.md, agent.py]", search="\n  X: {low: 0.0, high: 4.0}", **front,
    )  # fmt: skip
    files = {"train.py": TRAIN, "program.md": program, "score.py": SCORE, "agent.py": (ROOT / "agent.py").read_text()}
    repo = make_repo(tmp_path / "locked", files)
    (repo / "heldout").mkdir()
    (repo / "heldout" / "val.txt").write_text("1.5")
    (repo / "heldout" / "test.txt").write_text("1.2")
    (repo / ".gitignore").write_text("experiments.log\nruns/\n__pycache__/\nheldout/\n")
    git(repo, "-c", "user.name=T", "-c", "user.email=t@e", "commit", "-qam", "the held-out data is not tracked")
    return repo


def test_every_champion_gets_one_locked_test_row_and_a_failing_test_does_not_stop_the_night(tmp_path: Path):
    repo = project(tmp_path)
    out = cli(repo, "run", "--tag", "t", "--agent", "random", "--max-experiments", "10", timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    exps = {r["id"]: r for r in rows(repo, "experiment")}
    tests = rows(repo, "test")
    champions = [r for r in exps.values() if r["status"] == "keep"]
    assert len(champions) >= 2  # the baseline and at least one keep
    # One row per champion, in order, naming its experiment and commit; no discarded experiment is tested.
    assert [t["id"] for t in tests] == [c["id"] for c in champions]
    for t in tests:
        champion = exps[t["id"]]
        assert t["commit"] == champion["commit"] and t["selection"] == champion["metric"]
        x = float((repo / "runs" / "t" / f"{t['id']}.out" / "answer").read_text())
        if x >= 1.0:
            assert t["outcome"] == "ok" and t["metric"] == pytest.approx((x - 1.2) ** 2 + 0.7319, abs=1e-6)
        else:  # recorded as the test's failure, with its last words; the night went on
            assert t["outcome"] == "crash" and t["metric"] is None and "refuses x under 1" in t["reason"]
        assert "SENTINEL-0f3c9e" in (repo / t["log"]).read_text()
    # Decisions never read it: the selection numbers decide, the test's number is in no experiment row.
    locked = {f"{t['metric']:.6f}" for t in tests if t["metric"] is not None}
    assert not any(f"{r['metric']:.6f}" in locked for r in exps.values() if r["metric"] is not None)
    assert "locked test of #0: val_bpb" in out.stdout

    # The person sees selection against the locked test for each champion: log, log --json, report.
    log = cli(repo, "log", "--tag", "t")
    assert log.returncode == 0, log.stderr
    table = log.stdout[log.stdout.index("selection against the locked test") :]
    for t in tests:
        shown = f"{t['metric']:.6f}" if t["metric"] is not None else "crash: failed: the test refuses x under 1"
        assert re.search(rf"^\s*{t['id']}\s+{t['commit'][:8]}\s+{t['selection']:.6f}\s+{shown}", table, re.M), table
    assert re.search(r"^locked test:\s+#0 ", log.stdout, re.M)
    data = json.loads(cli(repo, "log", "--tag", "t", "--json").stdout)
    assert [t["id"] for t in data["tests"]] == [t["id"] for t in tests]
    report = cli(repo, "report", "--tag", "t", "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    md = (tmp_path / "report" / "report.md").read_text()
    assert "## Selection against the locked test" in md
    assert f"| 0 | `{tests[0]['commit'][:8]}` | {tests[0]['selection']:.6f} |" in md


def test_a_locked_test_that_times_out_or_cannot_run_is_recorded_and_the_night_goes_on(tmp_path: Path):
    repo = project(tmp_path, evaluate_timeout=3)
    (repo / "score.py").write_text(
        SCORE.replace('if split == "test":', 'if split == "test":\n    import time; time.sleep(30)')
    )
    git(repo, "-c", "user.name=T", "-c", "user.email=t@e", "commit", "-qam", "a slow test")
    out = cli(repo, "run", "--tag", "s", "--agent", "random", "--max-experiments", "2", timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    tests = rows(repo, "test")
    assert tests and tests[0]["id"] == 0
    assert all(
        t["outcome"] == "timeout" and t["metric"] is None and "timed out after 3 s" in t["reason"] for t in tests
    )
    assert len(rows(repo, "experiment")) == 3  # the baseline and both experiments: the night went on


def test_no_request_to_the_model_carries_the_locked_test(tmp_path: Path, fake_anthropic: FakeAnthropic):
    repo = project(tmp_path, patience=5, reflect_every=2, agent_steps=1)

    def model(request: dict) -> dict | str:
        last = request["messages"][-1]["content"]
        answered = isinstance(last, list) and any(b.get("type") == "tool_result" for b in last)
        if request.get("tools") and not answered:  # a look at every earlier run's log and experiment first
            uses = [{"type": "tool_use", "id": f"u{i}", "name": name, "input": {"id": i}}
                    for i in range(3) for name in ("run_log", "show_experiment")]  # fmt: skip
            return message_body("", model=request["model"], input_tokens=10, output_tokens=10, content=uses,
                                stop_reason="tool_use")  # fmt: skip
        champion = request["messages"][0]["content"][1]["text"]
        x = float(re.search(r"^X = ([\d.]+) ", champion, re.M).group(1))
        reflect = "REFLECTION: X moves the metric\n" if "also write REFLECTION" in json.dumps(request) else ""
        change = f"<<<<<<< SEARCH\nX = {x} \n=======\nX = {x - 0.4:.1f} \n>>>>>>> REPLACE\n"
        return f"{reflect}DESCRIPTION: X to {x - 0.4:.1f}\n{change}"

    fake_anthropic.reply("ok", input_tokens=0, output_tokens=0)  # the key check before the night
    fake_anthropic.responder = model
    env = {"ANTHROPIC_API_KEY": TEST_KEY, "ANTHROPIC_BASE_URL": fake_anthropic.url}
    out = cli(repo, "run", "--tag", "l", "--agent", "llm", "--max-experiments", "5", env=env, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    tests = [t for t in rows(repo, "test") if t["metric"] is not None]
    assert len(tests) >= 2, rows(repo, "experiment")  # the baseline and a keep were tested
    sent = [json.dumps(r.json) for r in fake_anthropic.requests]
    assert len(sent) >= 6
    # the model did look where a leak would show: every earlier run's log and experiment, and its reflections
    assert [s for s in sent if '"tool_result"' in s and "trained" in s] and [s for s in sent if "REFLECTION" in s]
    for t in tests:
        for shown in {f"{t['metric']:.6f}", f"{t['metric']:.6g}", f"{t['metric']:.4f}", repr(t["metric"])}:
            assert not [s for s in sent if shown in s], f"the locked value {shown} reached the model"
    assert not [s for s in sent if "SENTINEL-0f3c9e" in s or "locked test" in s or ".test.log" in s]
