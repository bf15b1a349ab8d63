"""The agent host: a proposal's wall-clock deadline counts the harness's time answering the child, its tool calls are
bounded, and the night's stop conditions end it while it is under way; real children, a real fake API."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from harness.agents.host import TOOL_CALLS, HostedAgent
from harness.brief import Evidence
from harness.errors import AgentError, StopRequested
from harness.llm import LLMClient
from harness.repo import Repo
from harness.task import Task
from harness.testing import TEST_KEY, TOY_TRAIN, FakeAnthropic, cli, git, make_repo, toy_program

# A child that floods the read-only tools: each call costs it nothing, each answer costs the harness a git read.
FLOOD = """from harness.task import Proposal


def propose(task, llm):
    while True:
        llm.tool("view_file", {"path": "train.py"})
"""

# A child that asks the model again and again: its own CPU time is next to nothing, the harness waits on the API.
CHATTY = """from harness.task import Proposal


def propose(task, llm):
    while True:
        llm.complete(system="", messages=[{"role": "user", "content": "again"}], max_tokens=10)
"""

SLEEPER = """import os
import time


def propose(task, llm):
    if task.program:  # where to say its pid
        with open(task.program, "w") as f:
            f.write(str(os.getpid()))
    time.sleep(10**6)
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", {"train.py": TOY_TRAIN, "program.md": toy_program()})


def hosted(repo: Path, source: str, *, client: LLMClient | None = None, time_limit: float = 600) -> HostedAgent:
    path = repo.parent / "agent_under_test.py"
    path.write_text(source)
    return HostedAgent(path, client, name="t", root=repo, workdir=repo.parent / "work", log_dir=repo.parent / "logs",
                       evidence=Evidence(Repo(repo), repo), time_limit=time_limit)  # fmt: skip


def task(repo: Path, program: str = "") -> Task:
    head = git(repo, "rev-parse", "HEAD")
    return Task(program, "train.py", TOY_TRAIN, "val_bpb", "minimize", None, None, experiment=1, champion=head)


def test_a_tool_flood_ends_the_proposal_at_the_bound(repo: Path):
    agent = hosted(repo, FLOOD)
    with pytest.raises(AgentError, match=f"more than {TOOL_CALLS} tool calls"):
        agent.propose(task(repo))
    log = (repo.parent / "logs" / "1.agent.log").read_text()
    assert log.count("[autoresearch] tool view_file") == TOOL_CALLS


def test_the_deadline_counts_the_harness_time_answering_the_llm_calls(repo: Path, fake_anthropic: FakeAnthropic):
    def slow(request: dict) -> str:
        time.sleep(0.5)  # the API's time, not the child's
        return "more"

    fake_anthropic.responder = slow
    client = LLMClient("claude-sonnet-4-6", api_key=TEST_KEY, base_url=fake_anthropic.url)
    agent = hosted(repo, CHATTY, client=client, time_limit=3)
    started = time.monotonic()
    with pytest.raises(AgentError, match=r"longer than 3 s \(wall clock, its LLM calls and tools included\)"):
        agent.propose(task(repo))
    assert time.monotonic() - started < 30  # not the child's CPU time, which would be ~0 s after any number of calls
    assert len(fake_anthropic.requests) >= 3


def test_a_stop_request_ends_a_proposal_under_way_and_its_child(repo: Path):
    agent = hosted(repo, SLEEPER)
    pidfile = repo.parent / "pid"

    def watch() -> None:  # the stop request comes once the child is at work
        if pidfile.exists() and pidfile.read_text():
            raise StopRequested("stopped by 'autoresearch stop'")

    agent.watch = watch
    started = time.monotonic()
    with pytest.raises(StopRequested):
        agent.propose(task(repo, str(pidfile)))
    assert time.monotonic() - started < 60  # not the proposal's 600 s
    assert not Path(f"/proc/{pidfile.read_text()}").exists()  # the child is gone with the proposal


@pytest.mark.parametrize("workers", [1, 2])
def test_hours_end_a_night_whose_agent_never_answers(project: Path, tmp_path: Path, workers: int):
    if workers > 1:  # the proposal is then made on a thread of its own: it is watched the same
        (project / "program.md").write_text(toy_program(workers=workers))
        git(project, "commit", "-qam", f"{workers} workers")
    agent = tmp_path / "sleepy.py"
    agent.write_text("import time\n\n\ndef propose(task, llm):\n    time.sleep(10**6)\n")
    out = cli(project, "run", "--tag", "z", "--agent", str(agent), "--hours", "0.003", timeout=120)
    assert out.returncode == 0, out.stderr
    assert "reached --hours 0.003" in out.stdout
    rows = [json.loads(line) for line in (project / "experiments.log").read_text().splitlines()]
    assert [r["id"] for r in rows if r["kind"] == "experiment"] == [0]  # the baseline; the proposal never ended
