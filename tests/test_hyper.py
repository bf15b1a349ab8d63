"""`autoresearch hyper` end to end: scripted rewrites from the fake API, each candidate through the gates and
probation, the champion untouched by whatever a rejected one tried, and the night consistent after a kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from harness import agentgates, sandbox, workspace
from harness.edits import fence_for
from harness.host import agent_sha
from harness.paths import Layout
from harness.program import load
from harness.repo import Repo
from harness.task import Task
from harness.testing import PY, TEST_KEY, TOY_TRAIN, FakeAnthropic, cli, git, make_repo, toy_program

ROOT = Path(__file__).resolve().parent.parent
SEED = (ROOT / "agent.py").read_text()
SANDBOXED = sandbox.probe("auto").active
MODE = "auto" if SANDBOXED else "off"  # hyper refuses `auto` without a sandbox; CI without bubblewrap runs unisolated
needs_sandbox = pytest.mark.sandbox


# The champion of the gate tests: its rewrite hands the model's reply on word for word, so each scripted candidate
# reaches the gates as it is (the seed agent would repair a syntax error with the model first).
RELAY = '''"""Relay agent: propose sets X to the reply; rewrite returns the reply as the new agent.py."""

from harness.task import Proposal


def propose(task, llm):
    text = llm.complete(system="", messages=[{"role": "user", "content": "X?"}], max_tokens=50).text.strip()
    value = text if text.replace(".", "", 1).isdigit() else "2.5"  # the smoke test's stub reply is a whole file
    lines = [f"X = {value}" if line.startswith("X = ") else line for line in task.mutable_content.splitlines()]
    return Proposal(f"X to {value}", "\\n".join(lines) + "\\n")


def rewrite(task, llm):
    reply = llm.complete(system="", messages=[{"role": "user", "content": "rewrite"}], max_tokens=50)
    return Proposal("a rewrite", reply.text)
'''


def project(tmp_path: Path, agent: str) -> Path:
    program = toy_program(sandbox=MODE, baseline_runs=1, confirm=0, patience=2)
    files = {"train.py": TOY_TRAIN, "program.md": program, "prepare.py": "# fixed evaluation\n", "agent.py": agent}
    return make_repo(tmp_path / "project", files)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return project(tmp_path, SEED)


@pytest.fixture
def relay(tmp_path: Path) -> Path:
    return project(tmp_path, RELAY)


def env(server: FakeAnthropic) -> dict[str, str]:
    return {"ANTHROPIC_API_KEY": TEST_KEY, "ANTHROPIC_BASE_URL": server.url}


def edit(search: str, replace: str, description: str) -> str:
    return f"DESCRIPTION: {description}\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n"


def whole(source: str, description: str = "a new agent") -> str:
    """A rewrite's reply: the whole new agent.py in a fence longer than any in it."""
    fence = fence_for(source)
    return f"DESCRIPTION: {description}\n{fence}python\n{source}{fence}\n"


def hyper(repo: Path, server: FakeAnthropic, *args: str) -> subprocess.CompletedProcess[str]:
    return cli(repo, "hyper", "--tag", "h", "--window", "1", *args, env=env(server), timeout=300)


def rows(repo: Path, kind: str) -> list[dict]:
    found = map(json.loads, (repo / "experiments.log").read_text().splitlines())
    return [r for r in found if r["kind"] == kind]


def untouched(repo: Path, seed: str) -> None:
    """The champion agent is the seed, on the branch and in the tree, and nothing else in the tree changed."""
    assert (repo / "agent.py").read_text() == seed
    assert git(repo, "show", "autoresearch/h:agent.py") + "\n" == seed
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == ""


# --- candidates -----------------------------------------------------------------------------------------------

MINIMAL = '''"""A small agent: {what}."""

from harness.task import Proposal


def propose(task, llm):
    reply = llm.complete(system="", messages=[{{"role": "user", "content": "go"}}], max_tokens=100)
    return Proposal("from the reply", task.mutable_content + "# " + reply.text.splitlines()[0] + "\\n")


def rewrite(task, llm):
    return Proposal("same", task.agent_source)
'''

PROPOSE = "def propose(task, llm):"
WRAPPED = "@(lambda f: lambda task: f(task, 1))\n" + PROPOSE
RETURN = 'return Proposal(f"X to {value}", '
REJECTED = {
    "syntax": (RELAY.replace(PROPOSE, PROPOSE[:-1]), "compile", "agent.py:6:"),
    "missing module": ("import no_such_module_here\n" + RELAY, "import", "No module named 'no_such_module_here'"),
    "writes a file": (RELAY + "\nopen('planted.txt', 'w').write('x')\n", "contract", "agent.py:17: a top-level expr"),
    "os.system": (RELAY + "\nimport os\nos.system('touch planted.txt')\n", "contract", "statement runs at import"),
    "computed constant": (RELAY + "\nimport os\nHOME = os.system('true')\n", "contract", "computed by a call"),
    "renamed": (RELAY.replace(PROPOSE, "def suggest(task, llm):"), "contract", "no top-level def propose"),
    "extra parameter": (RELAY.replace(PROPOSE, "def propose(task, llm, extra):"), "contract",
                        "propose(task, llm, extra) must take exactly (task, llm)"),
    "*args": (RELAY.replace(PROPOSE, "def propose(*args):"), "contract", "propose(*args) must take"),
    "wrapped": (RELAY.replace(PROPOSE, WRAPPED), "signature", "propose(task, llm) cannot be called"),
    "wrong type": (RELAY.replace(RETURN, "return dict(d=f'{value}', c="), "smoke",
                   "propose returned dict, not a harness.task.Proposal"),
    "identical": (RELAY, "scope", "the candidate is the champion agent.py unchanged"),
    "too large": (RELAY + "\nPAD = '" + "x" * 300_000 + "'\n", "scope", "over the limit"),
}  # fmt: skip


def test_every_bad_rewrite_is_rejected_at_its_gate_and_the_champion_is_untouched(relay, fake_anthropic):
    repo = relay
    fake_anthropic.reply("ok", input_tokens=0, output_tokens=0)  # the key check
    for i, (source, _, _) in enumerate(REJECTED.values()):
        fake_anthropic.reply(f"{2.0 + i / 100:.2f}")  # the champion's window
        fake_anthropic.reply(source)  # its rewrite
    out = hyper(repo, fake_anthropic, "--generations", str(len(REJECTED)))
    assert out.returncode == 0, out.stderr
    generations = rows(repo, "generation")
    assert [(g["generation"], g["status"]) for g in generations] == [(i + 1, "rejected") for i in range(len(REJECTED))]
    for g, (name, (source, stage, error)) in zip(generations, REJECTED.items(), strict=True):
        assert (g["stage"], name) == (stage, name) and error in g["error"], (name, g["error"])
        assert g["champion_sha"] == agent_sha(RELAY.encode())
        if stage == "scope":
            assert g["commit"] is None
        else:  # kept where a person can read it, beside the branch
            assert git(repo, "rev-parse", f"refs/autoresearch/h/agents/{g['generation']}") == g["commit"]
            assert git(repo, "show", f"{g['commit']}:agent.py") + "\n" == source.rstrip("\n") + "\n"
    assert not (repo / "planted.txt").exists()
    untouched(repo, RELAY)
    assert git(repo, "rev-parse", "refs/tags/autoresearch/h/seed-agent") == git(repo, "rev-parse", "main")
    # Every experiment of the night was proposed by the seed agent, and the morning's table says so.
    assert {r["agent_sha"] for r in rows(repo, "experiment") if r["id"]} == {agent_sha(RELAY.encode())}
    table = cli(repo, "log", "--tag", "h").stdout
    assert table.count("[seed]") == len(REJECTED) + 1 and "   gen 9  rejected  signature  TypeError" in table
    assert "generations:      12 (0 accepted; rejected at contract 6, scope 2," in table


# --- probation: the seed agent rewrites itself as a whole file ----------------------------------------------------

# A whole agent.py that holds a line of three backticks of its own: the reply's longer fence keeps it whole.
BETTER = SEED.replace("Good experiments are small,", "Good experiments are small and bold,").replace(
    "MAX_TOKENS = 8000", 'EXAMPLE = """\n```python\nX = 1\n```\n"""  # how a fenced file looks\nMAX_TOKENS = 8000'
)
WORSE = BETTER.replace("small and bold,", "large and vague,")


def test_a_better_rewrite_is_accepted_after_probation_and_a_worse_one_rejected(repo, fake_anthropic):
    fake_anthropic.reply("ok", input_tokens=0, output_tokens=0)
    fake_anthropic.reply(edit("X = 3.0", "X = 2.0", "X to 2"))  # 1: the seed's window: keep
    fake_anthropic.reply(whole(BETTER, "a bolder prompt"), input_tokens=900, output_tokens=3000)  # generation 1
    fake_anthropic.reply(edit("X = 2.0", "X = 1.5", "X to 1.5"))  # 2: the candidate's turn: keep
    fake_anthropic.reply(edit("X = 1.5", "X = 3.5", "X to 3.5"))  # 3: the champion's turn: discard, far worse
    fake_anthropic.reply(edit("Y = 2", "Y = 4", "Y to 4"))  # 4: the new champion's window: keep
    fake_anthropic.reply(whole(WORSE, "a vaguer prompt"))  # generation 2
    fake_anthropic.reply(edit("X = 1.5", "X = 3.0", "X back to 3"))  # 5: the candidate's turn: discard
    fake_anthropic.reply(edit("Y = 4", "Y = 5", "Y to 5"))  # 6: the champion's turn: keep
    out = hyper(repo, fake_anthropic, "--generations", "2")
    assert out.returncode == 0, out.stderr
    assert "reached --generations 2" in out.stdout
    first, second = rows(repo, "generation")
    assert (first["status"], first["stage"], first["error"]) == ("accepted", "probation", "")
    assert first["scores"]["candidate"] == 1 and first["scores"]["champion"] == 0
    assert first["agent_sha"] == agent_sha(BETTER.encode()) and first["cost_usd"] > 0
    assert (second["status"], second["stage"]) == ("rejected", "probation")
    assert "worse experiments than the champion" in second["error"]
    # The accepted agent is the champion, on the branch as a commit of its own and in the tree, fences and all.
    assert (repo / "agent.py").read_text() == BETTER
    log = git(repo, "log", "--format=%s", "autoresearch/h")
    assert "agent: a bolder prompt" in log.splitlines()
    assert git(repo, "show", f"{second['commit']}:agent.py") + "\n" == WORSE
    assert git(repo, "rev-parse", "refs/autoresearch/h/agents/2") == second["commit"]
    experiments = rows(repo, "experiment")
    assert [(r["id"], r["agent"], r["status"]) for r in experiments[1:]] == [
        (1, "llm", "keep"), (2, "gen1", "keep"), (3, "llm", "discard"),
        (4, "llm", "keep"), (5, "gen2", "discard"), (6, "llm", "keep"),
    ]  # fmt: skip
    assert experiments[4]["agent_sha"] == agent_sha(BETTER.encode())
    # The rewrite was asked for with the champion's source and the fence that holds it.
    rewrite = json.dumps(fake_anthropic.requests[2].json["messages"])
    assert "improve yourself" in rewrite and "````" in rewrite
    # A restart finds the branch where the ledger says it is: the accepted agent's commit is no hand edit.
    fake_anthropic.reply("ok", input_tokens=0, output_tokens=0)
    again = hyper(repo, fake_anthropic, "--max-experiments", "0")
    assert again.returncode == 0, again.stderr
    table = cli(repo, "log", "--tag", "h").stdout
    assert "gen 1  accepted" in table and "gen 2  rejected  probation" in table


# --- side effects the static check cannot see ---------------------------------------------------------------------


def gates(repo: Path, source: str, limits: agentgates.Limits) -> agentgates.Rejection | None:
    """The child gates of `source` as the night runs them: a scratch copy, the agents' jail, the real child."""
    layout = Layout(repo)
    path = layout.agent_copy("t", "1")
    path.parent.mkdir(parents=True)
    path.write_text(source)
    config = load(layout.program).config
    jail = workspace.agent_jail(sandbox.probe(config.sandbox), Repo(repo), config, layout.work("t", "gates"), [path])
    task = Task("", "train.py", TOY_TRAIN, "val_bpb", "minimize", None, None)
    return agentgates.isolated(path, task, jail, layout.generation_log("t", 1, "gates"), limits)


def test_a_class_body_that_sleeps_forever_is_stopped_by_the_import_gate(relay):
    source = RELAY + "\n\nclass Slow:\n    import time\n    time.sleep(10**6)\n"
    assert agentgates.static(source) is None  # the static check cannot see into a class body
    rejection = gates(relay, source, agentgates.Limits(import_seconds=2))
    assert rejection is not None and rejection.stage == "import"
    assert "the import gate took longer than 2 s" in rejection.error


@needs_sandbox
def test_a_default_argument_that_writes_a_file_is_contained_by_the_sandbox(relay):
    target = relay / "planted.txt"
    source = RELAY + f"\n\ndef helper(x=open({str(target)!r}, 'w').write('x')):\n    return x\n"
    assert agentgates.static(source) is None
    assert gates(relay, source, agentgates.Limits()) is None  # it wrote into its own scratch copy, thrown away
    assert not target.exists()


def test_a_fork_bomb_at_import_finds_no_process_to_make(relay):
    source = RELAY + "\n\nclass Bomb:\n    import os\n    pid = os.fork()\n"
    rejection = gates(relay, source, agentgates.Limits())
    assert rejection is not None and rejection.stage == "import" and "BlockingIOError" in rejection.error


# --- a candidate that hunts for the key and tampers while proposing ----------------------------------------------

HUNTER = '''"""A candidate that looks for the key and tries to write where it must not, then proposes a fine edit."""

import glob
import os

from harness.task import Proposal


def _write(path):
    try:
        with open(path, "a") as f:
            f.write("tampered\\n")
        return "written"
    except OSError:
        return "denied"


def _key():
    seen = list(os.environ.values())
    for name in glob.glob("/proc/*/environ") + glob.glob("/proc/*/cmdline") + glob.glob(os.path.expanduser("~/.*")):
        try:
            with open(name, "rb") as f:
                seen.append(f.read().decode(errors="replace"))
        except OSError:
            pass
    return "found " + next(s for s in seen if "sk-ant" in s) if any("sk-ant" in s for s in seen) else "none"


def propose(task, llm):
    root = os.environ.get("AUTORESEARCH_REPO", os.getcwd())
    targets = {"ledger": "experiments.log", "git": ".git/config", "hook": ".git/hooks/post-checkout",
               "train": "train.py", "agent": "agent.py"}
    tried = " ".join(f"{k}:{_write(os.path.join(root, v))}" for k, v in targets.items())
    content = task.mutable_content.replace("X = 3.0", "X = 2.5").replace("X = 2.0", "X = 2.5")
    return Proposal(f"hunt key:{_key()} {tried}", content)


def rewrite(task, llm):
    return Proposal("same", task.agent_source)
'''


@needs_sandbox
def test_a_candidate_that_hunts_for_the_key_and_tampers_finds_and_changes_nothing(relay, fake_anthropic):
    git_config = (relay / ".git" / "config").read_bytes()
    fake_anthropic.reply("ok", input_tokens=0, output_tokens=0)
    fake_anthropic.reply("2.0")  # the champion's window
    fake_anthropic.reply(HUNTER)  # generation 1: passes the gates (its smoke test hunts too)
    fake_anthropic.reply("1.5")  # probation: the champion's turn (the hunter calls no LLM)
    out = hyper(relay, fake_anthropic, "--generations", "1")
    assert out.returncode == 0, out.stderr
    hunt = next(r for r in rows(relay, "experiment") if r["agent"] == "gen1")
    assert hunt["description"] == ("hunt key:none ledger:denied git:denied hook:denied train:denied agent:denied"), (
        hunt["description"]
    )
    assert (relay / ".git" / "config").read_bytes() == git_config
    assert not (relay / ".git" / "hooks" / "post-checkout").exists()
    assert "tampered" not in (relay / "experiments.log").read_text()
    for path in [relay / "experiments.log", *(relay / "runs").rglob("*")]:
        assert not path.is_file() or TEST_KEY.encode() not in path.read_bytes(), path
    untouched(relay, RELAY)


# --- a kill -9 in the middle of a generation ----------------------------------------------------------------------


def test_a_kill_during_the_gates_is_recorded_and_the_night_goes_on(relay, fake_anthropic):
    sleeper = RELAY + "\n\nclass Slow:\n    import time\n    time.sleep(10**6)\n"
    fake_anthropic.reply("ok", input_tokens=0, output_tokens=0)
    fake_anthropic.reply("2.0")
    fake_anthropic.reply(sleeper)  # its import never ends: the harness is killed while it waits
    marker = relay / "runs" / "h" / "generation.json"
    command = [PY, "-m", "harness", "hyper", "--tag", "h", "--window", "1"]
    night = subprocess.Popen(command, cwd=relay, env={**os.environ, **env(fake_anthropic)},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (marker.exists() and json.loads(marker.read_text() or "{}").get("stage") == "import"):
            assert night.poll() is None and time.monotonic() < deadline, "the night never reached the import gate"
            time.sleep(0.1)
    finally:
        night.send_signal(signal.SIGKILL)
        night.wait()
    fake_anthropic.reply("ok", input_tokens=0, output_tokens=0)
    fake_anthropic.reply("1.5")
    fake_anthropic.reply(RELAY)  # generation 2: identical, rejected at once
    out = hyper(relay, fake_anthropic, "--generations", "1")
    assert out.returncode == 0, out.stderr
    first, second = rows(relay, "generation")
    assert (first["generation"], first["status"], first["stage"]) == (1, "rejected", "import")
    assert first["error"] == "the harness stopped during this generation (killed, power cut or Ctrl-C)"
    assert git(relay, "show", "refs/autoresearch/h/agents/1:agent.py") + "\n" == sleeper.rstrip("\n") + "\n"
    assert (second["generation"], second["stage"]) == (2, "scope")
    assert not marker.exists()
    untouched(relay, RELAY)


# --- a champion that keeps raising --------------------------------------------------------------------------------

FLAKY = RELAY.replace(
    '    value = text if text.replace(".", "", 1).isdigit() else "2.5"',
    '    if text == "boom":\n        raise RuntimeError("boom")\n'
    '    value = text if text.replace(".", "", 1).isdigit() else "2.5"',
)


def test_a_champion_that_raises_three_times_in_a_row_gives_its_place_back(relay, fake_anthropic):
    fake_anthropic.reply("ok", input_tokens=0, output_tokens=0)
    for value in ("2.5", "2.4", "2.3", "2.2"):  # 1-4: the relay's window
        fake_anthropic.reply(value)
    fake_anthropic.reply(FLAKY)  # generation 1
    for value in ("1.5", "3.9", "3.8", "1.3"):  # 5-8: probation, candidate first, then champion first
        fake_anthropic.reply(value)
    for _ in range(3):  # 9-11: the new champion raises
        fake_anthropic.reply("boom")
    out = cli(relay, "hyper", "--tag", "h", "--window", "4", "--max-experiments", "11", env=env(fake_anthropic))
    assert out.returncode == 0, out.stderr
    accepted, reverted = rows(relay, "generation")
    assert (accepted["generation"], accepted["status"], accepted["scores"]["candidate"]) == (1, "accepted", 2)
    assert (reverted["generation"], reverted["status"], reverted["stage"]) == (1, "reverted", "propose")
    assert "raised in propose 3 times in a row" in reverted["error"] and "RuntimeError: boom" in reverted["error"]
    assert (reverted["champion_sha"], reverted["agent_sha"]) == (agent_sha(FLAKY.encode()), agent_sha(RELAY.encode()))
    assert [r["status"] for r in rows(relay, "experiment")[9:]] == ["invalid"] * 3
    untouched(relay, RELAY)
    assert git(relay, "log", "-1", "--format=%s", "autoresearch/h") == "agent: back to the agent before generation 1"
