"""The messages a child that runs an agent file (for a proposal, or for the gates) sends the harness, as typed structs:
each line is decoded whole into one of them, and a line that does not fit (a wrong type, a missing field, an
unknown op) is refused with the reason."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import msgspec

from harness.task import Proposal

MAX_TOKENS = 128_000  # the most output tokens one call may ask for (the largest any Claude model gives)


class Malformed(ValueError):
    """A child's message that is not one the protocol knows, with the reason (the field and what was wrong)."""


class Llm(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="op", tag="llm"):
    """One Messages API call the child asks the harness to make."""

    messages: list[dict[str, Any]]
    system: str | list[dict[str, Any]] = ""
    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=MAX_TOKENS)] = 8000
    temperature: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None

    def options(self) -> dict[str, Any]:
        """What the call carries to the API besides the system prompt, the messages and max_tokens."""
        given = {"temperature": self.temperature, "tools": self.tools, "tool_choice": self.tool_choice,
                 "thinking": self.thinking}  # fmt: skip
        return {k: v for k, v in given.items() if v is not None}


class Tool(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="op", tag="tool"):
    """One read-only tool call (harness.toolbox.TOOLS) the child asks the harness to answer."""

    name: str
    input: dict[str, Any] = msgspec.field(default_factory=dict)


class Stage(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="op", tag="stage"):
    """The child entering its next step (the gates charge a hang or a kill to it)."""

    stage: Literal["import", "signature", "call"]


class Result(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="op", tag="result"):
    """The child's last word: its proposal (each of Proposal's fields a string; unknown ones are dropped)."""

    proposal: Proposal
    returned: str = ""  # what propose returned when it was not a Proposal (its type), for the smoke test to name


class Error(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="op", tag="error"):
    """The child's last word: why it has no proposal."""

    error: str = ""
    kind: str = ""  # "no_proposal": the exchange gave up for the reason it says
    traceback: str = ""
    stage: str = ""


Message = Llm | Tool | Stage | Result | Error


def decode(line: bytes) -> Message:
    """One message of a child; raises Malformed saying what is wrong with it."""
    # Parsed as Python's json does (a lone surrogate in a description is text to clean later, not a broken line),
    # then fitted to its struct strictly.
    try:
        return msgspec.convert(json.loads(line), Message)
    except (ValueError, msgspec.ValidationError) as e:  # the reason names the field (`$.max_tokens`)
        raise Malformed(f"a malformed message ({e}): {line[:120]!r}") from None
