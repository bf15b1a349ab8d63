"""Shared fixtures: real git repositories in tmp_path, a fake Messages API, no state outside tmp_path."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.testing import TOY_TRAIN, FakeAnthropic, make_repo, toy_program

ROOT = Path(__file__).resolve().parent.parent

# A suite started in the background by a script (`cmd &`, nohup) inherits SIGINT ignored, and an ignored signal stays
# ignored in every child: the harness the Ctrl-C tests interrupt would never see it. A handler of ours is reset to the
# default in children instead, so each gets Python's KeyboardInterrupt as it would from a terminal.
signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test touches the person's files, caches or keys, or reaches a real API; none leaves a process behind (a
    harness a failed test never stopped would run on, and slow every later test)."""
    for name in list(os.environ):
        if name.startswith("ANTHROPIC_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "test@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "test@example.com")
    yield
    for pid in _working_in(tmp_path):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _working_in(folder: Path) -> list[int]:
    """Processes other than this one whose working directory is in `folder` (Linux /proc; elsewhere none)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*") if Path("/proc/self").exists() else ():
        with contextlib.suppress(OSError):
            cwd = Path(os.readlink(entry / "cwd"))
            if int(entry.name) != os.getpid() and (cwd == folder or folder in cwd.parents):
                found.append(int(entry.name))
    return found


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


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    """A started FakeAnthropic expecting TEST_KEY; stopped after the test."""
    with FakeAnthropic() as server:
        yield server
