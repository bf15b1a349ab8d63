"""`run --agent llm` end to end: agent.py in a child process, its calls made by the harness against a fake API."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.pricing import price
from harness.testing import TEST_KEY, TOY_TRAIN, FakeAnthropic, cli, make_repo, toy_program

MODEL = "claude-sonnet-4-6"
ROOT = Path(__file__).resolve().parent.parent
# The toy task printing as a real run does: progress lines, then a summary block after "---".
TRAIN = '''\
"""Toy experiment. Usage: python train.py"""

X = 3.0  # the knob the agent tunes
Y = 2    # an integer knob

for step in range(0, 60, 10):
    print(f"step {step:4d} | loss {(X - 1.25) ** 2 + 2 - step / 100:.4f} | {41000 + step} tok/s")
loss = (X - 1.25) ** 2 + 0.1 * (Y - 5) ** 2 + 0.5
print("---")
print("steps:   60")
print(f"val_bpb: {loss:.6f}")
'''
PREPARE = '"""The fixed evaluation."""\n\nEVAL_TOKENS = 4096  # held-out bytes scored by evaluate_bpb\n'


def env(server: FakeAnthropic, key: str = TEST_KEY) -> dict[str, str]:
    return {"ANTHROPIC_API_KEY": key, "ANTHROPIC_BASE_URL": server.url}


def experiments(repo: Path) -> list[dict]:
    rows = map(json.loads, (repo / "experiments.log").read_text().splitlines())
    return [r for r in rows if r["kind"] == "experiment"]


def edit(search: str, replace: str, description: str = "an edit") -> str:
    return f"DESCRIPTION: {description}\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n"


def key_check(server: FakeAnthropic) -> None:
    server.reply("ok", input_tokens=0, output_tokens=0)  # the check before the night; free, to keep sums exact


def said(request) -> str:
    """All the text a request carries, block by block."""
    out = [request.json.get("system") or ""]
    for message in request.json["messages"]:
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        out += [b.get("text") or json.dumps(b.get("content", "")) for b in blocks]
    return "\n".join(out)


@pytest.fixture
def night(tmp_path: Path) -> Path:
    """A repository whose run prints progress and a summary, with prepare.py as a context file."""
    program = toy_program(patience=5, context="[prepare.py]")
    agent = (ROOT / "agent.py").read_text()
    files = {"train.py": TRAIN, "program.md": program, "prepare.py": PREPARE, "agent.py": agent}
    return make_repo(tmp_path / "night", files)


def run(repo: Path, server: FakeAnthropic, tag: str, n: int):
    return cli(repo, "run", "--tag", tag, "--agent", "llm", "--max-experiments", str(n), env=env(server))


def test_scripted_night_edit_retry_whole_file_and_garbage(project: Path, fake_anthropic: FakeAnthropic):
    key_check(fake_anthropic)
    fake_anthropic.reply(edit("X = 3.0", "X = 2.0", "X to 2"), input_tokens=1000, output_tokens=200, cache_write=3000)
    fake_anthropic.reply(edit("X = 9.0", "X = 1.5", "X to 1.5"), input_tokens=100, output_tokens=50, cache_read=3000)
    fake_anthropic.reply(edit("X = 2.0", "X = 1.5"), input_tokens=400, output_tokens=60, cache_read=3000)
    whole = TOY_TRAIN.replace("X = 3.0", "X = 1.25").replace("Y = 2 ", "Y = 5 ")
    fake_anthropic.reply(f"DESCRIPTION: the optimum\n```python\n{whole}```\n", input_tokens=300, output_tokens=400)
    fake_anthropic.reply("I am not sure what to do here.", input_tokens=300, output_tokens=10)
    fake_anthropic.reply("Still not sure.", input_tokens=300, output_tokens=10)
    out = cli(project, "run", "--tag", "llm", "--agent", "llm", "--max-experiments", "4", env=env(fake_anthropic))
    assert out.returncode == 0, out.stderr
    rows = experiments(project)
    assert [r["status"] for r in rows] == ["keep", "keep", "keep", "keep", "invalid"]
    assert [r["description"] for r in rows[1:4]] == ["X to 2", "X to 1.5", "the optimum"]
    assert (project / "train.py").read_text() == whole
    assert rows[4]["reason"] == "no proposal: the reply had no edit blocks and no whole file, even after one re-ask"
    assert "Your reply had no edit blocks" in said(fake_anthropic.requests[-1])
    # The failed edit went back once, naming the block and showing the closest real line.
    retry = said(fake_anthropic.requests[3])
    assert "Edit block 1 did not apply" in retry and "X = 2.0" in retry
    # The ledger's cost is the priced usage of the scripted replies, cache reads and writes included: the 1-hour
    # cache the prompt asks for, as this usage has no breakdown of its writes.
    assert rows[1]["cost_usd"] == round(price(MODEL, 1000, 200, 3000, 0, 3000), 6)
    assert rows[2]["cost_usd"] == round(price(MODEL, 100, 50, 0, 3000) + price(MODEL, 400, 60, 0, 3000), 6)
    assert rows[2]["tokens_in"] == 100 + 3000 + 400 + 3000 and rows[2]["cache_read"] == 6000
    assert rows[1]["cache_write"] == 3000 and rows[1]["tokens_out"] == 200
    first = fake_anthropic.requests[1].json
    assert first["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}


def test_the_request_holds_the_evidence_the_context_file_and_the_archive(night: Path, fake_anthropic: FakeAnthropic):
    key_check(fake_anthropic)
    fake_anthropic.reply(edit("X = 3.0", "X = 2.0", "X to 2"))  # keep
    fake_anthropic.reply(edit("Y = 2 ", "Y = 3 ", "Y to 3"))  # keep
    fake_anthropic.reply(edit("X = 2.0", "X = 2.1", "X a little up"))  # a near miss
    fake_anthropic.reply(edit("X = 2.0", "X = 1.9", "X a little down"))
    out = run(night, fake_anthropic, "ev", 4)
    assert out.returncode == 0, out.stderr
    assert [r["status"] for r in experiments(night)] == ["keep", "keep", "keep", "discard", "keep"]
    setup, champion, archive, situation = fake_anthropic.requests[-1].json["messages"][0]["content"]
    # The setup: program.md, the context file (short: whole), the budget and timeout, the machine; not the keep
    # threshold, which moves with the noise and would rewrite the cached prefix.
    assert "Make val_bpb small." in setup["text"] and "# prepare.py (read-only context)" in setup["text"]
    assert "EVAL_TOKENS = 4096" in setup["text"]
    assert "told it has 5 s (wall clock) and is killed at 20 s" in setup["text"]
    assert "CPU cores" in setup["text"] and "keep" not in setup["text"]
    # The champion and its own run: time, memory, and the digest of its log.
    assert "Y = 3 " in champion["text"] and "The champion's own run (#2)" in champion["text"]
    assert re.search(r"\(\d+ s, \d+ MB\)", champion["text"]) and "step   50 | loss" in champion["text"]
    # The archive: the code of the kept experiments, as diffs, as of the latest keep (cached with the champion); the
    # near miss after it is in the history, not in a cached block that would change without a keep.
    assert "-Y = 2 " in archive["text"] and "+Y = 3 " in archive["text"] and "+X = 2.0" in archive["text"]
    assert "#3" not in archive["text"]
    assert all(b["cache_control"]["ttl"] == "1h" for b in (setup, champion, archive))
    # The situation: each attempt's run and the digests of the latest logs.
    text = situation["text"]
    assert re.search(r"#3 (inconclusive|worse) \S+ \+0\.\d+ \(\d+ s, \d+ MB\) X a little up", text)
    assert "The keep rule: a change is kept when its run is lower than the champion's median by more than" in text
    assert "The logs of the latest runs, where they differ from the champion's run:" in text
    assert "    step    0 | loss 2.7225 | 41000 tok/s" in text and "    val_bpb: 1.622500" in text
    assert "steps:   60" in champion["text"] and "steps:   60" not in text  # said once, in the cached block
    assert "Propose experiment #4." in text


def test_a_reply_cut_at_max_tokens_is_never_half_applied(night: Path, fake_anthropic: FakeAnthropic):
    key_check(fake_anthropic)
    both = edit("X = 3.0", "X = 2.0", "X and Y") + "<<<<<<< SEARCH\nY = 2 \n=======\nY = "
    fake_anthropic.reply(both, stop_reason="max_tokens")
    fake_anthropic.reply(both, stop_reason="max_tokens")
    fake_anthropic.reply(both, stop_reason="max_tokens")
    fake_anthropic.reply(edit("Y = 2 ", "Y = 4 ", "only Y, shorter"))
    out = run(night, fake_anthropic, "cut", 2)
    assert out.returncode == 0, out.stderr
    rows = experiments(night)
    assert [r["status"] for r in rows] == ["keep", "invalid", "keep"]
    assert rows[1]["reason"] == (
        "no proposal: the reply was cut at max_tokens (8000) before it ended; nothing of it was applied, "
        "even after one re-ask"
    )
    assert rows[1]["commit"] is None  # nothing ran, nothing was committed
    assert rows[2]["description"] == "only Y, shorter"
    train = (night / "train.py").read_text()
    assert "X = 3.0" in train and "Y = 4 " in train  # the first block of the cut replies was never applied
    assert "cut off at the 8000-token limit" in said(fake_anthropic.requests[2])


def test_a_tool_use_exchange_views_a_file_then_edits_and_is_metered(night: Path, fake_anthropic: FakeAnthropic):
    key_check(fake_anthropic)
    look = [
        {"type": "thinking", "thinking": "prepare.py sets the eval size", "signature": "sig-1"},
        {"type": "tool_use", "id": "toolu_1", "name": "view_file", "input": {"path": "prepare.py"}},
    ]
    fake_anthropic.reply("", content=look, stop_reason="tool_use", input_tokens=900, output_tokens=120)
    fake_anthropic.reply(edit("X = 3.0", "X = 2.0", "X to 2, after reading prepare.py"), input_tokens=1100,
                         output_tokens=80)  # fmt: skip
    out = run(night, fake_anthropic, "tools", 1)
    assert out.returncode == 0, out.stderr
    row = experiments(night)[1]
    assert row["status"] == "keep" and row["description"] == "X to 2, after reading prepare.py"
    assert row["extra"]["tools"] == ['view_file {"path": "prepare.py"}']
    # Both calls are metered into the experiment's row.
    assert row["tokens_in"] == 900 + 1100 and row["tokens_out"] == 120 + 80
    assert row["cost_usd"] == round(price(MODEL, 900, 120) + price(MODEL, 1100, 80), 6)
    first, second = (r.json for r in fake_anthropic.requests[1:3])
    assert [t["name"] for t in first["tools"]] == ["view_file", "show_experiment", "run_log"]
    # The model's turn goes back as it came (thinking block and all), then the file, as the harness read it.
    assert second["messages"][1] == {"role": "assistant", "content": look}
    result = second["messages"][2]["content"][0]
    assert result["type"] == "tool_result" and result["tool_use_id"] == "toolu_1"
    assert "EVAL_TOKENS = 4096" in result["content"] and "prepare.py: lines 1-3 of 3" in result["content"]
    assert 'tool view_file {"path": "prepare.py"}' in (night / "runs" / "tools" / "1.agent.log").read_text()


def test_tools_never_reach_outside_the_champion_tree(night: Path, fake_anthropic: FakeAnthropic):
    key_check(fake_anthropic)
    paths = ["../../etc/passwd", ".git/config", "experiments.log", "/etc/hostname"]
    uses = [{"type": "tool_use", "id": f"t{i}", "name": "view_file", "input": {"path": p}} for i, p in enumerate(paths)]
    fake_anthropic.reply("", content=uses, stop_reason="tool_use")
    fake_anthropic.reply(edit("X = 3.0", "X = 2.0"))
    out = run(night, fake_anthropic, "fence", 1)
    assert out.returncode == 0, out.stderr
    results = fake_anthropic.requests[2].json["messages"][2]["content"]
    assert [r["is_error"] for r in results] == [True] * 4
    assert "not a path inside" in results[0]["content"] and "not a path inside" in results[1]["content"]
    assert "no file experiments.log" in results[2]["content"]
    assert "root:" not in json.dumps(results)


def test_reflections_appear_every_k_experiments(tmp_path: Path, fake_anthropic: FakeAnthropic):
    program = toy_program(patience=5, reflect_every=2, agent_steps=0)
    files = {"train.py": TRAIN, "program.md": program, "agent.py": (ROOT / "agent.py").read_text()}
    repo = make_repo(tmp_path / "reflect", files)

    def model(request: dict) -> str:
        blocks = request["messages"][0]["content"]
        champion, prompt = blocks[1]["text"], blocks[-1]["text"]
        n = int(re.search(r"Propose experiment #(\d+)\.", prompt).group(1))
        y = int(re.search(r"^Y = (\d+) ", champion, re.MULTILINE).group(1))
        thought = f"REFLECTION: after #{n - 1}, X is the lever\n" if "also write REFLECTION" in prompt else ""
        return thought + edit(f"Y = {y} ", f"Y = {y + n} ", f"Y to {y + n}")

    key_check(fake_anthropic)
    fake_anthropic.responder = model
    out = run(repo, fake_anthropic, "r", 6)
    assert out.returncode == 0, out.stderr
    rows = experiments(repo)
    assert [r["id"] for r in rows if r["extra"].get("reflection")] == [3, 5]
    assert rows[3]["extra"]["reflection"] == "after #2, X is the lever"
    prompts = {int(re.search(r"#(\d+)\.$", p).group(1)): p for p in (said(r) for r in fake_anthropic.requests[1:])}
    assert [n for n, p in sorted(prompts.items()) if "also write REFLECTION" in p] == [3, 5]
    assert "Your reflection on the earlier experiments:\nafter #2, X is the lever" in prompts[4]
    assert "after #4, X is the lever" in prompts[6] and "after #2" not in prompts[6]  # the latest stands


def test_each_repair_re_asks_once_then_records_why(night: Path, fake_anthropic: FakeAnthropic):
    no_description = edit("X = 3.0", "X = 2.0").replace("DESCRIPTION: an edit\n", "")
    cases = [  # (first reply, second reply, the ledger's reason, what the re-ask told the model)
        ("", "", "the reply was empty, even after one re-ask", "Your reply was empty"),
        ("I would rather wait.", "Still waiting.", "the reply had no edit blocks and no whole file", "no edit blocks"),
        (edit("X = 9.0", "X = 2.0"), edit("X = 9.0", "X = 2.0"), "edit block 1 did not apply: its SEARCH text is "
         "not in train.py", "X = 3.0"),
        (edit('print("', 'echo("'), edit('print("', 'echo("'), "edit block 1 did not apply: its SEARCH text matches "
         "2 places", "exactly\none place"),
        (edit("X = 3.0", "X = (3.0"), "sure", "train.py does not compile after the edits (line 3:", "X = (3.0"),
        (no_description, "sure", "the reply had no DESCRIPTION line, even after one re-ask", "no DESCRIPTION line"),
        (("no", "refusal"), ("no", "refusal"), "the model refused to answer (stop_reason refusal), even after", "code"),
    ]  # fmt: skip
    key_check(fake_anthropic)
    for first, second, _, _ in cases:
        for reply in (first, second):
            text, stop = reply if isinstance(reply, tuple) else (reply, "end_turn")
            fake_anthropic.reply(text, stop_reason=stop, input_tokens=100, output_tokens=10)
    out = run(night, fake_anthropic, "repair", len(cases))
    assert out.returncode == 0, out.stderr
    rows = experiments(night)[1:]
    assert [r["status"] for r in rows] == ["invalid"] * len(cases)
    for i, (row, (_, _, reason, told)) in enumerate(zip(rows, cases, strict=True)):
        assert row["reason"].startswith(f"no proposal: {reason}"), row["reason"]
        assert row["tokens_in"] == 200  # both calls, metered
        assert told in said(fake_anthropic.requests[2 + 2 * i]), i
    assert len(fake_anthropic.requests) == 1 + 2 * len(cases)
    assert (night / "train.py").read_text() == TRAIN  # nothing was committed


def test_a_request_the_api_refuses_is_one_invalid_experiment(night: Path, fake_anthropic: FakeAnthropic):
    key_check(fake_anthropic)
    fake_anthropic.fault(400, body={"type": "error", "error": {"type": "invalid_request_error",
                                                                "message": "prompt is too long"}})  # fmt: skip
    fake_anthropic.reply(edit("X = 3.0", "X = 2.0", "after the refusal"))
    out = run(night, fake_anthropic, "refused", 2)
    assert out.returncode == 0, out.stderr
    rows = experiments(night)
    assert [r["status"] for r in rows] == ["keep", "invalid", "keep"]
    assert "the API refused this proposal's request" in rows[1]["reason"] and "prompt is too long" in rows[1]["reason"]


def test_requests_refused_again_and_again_end_the_night(night: Path, fake_anthropic: FakeAnthropic):
    key_check(fake_anthropic)
    fake_anthropic.fault(413, times=5)
    out = run(night, fake_anthropic, "refusals", 5)
    assert out.returncode == 4, out.stderr  # the LLM service failed the night
    assert [r["status"] for r in experiments(night)] == ["keep", "invalid", "invalid"]
    assert "refused the requests of 3 proposals in a row" in out.stdout + out.stderr


def test_an_outage_longer_than_the_sdk_retries_does_not_end_the_night(project: Path, fake_anthropic: FakeAnthropic):
    key_check(fake_anthropic)
    fake_anthropic.fault(529, retry_after=0.05, times=4)
    fake_anthropic.fault(429, retry_after=0.05, times=3)
    fake_anthropic.fault(500, retry_after=0.05, times=1)
    fake_anthropic.reply(edit("X = 3.0", "X = 2.0", "after the storm"), input_tokens=10, output_tokens=10)
    out = cli(project, "run", "--tag", "storm", "--agent", "llm", "--max-experiments", "1", env=env(fake_anthropic))
    assert out.returncode == 0, out.stderr
    rows = experiments(project)
    assert rows[-1]["description"] == "after the storm" and rows[-1]["status"] == "keep"
    assert len(fake_anthropic.requests) == 1 + 8 + 1
    assert "overloaded" in out.stdout.lower() or "529" in out.stdout


def test_a_refused_key_stops_before_any_experiment(project: Path, fake_anthropic: FakeAnthropic):
    wrong = "sk-ant-wrong-key-000000000000"
    out = cli(project, "run", "--tag", "k", "--agent", "llm", env=env(fake_anthropic, key=wrong))
    assert out.returncode == 2
    assert "ANTHROPIC_API_KEY" in out.stderr and "401" in out.stderr
    assert wrong not in out.stderr + out.stdout
    assert not (project / "experiments.log").exists() or experiments(project) == []


def test_llm_without_a_key_is_a_clear_error(project: Path):
    out = cli(project, "run", "--tag", "k", "--agent", "llm")
    assert out.returncode == 2
    assert "ANTHROPIC_API_KEY is not set" in out.stderr


def test_max_cost_stops_the_loop_at_the_cap(project: Path, fake_anthropic: FakeAnthropic):
    key_check(fake_anthropic)
    for x in ("2.0", "1.5", "1.25"):
        current = {"2.0": "3.0", "1.5": "2.0", "1.25": "1.5"}[x]
        fake_anthropic.reply(edit(f"X = {current}", f"X = {x}"), input_tokens=10000, output_tokens=1000)
    out = cli(
        project, "run", "--tag", "cap", "--agent", "llm", "--max-cost-usd", "0.05", env=env(fake_anthropic)
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = experiments(project)
    assert [r["id"] for r in rows] == [0, 1, 2]  # the third call would start past the cap
    spent = sum(r["cost_usd"] for r in rows)
    assert round(spent, 6) == round(2 * price(MODEL, 10000, 1000, 0, 0), 6)
    assert "max_cost_usd" in out.stdout + out.stderr
    assert fake_anthropic.pending == 1


def test_no_key_reaches_the_agent_process_or_the_run(project: Path, fake_anthropic: FakeAnthropic, tmp_path: Path):
    agent = tmp_path / "spy.py"
    agent.write_text(
        "import os\nfrom harness.task import Proposal\n\n\ndef propose(task, llm):\n"
        "    seen = ' '.join(f'{k}={v}' for k, v in os.environ.items())\n"
        "    dump = 'import os\\nout = os.environ[\"AUTORESEARCH_OUT\"]\\n'\n"
        '    dump += \'open(out + "/env.txt", "w").write(repr(dict(os.environ)))\\n\'\n'
        "    return Proposal('spy', dump + task.mutable_content, notes=seen)\n"
    )
    key_check(fake_anthropic)
    out = cli(
        project, "run", "--tag", "spy", "--agent", str(agent), "--max-experiments", "1",
        env={**env(fake_anthropic), "GITHUB_TOKEN": "ghp_secretvalue", "DB_PASSWORD": "hunter2"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    agent_env = experiments(project)[-1]["notes"]
    run_env = (project / "runs" / "spy" / "1.out" / "env.txt").read_text()
    for seen in (agent_env, run_env):
        assert "PATH=" in seen or "'PATH'" in seen
        for secret in ("ANTHROPIC_API_KEY", TEST_KEY, "GITHUB_TOKEN", "ghp_secretvalue", "DB_PASSWORD", "hunter2"):
            assert secret not in seen


def test_the_proxy_carries_tools_tool_choice_and_thinking(project: Path, fake_anthropic: FakeAnthropic, tmp_path):
    agent = tmp_path / "raw.py"
    agent.write_text(
        "import json\nfrom harness.task import Proposal\n\n\ndef propose(task, llm):\n"
        "    tools = [{'name': 'noop', 'description': 'nothing', 'input_schema': {'type': 'object'}}]\n"
        "    reply = llm.complete(system='s', messages=[{'role': 'user', 'content': 'go'}], max_tokens=2000,\n"
        "                         tools=tools, tool_choice={'type': 'auto'},\n"
        "                         thinking={'type': 'enabled', 'budget_tokens': 1024})\n"
        "    out = reply.usage.output_tokens\n"
        "    seen = json.dumps({'stop': reply.stop_reason, 'content': reply.content, 'out': out})\n"
        "    return Proposal('raw', task.mutable_content + '# raw\\n', notes=seen)\n"
    )
    key_check(fake_anthropic)
    blocks = [{"type": "thinking", "thinking": "hm", "signature": "s1"}, {"type": "text", "text": "done"}]
    fake_anthropic.reply("", content=blocks, stop_reason="end_turn", input_tokens=50, output_tokens=700)
    out = cli(project, "run", "--tag", "raw", "--agent", str(agent), "--max-experiments", "1", env=env(fake_anthropic))
    assert out.returncode == 0, out.stderr
    sent = fake_anthropic.requests[1].json
    assert sent["tools"][0]["name"] == "noop" and sent["tool_choice"] == {"type": "auto"}
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    row = experiments(project)[-1]
    assert json.loads(row["notes"]) == {"stop": "end_turn", "content": blocks, "out": 700}
    assert row["tokens_out"] == 700 and row["cost_usd"] == round(price(MODEL, 50, 700), 6)  # thinking is billed


# An agent that writes pages where a line is wanted: a 12 MiB reflection, 2 MiB of notes and a 512 KiB description,
# then an exception whose text is 4 MiB, then a proposal that reports what the task sent back to it.
GIANT = """from harness.task import Proposal


def propose(task, llm):
    n = task.experiment
    if n == 1:
        big = "x" * 12 * 2**20
        return Proposal("d" * 2**19, task.mutable_content + "# 1\\n", notes="n\\n" * 2**20, reflection=big)
    if n == 2:
        raise RuntimeError("e" * 4 * 2**20)
    said = f"reflection {len(task.reflection)} notes {len(task.notes)}"
    return Proposal(said, task.mutable_content + "# 3\\n")
"""


def test_a_giant_reflection_notes_and_error_are_bounded_in_the_ledger_and_the_next_task(project: Path, tmp_path):
    agent = tmp_path / "giant.py"
    agent.write_text(GIANT)
    out = cli(project, "run", "--tag", "big", "--agent", str(agent), "--max-experiments", "3", timeout=300)
    assert out.returncode == 0, out.stderr
    first, second, third = experiments(project)[1:]
    assert first["status"] != "invalid", first["reason"]
    assert len(first["extra"]["reflection"]) <= 4000 and len(first["notes"]) <= 4000
    assert len(first["description"]) <= 200
    assert second["status"] == "invalid" and "RuntimeError: eee" in second["reason"] and len(second["reason"]) <= 500
    said = dict(zip(*[iter(third["description"].split())] * 2, strict=True))
    assert int(said["reflection"]) <= 4000 and int(said["notes"]) <= 4000
    assert (project / "experiments.log").stat().st_size < 100_000
