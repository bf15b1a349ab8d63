"""The gates a candidate agent.py must pass, cheapest first: scope, compile and contract on its text in the harness,
then import, signature and smoke in a sandboxed child. The harness process never imports or runs a candidate."""

from __future__ import annotations

import ast
import json
import sys
import time
from collections.abc import Callable, Collection
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import process, protocol
from harness.agents.host import AGENT_LIMITS, TOOL_CALLS, Lines
from harness.edits import fence_for
from harness.hyper import contract
from harness.jails import Jail
from harness.precheck import compiles
from harness.task import Proposal, Spend, Task
from harness.text import one_line

MAX_AGENT_BYTES = 256 * 2**10  # a candidate larger than this is not a plausible agent.py (the seed is ~10 KiB)
STUB_CALLS = 20  # LLM calls the smoke test answers; more is a runaway loop
STEPS = {"import": "import", "signature": "signature", "call": "smoke"}  # the child's steps, as the gates name them
# A read-only tool's answer for the smoke test: (its text, whether it worked), as a proposal's tools are answered.
Tools = Callable[[str, Any], tuple[str, bool]]


@dataclass(frozen=True)
class Limits:
    """What the child gates allow a candidate: wall seconds per gate, and its process's resource limits."""

    import_seconds: float = 30.0
    signature_seconds: float = 10.0
    smoke_seconds: float = 60.0
    # The child's resource limits: those of the candidate's proposal children (AGENT_LIMITS), so it cannot tell
    memory: int = AGENT_LIMITS["memory"]  # bytes of address space
    cpu: int = AGENT_LIMITS["cpu"]  # CPU seconds for all three gates
    files: int = AGENT_LIMITS["files"]  # bytes of one file it writes (in its scratch folder: nowhere else is writable)
    processes: int = AGENT_LIMITS["processes"]  # new processes or threads: none

    def seconds(self, stage: str) -> float:
        return {"import": self.import_seconds, "signature": self.signature_seconds}.get(stage, self.smoke_seconds)


@dataclass(frozen=True)
class Rejection:
    """Why a candidate failed: the gate, and one line."""

    stage: str
    error: str


# --- the static gates, on the text ------------------------------------------------------------------------------


def scope(content: object, champion: str, tried: Collection[str], sha: str, strays: list[str]) -> Rejection | None:
    """Only agent.py differs, the diff is not empty, the file is under the size limit and was not tried before
    (`tried`: the versions the night has seen, `sha` this one's)."""
    if strays:
        return Rejection("scope", f"the rewrite changed {', '.join(strays[:5])}; only agent.py may change")
    if not isinstance(content, str) or not content.strip():
        return Rejection("scope", "the rewrite gave no agent.py content")
    if content == champion:
        return Rejection("scope", "the rewrite returned the champion agent.py unchanged: no rewrite")
    size = len(content.encode("utf-8", errors="replace"))
    if size > MAX_AGENT_BYTES:
        return Rejection("scope", f"the candidate is {size:,} bytes, over the limit of {MAX_AGENT_BYTES:,}")
    if sha in tried:
        return Rejection("scope", "the candidate was already tried in this night (same content)")
    return None


def static(content: str) -> Rejection | None:
    """The compile gate, then the contract gate: both read the text, neither runs it."""
    error = compiles(content, "agent.py")
    if error:
        return Rejection("compile", error)
    error = contract.check(ast.parse(content, "agent.py"))
    return Rejection("contract", error) if error else None


# --- the gates that run it, in a sandboxed child ----------------------------------------------------------------


def isolated(
    candidate: Path,
    task: Task,
    jail: AbstractContextManager[Jail],
    log: Path,
    limits: Limits,
    entered: Callable[[str], None] | None = None,
    *,
    model: str = "",
    tools: Tools | None = None,
) -> Rejection | None:
    """The import, signature and smoke gates of the candidate at `candidate` (a scratch copy the jail shows it),
    in a fresh interpreter inside `jail`, each gate with its own time limit; the first that fails, or None.
    `entered` hears the name of each gate as the child enters it. The child is the one a proposal runs in, with the
    same request, limits and protocol; its LLM calls get a stub reply as `model` would send it, and its tool calls
    the real answers of `tools` (read-only), so the candidate cannot tell the smoke test from a proposal by them."""
    request = {
        "entry": "propose",
        "entries": list(contract.ENTRIES),
        "path": str(candidate),
        "task": task.to_json(),
        "limits": {"memory": limits.memory, "cpu": limits.cpu, "files": limits.files, "processes": limits.processes},
    }
    stage = "import"
    log.parent.mkdir(parents=True, exist_ok=True)
    with jail as cell, open(log, "wb") as sink:
        child = cell.spawn(
            [sys.executable, "-I", "-m", "harness.agents.child"],
            stdin=process.PIPE,
            stdout=process.PIPE,
            stderr=sink,
        )
        try:
            child.stdin.write((json.dumps(request) + "\n").encode())
            child.stdin.flush()
            lines, calls, looks = Lines(child.stdout.fileno()), 0, 0
            while True:
                started = time.monotonic()
                line = lines.next(limits.seconds(stage))
                if line is None:
                    late = time.monotonic() - started >= limits.seconds(stage)
                    child.kill_tree(grace=0.5)
                    code = None if late else child.wait(timeout=2)
                    return Rejection(stage, _ended(stage, code, limits, log))
                message = protocol.decode(line)
                if isinstance(message, protocol.Stage):
                    stage = STEPS[message.stage]
                    if entered is not None:
                        entered(stage)
                elif isinstance(message, protocol.Llm):
                    calls += 1
                    answer = _stub(task, model, len(line)) if calls <= STUB_CALLS else _refused("too many LLM calls")
                    _answer(child, answer)
                elif isinstance(message, protocol.Tool):
                    looks += 1
                    if looks > TOOL_CALLS:
                        return Rejection("smoke", f"the candidate made more than {TOOL_CALLS} tool calls")
                    text, ok = tools(message.name, message.input) if tools else ("", False)
                    _answer(child, {"ok": ok, "text": text})
                elif isinstance(message, protocol.Result):
                    if message.returned:
                        return Rejection("smoke", f"propose returned {message.returned}, not a harness.task.Proposal")
                    return _proposal(message.proposal, task.mutable_path)
                else:
                    return Rejection(stage, one_line(message.error or "the child broke the protocol")[:300])
        except protocol.Malformed as e:
            return Rejection(stage, f"the candidate broke the gate protocol: {one_line(str(e))[:300]}; see {log}")
        except (BrokenPipeError, ValueError) as e:
            return Rejection(stage, f"the candidate broke the gate protocol ({type(e).__name__}); see {log}")
        finally:
            child.kill_tree(grace=0.5)


def _ended(stage: str, code: int | None, limits: Limits, log: Path) -> str:
    """Why the child said nothing more: its time limit (`code` None), a resource limit, or its own exit."""
    if code is None:
        return f"the {stage} gate took longer than {limits.seconds(stage):g} s (stopped); see {log}"
    if code in (-24, 152):  # SIGXCPU, directly or through bwrap
        return f"the candidate used more than {limits.cpu} s of CPU (stopped); see {log}"
    if code in (-25, 153):  # SIGXFSZ
        return f"the candidate wrote a file over {limits.files:,} bytes (stopped); see {log}"
    return f"the child ended (status {code}) during the {stage} gate; see {log}"


def _proposal(made: Proposal, path: str) -> Rejection | None:
    """The smoke test's verdict on what propose returned (checked again here: the child is not trusted)."""
    if not one_line(made.description):
        return Rejection("smoke", "propose returned a Proposal without a description")
    error = compiles(made.content, path) if path.endswith(".py") else ""
    return Rejection("smoke", f"the proposed file does not parse: {error}") if error else None


def _stub(task: Task, model: str, asked: int) -> dict[str, Any]:
    """The smoke test's LLM reply, as the night's model would send one: in agent.py's format, the whole file with one
    comment line added, its usage as the API would count it (about four characters a token)."""
    content = task.mutable_content if task.mutable_content.endswith("\n") else task.mutable_content + "\n"
    fence = fence_for(content)
    text = (
        f"DESCRIPTION: note the current settings in a comment before changing them\n"
        f"EXPECTED: +0.0\n{fence}python\n{content}# settings noted before the next change\n{fence}\n"
    )
    block = {"type": "text", "text": text}
    usage = Spend(input_tokens=asked // 4, output_tokens=len(text) // 4)
    return {"ok": True, "text": text, "stop_reason": "end_turn", "model": model, "content": [block],
            "usage": usage.to_json()}  # fmt: skip


def _refused(why: str) -> dict[str, Any]:
    return {"ok": False, "error": why}


def _answer(child: process.Child, answer: dict[str, Any]) -> None:
    child.stdin.write((json.dumps(answer) + "\n").encode())
    child.stdin.flush()
