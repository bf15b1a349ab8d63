"""The code is linted and formatted (ruff), and every CLI command has help with an example."""

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
