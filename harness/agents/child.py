"""The child side of the agent host and of HyperAgent's gates: load an agent file, bind its entries, call one, and
proxy its LLM calls to the harness.

The harness starts `python -I -m harness.agents.child` with a scrubbed environment, for a proposal, a rewrite or a
candidate's gates alike (a candidate cannot tell its gates from its work by the child it runs in). One JSON request
comes on stdin; the child lowers its resource limits (when asked) before any agent code runs, and says each step it
enters on the protocol pipe (the original stdout: import, signature, call), so a hang or a kill is charged to the
right one; each LLM call and each read-only tool call goes out the same way and its answer comes back on stdin; the
last line out is the proposal or the error. Whatever the agent prints goes to stderr, which the harness keeps.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import resource
import sys
import traceback
from typing import IO, Any

from harness.dialogue import NoProposal
from harness.task import Proposal, Reply, Spend, Task


class LLMUnavailable(RuntimeError):
    """The harness refused or could not make the call (spend cap reached, service down past patience)."""


class LLMProxy:
    """The `llm` an agent receives: every call is made by the harness process, which holds the key, and every tool
    is answered by it from the repository."""

    def __init__(self, inbox: IO[str], outbox: IO[str]) -> None:
        self._inbox = inbox
        self._outbox = outbox
        self.calls = 0

    def complete(
        self, *, system: str | list[dict[str, Any]], messages: list[dict[str, Any]], max_tokens: int = 8000,
        temperature: float | None = None, tools: list[dict[str, Any]] | None = None,
        tool_choice: dict[str, Any] | None = None, thinking: dict[str, Any] | None = None,
    ) -> Reply:  # fmt: skip
        """One Messages API call; `system`, `messages`, `tools`, `tool_choice` and `thinking` are in the API's own
        shape (cache_control allowed). The Reply has the text, the content blocks and the stop reason."""
        self.calls += 1
        request: dict[str, Any] = {"op": "llm", "system": system, "messages": messages, "max_tokens": max_tokens}
        extra = {"temperature": temperature, "tools": tools, "tool_choice": tool_choice, "thinking": thinking}
        request.update({k: v for k, v in extra.items() if v is not None})
        answer = self._ask(request)
        if not answer.get("ok"):
            raise LLMUnavailable(answer.get("error", "the LLM call failed"))
        content = tuple(b for b in answer.get("content") or () if isinstance(b, dict))
        usage = Spend.from_json(answer.get("usage"))
        model = str(answer.get("model", ""))
        return Reply(str(answer.get("text", "")), answer.get("stop_reason"), model, usage, content)

    def tool(self, name: str, args: dict[str, Any]) -> tuple[str, bool]:
        """A read-only tool (harness.toolbox.TOOLS) answered by the harness: (its text, whether it worked)."""
        answer = self._ask({"op": "tool", "name": name, "input": args})
        return str(answer.get("text", "")), bool(answer.get("ok"))

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        _send(self._outbox, request)
        line = self._inbox.readline()
        if not line:
            raise LLMUnavailable("the harness closed the connection")
        answer = json.loads(line)
        return answer if isinstance(answer, dict) else {}


def _send(out: IO[str], message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def load_agent(path: str) -> Any:
    """Import an agent file by path under a private module name."""
    spec = importlib.util.spec_from_file_location("autoresearch_agent", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def as_proposal(value: Any) -> Proposal:
    """Accept a Proposal, or anything with description/content(/notes) attributes or keys."""
    if isinstance(value, Proposal):
        return value
    if isinstance(value, dict):
        return Proposal.from_json(value)
    if hasattr(value, "description") and hasattr(value, "content"):
        notes, reflection = (str(getattr(value, name, "") or "") for name in ("notes", "reflection"))
        return Proposal(str(value.description), str(value.content), notes, reflection=reflection)
    raise TypeError(f"the agent returned {type(value).__name__}, not a Proposal")


def limit(memory: int, cpu: int, files: int, processes: int) -> None:
    """Lower this process's limits, for good: address space (bytes), CPU seconds, size of a file it writes (bytes)
    and processes of its user (no fork bomb); a limit that is already lower stays."""
    for kind, value in (
        (resource.RLIMIT_AS, memory),
        (resource.RLIMIT_CPU, cpu),
        (resource.RLIMIT_FSIZE, files),
        (resource.RLIMIT_NPROC, processes),
    ):
        _soft, hard = resource.getrlimit(kind)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(kind, (value, value))


def main() -> None:
    # Keep the protocol pipe for ourselves and point fd 1 at stderr, so an agent's print() cannot corrupt it.
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    inbox = sys.stdin
    request = json.loads(inbox.readline())
    if request.get("limits"):
        limit(**request["limits"])
    try:
        _send(protocol, {"op": "stage", "stage": "import"})
        module = load_agent(request["path"])
        _send(protocol, {"op": "stage", "stage": "signature"})
        task, llm = Task.from_json(request["task"]), LLMProxy(inbox, protocol)
        for name in request.get("entries") or [request["entry"]]:
            entry = getattr(module, name, None)
            if not callable(entry):
                raise TypeError(f"{name} is not a function after import")
            try:
                inspect.signature(entry).bind(task, llm)
            except TypeError as e:
                raise TypeError(f"{name}(task, llm) cannot be called: {e}") from None
        _send(protocol, {"op": "stage", "stage": "call"})
        value = getattr(module, request["entry"])(task, llm)
        returned = "" if isinstance(value, Proposal) else type(value).__name__
        _send(protocol, {"op": "result", "proposal": as_proposal(value).to_json(), "returned": returned})
    except NoProposal as e:  # the exchange gave up, for the reason it says: the ledger's invalid reason
        _send(protocol, {"op": "error", "kind": "no_proposal", "error": str(e)})
    except Exception as e:  # the agent's failure is data for the harness, sent back whole
        detail = "".join(traceback.format_exception(e))[-4000:]
        _send(protocol, {"op": "error", "error": f"{type(e).__name__}: {e}", "traceback": detail})


if __name__ == "__main__":
    main()
