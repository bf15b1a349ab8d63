"""Shared fixtures: real git repositories in tmp_path, a fake Messages API, no state outside tmp_path."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from types import CodeType, FunctionType

import pytest

from harness import sandbox
from harness.testing import TOY_TRAIN, FakeAnthropic, make_repo, toy_program

ROOT = Path(__file__).resolve().parent.parent

# A test is `slow` when it starts a night, a server or a benchmark, or trains a model: it uses one of these, itself,
# through a fixture, or through a helper of its own module. The marker is derived from what a test uses, not written
# by hand, so a new test that starts a night lands in the slow tier by itself. `python -m pytest -m "not slow"` is the
# fast tier; a test slow for another reason says so with `@pytest.mark.slow`.
SLOW_NAMES = frozenset(
    {
        "cli",  # the harness's command line in a child process: a night, mostly
        "FakeAnthropic",  # a Messages API server
        "fake_anthropic",
        "open_session",  # a night in this process
        "runner",
        "ray",  # a Ray instance
        "torch",  # a model, trained and scored
    }
)
SLOW_STRINGS = (
    frozenset({"-m", "harness"}),  # `[PY, "-m", "harness", ...]`: a night in a child process of its own
    frozenset({"bench"}),  # `ROOT / "bench" / ...`: a benchmark script
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        names, strings = _uses(item)
        if names & SLOW_NAMES or any(s <= strings for s in SLOW_STRINGS):
            item.add_marker(pytest.mark.slow)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("sandbox") is not None:
        require_sandbox()


def require_sandbox() -> sandbox.Sandbox:
    """The sandbox this machine gives runs. Without one the test is skipped, saying why; in CI (`CI=true`), which
    installs what the sandbox needs, it fails instead, so that a broken sandbox never passes as a skipped test."""
    found = sandbox.probe("auto")
    if not found.active:
        why = f"no OS sandbox here: {found.missing}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{why} (CI is set: the sandbox is expected)", pytrace=False)
        pytest.skip(why)
    return found


def _uses(item: pytest.Function) -> tuple[set[str], set[str]]:
    """What a test uses: its fixtures, and the names and strings in its code, its fixtures' and its helpers' code."""
    names, strings = set(item.fixturenames), set[str]()
    seen: set[int] = set()
    for defs in item._fixtureinfo.name2fixturedefs.values():
        for fixturedef in defs:
            _scan(fixturedef.func, seen, names, strings)
    _scan(item.function, seen, names, strings)
    return names, strings


def _scan(fn: object, seen: set[int], names: set[str], strings: set[str]) -> None:
    code = getattr(fn, "__code__", None)
    if not isinstance(code, CodeType) or id(code) in seen:
        return
    seen.add(id(code))
    mine: set[str] = set()
    stack = [code]
    while stack:
        c = stack.pop()
        mine.update(c.co_names)
        strings.update(k for k in c.co_consts if isinstance(k, str))
        stack.extend(k for k in c.co_consts if isinstance(k, CodeType))
    names |= mine
    module = getattr(fn, "__globals__", {})
    for name in mine:
        helper = module.get(name)
        if isinstance(helper, FunctionType) and helper.__module__ == module.get("__name__"):
            _scan(helper, seen, names, strings)


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
def sandboxed() -> sandbox.Sandbox:
    """The sandbox this machine gives runs; without one the test is skipped, saying why (in CI it fails)."""
    return require_sandbox()


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    """A started FakeAnthropic expecting TEST_KEY; stopped after the test."""
    with FakeAnthropic() as server:
        yield server
