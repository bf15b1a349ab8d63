"""Every run and evaluator inside limits (memory with its tmpfs, processes, bytes written), enforced by the kernel: a
run past one is its own crash naming it, and the night goes on; its peak memory and CPU time are its whole sandbox's.
What the evaluator is given from $AUTORESEARCH_OUT is regular files only, and old outputs are pruned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import cgroup, limits, sandbox
from harness.config import Config
from harness.limits import GIB, MIB, Limits, parse_size
from harness.testing import PY, TOY_TRAIN, cli, make_repo, toy_program

CONTROL = cgroup.find_control()
ACTIVE = sandbox.probe("auto").active
needs_memory = pytest.mark.skipif(not CONTROL.memory, reason=f"no memory cgroup here: {CONTROL.why}")
needs_pids = pytest.mark.skipif(not CONTROL.pids, reason=f"no pids cgroup here: {CONTROL.why}")
needs_sandbox = pytest.mark.skipif(not ACTIVE, reason="no OS sandbox here")


def rows(repo: Path, kind: str = "experiment") -> list[dict]:
    return [r for r in map(json.loads, (repo / "experiments.log").read_text().splitlines()) if r["kind"] == kind]


def hostile_night(tmp_path: Path, code: str, n: int = 1, **front: object) -> tuple[Path, list[dict], str]:
    """A night whose baseline is the honest toy and whose experiments 1..n run `code` before the toy's own lines;
    the night's rows and its output."""
    repo = make_repo(tmp_path / "r", {"train.py": TOY_TRAIN, "program.md": toy_program(**front)})
    agent = tmp_path / "hostile.py"
    agent.write_text(
        "from harness.task import Proposal\n\n\ndef propose(task, llm):\n"
        f"    code = {code!r}\n"
        "    mark = f'\\n# {task.experiment}\\n'\n"
        "    return Proposal(f'hostile {task.experiment}', code + mark + task.mutable_content)\n"
    )
    out = cli(repo, "run", "--tag", "t", "--agent", str(agent), "--max-experiments", str(n), timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return repo, rows(repo), out.stdout


# --- sizes and defaults ---------------------------------------------------------------------------------------------


def test_sizes_are_read_as_people_write_them():
    assert parse_size("8G") == parse_size("8GiB") == parse_size("8 gb") == 8 * GIB
    assert parse_size("512M") == 512 * MIB and parse_size("1.5T") == int(1.5 * 2**40)
    for bad in ("8", "lots", "-1G", "8X"):
        with pytest.raises(ValueError):
            parse_size(bad)
    assert limits.shown(8 * GIB) == "8 GiB" and limits.shown(256 * MIB) == "256 MiB"


def test_the_defaults_share_the_machine_among_the_workers(tmp_path: Path):
    one, four = limits.defaults(1, tmp_path), limits.defaults(4, tmp_path)
    assert one.memory < limits.machine_memory() and four.memory <= one.memory // 4 + 1
    assert four.output <= one.output // 4 + 1 and one.processes == four.processes >= 1024


def test_program_md_keys_change_the_limits(tmp_path: Path):
    found = limits.resolve("3G", 99, "200M", 1, tmp_path)
    assert found == Limits(3 * GIB, 99, 200 * MIB)
    auto, defaults = limits.resolve("auto", "auto", "auto", 2, tmp_path), limits.defaults(2, tmp_path)
    assert (auto.memory, auto.processes) == (defaults.memory, defaults.processes)
    assert abs(auto.output - defaults.output) < 0.05 * defaults.output  # the free disk moves under other writers
    assert Config().max_memory == "auto"


def test_a_size_without_a_unit_is_a_clear_error_with_its_line(tmp_path: Path):
    repo = make_repo(tmp_path / "r", {"train.py": TOY_TRAIN, "program.md": toy_program(max_memory=8)})
    out = cli(repo, "run", "--tag", "t", "--max-experiments", "0")
    assert out.returncode == 2 and "program.md:" in out.stderr and "'max_memory' must be auto or a size" in out.stderr


def test_the_start_says_which_limits_are_in_force(tmp_path: Path):
    repo = make_repo(tmp_path / "r", {"train.py": TOY_TRAIN, "program.md": toy_program(max_memory="1G")})
    out = cli(repo, "run", "--tag", "t", "--agent", "optuna", "--max-experiments", "0")
    assert out.returncode == 0, out.stderr
    line = next(line for line in out.stdout.splitlines() if "limits per run and evaluator" in line)
    assert "memory 1 GiB" in line and "processes" in line and "output" in line
    assert (f"cgroup v{CONTROL.version}" if CONTROL.version else "no cgroup") in line
    note = next(r for r in rows(repo, "note") if r.get("limits"))
    assert "memory 1 GiB" in note["limits"]


# --- hostile runs ---------------------------------------------------------------------------------------------------


@needs_memory
def test_a_run_past_the_memory_limit_is_its_own_crash_and_the_night_goes_on(tmp_path: Path):
    hog = "hog = [b'x' * (64 * 2**20) for _ in range(12)]"  # 768 MiB, every page touched
    _repo, found, _ = hostile_night(tmp_path, hog, n=2, max_memory="256M")
    assert [r["status"] for r in found] == ["keep", "crash", "crash"]
    assert all(r["reason"] == "out of memory: limit 256 MiB" for r in found[1:])
    assert found[0]["peak_mem_mb"] < 256


@needs_memory
@needs_sandbox
def test_what_a_run_writes_to_its_tmpfs_counts_as_its_memory(tmp_path: Path):
    fill = "\n".join(
        [
            "for i in range(12):",
            "    with open(f'/dev/shm/fill{i}', 'wb') as f:",
            "        f.write(b'x' * (64 * 2**20))",
        ]
    )
    _repo, found, _ = hostile_night(tmp_path, fill, max_memory="256M")
    assert found[1]["status"] == "crash" and found[1]["reason"] == "out of memory: limit 256 MiB"


@needs_pids
def test_a_fork_bomb_is_stopped_at_the_process_limit(tmp_path: Path):
    bomb = "import os, time\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        time.sleep(0.01)\n"
    _repo, found, _ = hostile_night(tmp_path, bomb, max_processes=64, timeout=60)
    assert found[1]["status"] == "crash" and found[1]["reason"] == "too many processes: limit 64"
    assert found[1]["seconds"] < 30  # stopped when it hit the limit, not at the timeout


def test_filling_the_disk_is_stopped_at_the_output_limit(tmp_path: Path):
    fill = "\n".join(
        [
            "import os, time",
            "for i in range(400):",
            "    with open(os.path.join(os.environ['AUTORESEARCH_OUT'], f'part{i}'), 'wb') as f:",
            "        f.write(os.urandom(2**20))",
            "time.sleep(30)",
        ]
    )
    _repo, found, _ = hostile_night(tmp_path, fill, max_output="64M", timeout=60)
    assert found[1]["status"] == "crash" and found[1]["reason"] == "wrote too much to disk: limit 64 MiB"
    assert found[1]["seconds"] < 30


def test_one_file_past_the_output_limit_is_named(tmp_path: Path):
    big = "\n".join(
        [
            "import os",
            "with open(os.path.join(os.environ['AUTORESEARCH_OUT'], 'model.pt2'), 'wb') as f:",
            "    for _ in range(100):",
            "        f.write(b'x' * 2**20)",
        ]
    )
    _repo, found, _ = hostile_night(tmp_path, big, max_output="32M")
    assert found[1]["status"] == "crash" and found[1]["reason"] == "wrote a file over the output limit: limit 32 MiB"


EVALUATOR = "import os, sys\ndata = open(os.path.join(os.environ['AUTORESEARCH_OUT'], 'model.pt2'), 'rb').read()\n"
EVALUATOR += "print('val_bpb:', 1.0 + len(data) / 1e6)\n"
HONEST = "import os\nopen(os.path.join(os.environ['AUTORESEARCH_OUT'], 'model.pt2'), 'wb').write(b'weights')\n"


@pytest.mark.parametrize(
    ("planted", "said"),
    [
        ("os.symlink('/dev/zero', path)", "is a link, not a regular file"),
        ("os.mkfifo(path)", "is a FIFO, not a regular file"),
        ("import socket\nsocket.socket(socket.AF_UNIX).bind(path)", "is a socket, not a regular file"),
    ],
    ids=["link", "fifo", "socket"],
)  # fmt: skip
def test_a_link_or_fifo_as_the_model_file_is_a_crash_and_the_evaluator_never_reads_it(tmp_path, planted, said):
    code = f"import os\npath = os.path.join(os.environ['AUTORESEARCH_OUT'], 'model.pt2')\n{planted}\n"
    repo = make_repo(
        tmp_path / "r",
        {"train.py": HONEST + TOY_TRAIN, "evaluate.py": EVALUATOR,
         "program.md": toy_program(evaluate=json.dumps(f"{PY} evaluate.py"), evaluate_timeout=20)},
    )  # fmt: skip
    agent = tmp_path / "hostile.py"
    agent.write_text(
        "from harness.task import Proposal\n\n\ndef propose(task, llm):\n"
        f"    return Proposal('plant', {code!r} + task.mutable_content.replace({HONEST!r}, ''))\n"
    )
    out = cli(repo, "run", "--tag", "t", "--agent", str(agent), "--max-experiments", "1", timeout=120)
    assert out.returncode == 0, out.stderr
    base, planted_row = rows(repo)
    assert base["status"] == "keep"
    assert planted_row["status"] == "crash" and said in planted_row["reason"], planted_row["reason"]
    assert planted_row["reason"].startswith("$AUTORESEARCH_OUT/model.pt2")
    assert not (repo / "runs" / "t" / "1.eval.log").exists()  # the evaluator never ran


@needs_sandbox
def test_a_run_cannot_tell_a_re_run_from_its_output_folder(tmp_path: Path):
    show = (
        "import os\nprint('OUT', os.environ['AUTORESEARCH_OUT'], sorted(os.listdir(os.environ['AUTORESEARCH_OUT'])))\n"
    )
    repo = make_repo(tmp_path / "r", {"train.py": show + TOY_TRAIN, "program.md": toy_program(baseline_runs=3)})
    out = cli(repo, "run", "--tag", "t", "--agent", "optuna", "--max-experiments", "0")
    assert out.returncode == 0, out.stderr
    logs = sorted((repo / "runs" / "t").glob("0*.log"))
    said = {next(line for line in log.read_text().splitlines() if line.startswith("OUT")) for log in logs}
    assert len(logs) == 3 and len(said) == 1, said


def test_old_outputs_are_pruned_but_the_champions_stay(tmp_path: Path):
    keep = "import os\nopen(os.path.join(os.environ['AUTORESEARCH_OUT'], 'model'), 'w').write('m')\n"
    repo = make_repo(tmp_path / "r", {"train.py": keep + TOY_TRAIN, "program.md": toy_program()})
    out = cli(repo, "run", "--tag", "t", "--agent", "optuna", "--max-experiments", "9")
    assert out.returncode == 0, out.stderr
    found = rows(repo)
    champions = {r["id"] for r in found if r["id"] == 0 or r["status"] == "keep"}
    last = {r["id"] for r in found[-5:]}
    ids = {int(p.name.split(".")[0]) for p in (repo / "runs" / "t").glob("*.out")}
    assert champions <= ids and ids - champions <= last  # every champion's, and the last 5
    assert {r["id"] for r in found} - champions - last, "the night was too short to prune anything"
    assert not ({r["id"] for r in found} - champions - last) & ids


DAEMON = """\
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        said = os.path.join(os.environ["AUTORESEARCH_OUT"], "daemon")
        end = next_say = time.time()
        end += 6
        while time.time() < end:
            if time.time() >= next_say:
                with open(said, "w") as f:
                    f.write(str(time.process_time()))
                next_say += 0.2
        os._exit(0)
    os._exit(0)
time.sleep(4)
"""


@needs_sandbox
def test_a_runs_own_daemon_counts_as_its_cpu_time_not_as_other_load(tmp_path: Path):
    if not CONTROL.version:
        pytest.skip("no cgroup: a daemon's time is not accounted")
    repo, found, _ = hostile_night(tmp_path, DAEMON, budget=5, timeout=20)
    row = found[1]
    assert row["status"] in ("keep", "discard")
    # The run itself slept; the CPU time its row counts holds what its daemon said it had burnt (the old accounting,
    # of the processes the shell waited for, left it out and called it other load).
    burnt = float((repo / "runs" / "t" / "1.out" / "daemon").read_text())
    assert burnt > 0.1 and row["extra"]["cpu_seconds"] >= burnt, (burnt, row["extra"])
