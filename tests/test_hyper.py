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

from harness import jails, sandbox
from harness.agents.host import agent_sha
from harness.edits import fence_for
from harness.hyper import gates as agentgates
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
    return f"DESCRIPTION: {description}\n    assert "a default value of helper() calls something" in agentgates.static(source).error
    # Past the contract gate (as a gate the static check missed would let it), the sandbox still contains it: the
    # tree it sees is a read-only copy.
    rejection = gates(relay, source, agentgates.Limits())
    assert rejection is not None and rejection.stage == "import" and "Read-only file system" in rejection.error
    assert not target.exists()


def test_a_fork_bomb_at_import_finds_no_process_to_make(relay):
    source = RELAY + "\n\nclass Bomb:\n    import os\n    pid = os.fork()\n"
    assert "in class Bomb: an assignment whose value calls something" in agentgates.static(source).error
    rejection = gates(relay, source, agentgates.Limits())
    assert rejection is not None and rejection.stage == "import" and "BlockingIOError" in rejection.error


# --- a candidate that looks for the gates ---------------------------------------------------------------------

# It writes down everything it can see of where it runs: the command, the limits, the folder, the environment, the
# model that answered and whether a tool worked; a sleeper would behave only where these say "gate".
LOOKER = RELAY.replace(
    "from harness.task import Proposal\n",
    "import json\nimport os\nimport resource\nimport sys\n\nfrom harness.task import Proposal\n",
).replace(
    "    text = llm.complete(",
    "    reply = llm.complete(system='', messages=[{'role': 'user', 'content': 'X?'}], max_tokens=50)\n"
    "    limits = [resource.getrlimit(getattr(resource, 'RLIMIT_' + k)) for k in ('AS', 'CPU', 'FSIZE', 'NPROC')]\n"
    "    seen = {'argv': sys.argv, 'limits': limits, 'cwd': os.getcwd(), 'env': dict(os.environ),\n"
    "            'model': reply.model, 'tool': llm.tool('view_file', {'path': 'train.py'})[1]}\n"
    "    print('SEEN ' + json.dumps(seen, sort_keys=True), file=sys.stderr)\n"
    "    text = reply.text.strip() or llm.complete(",
)


def seen(log: Path) -> dict:
    line = next(line for line in log.read_text().splitlines() if line.startswith("SEEN "))
    return json.loads(line.removeprefix("SEEN "))


def test_the_gates_child_is_the_child_a_proposal_runs_in(relay, fake_anthropic):
    assert LOOKER != RELAY and "SEEN" in LOOKER
    fake_anthropic.reply("ok", input_tokens=0, output_tokens=0)
    for value in ("2.9", "2.8", "2.7"):
        fake_anthropic.reply(value)
    fake_anthropic.reply(LOOKER)  # generation 1: its smoke test looks around
    fake_anthropic.reply("2.0")  # 4: its first turn of probation looks around too
    out = hyper(relay, fake_anthropic, "--max-experiments", "4")
    assert out.returncode == 0, out.stderr
    at_gates = seen(relay / "runs" / "h" / "generation-1.gates.log")
    at_work = seen(relay / "runs" / "h" / "4.agent.log")
    for where in (at_gates, at_work):  # a fresh id for every child, at the gates as at work
        assert len(where["env"].pop("AUTORESEARCH_RUN_ID")) == 32
    assert at_gates == at_work, {k: (at_gates[k], at_work[k]) for k in at_gates if at_gates[k] != at_work.get(k)}
    assert at_gates["tool"] is True and at_gates["model"] == at_work["model"] != "smoke-stub"
    assert at_gates["limits"][3] == [0, 0]  # no process may be started, at the gates or at work


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
    for value in ("2.9", "2.8", "2.0"):  # the champion's record: three windows
        fake_anthropic.reply(value)
    fake_anthropic.reply(HUNTER)  # generation 1: passes the gates (its smoke test hunts too); it calls no LLM
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
    sleeper = RELAY + "\n\nHUGE = 10 ** 10 ** 10\n"  # passes the contract gate; its import never ends
    fake_anthropic.reply("ok", input_tokens=0, output_tokens=0)
    for value in ("2.2", "2.1", "2.0"):
        fake_anthropic.reply(value)
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


# --- a sleeper: behaves at the gates and on probation, fails as champion ----------------------------------------

SLEEPER = RELAY.replace(
    '    value = text if text.replace(".", "", 1).isdigit() else "2.5"',
    '    if text == "raise":\n        raise RuntimeError("asleep")\n'
    '    if text == "same":\n        return Proposal("nothing to change", task.mutable_content)\n'
    '    if text == "junk":\n        return Proposal("junk", "def (:\\n")\n'
    '    value = text if text.replace(".", "", 1).isdigit() else "2.5"',
).replace(
    '    reply = llm.complete(system="", messages=[{"role": "user", "content": "rewrite"}], max_tokens=50)\n'
    '    return Proposal("a rewrite", reply.text)',
    '    return Proposal("myself again", task.agent_source)',
)


def test_a_sleeper_that_fails_as_champion_and_rewrites_itself_gives_its_place_back(relay, fake_anthropic):
    assert SLEEPER != RELAY and "myself again" in SLEEPER
    fake_anthropic.reply("ok", input_tokens=0, output_tokens=0)
    for value in ("2.95", "2.9", "2.85"):  # 1-3: the seed's record, three small keeps
        fake_anthropic.reply(value)
    fake_anthropic.reply(SLEEPER)  # generation 1
    for value in ("2.3", "1.8", "1.25"):  # 4-6: probation, three keeps larger than the seed's: accepted
        fake_anthropic.reply(value)
    for kind in ("same", "raise", "junk"):  # 7-9: the champion fails a different way each window
        fake_anthropic.reply(kind)
    fake_anthropic.reply(RELAY)  # generation 4, by the agent back in its place: unchanged
    out = hyper(relay, fake_anthropic, "--generations", "4")
    assert out.returncode == 0, out.stderr
    accepted, itself, again, reverted, last = rows(relay, "generation")
    assert (accepted["generation"], accepted["status"]) == (1, "accepted")
    # Its rewrite hands back its own source: no rewrite, and no way around the record it answers for.
    for g in (itself, again):
        assert (g["status"], g["stage"]) == ("rejected", "scope") and "unchanged: no rewrite" in g["error"]
    assert [r["status"] for r in rows(relay, "experiment")[7:]] == ["invalid"] * 3
    assert (reverted["generation"], reverted["status"], reverted["stage"]) == (1, "reverted", "record")
    assert "its 3 experiments as champion (kept 0, 3 gave no metric) did worse than the record" in reverted["error"]
    assert reverted["scores"] == {"reference": [1, 2, 3], "record": [7, 8, 9]}
    assert (reverted["champion_sha"], reverted["agent_sha"]) == (agent_sha(SLEEPER.encode()), agent_sha(RELAY.encode()))
    assert (last["generation"], last["champion_sha"]) == (4, agent_sha(RELAY.encode()))
    untouched(relay, RELAY)
    assert git(relay, "log", "-1", "--format=%s", "autoresearch/h") == "agent: back to the agent before generation 1"
    table = cli(relay, "log", "--tag", "h").stdout
    assert "reverted  record  back to the previous champion (its 3 experiments" in table


# --- a champion that deals for its candidate ----------------------------------------------------------------------

# The champion throws its own turn whenever its candidate's experiments are in the history (a pair of probation, as
# the pair rule had it), and its rewrite is a candidate that never keeps anything.
THROWER = RELAY.replace(
    "def propose(task, llm):\n",
    "def propose(task, llm):\n"
    '    if any(a.description.startswith("cand:") for a in task.history):\n'
    '        return Proposal("thrown", task.mutable_content)\n',
)
NEVER = '''"""The thrower's candidate: it proposes an edit that is always worse."""

from harness.task import Proposal


def propose(task, llm):
    return Proposal("cand: X to 3.5", task.mutable_content.replace("X = 2.7", "X = 3.5"))


def rewrite(task, llm):
    return Proposal("same", task.agent_source)
'''


@pytest.fixture
def thrower(tmp_path: Path) -> Path:
    return project(tmp_path, THROWER)


def test_a_champion_cannot_throw_turns_for_its_candidate_which_is_judged_on_its_record(thrower, fake_anthropic):
    fake_anthropic.reply("ok", input_tokens=0, output_tokens=0)
    for value in ("2.9", "2.8", "2.7"):  # 1-3: the champion's record, before the rewrite
        fake_anthropic.reply(value)
    fake_anthropic.reply(NEVER)  # generation 1
    out = hyper(thrower, fake_anthropic, "--generations", "1")
    assert out.returncode == 0, out.stderr
    (generation,) = rows(thrower, "generation")
    assert (generation["status"], generation["stage"]) == ("rejected", "probation")
    assert generation["scores"]["reference"] == [1, 2, 3] and generation["scores"]["candidate"] == [4, 5]
    # Every turn of probation was the candidate's: the champion had none to throw.
    experiments = rows(thrower, "experiment")
    assert [(r["id"], r["agent"]) for r in experiments[4:]] == [(4, "gen1"), (5, "gen1")]
    assert "thrown" not in {r["description"] for r in experiments}
    untouched(thrower, THROWER)
