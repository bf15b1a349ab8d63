"""The top-level constants of a Python file: read them, and rewrite them with libcst so comments and layout survive."""

from __future__ import annotations

import ast
from typing import Any

import libcst as cst


def read_constants(source: str) -> dict[str, Any]:
    """Top-level `NAME = <literal>` assignments (numbers, strings, booleans, tuples of them) and their values."""
    out: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, value = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, value = node.target.id, node.value
        else:
            continue
        try:
            out[name] = ast.literal_eval(value)
        except ValueError:
            continue
    return out


def literal(value: Any) -> str:
    """Python source for a constant, short and exact enough to read in a diff (floats to 4 significant digits)."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = f"{value:.4g}"
        if "e" in text:
            mantissa, exp = text.split("e")
            text = f"{mantissa}e{int(exp)}"
            return text if "." in mantissa else f"{mantissa}.0e{int(exp)}"
        return text if "." in text or "inf" in text or "nan" in text else text + ".0"
    return repr(value)


class _Rewrite(cst.CSTTransformer):
    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self.done: set[str] = set()

    # Only module-level assignments are constants; the same name inside a function is something else.
    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False

    def leave_Assign(self, original: cst.Assign, updated: cst.Assign) -> cst.Assign:
        if len(updated.targets) == 1 and isinstance(updated.targets[0].target, cst.Name):
            name = updated.targets[0].target.value
            if name in self.values:
                self.done.add(name)
                return updated.with_changes(value=_expression(updated.value, self.values[name]))
        return updated

    def leave_AnnAssign(self, original: cst.AnnAssign, updated: cst.AnnAssign) -> cst.AnnAssign:
        if isinstance(updated.target, cst.Name) and updated.target.value in self.values and updated.value is not None:
            self.done.add(updated.target.value)
            return updated.with_changes(value=_expression(updated.value, self.values[updated.target.value]))
        return updated


def _expression(old: cst.BaseExpression, value: Any) -> cst.BaseExpression:
    """The new value's expression; the old one, byte for byte, when it already says that value (so a diff shows only
    the constants that changed), and a string in the quotes the file used."""
    try:
        current = ast.literal_eval(cst.Module(body=[]).code_for_node(old))
    except (ValueError, SyntaxError, TypeError):
        current = None
    text = literal(value)
    if type(current) is type(value) and current == ast.literal_eval(text):  # the same once written: 4 digits
        return old
    quoted = isinstance(old, cst.SimpleString) and old.quote == '"'
    if isinstance(value, str) and quoted and text[0] == "'" and '"' not in text:
        return cst.SimpleString('"' + text[1:-1] + '"')
    return cst.parse_expression(text)


def set_constants(source: str, values: dict[str, Any]) -> str:
    """The source with the given top-level constants set; raises KeyError naming constants the file lacks."""
    module = cst.parse_module(source)
    rewrite = _Rewrite(values)
    new = module.visit(rewrite)
    missing = set(values) - rewrite.done
    if missing:
        raise KeyError(", ".join(sorted(missing)))
    return new.code
