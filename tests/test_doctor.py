"""`autoresearch doctor`: the machine as a night uses it, each failure with its fix, exit 0 when a night can run."""

from __future__ import annotations

from pathlib import Path

from harness.testing import TEST_KEY, FakeAnthropic, cli, toy_program


def test_doctor_checks_the_machine_as_a_run_meets_it_and_proves_the_key_for_free(project: Path):
    with FakeAnthropic() as server:
        env = {"ANTHROPIC_API_KEY": TEST_KEY, "ANTHROPIC_BASE_URL": server.url}
        out = cli(project, "doctor", env=env)
        requests = list(server.requests)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    for what in ("python", "git", "program.md", "sandbox", "limits", "GPUs", "torch", "disk", "API key"):
        assert any(line.split(":")[0].split()[-1:] == what.split()[-1:] for line in lines), what
    assert "a run is told 5 s and killed at 20 s" in out.stdout
    assert "API key: accepted by" in out.stdout and "free token count" in out.stdout
    assert [r.path for r in requests] == ["/v1/messages/count_tokens"]  # one call, and not one that is billed
    assert out.stdout.rstrip().endswith("a night can run here")


def test_doctor_names_each_failure_with_its_fix_and_exits_1(project: Path, fake_anthropic: FakeAnthropic):
    (project / "program.md").write_text(toy_program(sandbox="required"))
    env = {
        "ANTHROPIC_API_KEY": "sk-wrong",
        "ANTHROPIC_BASE_URL": fake_anthropic.url,
        "AUTORESEARCH_BWRAP": "/bin/false",  # a bubblewrap that cannot start anything
    }
    out = cli(project, "doctor", env=env)
    assert out.returncode == 1
    text = out.stdout
    assert "FAIL  sandbox:" in text and "fix: install bubblewrap" in text
    assert "FAIL  API key: ANTHROPIC_API_KEY: 401" in text and "fix: check the key" in text
    assert text.rstrip().endswith("a night cannot run here until each FAIL above is fixed")
