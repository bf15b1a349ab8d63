"""`autoresearch hyper` end to end: scripted rewrites from the fake API, each candidate through the gates and
probation, the champion untouched by whatever a rejected one tried, and the night consistent after a kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from harness import sandbox
from harness.edits import fence_for
from harness.host import agent_sha
from harness.testing import PY, TEST_KEY, TOY_TRAIN, FakeAnthropic, cli, git, make_repo, toy_program

ROOT = Path(__file__).resolve().parent.parent
SEED = (ROOT / "agent.py").read_text()
SANDBOXED = sandbox.probe("auto").active
MODE = "auto" if SANDBOXED else "off"  # hyper refuses `auto` without a sandbox; CI without bubblewrap runs unisolated
needs_sandbox = pytest.mark.skipif(not SANDBOXED, reason="bubblewrap cannot work on this machine")


# The champion of the gate tests: its rewrite hands the model's reply on word for word, so each scripted candidate
# reaches the gates as it is (the seed agent would repair a syntax error with the model first).
RELAY = '''"""Relay agent: propose sets X to the reply; rewrite returns the reply as the new agent.py."""

from harness.task import Proposal


def propose(task, llm):
    value = llm.complete(system="", messages=[{"role": "user", "content": "X?"}], max_tokens=50).text.strip()
    lines = [f"X = {value}" if line.startswith("X = ") else line for line in task.mutable_content.splitlines()]
    return Proposal(f"X to {value}", "\\n".join(lines) + "\\n")


def rewrite(task, llm):
    reply = llm.complete(system="", messages=[{"role": "user", "content": "rewrite"}], max_tokens=50)
    return Proposal("a rewrite", reply.text)
'''


def project(tmp_path: Path, agent: str) -> Path:
    program = toy_program(sandbox=MODE, baseline_runs=1, confirm=0, patience=2)
    files = {"train.py": TOY_TRAIN, "program.md": program, "prepare.py": "# fixed evaluation\n", "agent.py": agent}
    return make_repo(tmp_path / "project", files)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return project(tmp_path, SEED)


@pytest.fixture
def relay(tmp_path: Path) -> Path:
    return project(tmp_path, RELAY)


def env(server: FakeAnthropic) -> dict[str, str]:
    return {"ANTHROPIC_API_KEY": TEST_KEY, "ANTHROPIC_BASE_URL": server.url}


def edit(search: str, replace: str, description: str) -> str:
    return f"DESCRIPTION: {description}\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n"


def whole(source: str, description: str = "a new agent") -> str:
    """A rewrite's reply: the whole new agent.py in a fence longer than any in it."""
    fence = fence_for(source)
    return f"DESCRIPTION: {description}\n{fence}python\n{source}{fence}\n"


def hyper(repo: Path, server: FakeAnthropic, *args: str) -> subprocess.CompletedProcess[str]:
    return cli(repo, "hyper", "--tag", "h", "--window", "1", *args, env=env(server), timeout=300)


def rows(repo: Path, kind: str) -> list[dict]:
    found = map(json.loads, (repo / "experiments.log").read_text().splitlines())
    return [r for r in found if r["kind"] == kind]


def untouched(repo: Path, seed: str) -> None:
    """The champion agent is the seed, on the branch and in the tree, and nothing else in the tree changed."""
    assert (repo / "agent.py").read_text() == seed
    assert git(repo, "show", "autoresearch/h:agent.py") + "\n" == seed
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == ""


# --- candidates -----------------------------------------------------------------------------------------------

MINIMAL = '''"""A small agent: {what}."""

from harness.task import Proposal


def propose(task, llm):
    reply = llm.complete(system="", messages=[{{"role": "user", "content": "go"}}], max_tokens=100)
    return Proposal("from the reply", task.mutable_content + "# " + reply.text.splitlines()[0] + "\\n")


def rewrite(task, llm):
    return Proposal("same", task.agent_source)
'''

REJECTED = {
    "syntax": (RELAY.replace("def propose(task, llm):", "def propose(task, llm)"), "compile", "agent.py:6:"),
    "missing module": ("import no_such_module_here\n" + RELAY, "import", "No module named 'no_such_module_here'"),
    "writes a file": (RELAY + "\nopen('planted.txt', 'w').write('x')\n", "contract", "agent.py:16: a top-level expr"),
    "os.system": (RELAY + "\nimport os\nos.system('touch planted.txt')\n", "contract", "statement runs at import"),
    "computed constant": (RELAY + "\nimport os\nHOME = os.system('true')\n", "contract", "computed by a call"),
    "renamed": (RELAY.replace("def propose(task, llm):", "def suggest(task, llm):"), "contract", "no top-level def propose"),
    "extra parameter": (RELAY.replace("def propose(task, llm):", "def propose(task, llm, extra):"), "contract",
                        "propose(task, llm, extra) must take exactly (task, llm)"),  # fmt: skip
    "*args": (RELAY.replace("def propose(task, llm):", "def propose(*args):"), "contract", "propose(*args) must take"),
    "wrapped": (RELAY.replace("def propose(task, llm):", "@(lambda f: lambda task: f(task, 1))\ndef propose(task, llm):"),
                "signature", "propose(task, llm) cannot be called"),  # fmt: skip
    "wrong type": (RELAY.replace('return Proposal(f"X to {value}", ', "return dict(d=f'{value}', c="), "smoke",
                   "propose returned dict, not a harness.task.Proposal"),  # fmt: skip
    "identical": (RELAY, "scope", "the candidate is the champion agent.py unchanged"),
    "too large": (RELAY + "\nPAD = '" + "x" * 300_000 + "'\n", "scope", "over the limit"),
}


def test_every_bad_rewrite_is_rejected_at_its_gate_and_the_champion_is_untouched(relay, fake_anthropic):
    repo = relay
    fake_anthropic.reply("ok", input_tokens=0, output_tokens=0)  # the key check
    for i, (source, _, _) in enumerate(REJECTED.values()):
        fake_anthropic.reply(f"{2.0 + i / 100:.2f}")  # the champion's window
        fake_anthropic.reply(source)  # its rewrite
    out = hyper(repo, fake_anthropic, "--generations", str(len(REJECTED)))
    assert out.returncode == 0, out.stderr
    generations = rows(repo, "generation")
    assert [(g["generation"], g["status"]) for g in generations] == [(i + 1, "rejected") for i in range(len(REJECTED))]
    for g, (name, (source, stage, error)) in zip(generations, REJECTED.items(), strict=True):
        assert (g["stage"], name) == (stage, name) and error in g["error"], (name, g["error"])
        assert g["champion_sha"] == agent_sha(RELAY.encode())
        if stage == "scope":
            assert g["commit"] is None
        else:  # kept where a person can read it, beside the branch
            assert git(repo, "rev-parse", f"refs/autoresearch/h/agents/{g['generation']}") == g["commit"]
            assert git(repo, "show", f"{g['commit']}:agent.py") + "\n" == source.rstrip("\n") + "\n"
    assert not (repo / "planted.txt").exists()
    untouched(repo, RELAY)
    assert git(repo, "rev-parse", "refs/tags/autoresearch/h/seed-agent") == git(repo, "rev-parse", "main")
    # Every experiment of the night was proposed by the seed agent.
    assert {r["agent_sha"] for r in rows(repo, "experiment") if r["id"]} == {agent_sha(RELAY.encode())}
