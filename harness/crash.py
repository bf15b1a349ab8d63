"""A bug's record: the traceback and the versions that produced it, in a crash log a person can attach to a report."""

from __future__ import annotations

import platform
import sys
import traceback
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

PACKAGES = ("autoresearch", "anthropic", "gitpython", "optuna", "torch", "msgspec", "ray")


def write(path: Path, error: BaseException, context: str = "") -> Path:
    """Append one crash report (time, versions, what was under way, the traceback) to `path`; returns `path`."""
    lines = [
        f"### {datetime.now(UTC).isoformat(timespec='seconds')} {type(error).__name__}: {error}",
        f"python:   {sys.version.split()[0]} ({platform.platform()})",
        "versions: " + ", ".join(f"{name} {_version(name)}" for name in PACKAGES),
        f"command:  {' '.join(sys.argv)}",
    ]
    if context:
        lines.append(f"during:   {context}")
    lines += ["", "".join(traceback.format_exception(error)).rstrip(), "", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return path


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"
