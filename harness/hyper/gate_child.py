"""The child side of the gates that run a candidate agent: import it, bind its entry points, and smoke-test propose.

The harness starts `python -I -m harness.hyper.gate_child` in the sandbox, with a scrubbed environment and the
candidate as a read-only scratch copy. One JSON request comes on stdin; the child lowers its own resource limits
before any candidate code runs, says each gate it enters on the protocol pipe (so a hang or a kill is charged to the
right one), and ends with the smoke test's proposal or the gate that failed and why. The smoke test's `llm` is the real
proxy; the harness answers it with a stub reply, never the API.
"""

from __future__ import annotations

import inspect
import json
import os
import resource
import sys
from typing import Any

from harness.agents.child import LLMProxy, load_agent
from harness.task import Proposal, Task

ENTRIES = ("propose", "rewrite")


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
    # Keep the protocol pipe for ourselves and point fd 1 at stderr, so that a candidate's print() cannot corrupt it.
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    request = json.loads(sys.stdin.readline())
    limit(**request["limits"])
    stage = "import"

    def enter(name: str) -> None:
        nonlocal stage
        stage = name
        _send(protocol, {"op": "stage", "stage": name})

    try:
        enter("import")
        module = load_agent(request["path"])
        enter("signature")
        task, llm = Task.from_json(request["task"]), LLMProxy(sys.stdin, protocol)
        for name in ENTRIES:
            entry = getattr(module, name, None)
            if not callable(entry):
                raise TypeError(f"{name} is not a function after import")
            try:
                inspect.signature(entry).bind(task, llm)
            except TypeError as e:
                raise TypeError(f"{name}(task, llm) cannot be called: {e}") from None
        enter("smoke")
        proposal = module.propose(task, llm)
        if not isinstance(proposal, Proposal):
            raise TypeError(f"propose returned {type(proposal).__name__}, not a harness.task.Proposal")
        _send(protocol, {"op": "result", "proposal": proposal.to_json()})
    except BaseException as e:  # whatever the candidate raised (SystemExit too) is the gate's finding
        _send(protocol, {"op": "error", "stage": stage, "error": f"{type(e).__name__}: {e}"})


def _send(out: Any, message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


if __name__ == "__main__":
    main()
