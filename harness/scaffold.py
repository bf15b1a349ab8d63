"""`autoresearch init`: make another git repository ready for the loop (program.md, .gitignore entries, agent.py)."""

from __future__ import annotations

import re
import shlex
import shutil
from dataclasses import dataclass
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
# Other keys: min_delta, baseline_runs, model, max_cost_usd, patience, history, sandbox, network (the README's table).
# 'autoresearch check' reads this file against the repository and runs the baseline once, creating nothing.
# A run sees the tracked files and no other file of the repository: list the untracked ones it reads (its data):
#   data: [data/train/]
#
# The metric below is what the run prints about itself: code an agent rewrites all night can learn to print a
# better number than it earns. Let a trusted command of yours decide it instead. After each run that ends well
# it runs in its own sandbox, sees the run's $AUTORESEARCH_OUT (where the run leaves what it made) and the
# `hidden:` files, which the run never sees, and prints `<metric>: <float>` last. Keep three splits: train (the
# run's), selection (what `evaluate:` scores: it decides every keep, so a long night fits it) and a locked test
# that `test:` scores once per champion for you alone, deciding nothing, so you see whether the gains hold up:
#   evaluate: python evaluate.py --split selection
#   test: python evaluate.py --split test
#   hidden: [data/selection/, data/test/]
"""

# With an evaluator of your own, the pattern that remains: a locked test beside it.
LOCKED = """\
# Every keep is decided on what `evaluate:` scores, so a long night fits that split. Keep a third split apart (in
# `hidden:` too) and name a command that scores it: `test:` runs once per champion, for you alone, deciding nothing:
#   test: python evaluate.py --split test
"""

BODY = """\
# Goal

Make {metric} of `{mutable}` {better}. Say what the file does and what a better result means here.

# Rules

- Change only `{mutable}`; the evaluation (`{run}`) and its data are fixed.
- Each run has {budget} seconds; {output}.
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
    evaluate: str = "",
    hidden: tuple[str, ...] = (),
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
    front: dict[str, Any] = {"mutable": mutable, "run": run, "metric": metric, "direction": direction}
    front["budget"] = _plain(budget)
    if timeout is not None:
        front["timeout"] = _plain(timeout)
    if evaluate:
        front["evaluate"] = evaluate
    if hidden:
        front["hidden"] = list(hidden)
    # The evaluator's own files are protected: a run that could edit its judge would be judged by itself.
    front["protected"] = [PROGRAM, AGENT, *_files_named(target, evaluate)]
    found = guesses(target / mutable)
    space = {g.name: g.space for g in found if g.space is not None}
    build_config({**front, "search": space}, lambda key: f"--{key}")  # the loop's own checks, before any write

    better = "as small as it can be" if direction == "minimize" else "as large as it can be"
    header = HEADER if not evaluate else HEADER[: HEADER.index("# The metric below")] + LOCKED
    text = "---\n" + header + yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=1000)
    text += search_block(found, mutable) + "---\n"
    output = (
        "it leaves what the evaluator scores in `$AUTORESEARCH_OUT`"
        if evaluate
        else f"it must print its last line as `{metric}: <float>`"
    )
    text += BODY.format(mutable=mutable, run=run, budget=_plain(budget), better=better, output=output, metric=metric)
    program.write_text(text, encoding="utf-8")
    written = [program]
    if _ignore(target / ".gitignore"):
        written.append(target / ".gitignore")
    if not (agent.exists() and agent.samefile(agent_source)):  # init in the harness's own clone: already there
        shutil.copyfile(agent_source, agent)
        written.append(agent)
    return written


@dataclass(frozen=True)
class Guess:
    """One constant of the mutable file and what init makes of it: a range and why, or why it is left alone."""

    name: str
    value: Any
    space: dict[str, Any] | None  # None: not searched
    why: str  # the comment beside it in program.md


# Names that say what a number is, and so bound the range guessed for it.
SEEDS = re.compile(r"(^|_)(SEED|RANDOM_STATE)(_|$)")
SPLITS = re.compile(r"(^|_)(TEST|VAL|VALID|VALIDATION|EVAL|HOLDOUT|HELDOUT)(_|$)")
FRACTIONS = re.compile(r"(^|_)(FRAC|FRACTION|SUBSAMPLE|DROPOUT|RATE|RATIO|SHARE|MOMENTUM)(_|$)")
COUNTS = re.compile(r"(^|_)(N|NUM|MIN|MAX|SIZE|DEPTH|LAYERS|HEADS|ESTIMATORS|ITER|ITERS|EPOCHS|STEPS|BATCH|LEAF|"
                    r"LEAVES|SAMPLES|SPLIT|DIM|WIDTH|HIDDEN|NEIGHBORS|K)(_|$)")  # fmt: skip
# Library minimums a name tells: scikit-learn refuses min_samples_split=1 (a split needs two samples).
MINIMUMS = {"MIN_SAMPLES_SPLIT": 2}


def guess(name: str, value: Any) -> Guess | None:
    """What init makes of one top-level constant, or None when it is not a number worth a line."""
    if not name.isupper() or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if SEEDS.search(name):
        return Guess(name, value, None, "a seed; a lucky seed is not a better method")
    if SPLITS.search(name):
        return Guess(name, value, None, "it decides what the score is measured on, not how good the method is")
    if value < 0 or (value == 0 and not (isinstance(value, float) and FRACTIONS.search(name))):
        return Guess(name, value, None, "no scale to search around; add a range by hand")
    if isinstance(value, float):
        if FRACTIONS.search(name) and value <= 1:
            if value == 0:
                return Guess(name, value, {"low": 0.0, "high": 0.5}, "0 in the file, a fraction by its name: 0 to 0.5")
            low, high = _g(value / 10), min(1.0, _g(value * 10))
            why = f"{_g(value)} in the file, a fraction by its name: a tenth of it to at most 1, log scale"
            return Guess(name, value, {"low": low, "high": high, "log": True}, why)
        low, high = _g(value / 10), _g(value * 10)
        return Guess(name, value, {"low": low, "high": high, "log": True},
                     f"{_g(value)} in the file: a tenth to ten times, log scale")  # fmt: skip
    floor = MINIMUMS.get(name, 1)
    if value <= floor:
        return Guess(name, value, None, "already at its least sensible value; add a range by hand if wanted")
    low, high = max(floor, value // 4), value * 4
    why = f"{value} in the file: a quarter to four times"
    if name in MINIMUMS:
        why += f", at least {floor} (the libraries' minimum)"
    elif COUNTS.search(name) or low == 1:
        why += ", at least 1"
    return Guess(name, value, {"low": low, "high": high}, why)


def guesses(path: Path) -> list[Guess]:
    """init's guesses for the constants at the top of a Python file (none for another kind of file)."""
    if path.suffix != ".py":
        return []
    try:
        constants = read_constants(path.read_text(encoding="utf-8"))
    except (SyntaxError, ValueError, UnicodeDecodeError):
        return []
    return [g for name, value in constants.items() if (g := guess(name, value)) is not None]


def search_space(path: Path) -> dict[str, dict[str, Any]]:
    """A starting search space for the offline agent: the constants init guesses a range for (see `guess`)."""
    return {g.name: g.space for g in guesses(path) if g.space is not None}


def search_block(found: list[Guess], mutable: str) -> str:
    """The `search:` front matter, each guess with its reason beside it, and the constants left alone said so."""
    searched = [g for g in found if g.space is not None]
    lines = [
        f"# search: ranges init guessed from the constants of {mutable}, each with its reason; narrow or widen them,",
        "# or delete a line to leave that constant alone (a range a library refuses makes crashed experiments).",
    ]
    if searched:
        lines.append("search:")
        width = max(len(f"  {g.name}: {flow(g.space or {})}") for g in searched)
        lines += [f"  {g.name}: {flow(g.space or {})}".ljust(width) + f"  # {g.why}" for g in searched]
    else:
        lines.append(f"# (no number at the top of {mutable} to search: write 'search:' by hand, as the README shows)")
    lines += [f"# not searched: {g.name} = {g.value}: {g.why}" for g in found if g.space is None]
    return "\n".join(lines) + "\n"


def flow(space: dict[str, Any]) -> str:
    """A range as YAML's flow style writes it: {low: 2, high: 20}."""
    return "{" + ", ".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in space.items()) + "}"


def _g(value: float) -> float:
    """Three significant digits: a bound a person reads."""
    return float(f"{value:.3g}")


def _files_named(root: Path, command: str) -> list[str]:
    """The repository's files a command names (`python score.py --split test` names score.py)."""
    try:
        words = shlex.split(command)
    except ValueError:
        return []
    return [w for w in words if not w.startswith("-") and (root / w).is_file() and not Path(w).is_absolute()]


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
