"""Where measurements run, one registry: each executor a module of this folder with a `build()` that makes it from the
program in force. Adding one is a module and a line here; program.md's checks, the CLI's choices and the README read
this table."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Kind:
    """One executor: the module that builds it, what it is in a few words, and the optional extra it needs."""

    module: str
    meaning: str
    extra: str = ""


EXECUTORS: dict[str, Kind] = {
    "local": Kind("harness.executors.local", "this machine"),
    "ray": Kind("harness.executors.ray", "a Ray cluster", extra="ray"),
    "slurm": Kind("harness.executors.slurm", "a Slurm cluster, through submitit", extra="slurm"),
}


def load(name: str) -> ModuleType:
    """The module of the executor `name` (a key of EXECUTORS); its `build(config, root, tag, files, sandbox, nodes)`
    makes the executor."""
    return importlib.import_module(EXECUTORS[name].module)


def described() -> str:
    """The executors in words, as program.md's table and --help say them: `local` (this machine) or `ray` (...)."""
    parts = [f"`{n}` ({k.meaning}{f'; the `{k.extra}` extra' if k.extra else ''})" for n, k in EXECUTORS.items()]
    return ", ".join(parts[:-1]) + f" or {parts[-1]}" if len(parts) > 1 else parts[0]
