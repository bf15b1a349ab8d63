"""The harness's shape: no import cycles, small modules with a docstring, and a README that matches the schema."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from harness.agents import AGENTS
from harness.config import schema
from harness.executors import EXECUTORS

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "harness"
MAX_LINES = 600


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every harness module and the harness modules it imports, at the top or inside a function alike."""
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of `graph`, each as the path that closes it."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1 while on the stack, 2 when done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                found.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_the_harness_has_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 20  # the walk found the package
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]


def test_the_contracts_are_a_leaf():
    assert import_graph()["harness.task"] == set()


def test_every_module_is_small_and_says_what_it_owns():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        lines = len(text.splitlines())
        assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines; split it by what it owns"
        doc = ast.get_docstring(ast.parse(text))
        assert doc and doc.strip(), f"{path.relative_to(ROOT)} has no docstring saying what it owns"


def test_only_the_cli_imports_click():
    for path in PACKAGE.rglob("*.py"):
        if path.name != "cli.py":
            assert not re.search(r"^\s*(import click|from click)", path.read_text(), re.M), path


def test_the_readme_table_of_program_keys_is_the_schema():
    readme = (ROOT / "README.md").read_text()
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| (.*?) \|", readme, re.M))
    keys = schema()
    assert sorted(rows) == sorted(k.name for k in keys), "README's program.md table and the schema differ"
    for key in keys:
        line = next(line for line in readme.splitlines() if line.startswith(f"| `{key.name}` |"))
        assert key.meaning in line, f"README's line for '{key.name}' does not carry the schema's meaning"
        assert f"| {rows[key.name]} |" in line and rows[key.name].strip("`") == key.shown, key.name


def test_every_registered_agent_and_executor_is_in_the_readme_and_its_module_exists():
    readme = (ROOT / "README.md").read_text()
    for name, kind in AGENTS.items():
        assert f"- `--agent {name}`" in readme, f"README.md's Agents list has no `--agent {name}`"
        assert (ROOT / (kind.module.replace(".", "/") + ".py")).is_file(), kind.module
    for name, kind in EXECUTORS.items():
        module = kind.module.replace(".", "/") + ".py"
        line = next((line for line in readme.splitlines() if line.startswith(f"| `executor: {name}` |")), "")
        assert kind.meaning in line and f"`{module}`" in line, f"README.md's executors table lacks {name}"
        assert (ROOT / module).is_file(), module


# The layer map: which part of harness/ may import which, besides itself (README.md's table shows it; a test holds it).
LAYERS: dict[str, set[str]] = {
    "harness/": {"harness/agents/", "harness/executors/"},
    "harness/agents/": {"harness/"},
    "harness/executors/": {"harness/"},
    "harness/hyper/": {"harness/", "harness/agents/"},
    "harness/web/": {"harness/"},
    "harness/testing/": {"harness/"},
}
ENTRY = {"harness.cli", "harness.__main__"}  # the command reaches every part: it parses, delegates and prints


def _part(module: str) -> str:
    parts = module.split(".")
    return f"harness/{parts[1]}/" if len(parts) > 1 and f"harness/{parts[1]}/" in LAYERS else "harness/"


def test_every_import_follows_the_layer_map():
    wrong = [
        f"{a} imports {b}"
        for a, targets in import_graph().items()
        for b in targets
        if a not in ENTRY and _part(a) != _part(b) and _part(b) not in LAYERS[_part(a)]
    ]
    assert wrong == []


def test_the_readme_shows_the_layer_map_and_every_file_its_tables_name_exists():
    readme = (ROOT / "README.md").read_text()
    shown = {
        part: {p for p in re.findall(r"`([^`]+)`", allowed)}
        for part, allowed in re.findall(r"^\| `(harness/[a-z]*/?)` \| (.*) \|$", readme, re.M)
    }
    assert shown == LAYERS
    section = readme.split("Where to change what:", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"`(harness/[\w/.]+)`", section)
    assert len(named) >= 10
    for path in named:
        assert (ROOT / path).exists(), f"README.md's 'where to change what' names {path}, which does not exist"
