"""
Crash-consistency fuzzing: kill the loop at random moments, restart it at once, and check that nothing was lost.

Usage:
    python bench/crash_fuzz.py                 # 200 kills
    python bench/crash_fuzz.py --kills 30      # what CI runs
    python bench/crash_fuzz.py --sandbox off   # the same without the OS sandbox

Each round starts `autoresearch run` on a fast toy task and kills it with SIGKILL (sometimes its whole process group):
after a random delay, the moment a git command of the harness is seen running, or the moment the ledger grows (so
that kills land inside git operations and right around ledger writes). Then it restarts at once, as a supervisor with
Restart=always would, for one experiment, and checks every invariant on what it left:

    the restart was not refused and ended cleanly; the branch head is the last kept experiment; the tree is clean; no
    git lock is left; every experiment's commit is reachable; ids are unique and consecutive; every ledger line is
    whole; the optuna agent rebuilt from the ledger learned one trial per experiment; no process of a
    run is left.

It prints one line per round that broke an invariant, and a summary:
    kills: 200 / held: 200 / refused: 0 / experiments: 431 / seconds: 612.3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import childenv, proctable
from harness.testing import PY, TOY_TRAIN, git, make_repo, toy_program

TAG = "fuzz"
RESTART_TIMEOUT = 300.0  # seconds a restart may take before the round counts as a failure


def project(root: Path, sandbox: str) -> Path:
    """A repository with the toy task, the optuna agent's search space, and runs as fast as they get."""
    program = toy_program(sandbox=sandbox, budget=1, timeout=20, remeasure_every=5)
    return make_repo(root / "fuzz", {"train.py": TOY_TRAIN, "program.md": program, "prepare.py": "# fixed\n"})


def start(repo: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [PY, "-m", "harness", "run", "--tag", TAG, "--agent", "optuna"],
        cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip


def git_child(pid: int) -> bool:
    """Whether a git command of the harness `pid` is running now (not GitPython's long-lived cat-file)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            command = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        name = stat[stat.find("(") + 1 : stat.rfind(")")]
        group = int(stat[stat.rfind(")") + 2 :].split()[2])
        if name == "git" and group == pid and b"cat-file" not in command:
            return True
    return False


def kill_at_a_random_moment(repo: Path, rng: random.Random) -> str:
    """Start the loop, kill it with -9 at a moment of one of three kinds; returns how the kill was timed."""
    ledger = repo / "experiments.log"
    size = ledger.stat().st_size if ledger.exists() else 0
    harness = start(repo)
    how = rng.choice(["delay", "git", "ledger"])
    deadline = time.monotonic() + rng.uniform(0.05, 3.0)
    give_up = time.monotonic() + 10.0
    while harness.poll() is None:
        now = time.monotonic()
        if how == "delay" and now >= deadline:
            break
        if how == "git" and git_child(harness.pid):
            break
        if how == "ledger" and ledger.exists() and ledger.stat().st_size != size:
            break
        if now >= give_up:
            how += " (timed out)"
            break
        time.sleep(0.001)
    group = rng.random() < 0.3
    try:
        if group:
            os.killpg(harness.pid, signal.SIGKILL)
        else:
            os.kill(harness.pid, signal.SIGKILL)
    except ProcessLookupError:
        how += " (it had ended)"
    harness.wait()
    return how + (", whole group" if group else "")


def restart(repo: Path) -> tuple[int, str]:
    """Restart at once for one experiment; its exit status and its error output."""
    out = subprocess.run(
        [PY, "-m", "harness", "run", "--tag", TAG, "--agent", "optuna", "--max-experiments", "1"],
        cwd=repo, capture_output=True, text=True, timeout=RESTART_TIMEOUT,
    )  # fmt: skip
    return out.returncode, out.stderr.strip()[-500:]


def broken_invariants(repo: Path) -> list[str]:
    """Every invariant the repository and its ledger break now (none, when all is well)."""
    problems = []
    lines = (repo / "experiments.log").read_bytes().split(b"\n")
    if lines[-1] != b"":
        problems.append("the ledger's last line is torn")
    rows = []
    for line in lines[:-1]:
        try:
            rows.append(json.loads(line))
        except ValueError:
            problems.append(f"a ledger line is not JSON: {line[:80]!r}")
    exps = [r for r in rows if r.get("kind") == "experiment" and r.get("tag") == TAG]
    ids = [r["id"] for r in exps]
    if ids != list(range(len(ids))):
        problems.append(f"ids are not unique and consecutive: {ids}")
    kept = [r for r in exps if r["status"] == "keep" and r.get("commit")]
    head = git(repo, "rev-parse", f"autoresearch/{TAG}")
    if kept and head != kept[-1]["commit"]:
        problems.append(f"the branch head {head[:8]} is not the last kept experiment {kept[-1]['commit'][:8]}")
    if git(repo, "rev-parse", "HEAD") != head:
        problems.append("HEAD is not the experiment branch")
    status = git(repo, "status", "--porcelain", "--untracked-files=all")
    if status:
        problems.append(f"the tree is not clean: {status[:200]}")
    locks = [str(p.relative_to(repo)) for p in (repo / ".git").rglob("*.lock")]
    if locks:
        problems.append(f"git locks left: {locks}")
    for r in exps:
        if r.get("commit") and subprocess.run(["git", "cat-file", "-e", r["commit"]], cwd=repo).returncode != 0:
            problems.append(f"experiment {r['id']}'s commit is not reachable")
    problems += _optuna_agrees(repo, exps)
    left = proctable.scan(childenv.OWNER, str(repo))
    if left:
        problems.append(f"processes of runs are left: {left}")
    return problems


def _optuna_agrees(repo: Path, exps: list[dict]) -> list[str]:
    from harness.agents.optuna import OptunaAgent
    from harness.config import Config
    from harness.ledger import Ledger
    from harness.night import result_of
    from harness.program import load

    config: Config = load(repo / "program.md").config
    rows = Ledger(repo / "experiments.log").experiments(TAG)
    agent = OptunaAgent(config.search, config.direction, baseline_content=TOY_TRAIN)
    agent.resume([result_of(r) for r in rows])
    # One trial per experiment of the ledger, the baseline included: what the agent learned is what happened.
    learned = sorted(t.user_attrs.get("experiment", -1) for t in agent.study.trials)
    if learned != [r["id"] for r in exps]:
        return [f"the optuna study learned experiments {learned[-5:]}..., the ledger has {len(exps)} rows"]
    return []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sandbox", default="auto", choices=["auto", "off"])
    args = parser.parse_args()
    rng = random.Random(args.seed)
    started = time.monotonic()
    held = refused = 0
    with tempfile.TemporaryDirectory(prefix="crash-fuzz-") as tmp:
        repo = project(Path(tmp), args.sandbox)
        code, said = restart(repo)  # the baseline and a first experiment, so that kills land mid-night
        if code != 0:
            print(f"the first night did not start: {said}")
            return 1
        for round_ in range(1, args.kills + 1):
            how = kill_at_a_random_moment(repo, rng)
            code, said = restart(repo)
            problems = [] if code == 0 else [f"the restart was refused or failed (exit {code}): {said}"]
            refused += code != 0
            problems += broken_invariants(repo)
            if problems:
                print(f"round {round_} (killed {how}): " + "; ".join(problems), flush=True)
            else:
                held += 1
        exps = [r for r in map(json.loads, (repo / "experiments.log").read_text().splitlines())
                if r.get("kind") == "experiment"]  # fmt: skip
    seconds = time.monotonic() - started
    print(
        f"kills: {args.kills} / held: {held} / refused: {refused} / experiments: {len(exps)} / seconds: {seconds:.1f}"
    )
    return 0 if held == args.kills else 1


if __name__ == "__main__":
    sys.exit(main())
