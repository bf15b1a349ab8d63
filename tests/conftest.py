"""Shared fixtures: real git repositories in tmp_path, the CLI as a real subprocess, no state outside tmp_path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fake_anthropic import fake_anthropic  # noqa: F401  (the fixture)

ROOT = Path(__file__).resolve().parent.parent
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


def alive(pid: int) -> bool:
    """Whether a pid runs; a zombie does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def git(cwd: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def make_repo(path: Path, files: dict[str, str]) -> Path:
    """A real git repository with the given files committed on main."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    for name, content in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(content) if name != "train.py" else content)
    (path / ".gitignore").write_text("experiments.log\nruns/\n__pycache__/\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test touches the person's files, caches or keys, or reaches a real API."""
    for name in list(os.environ):
        if name.startswith("ANTHROPIC_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "test@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "test@example.com")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A repository with a toy train.py, a program.md for it, and protected files."""
    return make_repo(
        tmp_path / "project",
        {
            "train.py": TOY_TRAIN,
            "program.md": toy_program(),
            "prepare.py": "# fixed evaluation\n",
            "agent.py": (ROOT / "agent.py").read_text(),
        },
    )


def cli(
    cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `python -m harness ...` as a real subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [PY, "-m", "harness", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )
