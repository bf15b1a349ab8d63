"""The checks a proposal must pass before it costs any compute."""

from __future__ import annotations

MAX_FILE_BYTES = 2 * 2**20  # a proposal larger than this is not a plausible edit of one source file


def check_proposal(content: str, champion: str, path: str) -> str:
    """Why a proposed file cannot be run (empty diff, too large, does not parse), or "" when it can."""
    if not isinstance(content, str):
        return "the proposal has no file content"
    if content == champion:
        return f"the proposal does not change {path}"
    if len(content.encode("utf-8")) > MAX_FILE_BYTES:
        return f"the proposed {path} is over {MAX_FILE_BYTES // 2**20} MiB"
    if path.endswith(".py"):
        try:
            compile(content, path, "exec", dont_inherit=True)
        except SyntaxError as e:
            return f"{path}:{e.lineno}: {e.msg}"
        except ValueError as e:  # null bytes
            return f"{path}: {e}"
    return ""
