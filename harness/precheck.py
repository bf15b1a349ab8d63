"""The checks a proposal must pass before it costs any compute; whatever the content, the answer is a reason or ""."""

from __future__ import annotations

MAX_FILE_BYTES = 2 * 2**20  # a proposal larger than this is not a plausible edit of one source file


def check_proposal(content: object, champion: str, path: str) -> str:
    """Why a proposed file cannot be run (no text, empty diff, too large, does not parse), or "" when it can."""
    if not isinstance(content, str):
        return "the proposal has no file content"
    if content == champion:
        return f"the proposal does not change {path}"
    try:
        size = len(content.encode("utf-8"))
    except UnicodeEncodeError as e:
        return f"the proposed {path} is not valid text (character {e.start}: {e.reason})"
    if size > MAX_FILE_BYTES:
        return f"the proposed {path} is over {MAX_FILE_BYTES // 2**20} MiB"
    if path.endswith(".py"):
        return compiles(content, path)
    return ""


def compiles(source: str, path: str) -> str:
    """Why Python source does not compile (a syntax error with its line, or nesting too deep for the compiler), or
    "" when it does. Never raises for any text."""
    try:
        compile(source, path, "exec", dont_inherit=True)
    except SyntaxError as e:
        return f"{path}:{e.lineno}: {e.msg}"
    except ValueError as e:  # null bytes
        return f"{path}: {e}"
    except (RecursionError, MemoryError, OverflowError) as e:
        return f"{path}: too deeply nested to compile ({type(e).__name__})"
    return ""
