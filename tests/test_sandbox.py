"""The OS sandbox: hostile children under the real bwrap find no key, no harness, no network and no way out."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import harness
from harness import jails, process, sandbox
from harness.errors import SandboxError
from harness.testing import alive, git, make_repo, wait_for_line

ROOT = Path(__file__).resolve().parent.parent

PY = sys.executable
FAKE_KEY = "sk-ant-api03-" + "f4ke" * 10  # a made-up key, shaped like a real one


@pytest.fixture
def sb(sandboxed: sandbox.Sandbox) -> sandbox.Sandbox:
    """The sandbox this machine gives runs; without one the test is skipped, saying why (in CI it fails)."""
    return sandboxed


@dataclass(frozen=True)
class World:
    """A repository, the scratch copy a run works in, and the output folder it keeps."""

    sb: sandbox.Sandbox
    repo: Path
    tree: Path
    out: Path
    view: sandbox.View

    def env(self) -> dict[str, str]:
        """The clean environment a run gets, built from nothing."""
        path = f"{Path(PY).parent}:/usr/bin:/bin"
        return {"PATH": path, "HOME": sandbox.HOME, "AUTORESEARCH_OUT": str(self.out)}

    def start(self, code: str, *args: str, sink: Path, network: bool = False) -> process.Child:
        """Start `code` as train.py in the scratch copy, under the sandbox, its output into `sink`."""
        (self.tree / "train.py").write_text(textwrap.dedent(code))
        sandbox.own(self.sb, self.tree)
        view = dataclasses.replace(self.view, network=network)
        with sink.open("wb") as out:
            return sandbox.spawn(self.sb, view, [PY, "train.py", *args], env=self.env(), stdout=out, stderr=out)

    def run(self, code: str, *args: str, network: bool = False) -> tuple[int, str]:
        """Run `code` to its end; its exit status and output."""
        sink = self.repo.parent / f"run-{uuid.uuid4().hex}.log"
        child = self.start(code, *args, sink=sink, network=network)
        status = child.wait(60)
        if status is None:
            child.kill_tree(grace=1.0)
            pytest.fail(f"the sandboxed run did not end: {sink.read_text()}")
        return status, sink.read_text()


def last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


@pytest.fixture
def world(tmp_path: Path, sb: sandbox.Sandbox) -> World:
    repo = make_repo(
        tmp_path / "project",
        {
            "train.py": "print('val_bpb: 1.0')\n",
            "prepare.py": "# the fixed evaluation\n",
            "program.md": "---\nbudget: 5\n---\n# Toy\n",
            "lib/helper.py": "VALUE = 3\n",
        },
    )
    (repo / ".venv" / "lib").mkdir(parents=True)
    (repo / ".venv" / "lib" / "site.py").write_text("# the venv\n")
    (repo / "data").mkdir()
    (repo / "data" / "train.bin").write_bytes(b"\x00" * 64)
    (repo / "secret").mkdir()
    (repo / "secret" / "labels.txt").write_text("the held-out answers\n")
    (repo / "holdout.bin").write_text("held-out bytes\n")
    (repo / "experiments.log").write_text('{"kind": "note"}\n')
    out = repo / "runs" / "night" / "1"
    out.mkdir(parents=True)
    sandbox.own(sb, out)
    tracked = git(repo, "ls-files").splitlines()
    tree = jails.scratch(sb, repo, tmp_path / "scratch", tracked)
    view = jails.repo_view(
        repo, tree, protected=["prepare.py", "program.md"], hidden=["secret", "holdout.bin"], writable=[(out, out)]
    )
    return World(sb, repo, tree, out, view)


def descends(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            return False
        pid = int(stat[stat.rfind(")") + 2 :].split()[1])
    return False


def host_pid(ns_pid: int, ancestor: int) -> int:
    """The pid, as the harness sees it, of the descendant of `ancestor` that is `ns_pid` inside the sandbox."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            status = Path(f"/proc/{name}/status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        nspids = next(line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:"))
        if len(nspids) >= 2 and int(nspids[-1]) == ns_pid and descends(int(name), ancestor):
            return int(name)
    raise AssertionError(f"no process of the sandbox has pid {ns_pid} inside")


def gone(pid: int, limit: float = 5.0) -> bool:
    deadline = time.monotonic() + limit
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def kill_carrying(token: str) -> None:
    """SIGKILL every process whose command line holds `token`: what a broken sandbox left behind."""
    for name in os.listdir("/proc"):
        try:
            if (
                name.isdigit()
                and int(name) != os.getpid()
                and token.encode() in Path(f"/proc/{name}/cmdline").read_bytes()
            ):
                os.kill(int(name), signal.SIGKILL)
        except (FileNotFoundError, ProcessLookupError):
            continue


def digest(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


# --- what a run can see ----------------------------------------------------------------------------------------

SCAN = """\
import json, os, sys, time
from pathlib import Path
key = sys.argv[1].encode()
found, seen = [], {}
for name in os.listdir("/proc"):
    if name.isdigit():
        try:
            seen[name] = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\\0", b" ").decode()
            if key in Path(f"/proc/{name}/environ").read_bytes():
                found.append(name)
        except OSError:
            pass
try:
    first = key in Path("/proc/1/environ").read_bytes()
except OSError as error:
    first = error.strerror
Path(os.environ["AUTORESEARCH_OUT"], "scanned").write_text(str(os.getpid()) + "\\n")
print(json.dumps({"found": found, "first": first, "seen": seen}), flush=True)
time.sleep(60)
"""


def test_run_finds_no_key_in_any_environ_and_sees_only_its_own_processes(world, tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    sink = tmp_path / "scan.log"
    child = world.start(SCAN, FAKE_KEY, sink=sink)
    try:
        inner = int(wait_for_line(world.out / "scanned"))
        # From outside: neither bwrap nor anything it started carries the key, not even bwrap's own first process.
        tree = [child.pid, host_pid(inner, child.pid)]
        tree += [pid for pid in map(int, filter(str.isdigit, os.listdir("/proc"))) if descends(pid, child.pid)]
        for pid in tree:
            assert FAKE_KEY.encode() not in Path(f"/proc/{pid}/environ").read_bytes()
    finally:
        child.kill_tree(grace=1.0)
    report = last_json(sink.read_text())
    assert report["found"] == []
    assert report["first"] is False or report["first"] == "Permission denied"
    # Only the sandbox's init (bwrap) and the run itself: no harness, nothing of the machine's.
    assert len(report["seen"]) <= 3, report["seen"]
    assert all(cmdline.startswith((world.sb.bwrap, f"{PY} train.py")) for cmdline in report["seen"].values())


CAPS = """\
import ctypes, json, os, time
from pathlib import Path
status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
libc = ctypes.CDLL(None, use_errno=True)
unmounted = libc.umount2(b"/proc", 2) == 0  # MNT_DETACH: a root process would see the host's /proc again
try:
    os.setuid(0)
    became_root = True
except PermissionError:
    became_root = False
Path(os.environ["AUTORESEARCH_OUT"], "pid").write_text(str(os.getpid()) + "\\n")
print(json.dumps({k: status[k].strip() for k in ("CapEff", "CapPrm", "NoNewPrivs")}
                 | {"unmounted": unmounted, "became_root": became_root}), flush=True)
time.sleep(60)
"""


def test_run_has_no_capabilities_and_owns_nothing_outside(world, tmp_path):
    sink = tmp_path / "caps.log"
    child = world.start(CAPS, sink=sink)
    try:
        inner = host_pid(int(wait_for_line(world.out / "pid")), child.pid)
        uids = next(line for line in Path(f"/proc/{inner}/status").read_text().splitlines() if line.startswith("Uid"))
    finally:
        child.kill_tree(grace=1.0)
    report = last_json(sink.read_text())
    assert report["CapEff"] == report["CapPrm"] == "0000000000000000"
    assert report["NoNewPrivs"] == "1"
    assert not report["unmounted"]
    assert not report["became_root"]
    expected = sandbox.NOBODY[0] if os.geteuid() == 0 else os.geteuid()
    assert set(uids.split()[1:]) == {str(expected)}


# --- no process outlives the sandbox ---------------------------------------------------------------------------

DAEMON = """\
import os, sys, time
from pathlib import Path
out = Path(os.environ["AUTORESEARCH_OUT"])
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        (out / "daemon.pid").write_text(str(os.getpid()) + "\\n")
        # A cleared environment and a new session: nothing left to find it by but the namespace.
        os.execve(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)", "daemon-" + sys.argv[1]], {})
    os._exit(0)
while not (out / "go").exists():  # the test has found the daemon
    time.sleep(0.01)
if sys.argv[2] == "stay":
    time.sleep(600)
"""

HARNESS = """\
import json, subprocess, sys, time
bwrap = subprocess.Popen(json.loads(sys.argv[1]), env=json.loads(sys.argv[2]))
print(bwrap.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("end", ["run exits", "kill_tree", "SIGKILL to bwrap alone", "harness killed"])
def test_daemon_that_cleared_its_env_and_double_forked_dies_with_the_sandbox(world, tmp_path, end):
    token = uuid.uuid4().hex
    (world.tree / "train.py").write_text(DAEMON)
    sandbox.own(world.sb, world.tree)
    argv = [PY, "train.py", token, "exit" if end == "run exits" else "stay"]
    outer = None
    if end == "harness killed":
        command = sandbox.command(world.sb, world.view, argv)
        outer = subprocess.Popen(
            [PY, "-c", HARNESS, json.dumps(command), json.dumps(world.env())], stdout=subprocess.PIPE
        )
        assert outer.stdout is not None
        bwrap_pid = int(outer.stdout.readline())
        child = None
    else:
        child = sandbox.spawn(world.sb, world.view, argv, env=world.env())
        bwrap_pid = child.pid
    try:
        daemon = host_pid(int(wait_for_line(world.out / "daemon.pid")), bwrap_pid)
        assert f"daemon-{token}".encode() in Path(f"/proc/{daemon}/cmdline").read_bytes()
        (world.out / "go").write_text("")
        if end == "run exits":
            assert child is not None and child.wait(20) == 0
        elif end == "kill_tree":
            assert child is not None and child.kill_tree(grace=1.0) == []
        elif end == "SIGKILL to bwrap alone":
            os.kill(bwrap_pid, signal.SIGKILL)
        else:
            assert outer is not None
            outer.kill()
            outer.wait()
        assert gone(daemon), f"the daemon outlived the sandbox ({end})"
        assert gone(bwrap_pid)
    finally:
        if child is not None:
            child.kill_tree(grace=1.0)
        kill_carrying(token)
        if outer is not None:
            if outer.poll() is None:
                outer.kill()
                outer.wait()
            assert outer.stdout is not None
            outer.stdout.close()


# --- what a run can reach --------------------------------------------------------------------------------------

CONNECT = """\
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3).close()
    print("connected")
except OSError as error:
    print(type(error).__name__)
"""


@pytest.mark.parametrize("network", [False, True])
def test_loopback_listener_of_the_harness_is_reached_only_with_network(world, network):
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        status, output = world.run(CONNECT, str(port), network=network)
    assert status == 0, output
    assert (output.strip() == "connected") is network, output


WRITE_NEXT_TO_ITSELF = """\
from pathlib import Path
here = Path(__file__).resolve().parent
(here / "checkpoint.pt").write_bytes(b"weights")
(here / "cache").mkdir()
(here / "cache" / "tokens.bin").write_bytes(b"cache")
import lib.helper  # leaves lib/__pycache__ next to it
print("wrote", here)
"""


def test_checkpoint_written_next_to_the_script_stays_in_the_scratch_copy(world):
    before = digest(world.repo)
    status, output = world.run(WRITE_NEXT_TO_ITSELF)
    assert status == 0, output
    assert f"wrote {world.repo}" in output  # the run sees itself at the repository's own path
    assert (world.tree / "checkpoint.pt").read_bytes() == b"weights"
    assert (world.tree / "cache" / "tokens.bin").exists()
    assert (world.tree / "lib" / "__pycache__").is_dir()
    assert not (world.repo / "checkpoint.pt").exists()
    assert not (world.repo / "cache").exists()
    assert not (world.repo / "lib" / "__pycache__").exists()
    assert digest(world.repo) == before


# Opening for writing is the test; nothing is written, so that a broken sandbox fails the test without harming the
# installation it runs from.
TAMPER = """\
import json, os, sys, uuid
from pathlib import Path
results = {}
for target in sys.argv[1:]:
    path = Path(target)
    try:
        if target.endswith("/"):
            planted = path / f"planted-{uuid.uuid4().hex}"
            planted.touch(exist_ok=False)
            planted.unlink()
        else:
            open(path, "r+b").close()
        results[target] = "writable"
    except OSError as error:
        results[target] = error.strerror
git = Path(sys.argv[1]).parent / ".git"
print(json.dumps({"results": results, "git": sorted(p.name for p in git.iterdir()) if git.exists() else None}))
"""


def test_protected_files_git_ledger_venv_and_the_harness_cannot_be_written(world):
    repo = world.repo
    harness_dir = Path(harness.__file__).resolve().parent
    targets = [
        repo / "prepare.py",
        repo / "program.md",
        repo / ".git" / "HEAD",
        repo / "experiments.log",
        repo / ".venv" / "lib" / "site.py",
        harness_dir / "sandbox.py",
        Path(sys.prefix) / "pyvenv.cfg",
    ]
    folders = [
        repo / ".git",
        repo / ".git" / "hooks",
        repo / "runs",
        repo / ".venv",
        harness_dir / "__pycache__",
        Path(sys.prefix),
    ]
    before, git_before, harness_before = digest(repo), digest(repo / ".git"), digest(harness_dir)
    status, output = world.run(TAMPER, *map(str, targets), *(f"{folder}/" for folder in folders))
    assert status == 0, output
    report = last_json(output)
    assert "writable" not in report["results"].values(), report["results"]
    assert report["git"] == []  # .git is not even visible
    assert digest(repo) == before
    assert digest(repo / ".git") == git_before
    assert digest(harness_dir) == harness_before
    assert (world.tree / "prepare.py").read_text() == "# the fixed evaluation\n"


def test_run_in_a_worktree_sees_neither_its_git_file_nor_the_main_git(world, tmp_path):
    worktree = tmp_path / "worker-1"
    git(world.repo, "worktree", "add", "-q", "--detach", str(worktree))
    tree = jails.scratch(world.sb, worktree, tmp_path / "worker-scratch", git(worktree, "ls-files").splitlines())
    view = jails.repo_view(worktree, tree, protected=["prepare.py"], writable=[(world.out, world.out)])
    worker = World(world.sb, worktree, tree, world.out, view)
    main_git = world.repo / ".git"
    status, output = worker.run(PEEK, str(worktree / ".git"), str(main_git), str(main_git / "worktrees"))
    assert status == 0, output
    seen = last_json(output)["seen"]
    assert seen[str(worktree / ".git")] in ("", "Permission denied")  # the file that names the git folder
    assert seen[str(main_git)] == []
    assert seen[str(main_git / "worktrees")] == "No such file or directory"


@pytest.fixture
def fake_home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A home with credentials, readable by anyone, outside /tmp (which the sandbox replaces anyway)."""
    if not os.path.isdir("/var/tmp"):
        pytest.skip("no /var/tmp to make a home in outside /tmp")
    home = Path(tempfile.mkdtemp(prefix="autoresearch-test-home-", dir="/var/tmp"))
    try:
        (home / ".aws").mkdir()
        (home / ".netrc").write_text("machine example.com login me password hunter2\n")
        (home / ".aws" / "credentials").write_text("[default]\naws_secret_access_key = hunter2\n")
        for path in [home, home / ".aws"]:
            path.chmod(0o755)
        for path in [home / ".netrc", home / ".aws" / "credentials"]:
            path.chmod(0o644)  # so that only hiding, not permissions, keeps them from the run
        monkeypatch.setenv("HOME", str(home))
        yield home
    finally:
        shutil.rmtree(home)


PEEK = """\
import json, os, sys
from pathlib import Path
seen = {}
for target in sys.argv[1:]:
    path = Path(target)
    try:
        seen[target] = sorted(os.listdir(path)) if path.is_dir() else path.read_text()
    except OSError as error:
        seen[target] = error.strerror
home = Path(os.environ["HOME"])
(home / "scratch.txt").write_text("a run may use its own home")
print(json.dumps({"seen": seen, "home": str(home)}))
"""


def test_home_credentials_and_hidden_data_are_not_visible(world, fake_home):
    targets = [
        fake_home / ".netrc",
        fake_home / ".aws" / "credentials",
        fake_home,
        Path("/root"),
        Path("/home"),
        world.repo / "secret",
        world.repo / "secret" / "labels.txt",
        world.repo / "holdout.bin",
    ]
    status, output = world.run(PEEK, *map(str, targets))
    assert status == 0, output
    report = last_json(output)
    assert "hunter2" not in output
    assert "held-out" not in output
    assert report["seen"][str(fake_home)] == []
    assert report["seen"][str(world.repo / "secret")] == []
    assert report["seen"][str(world.repo / "holdout.bin")] in ("", "Permission denied")  # /dev/null, on a nodev mount
    # /root may show the folders that lead to the interpreter, bound back read-only; never root's own files.
    assert not {".bashrc", ".profile", ".ssh", ".netrc", ".aws", ".gitconfig", ".config"} & set(report["seen"]["/root"])
    assert report["home"] == sandbox.HOME


def test_file_written_to_the_output_folder_is_kept(world):
    status, output = world.run(
        "import os, pathlib; pathlib.Path(os.environ['AUTORESEARCH_OUT'], 'model.pt').write_bytes(b'kept')"
    )
    assert status == 0, output
    assert (world.out / "model.pt").read_bytes() == b"kept"


STOP = """\
import os, signal, sys
for pid in (os.getppid(), 1, int(sys.argv[1])):
    try:
        os.kill(pid, signal.SIGSTOP)
        print(pid, "sent")
    except OSError as error:
        print(pid, type(error).__name__)
print("still running")
"""


def test_sigstop_to_the_parent_it_can_see_reaches_neither_bwrap_nor_the_harness(world):
    # A stand-in for the harness, so that a broken sandbox stops it rather than the test.
    victim = subprocess.Popen([PY, "-c", "import time; time.sleep(60)"])
    try:
        status, output = world.run(STOP, str(victim.pid))
        state = Path(f"/proc/{victim.pid}/stat").read_text()
        assert state[state.rfind(")") + 2] != "T", "the harness's stand-in was stopped"
    finally:
        victim.kill()
        victim.wait()
    assert status == 0, output
    assert "still running" in output
    assert f"{victim.pid} ProcessLookupError" in output  # the harness's pid means nothing inside


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("raise SystemExit(0)", 0),
        ("raise SystemExit(3)", 3),
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", 128 + signal.SIGKILL),
        ("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", 128 + signal.SIGSEGV),
    ],
)
def test_exit_status_of_the_run_comes_back_through_bwrap(world, code, expected):
    status, output = world.run(code)
    assert status == expected, output


# --- the start-up probe and the command line -------------------------------------------------------------------


def fake_bwrap(tmp_path: Path, body: str) -> str:
    path = tmp_path / "fake-bwrap"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("missing", "No such file or directory"),
        ("not a program", "Permission denied"),
        ("fails", "no namespaces for you"),
        ("runs nothing", "could not write"),
    ],
)
def test_probe_with_a_bwrap_that_does_not_work_says_why(tmp_path, kind, reason):
    if kind == "missing":
        bwrap = str(tmp_path / "no-such-bwrap")
    elif kind == "not a program":
        (tmp_path / "notes.txt").write_text("not bwrap\n")
        bwrap = str(tmp_path / "notes.txt")
    elif kind == "fails":
        bwrap = fake_bwrap(tmp_path, "echo 'bwrap: no namespaces for you' >&2; exit 1")
    else:
        bwrap = fake_bwrap(tmp_path, "exit 0")
    found = sandbox.probe("auto", bwrap)
    assert not found.active
    assert bwrap in found.missing and reason in found.missing
    assert "not isolated" in found.missing
    with pytest.raises(SandboxError) as raised:
        sandbox.probe("required", bwrap)
    assert raised.value.exit_code == 2
    assert reason in str(raised.value) and "sandbox: auto" in str(raised.value)


def test_probe_opens_the_gpus_as_a_run_would(sb, tmp_path):
    assert sandbox.probe("auto", devices=("/dev/null",)).active
    locked = tmp_path / "nvidia0"  # a GPU that the run's user may not open: the run would fall back to the CPU
    locked.touch(mode=0o000)
    found = sandbox.probe("auto", devices=(str(locked),))
    assert not found.active
    assert f"cannot open {locked}" in found.missing


def test_sandbox_off_is_announced():
    found = sandbox.probe("off")
    assert not found.active
    assert found.missing.startswith("sandbox: off") and "not isolated" in found.missing


def test_gpu_devices_are_found_and_passed_through(tmp_path):
    dev = tmp_path / "dev"
    (dev / "nvidia-caps").mkdir(parents=True)
    for name in ["nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset", "null", "sda"]:
        (dev / name).touch()
    devices = sandbox.gpu_devices(dev)
    names = ["nvidia-caps", "nvidia-modeset", "nvidia-uvm", "nvidia-uvm-tools", "nvidia0", "nvidia1", "nvidiactl"]
    assert devices == tuple(str(dev / name) for name in names)
    assert sandbox.gpu_devices(tmp_path / "empty") == ()
    (dev / "kfd").touch()
    (dev / "dri").mkdir()
    assert sandbox.gpu_devices(dev)[-2:] == (str(dev / "kfd"), str(dev / "dri"))

    active = sandbox.Sandbox("auto", True, "/usr/bin/bwrap", None, "", "")
    view = sandbox.View(tree=tmp_path, at=tmp_path, cwd=tmp_path, devices=devices)
    argv = sandbox.command(active, view, ["python", "train.py"])
    after_dev = argv[argv.index("--dev") :]
    for device in devices:
        at = after_dev.index(device)
        assert after_dev[at - 1 : at + 2] == ["--dev-bind", device, device]
    assert argv[-3:] == ["--", "python", "train.py"]


def test_view_with_a_relative_path_is_refused_before_bwrap_sees_it(tmp_path):
    with pytest.raises(ValueError, match="absolute paths only: runs/out"):
        sandbox.View(tree=tmp_path, at=tmp_path, cwd=tmp_path, writable=((Path("runs/out"), Path("runs/out")),))


def test_spawn_refuses_an_environment_that_holds_a_credential(tmp_path):
    active = sandbox.Sandbox("auto", True, "/usr/bin/bwrap", None, "", "")
    view = sandbox.View(tree=tmp_path, at=tmp_path, cwd=tmp_path)
    with pytest.raises(ValueError, match="ANTHROPIC_API_KEY"):
        sandbox.spawn(active, view, ["true"], env={"PATH": "/bin", "ANTHROPIC_API_KEY": FAKE_KEY})


# --- a harness that is not root --------------------------------------------------------------------------------

UNPRIVILEGED = """\
import json, os, sys, tempfile
from pathlib import Path
from harness import process, sandbox, jails
sb = sandbox.probe("auto", sys.argv[1])
report = {"active": sb.active, "user": sb.user, "missing": sb.missing}
if sb.active:
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp, "project")
        repo.mkdir()
        (repo / ".git").mkdir()
        (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\\n")
        (repo / "prepare.py").write_text("# fixed\\n")
        tree = jails.scratch(sb, repo, Path(tmp, "scratch"), ["prepare.py"])
        view = jails.repo_view(repo, tree, protected=["prepare.py"])
        probe = (
            "echo x > checkpoint.pt; echo y >> prepare.py; ls -A .git; set -- /proc/[0-9]*; echo procs $#;"
            "grep CapEff /proc/self/status; unshare -U true && echo nested userns;"
            "touch .git/planted && echo planted in .git; touch /home/planted && echo planted in /home; exit 0"
        )
        log = Path(tmp, "log")
        with log.open("wb") as sink:
            child = sandbox.spawn(sb, view, ["/bin/sh", "-c", probe], env={"PATH": "/usr/bin:/bin"}, stdout=sink,
                                  stderr=sink)
            report["status"] = child.wait(30)
        report["output"] = log.read_text()
        report["kept"] = (tree / "checkpoint.pt").exists() and not (repo / "checkpoint.pt").exists()
        report["prepare"] = (repo / "prepare.py").read_text()
print(json.dumps(report))
"""


def nobody_python() -> str | None:
    """A Python 3.11+ that the user nobody can run (a root test's own may sit in root's 0700 home)."""
    nobody = {"user": sandbox.NOBODY[0], "group": sandbox.NOBODY[1], "extra_groups": []}
    for candidate in ["/usr/bin/python3", "/usr/local/bin/python3"]:
        check = "import sys; assert sys.version_info >= (3, 11)"
        if os.path.exists(candidate) and subprocess.run([candidate, "-c", check], **nobody).returncode == 0:
            return candidate
    return None


def test_harness_that_is_not_root_sandboxes_its_runs_in_a_user_namespace(sb):
    if os.geteuid() != 0:
        pytest.skip("this machine's harness is not root: every other test already runs the unprivileged sandbox")
    python = nobody_python()
    if python is None:
        pytest.skip("no Python 3.11+ that the user nobody can run, to stand in for a harness that is not root")
    nobody = {"user": sandbox.NOBODY[0], "group": sandbox.NOBODY[1], "extra_groups": []}
    if subprocess.run([sb.bwrap, "--version"], capture_output=True, **nobody).returncode != 0:
        pytest.skip(f"the user nobody cannot run {sb.bwrap}")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}  # nothing into harness/
    if subprocess.run([python, "-c", "import harness"], env=env, cwd="/", capture_output=True, **nobody).returncode:
        pytest.skip(f"the user nobody cannot read this checkout ({ROOT}; a folder of mktemp -d is private)")
    done = subprocess.run(
        [python, "-c", UNPRIVILEGED, sb.bwrap],
        env=env,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
        **nobody,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["active"], report["missing"]
    assert report["user"] is None
    assert report["status"] == 0, report["output"]
    lines = report["output"].splitlines()
    assert "Permission denied" in report["output"] or "Read-only" in report["output"]  # prepare.py
    assert report["prepare"] == "# fixed\n"
    assert report["kept"]
    assert "HEAD" not in report["output"]
    assert "procs 2" in lines  # bwrap's init and the shell
    assert "CapEff:\t0000000000000000" in lines
    assert "nested userns" not in report["output"]
    assert "planted in" not in report["output"]  # the covering folders are read-only, even to their owner
