"""agent.py, the default meta-agent: its prompt, its edit format, and the repair of a reply that cannot be used."""

from __future__ import annotations

import copy
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.dialogue import NoProposal
from harness.task import Attempt, ContextFile, Inspiration, Reply, Task

ROOT = Path(__file__).resolve().parent.parent
SOURCE = "A = 1\nB = 2\n\n\ndef f():\n    return A + B\n"


def load_agent():
    spec = importlib.util.spec_from_file_location("seed_agent", ROOT / "agent.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class ScriptedLLM:
    """Stands in for the harness's proxy: hands out scripted replies (text, or (text, stop_reason), or content
    blocks) and keeps what it was sent; tools answer from a dict."""

    replies: list[Any]
    files: dict[str, str] = field(default_factory=dict)
    sent: list[dict] = field(default_factory=list)
    tools_run: list[tuple[str, dict]] = field(default_factory=list)

    def complete(self, *, system, messages, max_tokens=8000, temperature=None, tools=None, thinking=None):
        # A copy, as the real proxy sends the request at once: the conversation is changed in place later.
        self.sent.append({"system": system, "messages": copy.deepcopy(messages), "tools": tools})
        reply = self.replies.pop(0)
        if isinstance(reply, list):
            text = "".join(b.get("text", "") for b in reply if b["type"] == "text")
            stop = "tool_use" if any(b["type"] == "tool_use" for b in reply) else "end_turn"
            return Reply(text, stop, content=tuple(reply))
        text, stop = reply if isinstance(reply, tuple) else (reply, "end_turn")
        return Reply(text, stop, content=({"type": "text", "text": text},))

    def tool(self, name, args):
        self.tools_run.append((name, args))
        return self.files.get(args.get("path", ""), "no such file"), args.get("path") in self.files


def task(**kw) -> Task:
    base = dict(
        program="Make f() small.\n", mutable_path="train.py", mutable_content=SOURCE, metric="val_bpb",
        direction="minimize", best=1.0, baseline=1.2, experiment=7, budget=300, timeout=360, margin=0.002,
        machine="no NVIDIA GPU found (runs use the CPU); 2 CPU cores",
    )  # fmt: skip
    return Task(**{**base, **kw})


def block(search: str, replace: str) -> str:
    return f"<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n"


def last_said(llm: ScriptedLLM) -> str:
    content = llm.sent[-1]["messages"][-1]["content"]
    return content if isinstance(content, str) else "\n".join(b.get("text", "") for b in content)


def test_search_replace_edit_is_applied_with_description_and_multiline_notes():
    agent = load_agent()
    notes = "NOTES:\n- A matters most\n- B hardly matters\n  (checked twice)\n"
    llm = ScriptedLLM(["DESCRIPTION: lower A\n" + notes + block("A = 1\n", "A = 0\n")])
    proposal = agent.propose(task(), llm)
    assert proposal.description == "lower A"
    assert proposal.notes == "- A matters most\n- B hardly matters\n  (checked twice)"
    assert proposal.content == SOURCE.replace("A = 1", "A = 0")


def test_long_notes_keep_their_start_and_are_cut_at_a_line_end():
    agent = load_agent()
    notes = "\n".join(f"- finding {i}: " + "x" * 60 for i in range(60))
    llm = ScriptedLLM([f"DESCRIPTION: d\nNOTES: {notes}\n" + block("A = 1\n", "A = 0\n")])
    kept = agent.propose(task(), llm).notes
    assert kept.startswith("- finding 0: ") and len(kept) <= agent.NOTES_CHARS
    assert kept.endswith("[... cut]") and "- finding 59" not in kept


def test_prompt_has_cached_blocks_for_the_setup_the_champion_and_the_archive():
    agent = load_agent()
    history = tuple(
        Attempt(i, "discard", 1.1, 0.1, f"idea {i}", "not better", seconds=301.0, peak_mem_mb=2048.0,
                digest=f"step 100 | loss 2.{i}\nval_bpb: 1.1")
        for i in range(40, 60)
    )  # fmt: skip
    champion = Attempt(3, "keep", 1.0, -0.2, "lower B", seconds=299.0, digest="steps: 812\ntok/s: 41000")
    archive = (Inspiration(3, "keep", 1.0, -0.2, "lower B", "c3", "-B = 3\n+B = 2\n"),)
    context = (ContextFile("prepare.py", "def evaluate(): ...\n"),)
    llm = ScriptedLLM(["DESCRIPTION: d\n" + block("B = 2\n", "B = 1\n")])
    agent.propose(task(history=history, notes="try B next", champion_run=champion, archive=archive,
                       context=context, reflection="LR matters; depth does not"), llm)  # fmt: skip
    setup, champ, arch, situation = llm.sent[0]["messages"][0]["content"]
    assert all(b["cache_control"] == {"type": "ephemeral", "ttl": "1h"} for b in (setup, champ, arch))
    assert "cache_control" not in situation
    assert "Make f() small." in setup["text"] and "def evaluate(): ..." in setup["text"]
    assert "300 s (wall clock)" in setup["text"] and "killed at 360 s" in setup["text"]
    assert "2 CPU cores" in setup["text"]
    assert "0.002" not in setup["text"]  # the keep threshold moves with the noise: never in the cached prefix
    assert SOURCE in champ["text"] and "steps: 812" in champ["text"] and "(299 s)" in champ["text"]
    assert "+B = 2" in arch["text"] and "#3 keep" in arch["text"]
    text = situation["text"]
    # The reflection changes every few experiments, which would rewrite a cached block each time: it is not cached.
    assert "LR matters; depth does not" in text and "LR matters" not in arch["text"]
    assert "idea 59" in text and "idea 40" in text and "(301 s, 2048 MB)" in text
    assert "loss 2.59" in text and "loss 2.57" in text and "loss 2.56" not in text  # digests of the latest three
    assert "val_bpb: 1.1" in text  # what the champion's run did not print
    assert "try B next" in text
    assert "#59 worse / not better / this direction does not pay" in text  # +0.1 is beyond the 0.002 of noise
    assert "REFLECTION" not in text


def test_a_reflection_is_asked_for_when_the_task_says_so():
    agent = load_agent()
    reply = "REFLECTION: A was the lever.\nNext: B.\nDESCRIPTION: d\n" + block("A = 1\n", "A = 0\n")
    llm = ScriptedLLM([reply])
    proposal = agent.propose(task(reflect=True), llm)
    assert "REFLECTION" in llm.sent[0]["messages"][0]["content"][-1]["text"]
    assert proposal.reflection == "A was the lever.\nNext: B."


def test_an_edit_that_does_not_apply_is_sent_back_once_with_the_closest_lines():
    agent = load_agent()
    first = "DESCRIPTION: change both\n" + block("A = 1\n", "A = 5\n") + block("B = 3\n", "B = 4\n")
    llm = ScriptedLLM([first, block("B = 2\n", "B = 4\n")])
    proposal = agent.propose(task(), llm)
    assert proposal.content == SOURCE.replace("A = 1", "A = 5").replace("B = 2", "B = 4")
    retry = last_said(llm)
    assert "Edit block 2 did not apply" in retry
    assert "B = 2" in retry  # the closest real line
    assert "do not re-send them" in retry


def test_a_search_that_matches_twice_asks_for_a_unique_anchor():
    agent = load_agent()
    source = "A = 1\nB = 1\n"
    twice = "DESCRIPTION: x\n" + block("= 1\n", "= 2\n")
    llm = ScriptedLLM([twice, block("B = 1\n", "B = 2\n")])
    assert agent.propose(task(mutable_content=source), llm).content == "A = 1\nB = 2\n"
    assert "matches 2 places" in last_said(llm) and "exactly\none place" in last_said(llm)


def test_a_whole_line_match_is_not_ambiguous_with_a_longer_line():
    agent = load_agent()
    source = "X = 1\nX = 10\n"
    llm = ScriptedLLM(["DESCRIPTION: x\n" + block("X = 1\n", "X = 2\n")])
    assert agent.propose(task(mutable_content=source), llm).content == "X = 2\nX = 10\n"


def test_a_cut_reply_is_never_half_applied():
    agent = load_agent()
    cut = ("DESCRIPTION: both\n" + block("A = 1\n", "A = 0\n") + "<<<<<<< SEARCH\nB = 2\n=====", "max_tokens")
    llm = ScriptedLLM([cut, "DESCRIPTION: only B\n" + block("B = 2\n", "B = 0\n")])
    proposal = agent.propose(task(), llm)
    assert proposal.content == SOURCE.replace("B = 2", "B = 0")  # A = 1 stays: the cut reply applied nothing
    assert proposal.description == "only B"
    assert "cut off at the 8000-token limit" in last_said(llm)
    with pytest.raises(NoProposal, match=r"cut at max_tokens \(8000\).*even after one re-ask"):
        agent.propose(task(), ScriptedLLM([cut, cut]))


def test_a_file_that_does_not_compile_goes_back_once_with_the_error():
    agent = load_agent()
    broken = "DESCRIPTION: x\n" + block("A = 1\n", "A = (1\n")
    llm = ScriptedLLM([broken, block("A = (1\n", "A = (1)\n")])
    assert "A = (1)" in agent.propose(task(), llm).content
    assert "does not compile" in last_said(llm) and "A = (1" in last_said(llm)
    with pytest.raises(NoProposal, match=r"does not compile after the edits.*even after one re-ask"):
        agent.propose(task(), ScriptedLLM([broken, "no idea"]))


@pytest.mark.parametrize(
    ("replies", "reason"),
    [
        (["I think we should try harder.", "Still thinking."], "no edit blocks and no whole file, even after one"),
        (["", ""], "the reply was empty, even after one re-ask"),
        ([("I cannot help", "refusal")] * 2, "refused to answer .* even after one re-ask"),
        ([block("A = 1\n", "A = 0\n"), "sure"], "no DESCRIPTION line, even after one re-ask"),
    ],
)
def test_each_repair_is_asked_once_then_the_reason_is_given(replies, reason):
    agent = load_agent()
    llm = ScriptedLLM(list(replies))
    with pytest.raises(NoProposal, match=reason):
        agent.propose(task(), llm)
    assert len(llm.sent) == 2


def test_tools_are_used_for_a_bounded_number_of_rounds_then_the_model_must_answer():
    agent = load_agent()
    look = [{"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "t1", "name": "view_file", "input": {"path": "prepare.py"}}]  # fmt: skip
    answer = "DESCRIPTION: d\n" + block("A = 1\n", "A = 0\n")
    llm = ScriptedLLM([look, look, look, answer], files={"prepare.py": "EVAL = 1\n"})
    proposal = agent.propose(task(agent_steps=2), llm)
    assert proposal.description == "d"
    assert llm.tools_run == [("view_file", {"path": "prepare.py"})] * 2  # the third look was not run
    assert llm.sent[0]["tools"] and llm.sent[0]["tools"][0]["name"] == "view_file"
    result = llm.sent[1]["messages"][-1]["content"][0]
    assert result["type"] == "tool_result" and result["tool_use_id"] == "t1" and result["content"] == "EVAL = 1\n"
    assert result["cache_control"] == {"type": "ephemeral"}
    assert "Not run" in llm.sent[3]["messages"][-1]["content"][0]["content"]
    marks = [b for m in llm.sent[3]["messages"] for b in m["content"] if isinstance(b, dict) and "cache_control" in b]
    assert len(marks) <= 4  # the API's limit: the moving mark is taken off the earlier rounds


def test_no_tools_are_offered_when_the_program_allows_no_steps():
    agent = load_agent()
    llm = ScriptedLLM(["DESCRIPTION: d\n" + block("A = 1\n", "A = 0\n")])
    agent.propose(task(agent_steps=0), llm)
    assert llm.sent[0]["tools"] is None


def test_a_whole_file_reply_replaces_the_file():
    agent = load_agent()
    new = "A = 0\nB = 0\n\n\ndef f():\n    return A * B\n"
    llm = ScriptedLLM([f"DESCRIPTION: rewrite\n```python\n{new}```\n"])
    assert agent.propose(task(), llm).content == new


def test_rewrite_proposes_a_new_agent_source():
    agent = load_agent()
    source = (ROOT / "agent.py").read_text()
    llm = ScriptedLLM(["DESCRIPTION: more digests\n" + block("DIGESTS = 3", "DIGESTS = 5")])
    proposal = agent.rewrite(task(agent_source=source), llm)
    assert "DIGESTS = 5" in proposal.content and proposal.content != source
