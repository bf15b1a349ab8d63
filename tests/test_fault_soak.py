"""A bad API day, compressed: an hour's worth of faults between the replies of a scripted night, through the real CLI,
the real SDK and the fake Messages API. Every experiment is accounted for and the spend is exact to the token."""

from __future__ import annotations

import json
from pathlib import Path

from harness.llm import TIME_SCALE_ENV
from harness.pricing import price
from harness.testing import TEST_KEY, TOY_TRAIN, FakeAnthropic, cli, git, toy_program

MODEL = "claude-sonnet-4-6"
SCALE = 0.001  # an hour of waiting (backoffs, retry-after, the request deadline) becomes 3.6 s


def whole_file(x: float, description: str) -> str:
    content = TOY_TRAIN.replace("X = 3.0", f"X = {x}")
    return f"DESCRIPTION: {description}\n```python\n{content}```\n"


def test_an_hour_of_api_faults_loses_no_experiment_and_no_cent(project: Path, fake_anthropic: FakeAnthropic):
    (project / "program.md").write_text(toy_program(patience=3600, reflect_every=1000, agent_steps=0))
    git(project, "commit", "-qam", "a long patience, no reflections, no tools")
    api = fake_anthropic
    api.reply("ok", input_tokens=0, output_tokens=0)  # the key check
    served: list[tuple[int, int]] = []  # (input, output) tokens of every reply a proposal got

    def reply(x: float, description: str, tokens: tuple[int, int] = (2000, 300)) -> None:
        api.reply(whole_file(x, description), input_tokens=tokens[0], output_tokens=tokens[1])
        served.append(tokens)

    api.fault(429, retry_after=30)  # rate-limited: told to wait 30 s
    reply(2.0, "after a rate limit")
    api.fault(529, times=6)  # an overload storm, waited out with backoff
    reply(1.5, "after an overload storm")
    api.fault(500, times=2)
    reply(1.25, "after server errors")
    api.timeout(3.0)  # held past the (scaled) deadline of 0.9 s: cut and retried
    reply(1.1, "after a stall")
    api.drop()  # the connection dies half-way through the body
    reply(1.3, "after a dropped connection")
    api.malformed()  # a 200 whose JSON is cut off
    reply(1.4, "after a malformed body")
    api.fault(400)  # this one request is refused: its experiment is invalid, the night goes on
    reply(1.2, "after a bad request")
    api.fault(503, times=3)
    api.fault(429, retry_after_ms=500)
    reply(1.35, "after a mixed storm")

    env = {"ANTHROPIC_API_KEY": TEST_KEY, "ANTHROPIC_BASE_URL": api.url, TIME_SCALE_ENV: str(SCALE)}
    out = cli(project, "run", "--tag", "soak", "--agent", "llm", "--max-experiments", "9", env=env, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert api.pending == 0  # every scripted action was asked for: nothing skipped, nothing left

    rows = [json.loads(line) for line in (project / "experiments.log").read_text().splitlines()]
    exps = [r for r in rows if r["kind"] == "experiment"]
    assert [r["id"] for r in exps] == list(range(10))  # the baseline and nine experiments, none lost or doubled
    statuses = {r["description"]: r["status"] for r in exps[1:]}
    assert statuses.pop("") == "invalid"  # the refused request: an invalid row of its own, with the reason
    refused = next(r for r in exps if r["status"] == "invalid")
    assert "400" in refused["reason"] and "refused" in refused["reason"]
    assert set(statuses) == {
        "after a rate limit", "after an overload storm", "after server errors", "after a stall",
        "after a dropped connection", "after a malformed body", "after a bad request", "after a mixed storm",
    }  # fmt: skip
    assert set(statuses.values()) <= {"keep", "discard"}
    # The spend is exact: every reply a proposal got, priced; faults cost nothing; the key check was free.
    expected = sum(price(MODEL, i, o) for i, o in served)
    assert round(sum(r["cost_usd"] for r in exps), 6) == round(expected, 6)
    assert "rate-limited" in out.stdout and "overloaded" in out.stdout  # every wait was said as it happened
