"""The agent host: runs an agent file in a child process with a scrubbed environment and serves its LLM calls."""

from __future__ import annotations

import hashlib
import json
import os
import select
import sys
import time
from pathlib import Path
from typing import Any

from harness import process
from harness.agents import Proposed, Spend
from harness.errors import AgentError, BudgetExceeded, HarnessError, LLMError
from harness.ledger import Experiment
from harness.task import Proposal, Task

TIME_LIMIT = 900.0  # seconds an agent may think on its own per proposal; time waiting on the LLM does not count
MAX_LINE = 16 * 2**20  # a protocol line larger than this is a runaway agent, not a proposal


class HostedAgent:
    """An agent file (agent.py or another with the same contract) behind a process boundary."""

    def __init__(self, path: Path, client: Any, *, workdir: Path, log_dir: Path, time_limit: float = TIME_LIMIT):
        self.path = path.resolve()
        self.client = client
        self.workdir = workdir
        self.log_dir = log_dir
        self.time_limit = time_limit
        self.name = "llm" if path.name == "agent.py" else path.name
        self.sha = hashlib.sha256(self.path.read_bytes()).hexdigest()[:16]

    @classmethod
    def start(cls, kind: str, config: Any, loop: Any) -> HostedAgent:
        """The agent of `--agent llm` (the repository's agent.py) or `--agent PATH`, its key checked before use."""
        from harness.llm import LLMClient

        path = loop.layout.agent if kind == "llm" else Path(kind)
        if not path.is_file():
            raise HarnessError(f"agent file {path} not found; --agent takes llm, optuna, or the path of an agent file")
        keyed = bool(os.environ.get("ANTHROPIC_API_KEY", "").strip())
        if kind == "llm" and not keyed:
            raise LLMError("ANTHROPIC_API_KEY is not set; export it, or use the offline agent with --agent optuna")
        client = None
        if keyed:  # an agent file that never calls the LLM runs without a key
            client = LLMClient(
                config.model, patience=config.patience, max_cost_usd=config.max_cost_usd, on_wait=loop.display.info
            )
            client.check()  # a bad key is found now, not at 3 am
        tag_dir = loop.layout.tag_dir(loop.tag)
        agent = cls(path, client, workdir=loop.layout.scratch(loop.tag), log_dir=tag_dir)
        agent.name = "llm" if kind == "llm" else path.name
        return agent

    # --- the Agent protocol ---------------------------------------------------------------------------------

    def propose(self, task: Task) -> Proposed:
        return Proposed(self.call("propose", task, log_name=f"{task.experiment}.agent.log"))

    def observe(self, row: Experiment) -> None:
        """Nothing to do: the agent reads the night from its Task, rebuilt from the ledger each time."""

    def take_spend(self) -> Spend:
        if self.client is None:
            return Spend()
        usage = self.client.take()
        return Spend(
            tokens_in=usage.input_tokens + usage.cache_write_tokens + usage.cache_read_tokens,
            tokens_out=usage.output_tokens,
            cache_read=usage.cache_read_tokens,
            cache_write=usage.cache_write_tokens,
            cost_usd=usage.cost_usd,
        )

    def close(self) -> None:
        """No process outlives a call; nothing to close."""

    # --- one call in a child process ------------------------------------------------------------------------

    def call(self, entry: str, task: Task, *, log_name: str) -> Proposal:
        """Run `entry(task, llm)` of the agent file in a fresh child; AgentError when it gives no proposal."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / log_name
        request = {"entry": entry, "path": str(self.path), "task": task.to_json()}
        refused: BaseException | None = None
        with open(log_path, "wb") as log:
            child = process.spawn(
                [sys.executable, "-I", "-m", "harness.agent_child"],
                cwd=self.workdir,
                env=process.scrub_env(),
                stdin=process.PIPE,
                stdout=process.PIPE,
                stderr=log,
            )
            try:
                child.stdin.write((json.dumps(request) + "\n").encode())
                child.stdin.flush()
                lines = _Lines(child.stdout.fileno())
                thinking = 0.0
                while True:
                    started = time.monotonic()
                    line = lines.next(self.time_limit - thinking)
                    thinking += time.monotonic() - started
                    if line is None:
                        code = child.wait(timeout=2)
                        if thinking >= self.time_limit:
                            raise AgentError(f"the agent took longer than {self.time_limit:g} s; see {log_path}")
                        raise AgentError(f"the agent process ended (status {code}) without a proposal; see {log_path}")
                    message = json.loads(line)
                    op = message.get("op")
                    if op == "llm":
                        answer, error = self._serve(message)
                        refused = refused or error
                        child.stdin.write((json.dumps(answer) + "\n").encode())
                        child.stdin.flush()
                    elif op == "result":
                        proposal = Proposal.from_json(message.get("proposal", {}))
                        break
                    else:
                        if refused is not None:
                            raise refused
                        raise AgentError(f"agent {entry}() raised {message.get('error', 'an error')}")
            except (BrokenPipeError, ValueError) as e:
                if refused is not None:
                    raise refused from None
                raise AgentError(f"the agent process broke the protocol ({e}); see {log_path}") from None
            finally:
                child.kill_tree(grace=1.0)
        if refused is not None:
            raise refused
        return proposal

    def _serve(self, message: dict[str, Any]) -> tuple[dict[str, Any], BaseException | None]:
        """Make one LLM call for the child; a refusal is sent back to it and kept for the loop."""
        if self.client is None:
            return {"ok": False, "error": "no ANTHROPIC_API_KEY is set, so this agent cannot call the LLM"}, None
        try:
            reply = self.client.complete(
                system=message.get("system", ""),
                messages=message.get("messages", []),
                max_tokens=int(message.get("max_tokens", 8000)),
                temperature=message.get("temperature"),
            )
        except (BudgetExceeded, LLMError) as e:
            return {"ok": False, "error": str(e)}, e
        usage = reply.usage
        return {
            "ok": True,
            "text": reply.text,
            "stop_reason": reply.stop_reason,
            "usage": {
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "cache_write_tokens": usage.cache_write_tokens,
                "cache_read_tokens": usage.cache_read_tokens,
            },
        }, None


class _Lines:
    """Newline-delimited messages from a pipe, with a time limit on each wait."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""

    def next(self, limit: float) -> bytes | None:
        deadline = time.monotonic() + max(0.0, limit)
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                return None
            self.buffer += chunk
            if len(self.buffer) > MAX_LINE:
                raise ValueError("a message over 16 MiB")
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line
