"""`autoresearch init`: make another git repository ready for the loop (program.md, .gitignore entries, agent.py)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from harness.config import build_config
from harness.errors import HarnessError
from harness.paths import AGENT, LEDGER, PROGRAM, RUNS
from harness.source import read_constants

IGNORED = (LEDGER, f"{RUNS}/")  # the ledger must survive every reset, and runs/ holds logs and scratch copies

HEADER = """\
# autoresearch reads this front matter before every experiment; an edit applies from the next one.
# Other keys: min_delta, baseline_runs, protected, model, max_cost_usd, patience, history, search, sandbox, network.
# search (for the offline optuna agent) names constants of the mutable file and their ranges, e.g.
#   search:
#     LEARNING_RATE: {low: 1.0e-4, high: 1.0e-2, log: true}
#     DEPTH: {low: 2, high: 8}
#
# The metric below is what the run prints about itself: code an agent rewrites all night can learn to print a
# better number than it earns. Let a trusted command of yours decide it instead. After each run that ends well
# it runs in its own sandbox, sees the run's $AUTORESEARCH_OUT (where the run leaves what it made) and the
# `hidden:` files, which the run never sees, and prints `<metric>: <float>` last:
#   evaluate: python evaluate.py
#   hidden: [data/test/]
"""

BODY = """\
# Goal

Make {metric} of `{mutable}` {better}. Say what the file does and what a better result means here.

# Rules

- Change only `{mutable}`; the evaluation (`{run}`) and its data are fixed.
- Each run has {budget} seconds; it must print its last line as `{metric}: <float>`.
- (What is off limits: new dependencies, network access, changing the evaluation itself, ...)

# Ideas

- (Directions worth trying, in the order you would try them.)
- (What has been tried before and did not help.)
"""


def init(
    target: Path,
    *,
    mutable: str,
    run: str,
    metric: str,
    direction: str,
    budget: float,
    timeout: float | None,
    force: bool,
    agent_source: Path,
) -> list[Path]:
    """Write program.md, add the git-ignore entries and copy the agent into `target`; returns the paths written.

    Raises HarnessError when `target` is not a git repository, the mutable file is missing, or program.md or
    agent.py exist and `force` is not set. Nothing is written unless every check passes.
    """
    if not target.is_dir():
        raise HarnessError(f"{target}: no such directory")
    if not (target / ".git").exists():  # a directory, or a file in a worktree or submodule
        raise HarnessError(f"{target} is not a git repository; run 'git init' there first")
    if not (target / mutable).is_file():
        raise HarnessError(f"{target / mutable}: not found; --mutable names the file experiments change, in {target}")
    if not agent_source.is_file():
        raise HarnessError(f"{agent_source}: the agent to copy is not there")
    program, agent = target / PROGRAM, target / AGENT
    for path in (program, agent):
        if path.exists() and not force:
            raise HarnessError(f"{path} exists; --force to overwrite")
    front = {"mutable": mutable, "run": run, "metric": metric, "direction": direction, "budget": _plain(budget),
             **({"timeout": _plain(timeout)} if timeout is not None else {})}  # fmt: skip
    space = search_space(target / mutable)
    if space:
        front["search"] = space
    build_config(front, lambda key: f"--{key}")  # the loop's own checks, before anything is written

    better = "as small as it can be" if direction == "minimize" else "as large as it can be"
    text = "---\n" + HEADER + yaml.safe_dump(front, sort_keys=False, allow_unicode=True) + "---\n"
    text += BODY.format(metric=metric, mutable=mutable, run=run, budget=_plain(budget), better=better)
    program.write_text(text, encoding="utf-8")
    written = [program]
    if _ignore(target / ".gitignore"):
        written.append(target / ".gitignore")
    if not (agent.exists() and agent.samefile(agent_source)):  # init in the harness's own clone: already there
        shutil.copyfile(agent_source, agent)
        written.append(agent)
    return written


def search_space(path: Path) -> dict[str, dict[str, Any]]:
    """A starting search space for the offline agent: each positive UPPER_CASE number at the top of a Python file,
    floats on a log scale from a tenth to ten times their value, integers from a quarter to four times."""
    if path.suffix != ".py":
        return {}
    try:
        constants = read_constants(path.read_text(encoding="utf-8"))
    except (SyntaxError, ValueError, UnicodeDecodeError):
        return {}
    space: dict[str, dict[str, Any]] = {}
    for name, value in constants.items():
        if not name.isupper() or isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            continue
        if isinstance(value, float):
            space[name] = {"low": float(f"{value / 10:.3g}"), "high": float(f"{value * 10:.3g}"), "log": True}
        elif value > 1:
            space[name] = {"low": max(1, value // 4), "high": value * 4}
    return space


def seed_agent() -> Path:
    """The agent.py shipped at the top of the harness's clone, which init copies."""
    path = Path(__file__).resolve().parent.parent / AGENT
    if not path.is_file():
        raise HarnessError(
            f"{path}: the bundled agent.py is missing; install the harness from a clone (pip install -e .)"
        )
    return path


def _ignore(path: Path) -> bool:
    """Append the entries .gitignore lacks (an equivalent spelling counts); True when the file changed."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    present = {line.strip().strip("/") for line in text.splitlines()}
    missing = [entry for entry in IGNORED if entry.strip("/") not in present]
    if not missing:
        return False
    prefix = "" if not text or text.endswith("\n") else "\n"
    path.write_text(text + prefix + "\n".join(missing) + "\n", encoding="utf-8")
    return True


def _plain(value: float) -> float | int:
    """300.0 written as 300: front matter a person reads and edits."""
    return int(value) if float(value).is_integer() else value
