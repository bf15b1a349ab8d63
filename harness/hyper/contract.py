"""The contract gate of an agent file, read from its syntax tree and never run: propose(task, llm) and
rewrite(task, llm) at top level, and nothing the file wrote that runs when it is imported.

What runs at import is every top-level statement, and inside the statements Python evaluates as it defines things:
decorators, default values, annotations (of parameters, returns and names, unless postponed), base classes, class
keywords (a metaclass), class bodies, the `__init_subclass__`, `__set_name__` and `__class_getitem__` hooks those
trigger, and a test of `__name__` that an assignment made true. So the top level (and every class body) may hold only:

- imports (binding no dunder name), docstrings, `pass`, and `if __name__ == "__main__":` without an `else`;
- assignments to plain names (no dunder but `__all__`, `__slots__`, `__version__`) whose values are built of
  literals, names, attributes, subscripts, operators and f-strings, and of calls to PURE callables only (builtins the
  file does not rebind, and `re.compile` of an `import re`), so no value is computed by code the file wrote;
- defs whose decorators are `staticmethod`, `classmethod` or `property` (not rebound), whose defaults are such
  values, whose annotations name types (names, attributes, subscripts, `|`, strings) and call nothing, and, in a
  class, that are none of the hooks;
- classes under the same rules, with no keywords (no metaclass), and bases that are builtin types or classes defined
  above them in the file (a library base may run code of the class it is given, as enum.Enum does).

Function bodies are not checked: nothing in them runs at import.
"""

from __future__ import annotations

import ast
import builtins
from collections import Counter

ENTRIES = ("propose", "rewrite")
PARAMETERS = ["task", "llm"]
PURE = frozenset({"frozenset", "tuple", "list", "dict", "set", "str", "int", "float", "bool", "range", "bytes"})
DECORATORS = frozenset({"staticmethod", "classmethod", "property"})
HOOKS = frozenset({"__init_subclass__", "__set_name__", "__class_getitem__", "__mro_entries__", "__prepare__"})
DUNDERS = frozenset({"__all__", "__slots__", "__version__"})  # dunder names a file may bind
VALUES = (
    ast.Constant, ast.Name, ast.Attribute, ast.Subscript, ast.Slice, ast.Tuple, ast.List, ast.Set, ast.Dict,
    ast.Starred, ast.UnaryOp, ast.BinOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.JoinedStr, ast.FormattedValue,
    ast.Load, ast.unaryop, ast.operator, ast.boolop, ast.cmpop,
)  # fmt: skip
CALLS = "calls something other than a builtin constructor (dict(), frozenset(), ...) or re.compile()"
TYPES = (ast.Constant, ast.Name, ast.Attribute, ast.Subscript, ast.Tuple, ast.List, ast.BinOp, ast.BitOr, ast.Load)


def check(tree: ast.Module) -> str:
    """Why a module breaks the agent contract (with its line), or ""."""
    checker = _Checker(tree)
    for node in tree.body:
        why = checker.statement(node, top=True)
        if why:
            decorators = getattr(node, "decorator_list", [])
            return f"agent.py:{min([node.lineno, *(d.lineno for d in decorators)])}: {why}"
    defs = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    for name in ENTRIES:
        fn = defs.get(name)
        if fn is None:
            return f"agent.py has no top-level def {name}(task, llm)"
        if sum(name in _binds(node) for node in tree.body) > 1:
            return f"agent.py:{fn.lineno}: {name} is bound more than once at top level"
        args = fn.args
        names = [a.arg for a in [*args.posonlyargs, *args.args]]
        if names != PARAMETERS or args.vararg or args.kwarg or args.kwonlyargs:
            return f"agent.py:{fn.lineno}: {name}({_params(args)}) must take exactly (task, llm)"
    return ""


class _Checker:
    """The rules of the module docstring, with what the file binds (a rebound builtin is the file's code)."""

    def __init__(self, tree: ast.Module) -> None:
        bindings = [(name, node) for node in _scope(tree.body) for name in _binds(node)]
        self.bound = Counter(name for name, _ in bindings)  # names the file binds at top level or in a class body
        imports = {name: node.names for name, node in bindings if isinstance(node, ast.Import)}
        # A name bound once, by `import re`, is the module re.
        self.modules = {
            n: a.name for n, names in imports.items() if self.bound[n] == 1 for a in names if a.asname in (None, n)
        }
        self.classes: set[str] = set()  # classes defined so far at top level, and bound nowhere else

    def statement(self, node: ast.stmt, *, top: bool) -> str:
        """Why `node` may run code the file wrote when the module is imported, or ""."""
        method = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for name in _binds(node):
            dunder = name.startswith("__") and name.endswith("__")
            if dunder and name not in DUNDERS and not (method and name not in HOOKS):
                return f"it binds {name}, which the file may not set"
        if isinstance(node, ast.Import | ast.ImportFrom | ast.Pass):
            return ""
        if isinstance(node, ast.Expr):
            doc = isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            return "" if doc else "an expression statement runs at import"
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if not all(_names_only(t) for t in targets):
                return "an assignment to something other than a name"
            if isinstance(node, ast.AnnAssign) and not self.type(node.annotation):
                return "an annotation that calls something"
            return "" if node.value is None or self.value(node.value) else f"an assignment whose value {CALLS}"
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            return self.function(node)
        if isinstance(node, ast.ClassDef):
            return self.cls(node)
        if top and isinstance(node, ast.If) and _is_main_guard(node.test) and not node.orelse:
            return ""  # never runs on import: nothing may set __name__
        return f"this {type(node).__name__.lower()} statement runs at import"

    def function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
        why = self.decorators(node.decorator_list)
        if why:
            return why
        args = node.args
        defaults = [*args.defaults, *(d for d in args.kw_defaults if d is not None)]
        if not all(self.value(d) for d in defaults):
            return f"a default value of {node.name}() {CALLS}"
        params = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
        annotations = [a.annotation for a in params if a is not None and a.annotation is not None]
        if not all(self.type(a) for a in [*annotations, *([node.returns] if node.returns else [])]):
            return f"an annotation of {node.name}() calls something"
        return ""

    def cls(self, node: ast.ClassDef) -> str:
        why = self.decorators(node.decorator_list)
        if why:
            return why
        if node.keywords:
            return f"class {node.name} has keywords (a metaclass runs code at import)"
        for base in node.bases:
            name = base.id if isinstance(base, ast.Name) else ""
            builtin = type(getattr(builtins, name, None)) is type and name not in self.bound
            if not (builtin or name in self.classes):
                return f"class {node.name} has a base that is neither a builtin type nor a class defined above it"
        for item in node.body:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name in HOOKS:
                return f"class {node.name} defines {item.name}, which runs at import"
            why = self.statement(item, top=False)
            if why:
                return f"in class {node.name}: {why}"
        if self.bound[node.name] == 1:
            self.classes.add(node.name)
        return ""

    def decorators(self, decorators: list[ast.expr]) -> str:
        for d in decorators:
            if not (isinstance(d, ast.Name) and d.id in DECORATORS and d.id not in self.bound):
                return "a decorator runs at import (only staticmethod, classmethod and property may be used)"
        return ""

    def value(self, node: ast.expr) -> bool:
        """Whether evaluating `node` runs no code of the file's: literals and names, and pure calls of them."""
        if isinstance(node, ast.Call):
            return self.pure(node.func) and all(self.value(a) for a in [*node.args, *(k.value for k in node.keywords)])
        if not isinstance(node, VALUES):
            return False
        return all(self.value(c) for c in ast.iter_child_nodes(node) if isinstance(c, ast.expr))

    def pure(self, func: ast.expr) -> bool:
        if isinstance(func, ast.Name):
            return func.id in PURE and func.id not in self.bound
        return (
            isinstance(func, ast.Attribute)
            and func.attr == "compile"
            and isinstance(func.value, ast.Name)
            and func.value.id == "re"
            and "re" in self.modules
        )

    def type(self, node: ast.expr) -> bool:
        """Whether an annotation only names types: no call, no lambda, no walrus, nothing computed."""
        if isinstance(node, ast.BinOp) and not isinstance(node.op, ast.BitOr):
            return False
        if not isinstance(node, TYPES):
            return False
        return all(self.type(c) for c in ast.iter_child_nodes(node) if isinstance(c, ast.expr))


def _binds(node: ast.stmt) -> list[str]:
    """The names a statement binds in the scope it runs in."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    if isinstance(node, ast.Import | ast.ImportFrom):
        return [(a.asname or a.name).split(".")[0] for a in node.names]
    if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign | ast.For | ast.AsyncFor | ast.With):
        targets = (
            node.targets if isinstance(node, ast.Assign)
            else [i.optional_vars for i in node.items if i.optional_vars] if isinstance(node, ast.With)
            else [node.target]
        )  # fmt: skip
        return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    return []


def _scope(body: list[ast.stmt]) -> list[ast.stmt]:
    """The statements that run at import: the top level's, and those of every class body in it."""
    out: list[ast.stmt] = []
    for node in body:
        out.append(node)
        if isinstance(node, ast.ClassDef):
            out += _scope(node.body)
    return out


def _names_only(target: ast.expr) -> bool:
    if isinstance(target, ast.Tuple | ast.List):
        return all(_names_only(t) for t in target.elts)
    return isinstance(target, ast.Name)


def _is_main_guard(test: ast.expr) -> bool:
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.ops) == 1
        and isinstance(test.ops[0], ast.Eq)
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value == "__main__"
    )


def _params(args: ast.arguments) -> str:
    names = [a.arg for a in [*args.posonlyargs, *args.args]]
    names += [f"*{args.vararg.arg}"] if args.vararg else ["*"] if args.kwonlyargs else []
    names += [a.arg for a in args.kwonlyargs] + ([f"**{args.kwarg.arg}"] if args.kwarg else [])
    return ", ".join(names)
