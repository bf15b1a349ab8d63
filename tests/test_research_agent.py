"""The research agent against a local fake of the Messages API: it sees the noise, remembers the night, broadens when
stuck, predicts each result, and never loses an experiment to the edit format."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

from harness import digest
from harness.brief import build_task
from harness.ledger import Experiment, MeasurementRow
from harness.night import Night
from harness.program import parse
from harness.testing import TEST_KEY, FakeAnthropic, cli, make_repo, toy_program

ROOT = Path(__file__).resolve().parent.parent
TRAIN = '''\
"""Toy experiment. Usage: python train.py"""

X = 3.0  # the knob the agent tunes
Y = 2    # an integer knob


def main():
    for step in range(0, 60, 10):
        print(f"step {step:4d} | loss {(X - 1.25) ** 2 + 2 - step / 100:.4f} | {41000 + step} tok/s")
    loss = (X - 1.25) ** 2 + 0.1 * (Y - 5) ** 2 + 0.5
    print("---")
    print("steps:   60")
    print(f"val_bpb: {loss:.6f}")


main()
'''
X_LINE = re.compile(r"^X = (\S+)  # the knob the agent tunes$", re.MULTILINE)
ASKED = re.compile(r"Propose experiment #(\d+)\.")


def experiments(repo: Path) -> list[dict]:
    rows = map(json.loads, (repo / "experiments.log").read_text().splitlines())
    return [r for r in rows if r["kind"] == "experiment"]


def block(search: str, replace: str) -> str:
    return f"<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n"


def prompt_of(request: dict) -> tuple[list[dict], str]:
    """(the first message's blocks, the text of the last message)."""
    messages = request["messages"]
    last = messages[-1]["content"]
    text = last if isinstance(last, str) else "\n".join(b.get("text") or json.dumps(b) for b in last)
    return messages[0]["content"], text


def night(tmp_path: Path, server: FakeAnthropic, n: int, responder, **front) -> Path:
    program = toy_program(**{"agent_steps": 0, **front})
    repo = make_repo(
        tmp_path / "night", {"train.py": TRAIN, "program.md": program, "agent.py": (ROOT / "agent.py").read_text()}
    )
    server.reply("ok", input_tokens=0, output_tokens=0)  # the key check
    server.responder = responder
    env = {"ANTHROPIC_API_KEY": TEST_KEY, "ANTHROPIC_BASE_URL": server.url}
    out = cli(repo, "run", "--tag", "t", "--agent", "llm", "--max-experiments", str(n), env=env)
    assert out.returncode == 0, out.stderr
    return repo


def test_the_edit_loop_loses_nothing(tmp_path: Path, fake_anthropic: FakeAnthropic):
    """Crafted replies: a lazy whole file and a no-op are re-asked; trailing whitespace, a shifted indentation,
    view_file line numbers and a unified diff apply at once; a stale SEARCH is shown the right lines."""
    seen: list[tuple[int, str]] = []  # (experiment, what the model was told last)

    def model(request: dict) -> str:
        blocks, last = prompt_of(request)
        n = int(ASKED.search(blocks[-1]["text"]).group(1))
        seen.append((n, last))
        x = X_LINE.search(blocks[1]["text"]).group(1)
        line = f"X = {x}  # the knob the agent tunes"
        new = f"X = {1.0 + 0.25 * n}  # the knob the agent tunes"
        fix = f"DESCRIPTION: X to {1.0 + 0.25 * n}\n" + block(line, new)
        if len(request["messages"]) > 1:
            return fix  # a re-ask: this time it is right
        if n == 1:  # a lazy whole file: main() left out
            whole = TRAIN.split("def main")[0].replace("X = 3.0", "X = 2.0") + "# ... rest of the file unchanged\n"
            return f"DESCRIPTION: X to 2\n```python\n{whole}```\n"
        if n == 2:  # a no-op
            return f"DESCRIPTION: nothing\n{block(line, line)}"
        if n == 3:  # trailing whitespace
            return f"DESCRIPTION: X to {1.0 + 0.25 * n}\n" + block(line + "   ", new)
        if n == 4:  # a shifted indentation
            search = "        for step in range(0, 60, 10):"
            return "DESCRIPTION: fewer steps\n" + block(search, search.replace("60, 10", "60, 20"))
        if n == 5:  # view_file's line numbers
            numbered = "    4  Y = {}    # an integer knob"
            return "DESCRIPTION: Y to 3\n" + block(numbered.format(2), numbered.format(3))
        if n == 6:  # a unified diff
            diff = f"--- a/train.py\n+++ b/train.py\n@@ -3,2 +3,2 @@\n-{line}\n+{new}\n Y = 3    # an integer knob\n"
            return f"DESCRIPTION: X by a diff\n```diff\n{diff}```\n"
        # a stale SEARCH: written against an older file, whose X line is long gone
        return "DESCRIPTION: stale\n" + block("X = 9.75  # the knob the agent tunes\nY = 3    # an integer knob", new)

    repo = night(tmp_path, fake_anthropic, 7, model)
    rows = experiments(repo)[1:]
    assert [r["status"] for r in rows if r["status"] in ("invalid", "duplicate")] == []
    told = {n: [t for m, t in seen if m == n] for n in range(1, 8)}
    assert [len(told[n]) for n in range(1, 8)] == [2, 2, 1, 1, 1, 1, 2]  # re-asked only where the reply was unusable
    assert 'leaves code out ("# ... rest of the file unchanged")' in told[1][1]
    assert "leave train.py exactly as it was" in told[2][1]
    assert "The closest lines in the file (3-4) are:\nX = " in told[7][1]
    texts = [r["description"] for r in rows]
    assert texts[3] == "fewer steps" and texts[4] == "Y to 3" and texts[5] == "X by a diff"
    head = (repo / "train.py").read_text()
    assert "def main():" in head  # the lazy file never ran


def test_noise_memory_broadening_and_predictions_reach_the_model(tmp_path: Path, fake_anthropic: FakeAnthropic):
    """Every result is inside a wide min_delta: each is called inconclusive, the family table grows, the night
    broadens after a stall, the predictions come back beside the results, and the cached prefix never changes."""
    requests: dict[int, dict] = {}
    steps = {1: 2.9, 2: 2.95, 3: 3.05, 4: 3.1, 5: 2.901, 6: 2.85}

    def model(request: dict) -> str:
        blocks, _ = prompt_of(request)
        n = int(ASKED.search(blocks[-1]["text"]).group(1))
        requests.setdefault(n, request)
        x = X_LINE.search(blocks[1]["text"]).group(1)
        line = f"X = {x}  # the knob the agent tunes"
        if n == 7:  # a code change: its family is the model's hypothesis
            return ("DESCRIPTION: a marker\nHYPOTHESIS: Summary Marker!\nEXPECTED: +0.0\n"
                    + block('    print("---")', '    print("---")  # the summary'))  # fmt: skip
        value = steps[n]
        return (f"DESCRIPTION: X to {value}\nHYPOTHESIS: move X\nEXPECTED: -0.1\n"
                + block(line, f"X = {value}  # the knob the agent tunes"))  # fmt: skip

    repo = night(tmp_path, fake_anthropic, 7, model, min_delta=0.6, history=3)
    rows = experiments(repo)[1:]
    assert [r["status"] for r in rows] == ["discard"] * 4 + ["duplicate", "discard", "discard"]
    # A near-duplicate of a tried point is refused before its run, with the reason.
    assert rows[4]["reason"].startswith("a near-duplicate of experiment 1 (discard): its constants are within 1%")
    assert "X 2.901 vs 2.9" in rows[4]["reason"] and rows[4]["seconds"] == 0
    # Each row keeps its family, the night's mode, and the prediction.
    assert [r["extra"]["family"] for r in rows] == ["constants: X"] * 6 + ["summary marker"]
    assert rows[0]["extra"]["expected"] == "-0.1"
    assert [r["extra"]["mode"] for r in rows] == ["exploit"] * 4 + ["broaden"] * 3
    # The noise in the model's view: the champion's runs, the noise, the keep rule, which sign is better.
    situation = requests[5]["messages"][0]["content"][-1]["text"]
    assert re.search(r"the baseline \(nothing kept yet\) \S+, the median of its \d+ runs", situation)
    assert "val_bpb: lower is better, so a negative delta is a gain." in situation
    assert (
        "The keep rule: a change is kept when its run is lower than the champion's median by more than 0.6" in situation
    )
    assert re.search(r"#2 inconclusive \S+ -0\.\d+ \(expected -0\.1\) \(\d+ s", situation)  # never "no gain"
    assert "#4 inconclusive" in situation and "no gain" not in situation
    assert "#2 inconclusive / " in situation and "inside the noise (0.6) / a bigger step, or a combination" in situation
    # The memory: the family of the four tries (#1 among them, beyond the history window of three), inconclusive
    # (three read better than the champion, inside the noise).
    assert "  #1 " not in situation and "  #2 " in situation
    assert "  constants: X: 4 tried, 0 kept, best -0.3" in situation and "(inside the noise), inconclusive" in situation
    # Broadening after the stall (four results inside the noise), and back to refining is the default.
    assert "4 experiments since the last keep" in situation and "stop refining" in situation
    assert "Refine: build on the champion" in requests[2]["messages"][0]["content"][-1]["text"]
    last = requests[7]["messages"][0]["content"][-1]["text"]
    assert "  summary marker" not in last and "  constants: X: 5 tried" in last
    # The cached prefix is byte-identical between experiments that keep nothing.
    prefixes = [[b["text"] for b in r["messages"][0]["content"] if "cache_control" in b] for r in requests.values()]
    assert all(p == prefixes[0] for p in prefixes) and len(prefixes[0]) >= 2


def test_a_parallel_night_tells_each_proposal_what_is_in_flight(tmp_path: Path, fake_anthropic: FakeAnthropic):
    said: dict[int, str] = {}

    def model(request: dict) -> str:
        blocks, _ = prompt_of(request)
        n = int(ASKED.search(blocks[-1]["text"]).group(1))
        said.setdefault(n, blocks[-1]["text"])
        x = X_LINE.search(blocks[1]["text"]).group(1)
        value = 1.0 + 0.5 * n
        return f"DESCRIPTION: X to {value}\n" + block(f"X = {x}  # the knob", f"X = {value}  # the knob")

    repo = night(tmp_path, fake_anthropic, 6, model, workers=2)
    rows = experiments(repo)[1:]
    assert len(rows) >= 6 and all(r["status"] != "invalid" for r in rows)
    flying = [re.findall(r"^  #(\d+) (.*?) \[(.*)\]$", text.split("In flight now")[1], re.M) for text in said.values()
              if "In flight now, not finished (do not propose these again):" in text]  # fmt: skip
    assert flying, "no proposal was told of another in flight"
    described = {row["id"]: row["description"] for row in rows}
    # What a proposal is told is in flight is another experiment of the night: its description and its family.
    assert any(described.get(int(k)) == d and f == "constants: X" for entries in flying for k, d, f in entries)


def test_a_contended_run_is_marked_and_a_near_miss_is_inconclusive_in_the_models_view():
    """From the ledger's rows to agent.py's words: a run measured on a busy machine is marked, a worse result
    within the noise is inconclusive, a result beyond it is worse."""
    config = parse(toy_program(min_delta=0.05)).config
    common = dict(tag="t", parent="p", seconds=6.0, agent="llm", program_sha="s", agent_sha="a", log="runs/t/x.log")

    def row(i: int, status: str, metric: float, best: float, sha: str) -> Experiment:
        return Experiment(id=i, commit=f"c{i}", status=status, metric=metric, best=best, description=f"idea {i}",
                          delta=None if i == 0 else metric - 1.0, file_sha=sha, **common)  # fmt: skip

    rows = [row(0, "keep", 1.0, 1.0, "f0"), row(1, "discard", 1.6, 1.0, "f1"), row(2, "discard", 1.02, 1.0, "f2")]
    runs = [MeasurementRow("t", "f0", v, "baseline", 0, seconds=6.0) for v in (1.0, 1.01, 0.99)]
    runs += [MeasurementRow("t", "f1", 1.6, "candidate", 1, seconds=6.0, contended=True)]
    runs += [MeasurementRow("t", "f2", 1.02, "candidate", 2, seconds=6.0)]
    task = build_task(Night.load("t", rows, runs, "c0"), "Make it small.", config, TRAIN)
    assert [a.contended for a in task.history] == [True, False]
    assert task.champion_runs == (1.0, 1.01, 0.99) and task.noise > 0

    spec = importlib.util.spec_from_file_location("seed_agent", ROOT / "agent.py")
    agent = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(agent)
    text = agent._situation(task)
    assert "the baseline (nothing kept yet) 1.000000, the median of its 3 runs (1, 1.01, 0.99)" in text
    assert "#1 worse 1.600000 +0.600000 (6 s) idea 1 [CONTENDED: the machine was busy" in text
    assert "#1 worse / " in text and "its run shared a busy machine: the number is weak evidence" in text
    assert (
        "#2 inconclusive 1.020000 +0.020000" in text and "reads 0.02 worse than the champion, inside the noise" in text
    )


def test_a_digest_keeps_the_throughput_lines_and_drops_a_runs_own_paths():
    def log(rate: int, steps: int, seconds: float, value: float) -> str:
        lines = [f"step {s:5d} | loss {3 - s / 1000:.3f} | {rate + s} tok/s" for s in range(0, 1000, 10)]
        lines += ["---", f"steps:            {steps}", f"training_seconds: {seconds}", f"total_seconds: {seconds + 5}",
                  f"tokens_seen:      {steps * 4096}", "model:            /tmp/x/runs/t/12/out/model.pt2",
                  f"val_bpb: {value}"]  # fmt: skip
        return "\n".join(lines)

    text = digest.digest(log(40000, 990, 300.2, 0.981))
    assert "model:" not in text and "steps:            990" in text  # a path is each run's own: no evidence
    champion = digest.digest(log(39000, 980, 300.1, 0.99))
    spec = importlib.util.spec_from_file_location("seed_agent", ROOT / "agent.py")
    agent = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(agent)
    news = agent._news(text, set(champion.splitlines()))
    # More new lines than DIGEST_LINES: the start and the end are kept, and the throughput lines wherever they are.
    assert "steps:            990" in news and "tokens_seen:      4055040" in news and "val_bpb: 0.981" in news
    assert not any(line.startswith("step   500 |") for line in news)  # a middle sample, no throughput line
    assert len(news) == agent.DIGEST_LINES + 2  # and the two throughput lines besides
