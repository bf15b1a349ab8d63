"""The code is linted and formatted (ruff), and every CLI command has help with an example."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]])
def test_ruff_is_clean(args):
    out = subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_command_has_help_with_an_example():
    from click.testing import CliRunner

    from harness.cli import main

    assert main.commands
    for name, _command in main.commands.items():
        result = CliRunner().invoke(main, [name, "--help"])
        assert result.exit_code == 0, name
        assert "Example:" in result.output, f"'autoresearch {name} --help' has no example"


def test_readme_lists_every_command():
    from harness.cli import main

    readme = (ROOT / "README.md").read_text()
    for name in main.commands:
        assert f"autoresearch {name}" in readme, f"README.md does not mention 'autoresearch {name}'"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = next(line for line in ci.splitlines() if "pytest" in line)
    assert command in readme


def _pytest(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")} | (env or {})
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    return subprocess.run(command, cwd=ROOT, env=full, capture_output=True, text=True, timeout=600)


@pytest.mark.slow  # it collects the whole suite
def test_the_fast_tier_is_most_of_the_suite_and_starts_no_night():
    readme = (ROOT / "README.md").read_text()
    assert 'python -m pytest -m "not slow"' in readme
    out = _pytest("--collect-only", "-q", "-m", "not slow")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    fast = {line for line in out.stdout.splitlines() if "::" in line}
    selected, total = map(int, re.findall(r"(\d+)/(\d+) tests collected", out.stdout)[0])
    assert selected == len(fast) and selected >= total / 2
    assert "tests/test_ledger.py::test_torn_last_line_is_repaired_and_returned" in fast
    # A night in a child (cli), a night by Popen, a night in this process, a server: each is in the slow tier.
    for slow in (
        "tests/test_loop.py::test_a_night_with_the_optuna_agent_leaves_a_readable_branch",
        "tests/test_loop.py::test_one_loop_per_repository",
        "tests/test_loop.py::test_a_bug_leaves_a_crash_log_and_its_reason_in_the_ledger_and_status",
        "tests/test_llm.py::test_timeout_is_retried",
    ):
        assert slow not in fast


@pytest.mark.slow  # it runs pytest
def test_a_test_that_needs_the_sandbox_fails_in_ci_without_it_and_is_skipped_elsewhere():
    one = "tests/test_sandbox.py::test_run_has_no_capabilities_and_owns_nothing_outside"
    elsewhere = _pytest(one, "-q", env={"AUTORESEARCH_BWRAP": "none"})
    assert elsewhere.returncode == 0 and "1 skipped" in elsewhere.stdout, elsewhere.stdout[-2000:]
    ci = _pytest(one, "-q", env={"AUTORESEARCH_BWRAP": "none", "CI": "true"})
    assert ci.returncode == 1 and "CI is set: the sandbox is expected" in ci.stdout, ci.stdout[-2000:]
