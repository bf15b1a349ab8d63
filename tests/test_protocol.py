"""Every message an agent child or a gate child sends is decoded into a typed struct; a malformed one is refused with
its reason (the experiment's `invalid`, the gate's rejection), never a crash of the harness."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from harness import jails, protocol, sandbox
from harness.agents.host import HostedAgent
from harness.brief import Evidence
from harness.errors import AgentError
from harness.hyper import gates as agentgates
from harness.paths import Layout
from harness.program import load
from harness.repo import Repo
from harness.task import Proposal, Task
from harness.testing import TOY_TRAIN, cli

# A valid message of each kind, and for each of its fields a value of the wrong type.
VALID: dict[type, dict[str, Any]] = {
    protocol.Llm: {"op": "llm", "messages": [{"role": "user", "content": "hi"}]},
    protocol.Tool: {"op": "tool", "name": "view_file", "input": {"path": "train.py"}},
    protocol.Result: {"op": "result", "proposal": {"description": "d", "content": "x = 1\n"}},
    protocol.Error: {"op": "error", "error": "it failed"},
    protocol.Stage: {"op": "stage", "stage": "call"},
}
WRONG: dict[type, dict[str, Any]] = {
    protocol.Llm: {
        "messages": "hi",
        "system": 5,
        "max_tokens": None,
        "temperature": "hot",
        "tools": {"a": 1},
        "tool_choice": "auto",
        "thinking": [1],
    },
    protocol.Tool: {"name": 5, "input": "train.py"},
    protocol.Result: {"proposal": "a string", "returned": 3},
    protocol.Error: {"error": 5, "kind": ["no_proposal"], "traceback": {}, "stage": 3.5},
    protocol.Stage: {"stage": 7},
}
WRONG_PROPOSAL = {"description": 5, "content": None, "notes": [], "reason": {}, "reflection": 1.5}
WRONG_PROPOSAL |= {"expected": True, "hypothesis": [1]}


def cases(kinds: tuple[type, ...]) -> list[tuple[str, bytes]]:
    """(what is wrong, the line) for every field of every message kind in `kinds`, and of the proposal."""
    out = []
    for kind in kinds:
        for name, value in WRONG[kind].items():
            out.append((f"{kind.__name__}.{name}", json.dumps({**VALID[kind], name: value}).encode()))
    if protocol.Result in kinds:
        for name, value in WRONG_PROPOSAL.items():
            proposal = {**VALID[protocol.Result]["proposal"], name: value}
            out.append((f"proposal.{name}", json.dumps({"op": "result", "proposal": proposal}).encode()))
    out += [
        ("an unknown op", b'{"op": "shell", "command": "rm -rf /"}'),
        ("an unknown field", json.dumps({**VALID[protocol.Tool], "extra": 1}).encode()),
        ("a list", b"[1, 2]"),
        ("not JSON", b"{'op': 'llm'"),
        ("a value out of range", json.dumps({**VALID[protocol.Llm], "max_tokens": -1}).encode()),
    ]
    return out


KINDS = (protocol.Llm, protocol.Tool, protocol.Stage, protocol.Result, protocol.Error)


def test_every_field_of_every_message_has_a_wrong_type_case():
    for kind in KINDS:
        assert set(WRONG[kind]) == {f.name for f in msgspec.structs.fields(kind)}, kind
    assert set(WRONG_PROPOSAL) == {f.name for f in dataclasses.fields(Proposal)}
    for kind in KINDS:  # and the valid ones are valid
        assert isinstance(protocol.decode(json.dumps(VALID[kind]).encode()), kind)


@pytest.mark.parametrize(("what", "line"), cases(KINDS), ids=[w for w, _ in cases(KINDS)])
def test_a_malformed_message_is_refused_with_its_reason(what: str, line: bytes):
    with pytest.raises(protocol.Malformed) as caught:
        protocol.decode(line)
    field = what.split(".")[-1]
    if "." in what and field not in ("proposal",):
        assert f"$.{'proposal.' if what.startswith('proposal.') else ''}{field}" in str(caught.value)


def hostile(path: Path, line: bytes) -> Path:
    """An agent file that writes `line` on the protocol pipe itself, then waits for an answer."""
    path.write_text(
        "def propose(task, llm):\n"
        f"    llm._outbox.write({line.decode()!r} + '\\n')\n"
        "    llm._outbox.flush()\n"
        "    llm._inbox.readline()\n"
        "    raise SystemExit(0)\n\n\n"
        "rewrite = propose\n"
    )
    return path


def task() -> Task:
    return Task("", "train.py", TOY_TRAIN, "val_bpb", "minimize", None, None)


@pytest.mark.parametrize(("what", "line"), cases(KINDS), ids=[w for w, _ in cases(KINDS)])
def test_an_agent_child_sending_a_malformed_message_is_an_agent_error(project: Path, tmp_path: Path, what, line):
    agent = HostedAgent(
        hostile(tmp_path / "hostile.py", line), None, name="hostile", root=project, workdir=tmp_path / "work",
        log_dir=tmp_path / "logs", evidence=Evidence(Repo(project), project),
    )  # fmt: skip
    with pytest.raises(AgentError, match="broke the protocol") as caught:
        agent.call("propose", task(), log_name="p.log")
    assert "malformed message" in str(caught.value)


@pytest.mark.parametrize(("what", "line"), cases(KINDS), ids=[w for w, _ in cases(KINDS)])
def test_a_gate_child_sending_a_malformed_message_is_a_rejection(project: Path, what: str, line: bytes):
    layout = Layout(project)
    layout.agent_copy("t", "1").parent.mkdir(parents=True)
    path = hostile(layout.agent_copy("t", "1"), line)
    config = load(layout.program).config
    jail = jails.agent_jail(sandbox.probe(config.sandbox), Repo(project), config, layout.work("t", "g"), [path])
    rejection = agentgates.isolated(path, task(), jail, layout.generation_log("t", 1, "gates"), agentgates.Limits())
    assert rejection is not None and "broke the gate protocol" in rejection.error and "malformed" in rejection.error


@pytest.mark.parametrize(
    ("call", "reason"),
    [
        ("llm.complete(system='', messages=[], max_tokens=None)", "Expected `int`, got `null` - at `$.max_tokens`"),
        ("llm._outbox.write(json.dumps({'op': 'result', 'proposal': 'a string'}) + '\\n'); llm._outbox.flush(); "
         "llm._inbox.readline()", "Expected `object`, got `str` - at `$.proposal`"),
    ],
)  # fmt: skip
def test_a_malformed_message_in_a_night_is_that_experiments_invalid(project: Path, tmp_path: Path, call, reason):
    agent = tmp_path / "hostile.py"
    agent.write_text(f"import json\n\n\ndef propose(task, llm):\n    {call}\n")
    out = cli(project, "run", "--tag", "bad", "--agent", str(agent), "--max-experiments", "2")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(r) for r in (project / "experiments.log").read_text().splitlines()]
    bad = [r for r in rows if r["kind"] == "experiment" and r["id"] > 0]
    assert [r["status"] for r in bad] == ["invalid", "invalid"]
    assert all(reason in r["reason"] for r in bad), bad[0]["reason"]
