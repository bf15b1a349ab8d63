"""program.md's front matter: every key's type, default and meaning, written once, and the checks of their values."""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from harness import executors, keeprule
from harness.errors import ProgramError
from harness.executors import EXECUTORS
from harness.limits import parse_size

DEFAULT_MODEL = "claude-sonnet-4-6"
_NUMBER = (int, float)


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
class Key:
    """What the schema says of one front-matter key."""

    name: str
    types: tuple[type, ...]  # what YAML may give for it
    meaning: str  # one line, as the README's table shows it
    shown: str  # the default as a person reads it


def _key(default: Any, meaning: str, *types: type, shown: str = "") -> Any:
    return field(default=default, metadata={"types": types, "meaning": meaning, "shown": shown})


@dataclass(frozen=True)
class Config:
    """The front matter of program.md; every key is optional."""

    mutable: str = _key("train.py", "the only file an experiment may change", str)
    run: str = _key("python train.py", "the evaluation command (the harness's Python comes first on `PATH`)", str)
    metric: str = _key("val_bpb", "read from the last `<metric>: <float>` line of the run's output", str)
    direction: Literal["minimize", "maximize"] = _key("minimize", "or `maximize`", str)
    budget: float = _key(300, "seconds the run is told it has (`AUTORESEARCH_BUDGET`)", *_NUMBER)
    grace: float = _key(60, "seconds of start-up allowed beyond the budget before the hard kill", *_NUMBER)
    timeout: float = _key(
        360, "hard wall-clock limit in seconds; the run's whole process tree is killed past it", *_NUMBER,
        shown="budget + grace",
    )  # fmt: skip
    evaluate: str = _key(
        "", "the trusted evaluator, run after each run that ends well; its last `<metric>: <float>` line is the metric",
        str, shown="none (the run's own metric line)",
    )  # fmt: skip
    evaluate_timeout: float = _key(
        300, "hard wall-clock limit of the evaluator (and of the locked test), in seconds", *_NUMBER
    )
    test: str = _key(
        "", "the locked test: scores each new champion (the baseline, every keep) in a sandbox of its own on a split "
        "nothing else sees; shown to you beside the selection metric, never to an agent or a decision",
        str, shown="none",
    )  # fmt: skip
    hidden: tuple[str, ...] = _key(
        (), "paths or globs, in the repository or anywhere (absolute, `~/...`), that the evaluators see and a run or "
        "an agent never does (held-out data)", list, shown="[]",
    )  # fmt: skip
    data: tuple[str, ...] = _key(
        (), "untracked paths or globs a run and an agent may read (`data/`); every other untracked or ignored file of "
        "the repository (`.env`, keys, caches) is out of their sight", list, shown="[]",
    )  # fmt: skip
    max_memory: str = _key(
        "auto", "memory of each run and evaluator, what it writes to its `/tmp` and `/dev/shm` included (`8G`); past "
        "it the run is a `crash` naming the limit", str, int,
        shown="auto (the RAM less a reserve, shared by the workers)",
    )  # fmt: skip
    max_processes: int | Literal["auto"] = _key(
        "auto", "processes and threads of each run and evaluator at once (a fork bomb stops there)", int, str,
        shown="auto (1024 + 32 per core)",
    )  # fmt: skip
    max_output: str = _key(
        "auto", "bytes each run may write to disk (`$AUTORESEARCH_OUT` and its copy of the tree), and the largest "
        "file the evaluator is given (`20G`)", str, int, shown="auto (a tenth of the free disk, shared by the workers)",
    )  # fmt: skip
    sandbox: Literal["auto", "required", "off"] = _key(
        "auto", "the OS sandbox of every model-written process: `auto`, `required` or `off`", str, bool
    )
    network: bool = _key(False, "whether a run may use the network (agents never do)", bool, shown="false")
    min_delta: float = _key(0.0, "an improvement must beat this, and the measured noise", *_NUMBER)
    baseline_runs: int = _key(
        1,
        "runs of the baseline before the first experiment (the champion then runs again until "
        f"{keeprule.MIN_CHAMPION_RUNS} runs back it)",
        int,
    )
    remeasure_every: int = _key(
        keeprule.REMEASURE_EVERY,
        "the champion also runs again after this many experiments (0: only while its number is not trusted, or after "
        "the machine changed)",
        int,
    )
    deterministic: bool | Literal["auto"] = _key(
        "auto",
        "`true`: every run of a version prints the same number (no re-runs, no confirmations); `false`: it does not; "
        "`auto`: learned from the first repeat, and a disagreement turns the re-runs back on",
        str, bool,
    )  # fmt: skip
    confirm: int = _key(
        keeprule.CONFIRM, "re-runs a candidate that wins its first run must win again before it is kept", int
    )
    protected: tuple[str, ...] = _key(
        ("prepare.py", "program.md", "agent.py", "harness/"),
        "a run that changes one is `tampered` (program.md excepted: it is yours to edit mid-run)",
        list,
    )
    model: str = _key(DEFAULT_MODEL, "the LLM agent's model", str)
    max_cost_usd: float = _key(
        20.0, "LLM spend cap for the night (the tag), across restarts; the loop stops cleanly at it", *_NUMBER
    )
    patience: float = _key(6 * 3600, "seconds an API outage is waited out before the loop stops", *_NUMBER)
    history: int = _key(20, "how many recent experiments the agent sees", int)
    context: tuple[str, ...] = _key(
        ("prepare.py",), "read-only files the LLM agent sees beside the mutable file (a missing one is skipped)", list
    )
    reflect_every: int = _key(10, "experiments between the LLM agent's reflections on the night so far", int)
    agent_steps: int = _key(3, "rounds of read-only tools (view a file, an experiment, a log) before each answer", int)
    workers: int | Literal["auto"] = _key(
        1, "evaluations in flight at once, each in its own checkout on its own device (`auto`: one per visible GPU)",
        int, str,
    )  # fmt: skip
    ahead: int | Literal["auto"] = _key(
        "auto", "proposals made while the workers run (`auto`: 1 with several workers; with one, 0: each proposal sees "
        "the last result)", int, str,
    )  # fmt: skip
    executor: str = _key("local", f"where evaluations run: {executors.described()}", str)
    ray_address: str = _key(
        "", "the Ray cluster `executor: ray` joins (`auto`: the one `ray start --head` runs here)", str,
        shown="none (a Ray instance of its own)",
    )  # fmt: skip
    slurm_partition: str = _key(
        "", "the Slurm partition `executor: slurm` submits to", str, shown="none (the cluster's default)"
    )
    slurm_gpus: int = _key(0, "GPUs per Slurm job (`executor: slurm`)", int)
    slurm_time: float = _key(
        0, "minutes a Slurm job may take (`executor: slurm`)", *_NUMBER, shown="timeout + evaluate_timeout + 5"
    )
    slurm_folder: str = _key("runs/slurm", "the folder Slurm jobs log to (`executor: slurm`; submitit's files)", str)
    slurm_cluster: str = _key(
        "", "`local`: `executor: slurm` runs its jobs through submitit's local executor, with no Slurm", str,
        shown="none (Slurm)",
    )  # fmt: skip
    search: tuple[Param, ...] = _key(
        (),
        "the offline agent's search space: `NAME: {low, high, log, step}` or `NAME: {choices: [...]}`",
        dict,
        shown="none",
    )
    seed: int = _key(
        0, "the seed of the optuna, random and hybrid agents' samplers (same seed and results, same points)", int
    )
    override_share: float = _key(
        0.3, "the hybrid agent: the largest share of experiments in which the LLM may override the optimizer", *_NUMBER
    )

    @property
    def sign(self) -> int:
        """+1 when bigger is better, -1 when smaller is better."""
        return 1 if self.direction == "maximize" else -1

    def search_dict(self) -> dict[str, dict[str, Any]]:
        """The search space as plain data, for an agent's Task."""
        out: dict[str, dict[str, Any]] = {}
        for p in self.search:
            if p.choices:
                out[p.name] = {"choices": list(p.choices)}
            else:
                out[p.name] = {"low": p.low, "high": p.high, "log": p.log, "step": p.step, "integer": p.integer}
        return out


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def schema() -> tuple[Key, ...]:
    """Every key of the front matter, in the order the README's table lists them."""
    return tuple(
        Key(f.name, f.metadata["types"], f.metadata["meaning"], f.metadata["shown"] or _shown(f.default))
        for f in fields(Config)
    )


KEYS = tuple(f.name for f in fields(Config))
_TYPES = {k.name: k.types for k in schema()}


def _type_name(types: tuple[type, ...]) -> str:
    if types == _NUMBER:
        return "a number"
    names = {
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
        bool: "true or false",
    }
    return " or ".join(names[t] for t in types)


def build_config(data: dict[str, Any], where: Callable[[str], str] = lambda key: "program.md") -> Config:
    """A Config from front-matter values; `where(key)` names the place of a key in error messages."""
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in _TYPES:
            close = difflib.get_close_matches(str(key), KEYS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f"; known keys: {', '.join(KEYS)}"
            raise ProgramError(f"{where(key)}: unknown key '{key}'{hint}")
        types = _TYPES[key]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            raise ProgramError(f"{where(key)}: '{key}' must be {_type_name(types)}, not {value!r}")
        values[key] = value
    try:
        return _checked(values)
    except ValueError as e:
        key = str(e).split("'")[1] if "'" in str(e) else ""
        raise ProgramError(f"{where(key)}: {e}") from None


def override(config: Config, **flags: Any) -> Config:
    """The config with CLI flags (those not None) in force for one run, checked like front matter."""
    given = {k: v for k, v in flags.items() if v is not None}
    if not given:
        return config
    if "timeout" not in given and ("budget" in given or "grace" in given):
        derived = config.timeout == config.budget + config.grace  # program.md left the timeout to follow the budget
        budget, grace = given.get("budget", config.budget), given.get("grace", config.grace)
        if derived or config.timeout < budget:
            given["timeout"] = budget + grace
    try:
        return _checked({**{f.name: getattr(config, f.name) for f in fields(Config)}, **given})
    except ValueError as e:
        raise ProgramError(f"command line: {e}") from None


def _checked(values: dict[str, Any]) -> Config:
    if "direction" in values and values["direction"] not in ("minimize", "maximize"):
        raise ValueError(f"'direction' must be minimize or maximize, not {values['direction']!r}")
    if values.get("sandbox") is False:
        values["sandbox"] = "off"  # YAML reads a bare `off` as false
    if "sandbox" in values and values["sandbox"] not in ("auto", "required", "off"):
        raise ValueError(f"'sandbox' must be auto, required or off, not {values['sandbox']!r}")
    if "deterministic" in values and values["deterministic"] not in (True, False, "auto"):
        raise ValueError(f"'deterministic' must be true, false or auto, not {values['deterministic']!r}")
    for key in ("budget", "timeout", "patience", "max_cost_usd", "evaluate_timeout"):
        if key in values and not (values[key] > 0 and math.isfinite(values[key])):
            raise ValueError(f"'{key}' must be a positive number, not {values[key]!r}")
    for key in ("baseline_runs", "history", "reflect_every"):
        if key in values and values[key] < 1:
            raise ValueError(f"'{key}' must be at least 1, not {values[key]!r}")
    if not 0 <= values.get("override_share", 0) <= 1:
        raise ValueError(f"'override_share' must be between 0 and 1, not {values['override_share']!r}")
    for key in ("remeasure_every", "confirm"):
        if key in values and values[key] < 0:
            raise ValueError(f"'{key}' must not be negative, not {values[key]!r}")
    if (
        "workers" in values
        and values["workers"] != "auto"
        and not (isinstance(values["workers"], int) and values["workers"] >= 1)
    ):
        raise ValueError(f"'workers' must be a whole number of at least 1, or auto, not {values['workers']!r}")
    for key in ("max_memory", "max_output"):
        if key in values and values[key] != "auto":
            values[key] = str(values[key])
            try:
                parse_size(values[key])
            except ValueError as e:
                raise ValueError(f"'{key}' must be auto or a size: {e}") from None
    processes = values.get("max_processes", "auto")
    if processes != "auto" and not (isinstance(processes, int) and processes >= 16):
        raise ValueError(f"'max_processes' must be auto or a whole number of at least 16, not {processes!r}")
    if "executor" in values and values["executor"] not in EXECUTORS:
        raise ValueError(f"'executor' must be {' or '.join(EXECUTORS)}, not {values['executor']!r}")
    if (
        "ahead" in values
        and values["ahead"] != "auto"
        and not (isinstance(values["ahead"], int) and values["ahead"] >= 0)
    ):
        raise ValueError(f"'ahead' must be a whole number of at least 0, or auto, not {values['ahead']!r}")
    if values.get("slurm_cluster", "") not in ("", "local", "slurm"):
        raise ValueError(f"'slurm_cluster' must be local or slurm, not {values['slurm_cluster']!r}")
    for key in ("slurm_gpus", "slurm_time"):
        if values.get(key, 0) < 0:
            raise ValueError(f"'{key}' must not be negative, not {values[key]!r}")
    if values.get("grace", 0) < 0:
        raise ValueError(f"'grace' must not be negative, not {values['grace']!r}")
    if values.get("agent_steps", 0) < 0:
        raise ValueError(f"'agent_steps' must not be negative, not {values['agent_steps']!r}")
    if values.get("min_delta", 0) < 0:
        raise ValueError(f"'min_delta' must not be negative, not {values['min_delta']!r}")
    for key in ("protected", "hidden", "data", "context"):
        if key in values:
            if not all(isinstance(p, str) and p for p in values[key]):
                raise ValueError(f"'{key}' must be a list of paths")
            values[key] = tuple(values[key])
    for key in ("mutable", "run", "metric", "model"):
        if key in values and not values[key].strip():
            raise ValueError(f"'{key}' must not be empty")
    if "timeout" not in values:  # an unset timeout follows the budget
        values["timeout"] = values.get("budget", Config.budget) + values.get("grace", Config.grace)
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
