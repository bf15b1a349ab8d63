"""A Python file's API in few lines: its docstring, its constants, and the signatures and docstrings of its public
functions and classes (what an agent needs of a context file that is too long to show whole); and its contract
with the file that uses it: what that file takes from it, and what its docstring says the contract is."""

from __future__ import annotations

import ast


def outline(source: str) -> str:
    """The outline of a Python source, or "" when it does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return ""
    lines = source.splitlines()
    out: list[str] = []
    doc = ast.get_docstring(tree)
    if doc:
        out.append(f'"""{doc}"""')
    for node in tree.body:
        out += _entry(node, lines, "")
    return "\n".join(out)


def _entry(node: ast.stmt, lines: list[str], indent: str) -> list[str]:
    if isinstance(node, ast.Assign | ast.AnnAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        public = all(n.isupper() and not n.startswith("_") for n in names)
        if names and public and node.end_lineno == node.lineno:
            return [lines[node.lineno - 1]]  # a constant, with its comment
        return []
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return []
    if node.name.startswith("_") and not node.name.startswith("__"):
        return []
    first = min([d.lineno for d in node.decorator_list] + [node.lineno])
    body = node.body[0].lineno if node.body else node.lineno + 1
    head = [line.rstrip() for line in lines[first - 1 : max(first, body - 1)]]
    if node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant):
        head = [line.rstrip() for line in lines[first - 1 : node.body[0].lineno - 1]]  # up to the docstring
    doc = ast.get_docstring(node)
    inner = indent + "    "
    gap = [""] if not indent else []  # a blank line between top-level entries, as in the file
    out = gap + head + ([f'{inner}"""{doc}"""'.replace("\n", "\n" + inner)] if doc else [])
    if isinstance(node, ast.ClassDef):
        for child in node.body:
            out += _entry(child, lines, inner)
    else:
        out.append(f"{inner}...")
    return out


def contract(source: str, module: str, user: str) -> str:
    """What `user` (the mutable file's source) must call of `source` (the module `module`, read-only): the first
    line of its docstring and the paragraphs that state a contract, then the entries of the names `user` takes from
    it; "" when `source` does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return ""
    lines = source.splitlines()
    doc = ast.get_docstring(tree) or ""
    paragraphs = [p.strip() for p in doc.split("\n\n") if p.strip()]
    out = [paragraphs[0].splitlines()[0]] if paragraphs else []
    out += [p for p in paragraphs[1:] if "contract" in p.lower()]
    used = _used(user, module)
    for node in tree.body:
        if _names(node) & used:
            out += _entry(node, lines, "")
    return "\n".join(out).strip()


def _used(user: str, module: str) -> set[str]:
    """The names `user` imports from `module` (from m import a, b) or reads as its attributes (m.a)."""
    try:
        tree = ast.parse(user)
    except (SyntaxError, ValueError):
        return set()
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == module:
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == module:
            found.add(node.attr)
    return found


def _names(node: ast.stmt) -> set[str]:
    if isinstance(node, ast.Assign | ast.AnnAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return {t.id for t in targets if isinstance(t, ast.Name)}
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name}
    return set()
