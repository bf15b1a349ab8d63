"""program.md read against the repository: every key, every `search:` name, every file it names, with its line."""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

from harness import visibility
from harness.errors import ProgramError
from harness.paths import PROGRAM, Layout
from harness.program import Program, load, locate
from harness.repo import Repo
from harness.source import read_constants


@dataclass(frozen=True)
class Findings:
    """What reading program.md against the repository found: mistakes (a night would not start) and warnings."""

    mistakes: list[str]
    warnings: list[str]
    facts: list[str]  # what a person may want confirmed: the mutable file, the metric's source, the search space


def read_against(root: Path, program: Program, tracked: list[str]) -> Findings:
    """Every key of program.md against the files of the repository at `root` (`tracked`: the files git tracks),
    each finding with its line."""
    config, text = program.config, program.path.read_text(encoding="utf-8")
    lines = locate(text)

    def at(*path: str | int) -> str:
        return f"{PROGRAM}:{lines.get(path, lines.get(path[:1], 1))}"

    mistakes: list[str] = []
    warnings: list[str] = []
    facts: list[str] = []
    mutable = root / config.mutable
    if not mutable.is_file():
        mistakes.append(f"{at('mutable')}: mutable: '{config.mutable}' does not exist in {root}")
    constants: dict[str, object] = {}
    if mutable.is_file():
        try:
            constants = read_constants(mutable.read_text(encoding="utf-8")) if mutable.suffix == ".py" else {}
        except (SyntaxError, ValueError, UnicodeDecodeError) as e:
            mistakes.append(f"{at('mutable')}: mutable: {config.mutable} does not parse: {e}")
        facts.append(f"mutable: {config.mutable} ({len(constants)} top-level constants)")
    elif config.mutable not in tracked:
        mistakes.append(f"{at('mutable')}: mutable: {config.mutable} is not tracked by git; commit it first")
    for param in config.search:
        if param.name not in constants and mutable.is_file():
            close = difflib.get_close_matches(param.name, list(constants), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            mistakes.append(
                f"{at('search', param.name)}: search: {config.mutable} has no top-level constant '{param.name}'{hint}"
            )
            continue
        value = constants.get(param.name)
        if param.choices and value not in param.choices:
            warnings.append(f"{at('search', param.name)}: search: {param.name} is {value!r} now, not among its choices")
        elif isinstance(value, int | float) and not _within(value, param.low, param.high) and not param.choices:
            warnings.append(
                f"{at('search', param.name)}: search: {param.name} is {value} now, outside its range "
                f"[{param.low}, {param.high}]"
            )
    if config.search:
        facts.append(f"search: {', '.join(p.name for p in config.search)}")
    written = _written(text)
    for key in ("protected", "hidden", "data", "context"):
        if key not in written:
            continue  # a default names files another repository may not have; only what you wrote is checked
        for i, entry in enumerate(getattr(config, key, ())):
            if not _matches(root, entry):
                mistakes.append(f"{at(key, i)}: {key}: '{entry}' matches nothing (from {root})")
    for i, entry in enumerate(config.hidden):
        if not os.path.isabs(entry) and any(_under(p, entry) for p in tracked):
            warnings.append(f"{at('hidden', i)}: hidden: '{entry}' is tracked by git, so every checkout carries it")
    source = f"the evaluator '{config.evaluate}'" if config.evaluate else "the run itself (self-reported: no evaluate:)"
    facts.append(f"metric: {config.metric} ({config.direction}), from {source}")
    facts.append(
        f"limits: budget {config.budget:g} s, the run killed at {config.timeout:g} s; the evaluator at "
        f"{config.evaluate_timeout:g} s"
    )
    return Findings(mistakes, warnings, facts)


def validate(root: Path, program: Program, tracked: list[str]) -> Findings:
    """The findings; ProgramError (exit status 2) listing every mistake of program.md against the repository, each
    with its line, when there is one."""
    found = read_against(root, program, tracked)
    if found.mistakes:
        raise ProgramError("\n".join(found.mistakes))
    return found


def check(root: Path) -> tuple[Program, Findings]:
    """program.md loaded and read against the repository at `root`; ProgramError (with lines) for a mistake."""
    program = load(Layout(root).program)
    return program, validate(root, program, Repo(root).tracked())


def _written(text: str) -> set[str]:
    """The top-level keys program.md itself writes (the others take their defaults)."""
    return {str(path[0]) for path in locate(text) if len(path) == 1}


def _matches(root: Path, entry: str) -> bool:
    """Whether a path or glob of program.md names something, inside the repository or outside it (as the sandbox
    reads `hidden:` and `data:`)."""
    return bool(visibility.matched(entry, root))


def _within(value: float, low: float | None, high: float | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def _under(path: str, folder: str) -> bool:
    """Whether `path` is `folder` (a file named in a list) or inside it."""
    folder = folder.rstrip("/")
    return path == folder or path.startswith(folder + "/")


__all__ = ["Findings", "check", "read_against", "validate"]
