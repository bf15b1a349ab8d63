"""One proposal's exchange with the model: a bounded round of read-only tools, then edits, each failure repaired once.

An agent file builds the prompt and the repair texts; this is the machinery it should not have to get right again:
the tool loop (tools are served by the harness through the `llm` proxy), the rule that a reply cut at max_tokens
is never half-applied, and one corrective re-ask per kind of failure before the proposal is given up as invalid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness import edits
from harness.task import Proposal, Reply

MAX_REPAIRS = 3  # re-asks per proposal, whatever their kinds: each resends the whole conversation
CUT = frozenset({"max_tokens", "model_context_window_exceeded"})  # the reply ended before the model did
MAX_PREFIX_BLOCKS = 3  # cached blocks of the first message; the API allows four marks, one moves with the tools
MOVING_MARK = {"type": "ephemeral"}  # 5 minutes: the tool rounds of one proposal follow each other in seconds
PLACEHOLDER = "(no text)"  # the API takes no empty assistant turn
NOT_RUN = "Not run: no tool rounds are left. Answer now, in the format."


class NoProposal(Exception):
    """The exchange ended without a usable proposal; the message says why, as the ledger's invalid reason."""


@dataclass(frozen=True)
class Problem:
    """What is wrong with a reply: its kind (a key of the agent's repair texts), the reason, and the template's
    fields."""

    kind: str
    reason: str
    fields: dict[str, Any] = field(default_factory=dict)


class Chat:
    """A conversation that starts from cached blocks and a changing situation, and grows one exchange at a time."""

    def __init__(
        self,
        llm: Any,
        *,
        system: str,
        blocks: list[str],
        situation: str,
        cache: dict[str, Any],
        max_tokens: int,
        tools: list[dict[str, Any]] | None = None,
        steps: int = 0,
        thinking: dict[str, Any] | None = None,
    ) -> None:
        stable = [b for b in blocks if b]
        if len(stable) > MAX_PREFIX_BLOCKS:
            raise ValueError(f"at most {MAX_PREFIX_BLOCKS} cached blocks, not {len(stable)}")
        content = [{"type": "text", "text": b, "cache_control": cache} for b in stable]
        self.messages: list[dict[str, Any]] = [{"role": "user", "content": [*content, _text(situation)]}]
        self.llm = llm
        self.system = system
        self.max_tokens = max_tokens
        self.tools = tools
        self.steps = steps if tools else 0
        self.thinking = thinking
        self.calls = 0
        self.tool_calls = 0
        self._owed: list[dict[str, Any]] = []  # tool results owed to the model's last tool_use blocks

    def ask(self, text: str | None = None) -> Reply:
        """The model's answer (after `text`, if any), after at most `steps` rounds of tools; past them the model
        is told to answer, once."""
        if text is not None or self._owed:
            self._say(text)
        reply = self._complete()
        rounds = 0
        while reply.tool_uses and reply.stop_reason not in CUT and rounds <= self.steps:
            self._heard(reply)
            self._owed = [self._tool(use, run=rounds < self.steps) for use in reply.tool_uses]
            rounds += 1
            self._say(None)
            reply = self._complete()
        return reply

    def reask(self, reply: Reply, text: str) -> Reply:
        """Answer `reply` with `text` (a repair) and ask again; a cut reply goes back as its text alone."""
        self._heard(reply)
        if reply.tool_uses and reply.stop_reason not in CUT:
            self._owed = [self._tool(use, run=False) for use in reply.tool_uses]
        return self.ask(text)

    def _complete(self) -> Reply:
        self.calls += 1
        options: dict[str, Any] = {}
        if self.tools:
            options["tools"] = self.tools
        if self.thinking:
            options["thinking"] = self.thinking
        return self.llm.complete(system=self.system, messages=self.messages, max_tokens=self.max_tokens, **options)

    def _heard(self, reply: Reply) -> None:
        # A cut reply may end inside a tool_use or thinking block; only its text goes back, as what was said.
        if reply.stop_reason in CUT:
            content = [_text(reply.text or PLACEHOLDER)]
        else:
            content = list(reply.content) or [_text(reply.text or PLACEHOLDER)]
        self.messages.append({"role": "assistant", "content": content})

    def _say(self, text: str | None) -> None:
        content = [*self._owed, *([_text(text)] if text else [])]
        if self._owed:
            # One moving mark after the latest tool results, so the next round reads the rounds before from the
            # cache; the mark on the previous round comes off, to stay within the API's four.
            for message in self.messages[1:]:
                for block in message["content"] if isinstance(message["content"], list) else ():
                    if isinstance(block, dict) and block.get("cache_control") == MOVING_MARK:
                        del block["cache_control"]
            content[len(self._owed) - 1] = {**content[len(self._owed) - 1], "cache_control": MOVING_MARK}
        self._owed = []
        self.messages.append({"role": "user", "content": content})

    def _tool(self, use: dict[str, Any], *, run: bool) -> dict[str, Any]:
        result = {"type": "tool_result", "tool_use_id": use.get("id", "")}
        if not run:
            return {**result, "content": NOT_RUN, "is_error": True}
        self.tool_calls += 1
        text, ok = self.llm.tool(str(use.get("name", "")), use.get("input") or {})
        return {**result, "content": text, **({} if ok else {"is_error": True})}


class Draft:
    """The proposal as the replies build it: fields first come first, edits apply to the file as edited so far."""

    def __init__(self, content: str, path: str, max_tokens: int) -> None:
        self.content = content
        self.path = path
        self.max_tokens = max_tokens
        self.original = content
        self.changed = False
        self.description = ""
        self.notes = ""
        self.reflection = ""
        self.fields: dict[str, str] = {}  # the reply's other fields (EXPECTED, HYPOTHESIS), first said first kept

    def take(self, reply: Reply) -> Problem | None:
        """Take what a reply says; the Problem that stands in the way of a proposal, or None when there is none."""
        if reply.stop_reason in CUT:
            why = f"the reply was cut at max_tokens ({self.max_tokens}) before it ended; nothing of it was applied"
            return Problem("truncated", why, {"max_tokens": self.max_tokens})
        if reply.stop_reason == "refusal":
            return Problem("refusal", "the model refused to answer (stop_reason refusal)", {"path": self.path})
        said = edits.parse(reply.text, len(self.content))
        self.description = self.description or said.description
        self.notes = said.notes or self.notes
        self.reflection = said.reflection or self.reflection
        for name, value in said.fields.items():
            self.fields.setdefault(name, value)
        if said.blocks:
            for n, (search, replace) in enumerate(said.blocks, 1):
                if dropped := edits.lazy(search, replace):
                    return self._lazy(dropped, f"edit block {n}")
            self.content, applied, miss = edits.apply(said.blocks, self.content, self.path)
            self.changed = self.changed or applied > 0
            if miss is not None:
                return self._miss(miss, applied, said.blocks)
        elif said.whole is not None:
            if dropped := edits.lazy(self.content, said.whole):
                return self._lazy(dropped, "the whole file")
            self.content, self.changed = said.whole, True
        elif not self.changed:
            if not reply.text.strip() and not reply.tool_uses:
                return Problem("empty", "the reply was empty")
            return Problem("no_edits", "the reply had no edit blocks and no whole file")
        if self.content == self.original:
            self.changed = False
            why = "the edits leave the file exactly as it was (each REPLACE equals its SEARCH)"
            return Problem("noop", why, {"path": self.path})
        error, context = edits.compile_error(self.content, self.path) if self.changed else ("", "")
        if error:
            fields = {"path": self.path, "error": error, "context": context}
            return Problem("compile", f"{self.path} does not compile after the edits ({error})", fields)
        if not self.description:
            return Problem("no_description", "the reply had no DESCRIPTION line")
        return None

    def _miss(self, miss: edits.Miss, applied: int, blocks: tuple[tuple[str, str], ...]) -> Problem:
        n, total = miss.block, len(blocks)
        done = f"Blocks 1-{applied} applied; do not re-send them.\n" if applied else ""
        rest = f"Blocks {n + 1}-{total} were not tried; send them again too.\n" if n < total else ""
        search = blocks[n - 1][0]
        fields = {
            "n": n,
            "path": self.path,
            "why": miss.why,
            "count": miss.count,
            "closest": edits.closest(search, self.content) if miss.kind == "not_found" else "",
            "applied": done + rest,
        }
        return Problem(miss.kind, f"edit block {n} did not apply: {miss.why}", fields)

    def _lazy(self, line: str, where: str) -> Problem:
        why = f"{where} leaves code out with the line {line!r}, which would delete that code"
        return Problem("lazy", why, {"path": self.path, "line": line, "where": where[:1].upper() + where[1:]})

    def proposal(self, notes_chars: int, reflection_chars: int) -> Proposal:
        return Proposal(
            description=self.description,
            content=self.content,
            notes=edits.head(self.notes, notes_chars),
            reflection=edits.head(self.reflection, reflection_chars),
            expected=edits.one_line_of(self.fields.get("EXPECTED", "")),
            hypothesis=edits.one_line_of(self.fields.get("HYPOTHESIS", "")),
        )


def settle(
    chat: Chat,
    reply: Reply,
    content: str,
    path: str,
    repairs: dict[str, str],
    *,
    notes_chars: int,
    reflection_chars: int,
) -> Proposal:
    """The proposal `reply` makes, re-asking once for each kind of problem (with the agent's `repairs` text for it)
    and at most MAX_REPAIRS times in all; NoProposal, with the reason, when it cannot be had."""
    draft = Draft(content, path, chat.max_tokens)
    used: list[str] = []
    while True:
        problem = draft.take(reply)
        if problem is None:
            return draft.proposal(notes_chars, reflection_chars)
        if problem.kind in used:
            raise NoProposal(f"{problem.reason}, even after one re-ask")
        if len(used) >= MAX_REPAIRS:
            raise NoProposal(f"{problem.reason}; no re-ask left after {len(used)}")
        used.append(problem.kind)
        reply = chat.reask(reply, repairs[problem.kind].format(**problem.fields))


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}
