"""Helpers shared by the tests and the benchmarks: real repositories, a fake Messages API server, trivial agents.

Nothing here is used by the harness itself; it ships with it so that tests and bench/ import it the same way.
"""

from harness.testing.agents import AGENT_FILE, FixedEdit, Quiet
from harness.testing.fake_api import TEST_KEY, FakeAnthropic, error_body, estimate_tokens, message_body
from harness.testing.repos import PY, TOY_TRAIN, alive, cli, git, make_repo, toy_program, wait_for_line, wait_until

__all__ = [
    "AGENT_FILE",
    "PY",
    "TEST_KEY",
    "TOY_TRAIN",
    "FakeAnthropic",
    "FixedEdit",
    "Quiet",
    "alive",
    "cli",
    "error_body",
    "estimate_tokens",
    "git",
    "make_repo",
    "message_body",
    "toy_program",
    "wait_for_line",
    "wait_until",
]
