"""Several evaluations at once: real repositories, real runs on three workers, the CLI as a real process."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from harness import childenv, proctable, sandbox
from harness.agents.optuna import OptunaAgent
from harness.config import Param
from harness.executors import workers
from harness.merge import merge
from harness.offsets import Offsets
from harness.task import Result, Task
from harness.testing import PY, cli, git, make_repo, toy_program, wait_until

# Four knobs, each worth the same when set to 3; blank lines apart, so that changes of two knobs merge cleanly.
KNOBS = '''\
"""Four knobs. Usage: python train.py"""
import time

A = 1.0

B = 1.0

C = 1.0

D = 1.0

time.sleep(0.3)
print(f"val_bpb: {(A - 3) ** 2 + (B - 3) ** 2 + (C - 3) ** 2 + (D - 3) ** 2 + 1:.6f}")
'''
# Each proposal sets to 3 the first knob its parent does not have at 3 yet, starting from a knob of its own: the
# proposals in flight at once each improve their parent, on different lines.
TUNER = """from harness.task import Proposal


def propose(task, llm):
    names = "ABCD"
    start = task.experiment % 4
    for name in names[start:] + names[:start]:
        if name + " = 1.0" in task.mutable_content:
            return Proposal(name + " to 3", task.mutable_content.replace(name + " = 1.0", name + " = 3.0"))
    return Proposal("a note", task.mutable_content + "# experiment " + str(task.experiment) + "\\n")
"""


def ledger(repo: Path, kind: str = "experiment") -> list[dict]:
    lines = (repo / "experiments.log").read_text().split("\n")[:-1]
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def night(tmp_path: Path, train: str, agent: str, **front: object) -> tuple[Path, Path]:
    # The toy program's search space names X and Y: a file without both searches the knobs it has.
    knobs = [name for name in "XYA" if f"\n{name} = " in f"\n{train}"]
    if knobs != ["X", "Y"]:
        front = {"search": "".join(f"\n  {k}: {{low: 0.0, high: 4.0}}" for k in knobs if k != "Y"), **front}
    repo = make_repo(tmp_path / "repo", {"train.py": train, "program.md": toy_program(**front), "prepare.py": "#\n"})
    path = tmp_path / "agent_file.py"
    path.write_text(agent)
    return repo, path


def test_three_workers_keep_every_improvement_on_one_straight_branch(tmp_path: Path):
    repo, agent = night(tmp_path, KNOBS, TUNER, workers=3)
    out = cli(repo, "run", "--tag", "t", "--agent", str(agent), "--max-experiments", "8")
    assert out.returncode == 0, out.stderr
    rows = ledger(repo)
    assert sorted(r["id"] for r in rows) == list(range(len(rows)))  # unique and consecutive
    # Every experiment's commit is reachable: the kept ones on the branch, the others under their discarded refs.
    kept = [r for r in rows if r["status"] == "keep"]
    for r in rows:
        if r["commit"] and r["id"] and r["status"] != "keep":
            assert git(repo, "rev-parse", f"refs/autoresearch/t/discarded/{r['id']}") == r["commit"]
    # The branch is a straight line of kept experiments, each on the champion it was measured against.
    line = git(repo, "rev-list", "--parents", "autoresearch/t").splitlines()
    assert [entry.split()[0] for entry in line] == [r["commit"] for r in reversed(kept)]
    for before, after in itertools.pairwise(kept):
        assert after["parent"] == before["commit"]
        assert git(repo, "rev-parse", after["commit"] + "^") == after["parent"]
    # A win whose parent was no longer the champion was carried onto it as a new experiment, and kept there.
    rebased = [r for r in rows if "rebased_from" in r["extra"]]
    assert any(r["status"] == "keep" for r in rebased)
    for r in rebased:
        source = next(s for s in rows if s["id"] == r["extra"]["rebased_from"])
        assert source["status"] == "discard" and source["extra"]["rebased_as"] == r["id"]
    # No kept improvement was dropped: the champion has every knob some kept experiment set, and the best only fell.
    champion = git(repo, "show", "autoresearch/t:train.py")
    assert all(f"{knob} = 3.0" in champion for knob in "ABCD")
    bests = [r["best"] for r in rows]
    assert bests == sorted(bests, reverse=True) and bests[-1] == 1.0
    # The baseline ran on every worker, and every run names its worker.
    runs = ledger(repo, "measurement")
    assert {m["worker"] for m in runs if m["purpose"] == "baseline"} == {"0", "1", "2"}
    assert all(m["worker"] in ("0", "1", "2") for m in runs)
    assert git(repo, "status", "--porcelain") == "" and not list((repo / "runs" / "t" / "inflight").glob("*"))
    summary = cli(repo, "log", "--tag", "t").stdout
    assert "evaluators busy:" in summary and "of 3 workers' time" in summary


# Worker 0 reads 0.05 lower than worker 1, and worker 1 than worker 2, whatever the file holds; X = 2.0 is truly
# better, by less than the spread across workers.
BY_WORKER = """import os
X = 3.0
print("val_bpb:", 2.0 + 0.05 * int(os.environ["AUTORESEARCH_WORKER"]) - (0.03 if X == 2.0 else 0.0))
"""
NOTES = """from harness.task import Proposal


def propose(task, llm):
    content = task.mutable_content + "# note " + str(task.experiment) + "\\n"
    if task.experiment == 6:
        return Proposal("X to 2", content.replace("X = 3.0", "X = 2.0"))
    return Proposal("a note", content)
"""


def test_a_fast_worker_does_not_win_by_being_fast_and_a_smaller_real_gain_is_still_kept(tmp_path: Path):
    repo, agent = night(tmp_path, BY_WORKER, NOTES, workers=3)
    out = cli(repo, "run", "--tag", "f", "--agent", str(agent), "--max-experiments", "9")
    assert out.returncode == 0, out.stderr
    rows = ledger(repo)
    assert {r["id"]: r["status"] for r in rows if r["status"] == "keep"} == {0: "keep", 6: "keep"}, rows
    assert "0" in {r["worker"] for r in rows if r["description"] == "a note"}  # notes did run on the fast worker
    assert rows[-1]["best"] == pytest.approx(2.02)  # the champion's number as the typical worker reads it


def test_each_worker_runs_on_its_own_gpu_and_sees_the_untracked_data(tmp_path: Path):
    train = (
        'import os\nX = 3.0\nY = 2\nprint(os.environ.get("CUDA_VISIBLE_DEVICES"))\n'
        'print("val_bpb:", open("data/v").read())\n'
    )
    repo, agent = night(tmp_path, train, NOTES, workers="auto", data="[data/]")
    (repo / "data").mkdir()
    (repo / "data" / "v").write_text("2.5")  # untracked, as the bundled task's data is
    git(repo, "status")  # data/ is untracked: the tree is still clean for the loop
    out = cli(repo, "run", "--tag", "g", "--agent", str(agent), "--max-experiments", "2",
              env={"CUDA_VISIBLE_DEVICES": "4,7"})  # fmt: skip
    assert out.returncode == 0, out.stderr
    runs = ledger(repo, "measurement")
    assert all(m["value"] == 2.5 for m in runs)
    seen = {m["worker"]: (repo / m["log"]).read_text().split()[0] for m in runs}
    assert seen == {"0": "4", "1": "7"}


SLEEPY = """from harness.task import Proposal


def propose(task, llm):
    n = task.experiment
    if n <= 3:
        return Proposal("sleep", f"import time\\ntime.sleep(60)  # {n}\\n" + task.mutable_content)
    return Proposal("X to 1.5", task.mutable_content.replace("X = 3.0", "X = 1.5") + f"# {n}\\n")
"""


def test_kill_9_mid_night_records_every_experiment_in_flight_and_cleans_every_checkout(tmp_path: Path):
    from harness.testing import TOY_TRAIN

    repo, agent = night(tmp_path, TOY_TRAIN, SLEEPY, workers=3, budget=60, timeout=120)
    harness = subprocess.Popen([PY, "-m", "harness", "run", "--tag", "k", "--agent", str(agent)], cwd=repo)
    checkouts = repo / "runs" / "k" / "work"
    wait_until(lambda: len(list(checkouts.glob("worker-*"))) == 3 and len(_markers(repo)) == 4)
    os.kill(harness.pid, signal.SIGKILL)
    harness.wait()
    in_flight = sorted(int(p.stem) for p in _markers(repo))
    assert in_flight == [1, 2, 3, 4]
    out = cli(repo, "run", "--tag", "k", "--agent", str(agent), "--max-experiments", "1", "--workers", "1")
    assert out.returncode == 0, out.stderr
    rows = ledger(repo)
    assert sorted(r["id"] for r in rows) == list(range(len(rows)))
    assert [r["id"] for r in rows if r["status"] == "interrupted"] == in_flight
    for r in rows:
        if r["status"] == "interrupted" and r["commit"]:
            assert git(repo, "rev-parse", f"refs/autoresearch/k/discarded/{r['id']}") == r["commit"]
    assert not checkouts.exists() or not list(checkouts.glob("worker-*"))
    assert not _markers(repo)
    assert proctable.scan(childenv.OWNER, str(repo)) == []
    assert git(repo, "status", "--porcelain") == ""


def _markers(repo: Path) -> list[Path]:
    return list((repo / "runs" / "k" / "inflight").glob("*.json"))


# --- the pieces ------------------------------------------------------------------------------------------------------


def test_parallel_tpe_does_not_propose_the_same_point_three_times():
    space = (Param("WIDTH", choices=(32, 64, 128, 256)), Param("DEPTH", choices=(2, 4, 8)))
    agent = OptunaAgent(space, "minimize")
    content = "WIDTH = 32\nDEPTH = 2\n"
    task = Task("", "train.py", content, "loss", "minimize", None, None)
    for i in range(1, 11):  # a night so far: TPE has a clear favourite
        proposed = agent.propose(Task(**{**task.__dict__, "experiment": i}))
        params = proposed.extra["params"]
        agent.observe(Result(i, "discard", abs(params["WIDTH"] - 128) / 64 + abs(params["DEPTH"] - 4)))
    points = [agent.propose(Task(**{**task.__dict__, "experiment": i})).extra["params"] for i in (11, 12, 13)]
    assert len({tuple(sorted(p.items())) for p in points}) == 3, points


def test_a_change_is_carried_onto_a_newer_champion_by_a_three_way_merge():
    base = "A = 1\n\nB = 1\n\nC = 1\n"
    assert (
        merge(base, base.replace("A = 1", "A = 3"), base.replace("C = 1", "C = 3")).text == "A = 3\n\nB = 1\n\nC = 3\n"
    )
    both = merge(base, base.replace("B = 1", "B = 2"), base.replace("B = 1", "B = 3"))
    assert both.text == base.replace("B = 1", "B = 3") and both.conflicts == 1  # the experiment's lines win
    assert merge(base, base.replace("B = 1", "B = 2"), base.replace("B = 1", "B = 2")).conflicts == 0


def test_offsets_find_a_throttled_worker_despite_a_spiked_run_and_unequal_runs():
    offsets = Offsets()
    for version, truth in (("base", 3.0), ("champion", 2.8), ("other", 2.9)):
        for worker, slower in (("0", 0.0), ("1", 0.0), ("2", 0.05)):
            offsets.add(version, worker, truth + slower + (0.5 if (version, worker) == ("other", "1") else 0.0))
    for _ in range(6):  # the champion's re-runs, all on one worker
        offsets.add("champion", "0", 2.8)
    assert offsets.of("2") - offsets.of("0") == pytest.approx(0.05)
    assert offsets.of("1") == pytest.approx(offsets.of("0"))


def test_auto_means_one_worker_per_visible_gpu_and_the_cores_are_split():
    gpus = sandbox.visible_gpus({"CUDA_VISIBLE_DEVICES": "0,1,3"})
    assert gpus == ["0", "1", "3"] and sandbox.worker_count("auto", gpus) == 3
    assert sandbox.worker_count("auto", []) == 1 and sandbox.worker_count(4, gpus) == 4
    devices = workers.plan(2, [], list(range(8)))
    assert [d.cpus for d in devices] == [(0, 1, 2, 3), (4, 5, 6, 7)] and devices[1].env()["OMP_NUM_THREADS"] == "4"
    assert [d.env()["CUDA_VISIBLE_DEVICES"] for d in workers.plan(3, gpus, [0, 1])] == ["0", "1", "3"]
