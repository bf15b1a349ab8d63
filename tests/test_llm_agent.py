"""`run --agent llm` end to end: agent.py in a child process, its calls made by the harness against a fake API."""

from __future__ import annotations

import json
from pathlib import Path

from harness.pricing import price
from harness.testing import TEST_KEY, TOY_TRAIN, FakeAnthropic, cli

MODEL = "claude-sonnet-4-6"


def env(server: FakeAnthropic, key: str = TEST_KEY) -> dict[str, str]:
    return {"ANTHROPIC_API_KEY": key, "ANTHROPIC_BASE_URL": server.url}


def experiments(repo: Path) -> list[dict]:
    rows = map(json.loads, (repo / "experiments.log").read_text().splitlines())
    return [r for r in rows if r["kind"] == "experiment"]


def edit(search: str, replace: str, description: str = "an edit") -> str:
    return f"DESCRIPTION: {description}\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n"


def key_check(server: FakeAnthropic) -> None:
    server.reply("ok", input_tokens=0, output_tokens=0)  # the check before the night; free, to keep sums exact


def test_scripted_night_edit_retry_whole_file_and_garbage(project: Path, fake_anthropic: FakeAnthropic):
    key_check(fake_anthropic)
    fake_anthropic.reply(edit("X = 3.0", "X = 2.0", "X to 2"), input_tokens=1000, output_tokens=200, cache_write=3000)
    fake_anthropic.reply(edit("X = 9.0", "X = 1.5", "X to 1.5"), input_tokens=100, output_tokens=50, cache_read=3000)
    fake_anthropic.reply(edit("X = 2.0", "X = 1.5"), input_tokens=400, output_tokens=60, cache_read=3000)
    whole = TOY_TRAIN.replace("X = 3.0", "X = 1.25").replace("Y = 2 ", "Y = 5 ")
    fake_anthropic.reply(f"DESCRIPTION: the optimum\n```python\n{whole}```\n", input_tokens=300, output_tokens=400)
    fake_anthropic.reply("I am not sure what to do here.", input_tokens=300, output_tokens=10)
    out = cli(project, "run", "--tag", "llm", "--agent", "llm", "--max-experiments", "4", env=env(fake_anthropic))
    assert out.returncode == 0, out.stderr
    rows = experiments(project)
    assert [(r["id"], r["status"]) for r in rows] == [
        (0, "keep"),
        (1, "keep"),
        (2, "keep"),
        (3, "keep"),
        (4, "invalid"),
    ]
    assert [r["description"] for r in rows[1:4]] == ["X to 2", "X to 1.5", "the optimum"]
    assert (project / "train.py").read_text() == whole
    assert "neither SEARCH/REPLACE blocks nor a whole file" in rows[4]["reason"]
    # The failed edit went back once, naming the block and showing the closest real line.
    retry = fake_anthropic.requests[3].json["messages"][-1]["content"]
    assert "Edit block 1 did not apply" in retry and "X = 2.0" in retry
    # The ledger's cost is the priced usage of the scripted replies, cache reads and writes included.
    assert rows[1]["cost_usd"] == round(price(MODEL, 1000, 200, 3000, 0), 6)
    assert rows[2]["cost_usd"] == round(price(MODEL, 100, 50, 0, 3000) + price(MODEL, 400, 60, 0, 3000), 6)
    assert rows[2]["tokens_in"] == 100 + 3000 + 400 + 3000 and rows[2]["cache_read"] == 6000
    assert rows[1]["cache_write"] == 3000 and rows[1]["tokens_out"] == 200
    # The stable prefix is marked for caching.
    first = fake_anthropic.requests[1].json
    assert first["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}


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
