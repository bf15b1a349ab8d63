"""agent.py, the default meta-agent: its prompt, its edit format, and the one retry of an edit that did not apply."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.task import Attempt, Task

ROOT = Path(__file__).resolve().parent.parent
SOURCE = "A = 1\nB = 2\n\n\ndef f():\n    return A + B\n"


def load_agent():
    spec = importlib.util.spec_from_file_location("seed_agent", ROOT / "agent.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Reply:
    text: str


@dataclass
class ScriptedLLM:
    """Stands in for the harness's proxy: hands out scripted replies and keeps what it was sent."""

    replies: list[str]
    sent: list[dict] = field(default_factory=list)

    def complete(self, *, system, messages, max_tokens=8000, temperature=None):
        self.sent.append({"system": system, "messages": [dict(m) for m in messages]})
        return Reply(self.replies.pop(0))


def task(**kw) -> Task:
    base = dict(
        program="Make f() small.\n", mutable_path="train.py", mutable_content=SOURCE, metric="val_bpb",
        direction="minimize", best=1.0, baseline=1.2, experiment=7,
    )  # fmt: skip
    return Task(**{**base, **kw})


def block(search: str, replace: str) -> str:
    return f"<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n"


def test_search_replace_edit_is_applied_with_description_and_notes():
    agent = load_agent()
    llm = ScriptedLLM(["DESCRIPTION: lower A\nNOTES: A matters\n" + block("A = 1\n", "A = 0\n")])
    proposal = agent.propose(task(), llm)
    assert proposal.description == "lower A"
    assert proposal.notes == "A matters"
    assert proposal.content == SOURCE.replace("A = 1", "A = 0")


def test_prompt_has_a_cached_stable_prefix_and_a_bounded_history():
    agent = load_agent()
    history = tuple(Attempt(i, "discard", 1.1, 0.1, f"idea {i}", "not better") for i in range(40, 60))
    llm = ScriptedLLM(["DESCRIPTION: d\n" + block("B = 2\n", "B = 1\n")])
    agent.propose(task(history=history, notes="try B next"), llm)
    prefix, suffix = llm.sent[0]["messages"][0]["content"]
    assert prefix["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert "Make f() small." in prefix["text"] and SOURCE in prefix["text"]
    assert "idea 59" in suffix["text"] and "idea 40" in suffix["text"]  # the history the loop chose to send
    assert "try B next" in suffix["text"]
    assert "issue / evidence / suggested fix" in suffix["text"]


def test_an_edit_that_does_not_apply_is_sent_back_once_with_the_closest_lines():
    agent = load_agent()
    first = "DESCRIPTION: change both\n" + block("A = 1\n", "A = 5\n") + block("B = 3\n", "B = 4\n")
    second = block("B = 2\n", "B = 4\n")
    llm = ScriptedLLM([first, second])
    proposal = agent.propose(task(), llm)
    assert proposal.content == SOURCE.replace("A = 1", "A = 5").replace("B = 2", "B = 4")
    retry = llm.sent[1]["messages"][-1]["content"]
    assert "Edit block 2 did not apply" in retry
    assert "B = 2" in retry  # the closest real line
    assert "do not re-send them" in retry


def test_a_second_failure_gives_up_with_the_reason():
    agent = load_agent()
    llm = ScriptedLLM(["DESCRIPTION: x\n" + block("Q = 9\n", "Q = 1\n"), block("Q = 9\n", "Q = 1\n")])
    with pytest.raises(ValueError, match="did not apply after one retry"):
        agent.propose(task(), llm)


def test_a_whole_file_reply_replaces_the_file():
    agent = load_agent()
    new = "A = 0\nB = 0\n\n\ndef f():\n    return A * B\n"
    llm = ScriptedLLM([f"DESCRIPTION: rewrite\n```python\n{new}```\n"])
    assert agent.propose(task(), llm).content == new


def test_garbage_is_an_error_not_a_proposal():
    agent = load_agent()
    with pytest.raises(ValueError, match="neither SEARCH/REPLACE blocks nor a whole file"):
        agent.propose(task(), ScriptedLLM(["I think we should try harder."]))


def test_rewrite_proposes_a_new_agent_source():
    agent = load_agent()
    source = (ROOT / "agent.py").read_text()
    llm = ScriptedLLM(["DESCRIPTION: longer tail\n" + block("TAIL_CHARS = 1500", "TAIL_CHARS = 3000")])
    proposal = agent.rewrite(task(agent_source=source), llm)
    assert "TAIL_CHARS = 3000" in proposal.content and proposal.content != source
