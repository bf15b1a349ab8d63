"""program.md: the person's steering file, YAML front matter (the config) and free text (for the agent)."""

from __future__ import annotations

import difflib
import hashlib
import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from harness.errors import ProgramError

DEFAULT_MODEL = "claude-sonnet-4-6"


@dataclass(frozen=True)
class Param:
    """One constant of the mutable file that the offline agent may tune."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    integer: bool = False  # True when low and high are both whole numbers written without a point


@dataclass(frozen=True)
class Config:
    """The front matter of program.md; every key is optional."""

    mutable: str = "train.py"  # the only file an experiment may change
    run: str = "python train.py"  # the evaluation command, run by /bin/sh in the repository root
    metric: str = "val_bpb"  # the harness reads the LAST line "<metric>: <float>" of the run's output
    direction: Literal["minimize", "maximize"] = "minimize"
    budget: float = 300  # seconds the run is told it has (env AUTORESEARCH_BUDGET)
    timeout: float = 600  # seconds of wall clock before the whole process tree is killed (default: 2 × budget)
    min_delta: float = 0.0  # an improvement must beat this (and the measured noise) to be kept
    baseline_runs: int = 1  # how often the baseline is run; the spread of the repeats is the noise
    protected: tuple[str, ...] = ("prepare.py", "program.md", "agent.py", "harness/")  # never changed by a run
    model: str = DEFAULT_MODEL  # the Claude model of the LLM agent
    max_cost_usd: float = 20.0  # LLM spend cap for one `run`; the loop stops cleanly when reached
    patience: float = 6 * 3600  # seconds an API outage is waited out before the loop gives up
    history: int = 20  # how many recent experiments the agent sees
    search: tuple[Param, ...] = ()  # the search space of the offline (optuna) agent

    @property
    def sign(self) -> int:
        """+1 when bigger is better, -1 when smaller is better."""
        return 1 if self.direction == "maximize" else -1

    def search_dict(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for p in self.search:
            if p.choices:
                out[p.name] = {"choices": list(p.choices)}
            else:
                out[p.name] = {"low": p.low, "high": p.high, "log": p.log, "step": p.step, "integer": p.integer}
        return out


@dataclass(frozen=True)
class Program:
    """A parsed program.md: its config, its free text, and the hash that identifies this version."""

    config: Config
    text: str
    sha: str
    path: Path = field(default=Path("program.md"))


_NUMBER = (int, float)
_TYPES: dict[str, tuple[type, ...]] = {
    "mutable": (str,),
    "run": (str,),
    "metric": (str,),
    "direction": (str,),
    "budget": _NUMBER,
    "timeout": _NUMBER,
    "min_delta": _NUMBER,
    "baseline_runs": (int,),
    "protected": (list,),
    "model": (str,),
    "max_cost_usd": _NUMBER,
    "patience": _NUMBER,
    "history": (int,),
    "search": (dict,),
}
KEYS = tuple(f.name for f in fields(Config))


def _type_name(types: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a mapping"}
    return " or ".join(dict.fromkeys("a number" if t in _NUMBER and types == _NUMBER else names[t] for t in types))


def split_front_matter(text: str) -> tuple[str | None, str, int]:
    """(front matter or None, body, line number where the front matter's first line is)."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        return None, text, 0
    for i in range(1, len(lines)):
        if lines[i].strip() in ("---", "..."):
            return "".join(lines[1:i]), "".join(lines[i + 1 :]), 2
    raise ProgramError("the front matter opened by '---' on line 1 is never closed by a '---' line")


def parse(text: str, path: Path = Path("program.md")) -> Program:
    """Parse program.md text; raises ProgramError naming the file and line of the first problem."""
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    try:
        front, body, first = split_front_matter(text)
    except ProgramError as e:
        raise ProgramError(f"{path.name}:1: {e}") from None
    if front is None or not front.strip():
        return Program(Config(), body.strip() + "\n", sha, path)
    try:
        node = yaml.compose(front, Loader=yaml.SafeLoader)
        data = yaml.safe_load(front)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line = first + mark.line if mark is not None else first
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        if "mapping values are not allowed" in problem:
            problem += " (put quotes around a value that contains ': ')"
        raise ProgramError(f"{path.name}:{line}: invalid YAML in the front matter: {problem}") from None
    if data is None:
        return Program(Config(), body.strip() + "\n", sha, path)
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise ProgramError(f"{path.name}:{first}: the front matter must be a mapping of 'key: value' lines")
    lines = {k.value: first + k.start_mark.line for k, _ in node.value if isinstance(k, yaml.ScalarNode)}
    config = build_config(data, lambda key: f"{path.name}:{lines.get(key, first)}")
    return Program(config, body.strip() + "\n", sha, path)


def build_config(data: dict[str, Any], where: Any = lambda key: "program.md") -> Config:
    """A Config from front-matter values; `where(key)` names the place of a key in error messages."""
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in _TYPES:
            close = difflib.get_close_matches(str(key), KEYS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f"; known keys: {', '.join(KEYS)}"
            raise ProgramError(f"{where(key)}: unknown key '{key}'{hint}")
        types = _TYPES[key]
        if isinstance(value, bool) or not isinstance(value, types):
            raise ProgramError(f"{where(key)}: '{key}' must be {_type_name(types)}, not {value!r}")
        values[key] = value
    try:
        return _checked(values)
    except ValueError as e:
        key = str(e).split("'")[1] if "'" in str(e) else ""
        raise ProgramError(f"{where(key)}: {e}") from None


def _checked(values: dict[str, Any]) -> Config:
    if "direction" in values and values["direction"] not in ("minimize", "maximize"):
        raise ValueError(f"'direction' must be minimize or maximize, not {values['direction']!r}")
    for key in ("budget", "timeout", "patience", "max_cost_usd"):
        if key in values and not (values[key] > 0 and math.isfinite(values[key])):
            raise ValueError(f"'{key}' must be a positive number, not {values[key]!r}")
    for key in ("baseline_runs", "history"):
        if key in values and values[key] < 1:
            raise ValueError(f"'{key}' must be at least 1, not {values[key]!r}")
    if values.get("min_delta", 0) < 0:
        raise ValueError(f"'min_delta' must not be negative, not {values['min_delta']!r}")
    if "protected" in values:
        if not all(isinstance(p, str) and p for p in values["protected"]):
            raise ValueError("'protected' must be a list of paths")
        values["protected"] = tuple(values["protected"])
    for key in ("mutable", "run", "metric", "model"):
        if key in values and not values[key].strip():
            raise ValueError(f"'{key}' must not be empty")
    if "timeout" not in values:
        values["timeout"] = 2 * values.get("budget", Config.budget)  # an unset timeout follows the budget
    if "search" in values and isinstance(values["search"], dict):
        values["search"] = tuple(_param(name, spec) for name, spec in values["search"].items())
    config = Config(**values)
    if config.timeout < config.budget:
        raise ValueError(f"'timeout' ({config.timeout:g} s) must be at least the 'budget' ({config.budget:g} s)")
    if any(_covers(p, config.mutable) for p in config.protected):
        raise ValueError(f"'protected' covers the mutable file '{config.mutable}'")
    return config


def _covers(protected: str, path: str) -> bool:
    p = protected.rstrip("/")
    return path == p or path.startswith(p + "/")


def _param(name: Any, spec: Any) -> Param:
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"'search' names constants of the mutable file; {name!r} is not a Python name")
    if not isinstance(spec, dict):
        raise ValueError(f"'search' entry '{name}' must be a mapping like {{low: 1, high: 8}} or {{choices: [...]}}")
    unknown = set(spec) - {"low", "high", "log", "step", "choices"}
    if unknown:
        raise ValueError(f"'search' entry '{name}' has unknown field(s) {', '.join(sorted(unknown))}")
    if "choices" in spec:
        if not isinstance(spec["choices"], list) or not spec["choices"]:
            raise ValueError(f"'search' entry '{name}': choices must be a non-empty list")
        return Param(name, choices=tuple(spec["choices"]))
    low, high = spec.get("low"), spec.get("high")
    if not all(isinstance(v, _NUMBER) and not isinstance(v, bool) for v in (low, high)):
        raise ValueError(f"'search' entry '{name}' needs numeric low and high")
    if low >= high:
        raise ValueError(f"'search' entry '{name}': low ({low}) must be below high ({high})")
    log = bool(spec.get("log", False))
    if log and low <= 0:
        raise ValueError(f"'search' entry '{name}': a log scale needs low > 0")
    step = spec.get("step")
    integer = isinstance(low, int) and isinstance(high, int) and (step is None or isinstance(step, int))
    return Param(name, low=low, high=high, log=log, step=step, integer=integer)


def load(path: Path) -> Program:
    """Read and parse program.md; a missing or unreadable file is a ProgramError too."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProgramError(f"{path}: not found; write one (see README) or run 'autoresearch init'") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ProgramError(f"{path}: cannot be read: {e}") from None
    return parse(text, path)


def override(config: Config, **flags: Any) -> Config:
    """The config with CLI flags (those not None) in force for one run, checked like front matter."""
    given = {k: v for k, v in flags.items() if v is not None}
    if not given:
        return config
    if "budget" in given and "timeout" not in given and config.timeout < given["budget"]:
        given["timeout"] = 2 * given["budget"]
    try:
        return _checked({**{f.name: getattr(config, f.name) for f in fields(Config)}, **given})
    except ValueError as e:
        raise ProgramError(f"command line: {e}") from None


__all__ = ["Config", "Param", "Program", "load", "override", "parse", "replace"]
