"""Real git repositories for tests: a toy task with a smooth metric, and the CLI run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

PY = sys.executable

# A tiny experiment: the metric is a smooth function of two constants, so an agent can improve it in a few steps.
TOY_TRAIN = '''\
"""Toy experiment. Usage: python train.py"""

X = 3.0  # the knob the agent tunes
Y = 2    # an integer knob

loss = (X - 1.25) ** 2 + 0.1 * (Y - 5) ** 2 + 0.5
print("---")
print(f"val_bpb: {loss:.6f}")
'''


def toy_program(**front: object) -> str:
    """A program.md for the toy task; keyword arguments set or override front-matter keys."""
    config = {
        "run": f"{PY} train.py",
        "budget": 5,
        "timeout": 20,
        "search": "\n  X: {low: 0.0, high: 4.0}\n  Y: {low: 1, high: 8}",
        **front,
    }
    config["run"] = json.dumps(config["run"])  # a JSON string is a YAML string, whatever quotes the command holds
    lines = [f"{k}: {v}" for k, v in config.items()]
    return "---\n" + "\n".join(lines) + "\n---\n# Toy\nMake val_bpb small.\n"


def git(cwd: Path, *args: str) -> str:
    """Run git in `cwd` and return its output; a failure raises."""
    out = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def make_repo(path: Path, files: dict[str, str]) -> Path:
    """A real git repository with the given files committed on main (train.py is written as given, others dedented)."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    for name, content in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(content) if name != "train.py" else content)
    (path / ".gitignore").write_text("experiments.log\nruns/\n__pycache__/\n")
    git(path, "add", "-A")
    git(path, "-c", "user.name=Test", "-c", "user.email=test@example.com", "commit", "-q", "-m", "initial")
    return path


def cli(
    cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `python -m harness ...` as a real subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [PY, "-m", "harness", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def wait_until(condition: Callable[[], object], limit: float = 60.0, what: str = "the condition") -> None:
    """Return once `condition()` is true; AssertionError naming `what` past `limit` seconds."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"{what} did not happen within {limit:g} s")


def wait_for_line(path: Path, limit: float = 20.0) -> str:
    """The content of a file a child writes, once it has written a whole line; AssertionError past `limit` seconds."""
    wait_until(lambda: path.exists() and path.read_text().endswith("\n"), limit, f"{path.name} written")
    return path.read_text()


def alive(pid: int) -> bool:
    """Whether a pid runs; a zombie does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


# A run for the executors that ship a commit elsewhere: it says how many processes it can see (in the sandbox's own
# PID namespace, only its own few).
SHIPPED_TRAIN = """import os
X = 3.0  # the knob
Y = 2
print("processes in sight:", sum(name.isdigit() for name in os.listdir("/proc")))
print("val_bpb:", (X - 1.25) ** 2 + 0.5)
"""
