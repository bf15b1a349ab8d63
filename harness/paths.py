"""Every path and ref name the harness uses, built in one place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

LEDGER = "experiments.log"
PROGRAM = "program.md"
AGENT = "agent.py"
RUNS = "runs"


def find_root(start: Path) -> Path:
    """The repository `start` is in, found as git finds it: the nearest folder, `start` or above, that holds `.git`
    (a folder, or a file in a worktree or submodule); `start` itself when there is none, so that the error names it."""
    start = start.absolute()
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return start


def branch(tag: str) -> str:
    """The experiment branch of a tag: autoresearch/<tag>."""
    return f"autoresearch/{tag}"


def discarded_ref(tag: str, exp_id: int) -> str:
    """Where a discarded experiment's commit stays reachable."""
    return f"refs/autoresearch/{tag}/discarded/{exp_id}"


def agent_ref(tag: str, generation: int) -> str:
    """Where a rejected HyperAgent generation's commit stays reachable."""
    return f"refs/autoresearch/{tag}/agents/{generation}"


def seed_agent_tag(tag: str) -> str:
    """The git tag that marks the seed agent of a HyperAgent run."""
    return f"autoresearch/{tag}/seed-agent"


def _stem(exp_id: int, repeat: int, kind: str = "") -> str:
    """<id>, then <id>.<n> for its later runs; a kind of run of its own (the champion re-measured) says so:
    <id>.<kind>, <id>.<kind>.<n>."""
    base = f"{exp_id}.{kind}" if kind else f"{exp_id}"
    return base if repeat == 0 else f"{base}.{repeat}"


@dataclass(frozen=True)
class Layout:
    """The files of one repository driven by the harness."""

    root: Path

    @property
    def ledger(self) -> Path:
        return self.root / LEDGER

    @property
    def program(self) -> Path:
        return self.root / PROGRAM

    @property
    def agent(self) -> Path:
        return self.root / AGENT

    @property
    def runs(self) -> Path:
        return self.root / RUNS

    @property
    def lock(self) -> Path:
        return self.runs / "loop.lock"

    @property
    def control(self) -> Path:
        """runs/control.json: .git's control files as the running night set them, until it ends cleanly."""
        return self.runs / "control.json"

    @property
    def stop_request(self) -> Path:
        return self.runs / "stop"

    @property
    def status(self) -> Path:
        return self.runs / "status.json"

    def tag_dir(self, tag: str) -> Path:
        return self.runs / tag

    def run_log(self, tag: str, exp_id: int, repeat: int = 0, kind: str = "") -> Path:
        """runs/<tag>/<id>.log; repeated runs get <id>.<n>.log."""
        return self.tag_dir(tag) / f"{_stem(exp_id, repeat, kind)}.log"

    def run_logs(self, tag: str, exp_id: int) -> list[Path]:
        """Every log experiment <id>'s runs and evaluations have written so far (its re-runs and the champion's
        re-runs before it included)."""
        folder = self.tag_dir(tag)
        return [p for p in (folder / f"{exp_id}.log", *folder.glob(f"{exp_id}.*.log")) if p.is_file()]

    def eval_log(self, tag: str, exp_id: int, repeat: int = 0, kind: str = "") -> Path:
        """runs/<tag>/<id>.eval.log: what the trusted evaluator said of that run."""
        return self.tag_dir(tag) / f"{_stem(exp_id, repeat, kind)}.eval.log"

    def test_log(self, tag: str, exp_id: int) -> Path:
        """runs/<tag>/<id>.test.log: what the locked test said of champion <id> (never shown to an agent)."""
        return self.tag_dir(tag) / f"{exp_id}.test.log"

    def run_out(self, tag: str, exp_id: int, repeat: int = 0, kind: str = "") -> Path:
        """runs/<tag>/<id>.out/: $AUTORESEARCH_OUT, what a run keeps (a model for the evaluator, say)."""
        return self.tag_dir(tag) / f"{_stem(exp_id, repeat, kind)}.out"

    def work(self, tag: str, name: str) -> Path:
        """runs/<tag>/work/<name>/: a scratch folder of a sandboxed process, removed when it ends."""
        return self.tag_dir(tag) / "work" / name

    def inflight(self, tag: str) -> Path:
        """runs/<tag>/inflight/: the markers of the experiments under way (<id>.json), so a kill -9 can be
        reconciled."""
        return self.tag_dir(tag) / "inflight"

    def agent_copy(self, tag: str, name: str) -> Path:
        """runs/<tag>/agents/<name>.py: a version of agent.py outside the tree (<n>.py: generation n's candidate,
        where its children load it)."""
        return self.tag_dir(tag) / "agents" / f"{name}.py"

    def generation_log(self, tag: str, generation: int, what: str) -> Path:
        """runs/<tag>/generation-<n>.<what>.log: what generation n's rewrite or gates printed."""
        return self.tag_dir(tag) / f"generation-{generation}.{what}.log"

    def generation_marker(self, tag: str) -> Path:
        """The marker of the HyperAgent generation under way (its stage), so a kill -9 can be recorded."""
        return self.tag_dir(tag) / "generation.json"

    def scratch(self, tag: str) -> Path:
        return self.tag_dir(tag) / "scratch"

    def crash_log(self, tag: str | None = None) -> Path:
        """Where a bug's traceback goes: runs/<tag>/crash.log for a night, runs/crash.log otherwise."""
        return (self.tag_dir(tag) if tag else self.runs) / "crash.log"
