"""The contract gate: each construct that runs an agent file's own code at import, imported for real to show that it
does, is refused with its line; what runs nothing of the file's (the seed agent among them) passes."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.hyper import contract

ROOT = Path(__file__).resolve().parent.parent
BASE = """import enum
import os

from harness.task import Proposal


def plant(*args, **kwargs):
    with open(os.environ["PLANTED"], "w") as f:
        f.write("planted")
    return object


def propose(task, llm):
    return Proposal("x", task.mutable_content)


def rewrite(task, llm):
    return Proposal("x", task.agent_source)


"""
# Each runs plant() when the module is imported; the gate names why.
HOSTILE = {
    "decorator": ("@plant\ndef helper():\n    pass\n", "a decorator runs at import"),
    "default": ("def helper(x=plant()):\n    pass\n", "a default value of helper() calls something"),
    "keyword default": ("def helper(*, x=plant()):\n    pass\n", "a default value of helper() calls something"),
    "parameter annotation": ("def helper(x: plant()):\n    pass\n", "an annotation of helper() calls something"),
    "return annotation": ("def helper() -> plant():\n    pass\n", "an annotation of helper() calls something"),
    "module annotation": ("X: plant() = 1\n", "an annotation that calls something"),
    "class body": ("class C:\n    plant()\n", "in class C: an expression statement runs at import"),
    "class constant": ("class C:\n    X = plant()\n", "in class C: an assignment whose value calls something"),
    "method default": ("class C:\n    def m(self, x=plant()):\n        pass\n", "in class C: a default value of m()"),
    "base expression": ("class C(plant()):\n    pass\n", "class C has a base that is neither a builtin type"),
    "metaclass": ("class C(metaclass=plant):\n    pass\n", "class C has keywords (a metaclass"),
    "init_subclass": (
        "class A:\n    def __init_subclass__(cls, **kw):\n        plant()\n\n\nclass B(A):\n    pass\n",
        "class A defines __init_subclass__, which runs at import",
    ),
    "class_getitem": (
        "class G:\n    def __class_getitem__(cls, item):\n        plant()\n\n\nX = G[int]\n",
        "class G defines __class_getitem__",
    ),
    "library base": (
        "class E(enum.Enum):\n    A = 1\n\n    def __new__(cls, value):\n        plant()\n"
        "        member = object.__new__(cls)\n        member._value_ = value\n        return member\n",
        "class E has a base that is neither a builtin type nor a class defined above it",
    ),
    "rebound builtin": ("def frozenset(*args):\n    return plant()\n\n\nX = frozenset()\n", "value calls something"),
    "__name__": ('__name__ = "__main__"\nif __name__ == "__main__":\n    plant()\n', "it binds __name__"),
    "main guard else": ('if __name__ == "__main__":\n    pass\nelse:\n    plant()\n', "this if statement runs"),
    "walrus": ("X = (y := plant())\n", "an assignment whose value calls something"),
    "attribute call": ("X = os.system('true') or plant()\n", "an assignment whose value calls something"),
}


def imported(source: str, tmp_path: Path) -> bool:
    """Whether importing `source` for real, in a child interpreter, runs plant()."""
    path, planted = tmp_path / "candidate.py", tmp_path / "planted"
    path.write_text(source)
    load = "import importlib.util as u, sys; s = u.spec_from_file_location('c', sys.argv[1]); "
    load += "s.loader.exec_module(u.module_from_spec(s))"
    env = {**os.environ, "PLANTED": str(planted)}
    subprocess.run([sys.executable, "-c", load, str(path)], env=env, capture_output=True, timeout=60, cwd=ROOT)
    return planted.exists()


@pytest.mark.parametrize("name", list(HOSTILE))
def test_each_construct_that_runs_code_at_import_is_refused(name: str, tmp_path: Path):
    construct, why = HOSTILE[name]
    source = BASE + construct
    assert imported(source, tmp_path), f"{name} does not run at import: the test proves nothing"
    error = contract.check(ast.parse(source))
    first, last = BASE.count("\n") + 1, (BASE + construct).count("\n")
    assert first <= int(error.split(":")[1]) <= last and why in error, error


ALLOWED = '''"""An agent with everything the gate lets through."""

from __future__ import annotations

import re
from dataclasses import field

from harness.task import Proposal

PATTERN = re.compile(r"^X = ", re.MULTILINE)  # re.compile of literals: pure
NAMES = frozenset({"a", "b"}) | {"c"}
PROMPT = f"Use {2 if NAMES else 1:>3} names" + " please"
TABLE = {"k": (1, 2.5, None), **{"j": [-1]}}
LIMIT: int = 10**3
__all__ = ["propose", "rewrite"]


class Error(ValueError):
    """A class on a builtin base, with methods and literal constants."""

    CODE = 3
    ITEMS: tuple[str, ...] = ("x",)

    def __init__(self, why: str = "no reason", *, code: int | None = None) -> None:
        super().__init__(why)

    @property
    def code(self) -> int:
        return self.CODE

    @staticmethod
    def make(text: str) -> Error:
        return Error(text)


class Special(Error):
    pass


def propose(task, llm):
    return Proposal("x", PATTERN.sub("X = ", task.mutable_content), notes=str(field))


def rewrite(task, llm):
    return Proposal("x", task.agent_source)


if __name__ == "__main__":
    print(propose(None, None))
'''


def test_what_runs_nothing_of_the_files_passes_and_plants_nothing(tmp_path: Path):
    assert contract.check(ast.parse(ALLOWED)) == ""
    assert not imported(ALLOWED, tmp_path)
    assert contract.check(ast.parse((ROOT / "agent.py").read_text())) == ""  # the seed agent


def test_the_entry_points_must_be_defs_with_exactly_task_and_llm():
    no_rewrite = BASE.replace("def rewrite(task, llm):", "def rewrite2(task, llm):")
    assert contract.check(ast.parse(no_rewrite)) == "agent.py has no top-level def rewrite(task, llm)"
    rebound = BASE + "propose = rewrite\n"
    assert "propose is bound more than once at top level" in contract.check(ast.parse(rebound))
    extra = BASE.replace("def propose(task, llm):", "def propose(task, llm, *, x=1):")
    assert "propose(task, llm, *, x) must take exactly (task, llm)" in contract.check(ast.parse(extra))
