"""Hostile runs and agent files against the whole harness, through the real CLI: with the OS sandbox they find no
key, reach no network, plant nothing that runs later and forge nothing; without it the same plants are undone."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import childenv, proctable, sandbox
from harness.testing import PY, TEST_KEY, FakeAnthropic, cli, git, toy_program

needs_sandbox = pytest.mark.sandbox
NO_SANDBOX = {sandbox.BWRAP_ENV: "none"}  # how a test makes the sandbox unavailable


def rows(repo: Path, kind: str = "experiment") -> list[dict]:
    return [r for r in map(json.loads, (repo / "experiments.log").read_text().splitlines()) if r["kind"] == kind]


def agent_file(path: Path, body: str) -> Path:
    """An agent file whose propose() returns the champion with `body` (lines of Python) put before it."""
    code = body.strip() + "\n"
    path.write_text(
        "from harness.task import Proposal\n\n\n"
        "def propose(task, llm):\n"
        f"    return Proposal('hostile', {code!r} + task.mutable_content.replace('X = 3.0', 'X = 2.0'))\n"
    )
    return path


SCAN_ENVIRON = """
import glob, os
found = []
for path in glob.glob('/proc/*/environ'):
    try:
        data = open(path, 'rb').read()
    except OSError:
        continue
    if b'sk-ant' in data or b'ANTHROPIC_API_KEY' in data:
        found.append(path)
seen = [p for p in os.listdir('/proc') if p.isdigit()]
open(os.environ['AUTORESEARCH_OUT'] + '/scan.json', 'w').write(__import__('json').dumps({'found': found, 'pids': seen}))
"""


@pytest.fixture
def keyed(fake_anthropic: FakeAnthropic) -> Iterator[dict[str, str]]:
    """The harness holds a real-looking key (checked against the fake API), so there is one to look for."""
    fake_anthropic.responder = lambda request: "ok"
    yield {"ANTHROPIC_API_KEY": TEST_KEY, "ANTHROPIC_BASE_URL": fake_anthropic.url}


@needs_sandbox
def test_a_run_scanning_every_process_environment_finds_no_key(project: Path, tmp_path: Path, keyed):
    agent = agent_file(tmp_path / "scan.py", SCAN_ENVIRON)
    out = cli(project, "run", "--tag", "scan", "--agent", str(agent), "--max-experiments", "1", env=keyed)
    assert out.returncode == 0, out.stderr
    exp = rows(project)[-1]
    assert exp["status"] in ("keep", "discard") and exp["sandbox"] == "bwrap"
    scan = json.loads((project / "runs" / "scan" / "1.out" / "scan.json").read_text())
    assert scan["found"] == []
    assert len(scan["pids"]) <= 3  # its own processes (the namespace's init, the shell, python), not the harness


@needs_sandbox
def test_an_agent_file_scanning_every_process_environment_finds_no_key(project: Path, tmp_path: Path, keyed):
    spy = tmp_path / "spy.py"
    spy.write_text(
        "import glob, os\nfrom harness.task import Proposal\n\n\ndef propose(task, llm):\n"
        "    found = []\n"
        "    for path in glob.glob('/proc/*/environ'):\n"
        "        try:\n"
        "            data = open(path, 'rb').read()\n"
        "        except OSError:\n"
        "            continue\n"
        "        if b'sk-ant' in data:\n"
        "            found.append(path)\n"
        "    pids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
        "    seen = []\n"
        "    for name in ('.git', 'runs'):\n"
        "        seen.append(os.listdir(name) if os.path.isdir(name) else None)\n"
        "    try:\n"
        "        seen.append(open('experiments.log').read())\n"
        "    except OSError:\n"
        "        seen.append(None)\n"
        "    notes = f'found={found} pids={len(pids)} git_or_ledger={seen}'\n"
        "    return Proposal('spy', task.mutable_content.replace('X = 3.0', 'X = 2.0'), notes=notes)\n"
    )
    out = cli(project, "run", "--tag", "spy", "--agent", str(spy), "--max-experiments", "1", env=keyed)
    assert out.returncode == 0, out.stderr
    notes = rows(project)[-1]["notes"]
    assert "found=[]" in notes and "git_or_ledger=[[], [], None]" in notes  # empty, or unreadable
    assert int(notes.split("pids=")[1].split()[0]) <= 3


PLANT = """
import os, stat
hook = '.git/hooks/post-commit'
try:
    open(hook, 'w').write('#!/bin/sh\\nenv > "$HOME/planted-hook-ran"\\n')
    os.chmod(hook, 0o755)
    with open('.git/config', 'a') as f:
        f.write('[core]\\n\\tfsmonitor = "env > /tmp/planted-fsmonitor-ran"\\n')
    with open('experiments.log', 'a') as f:
        f.write('{"kind":"experiment","tag":"plant","id":99,"status":"keep","metric":0.0}\\n')
    print('planted')
except OSError as e:
    print('could not plant:', e)
"""


@pytest.mark.parametrize("mode", [pytest.param("auto", marks=needs_sandbox), "off"])
def test_planted_hooks_config_and_ledger_rows_never_run_or_land(project: Path, tmp_path: Path, mode: str):
    (project / "program.md").write_text(toy_program(sandbox=mode))
    git(project, "commit", "-qam", f"sandbox {mode}")
    home = tmp_path / "home"
    home.mkdir()
    agent = agent_file(tmp_path / "plant.py", PLANT)
    out = cli(
        project, "run", "--tag", "plant", "--agent", str(agent), "--max-experiments", "2", env={"HOME": str(home)}
    )
    assert out.returncode == 0, out.stderr
    exps = rows(project)
    assert [r["id"] for r in exps] == [0, 1, 2] and 99 not in [r["id"] for r in exps]  # no forged row landed
    log = (project / exps[1]["log"]).read_text()
    if mode == "auto":
        assert "could not plant" in log  # .git is not even visible inside the sandbox
    else:
        assert "planted" in log and exps[1]["status"] == "tampered"
        assert ".git/hooks/post-commit" in exps[1]["reason"] and "experiments.log" in exps[1]["reason"]
    # Whatever was planted is gone, and nothing of it ran during the harness's own git commands.
    assert not (project / ".git" / "hooks" / "post-commit").exists()
    assert "fsmonitor" not in (project / ".git" / "config").read_text()
    assert not (home / "planted-hook-ran").exists() and not Path("/tmp/planted-fsmonitor-ran").exists()
    assert git(project, "status", "--porcelain") == ""


@needs_sandbox
def test_a_run_reaches_the_network_only_when_program_md_allows_it(project: Path, tmp_path: Path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    port = listener.getsockname()[1]
    connect = (
        "import os, socket\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=2).close()\n"
        "    said = 'connected'\n"
        "except OSError as e:\n"
        "    said = f'refused: {e}'\n"
        "open(os.environ['AUTORESEARCH_OUT'] + '/net.txt', 'w').write(said)\n"
    )
    agent = agent_file(tmp_path / "net.py", connect)
    try:
        for tag, allowed in (("closed", False), ("open", True)):
            (project / "program.md").write_text(toy_program(network="true" if allowed else "false"))
            git(project, "commit", "-qam", f"network {allowed}")
            out = cli(project, "run", "--tag", tag, "--agent", str(agent), "--max-experiments", "1")
            assert out.returncode == 0, out.stderr
            said = (project / "runs" / tag / "1.out" / "net.txt").read_text()
            assert said.startswith("connected" if allowed else "refused"), said
            git(project, "checkout", "-q", "main")
    finally:
        listener.close()


@needs_sandbox
def test_a_daemon_a_run_leaves_behind_ends_with_it(project: Path, tmp_path: Path):
    daemon = (
        "import os, sys, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        os.execve(sys.executable, [sys.executable, '-c', 'import time\\nwhile True: time.sleep(0.05)'], {})\n"
        "    os._exit(0)\n"
    )
    agent = agent_file(tmp_path / "daemon.py", daemon)
    out = cli(project, "run", "--tag", "d", "--agent", str(agent), "--max-experiments", "1")
    assert out.returncode == 0, out.stderr
    # No process of any run of this repository is left: not the daemon, whatever it did to its environment.
    assert proctable.scan(childenv.OWNER, str(project)) == []
    leftovers = subprocess.run(["pgrep", "-f", "while True: time.sleep"], capture_output=True, text=True).stdout
    assert leftovers.strip() == ""


def test_without_the_sandbox_auto_says_what_is_missing_and_required_refuses(project: Path):
    out = cli(project, "run", "--tag", "fb", "--agent", "optuna", "--max-experiments", "1", env=NO_SANDBOX)
    assert out.returncode == 0, out.stderr
    assert "sandbox: auto: no OS sandbox" in out.stdout and "runs are not isolated" in out.stdout
    assert {r["sandbox"] for r in rows(project)} == {"none (auto)"}
    note = next(r for r in rows(project, "note") if r["message"] == "night started")
    assert note["sandboxed"] is False
    (project / "program.md").write_text(toy_program(sandbox="required"))
    git(project, "commit", "-qam", "required")
    out = cli(project, "run", "--tag", "fb2", "--agent", "optuna", env=NO_SANDBOX)
    assert out.returncode == 2
    assert "sandbox: required, but bubblewrap cannot start here" in out.stderr


def test_a_planted_compiled_file_in_the_harness_never_runs(project: Path, tmp_path: Path):
    # Without the sandbox a run can write into a protected folder's __pycache__; the harness removes what changed.
    (project / "lib").mkdir()
    (project / "lib" / "__init__.py").write_text("VALUE = 1\n")
    (project / "program.md").write_text(toy_program(sandbox="off", protected="[prepare.py, agent.py, lib/]"))
    git(project, "add", "-A")
    git(project, "commit", "-qm", "a protected package")
    compile_it = "import py_compile; py_compile.compile('lib/__init__.py')"
    subprocess.run([PY, "-c", compile_it], cwd=project, check=True)  # the .pyc Python writes for it
    plant = (
        "import glob, py_compile, os\n"
        "open('evil.py', 'w').write('VALUE = 666\\n')\n"
        "target = glob.glob('lib/__pycache__/__init__.*.pyc')[0]\n"
        "py_compile.compile('evil.py', cfile=target)\n"
        "os.remove('evil.py')\n"
    )
    agent = agent_file(tmp_path / "pyc.py", plant)
    out = cli(project, "run", "--tag", "pyc", "--agent", str(agent), "--max-experiments", "1")
    assert out.returncode == 0, out.stderr
    assert any(p.startswith("lib/__pycache__/") for p in rows(project)[-1]["extra"]["removed"])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    value = subprocess.run(
        [PY, "-c", "import lib; print(lib.VALUE)"], cwd=project, capture_output=True, text=True, env=env
    )
    assert value.stdout.strip() == "1"


@needs_sandbox
def test_a_protected_file_beside_copied_ones_is_shown_read_only_and_a_run_cannot_swap_it(tmp_path: Path):
    # The run's scratch copy leaves protected files out; the sandbox shows them from the repository. A run that imports
    # one sees it, and one that tries to write it, or to swap the folder holding it, changes nothing outside its copy.
    from harness.testing import TOY_TRAIN, make_repo

    hostile = (
        "import os, shutil, lib.scorer, lib.other\n"
        "for attempt in (lambda: open('lib/scorer.py', 'a').write('X = 0\\n'),\n"
        "                lambda: os.rename('lib', 'lib_old'),\n"
        "                lambda: shutil.rmtree('lib')):\n"
        "    try:\n        attempt()\n    except OSError:\n        pass\n"
    )
    repo = make_repo(tmp_path / "p", {
        "train.py": hostile + TOY_TRAIN, "program.md": toy_program(protected=["lib/scorer.py", "prepare.py"]),
        "prepare.py": "# fixed\n", "lib/__init__.py": "", "lib/scorer.py": "SCALE = 1\n", "lib/other.py": "",
    })  # fmt: skip
    out = cli(repo, "run", "--tag", "s", "--agent", "optuna", "--max-experiments", "1")
    assert out.returncode == 0, out.stderr
    baseline = rows(repo)[0]
    assert baseline["status"] == "keep" and baseline["metric"] is not None  # it ran, importing the protected file
    assert (repo / "lib" / "scorer.py").read_text() == "SCALE = 1\n"
    assert git(repo, "status", "--porcelain") == ""
