"""The gates a candidate agent.py must pass, cheapest first: scope, compile and contract on its text in the harness,
then import, signature and smoke in a sandboxed child. The harness process never imports or runs a candidate."""

from __future__ import annotations

import ast
import json
import sys
import time
from collections.abc import Callable, Collection
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import process
from harness.agents.host import Lines
from harness.edits import fence_for
from harness.jails import Jail
from harness.precheck import compiles
from harness.task import Spend, Task
from harness.text import one_line

MAX_AGENT_BYTES = 256 * 2**10  # a candidate larger than this is not a plausible agent.py (the seed is ~10 KiB)
ENTRIES = ("propose", "rewrite")
PARAMETERS = ["task", "llm"]
# Calls a top-level constant may be built with: pure constructors, nothing that reaches outside the process.
PURE_CALLS = frozenset({"frozenset", "tuple", "list", "dict", "set", "str", "int", "float", "bool", "range"})
STUB_CALLS = 20  # LLM calls the smoke test answers; more is a runaway loop


@dataclass(frozen=True)
class Limits:
    """What the child gates allow a candidate: wall seconds per gate, and its process's resource limits."""

    import_seconds: float = 30.0
    signature_seconds: float = 10.0
    smoke_seconds: float = 60.0
    memory: int = 2 * 2**30  # bytes of address space
    cpu: int = 60  # CPU seconds for all three gates
    files: int = 2**20  # bytes of one file it writes (in its scratch folder: nowhere else is writable)
    processes: int = 0  # new processes or threads: none

    def seconds(self, stage: str) -> float:
        return {"import": self.import_seconds, "signature": self.signature_seconds}.get(stage, self.smoke_seconds)


@dataclass(frozen=True)
class Rejection:
    """Why a candidate failed: the gate, and one line."""

    stage: str
    error: str


# --- the static gates, on the text ------------------------------------------------------------------------------


def scope(content: object, champion: str, tried: Collection[str], sha: str, strays: list[str]) -> Rejection | None:
    """Only agent.py differs, the diff is not empty, the file is under the size limit and was not tried before
    (`tried`: the versions the night has seen, `sha` this one's)."""
    if strays:
        return Rejection("scope", f"the rewrite changed {', '.join(strays[:5])}; only agent.py may change")
    if not isinstance(content, str) or not content.strip():
        return Rejection("scope", "the rewrite gave no agent.py content")
    if content == champion:
        return Rejection("scope", "the rewrite returned the champion agent.py unchanged: no rewrite")
    size = len(content.encode("utf-8", errors="replace"))
    if size > MAX_AGENT_BYTES:
        return Rejection("scope", f"the candidate is {size:,} bytes, over the limit of {MAX_AGENT_BYTES:,}")
    if sha in tried:
        return Rejection("scope", "the candidate was already tried in this night (same content)")
    return None


def static(content: str) -> Rejection | None:
    """The compile gate, then the contract gate: both read the text, neither runs it."""
    error = compiles(content, "agent.py")
    if error:
        return Rejection("compile", error)
    error = contract(ast.parse(content, "agent.py"))
    return Rejection("contract", error) if error else None


def contract(tree: ast.Module) -> str:
    """Why a module breaks the agent contract, or "": propose(task, llm) and rewrite(task, llm) defined at top level
    with exactly these parameters, and nothing at top level that runs at import beyond imports, definitions,
    constants and docstrings."""
    defs: dict[str, ast.FunctionDef] = {}
    for node in tree.body:
        why = _top_level(node)
        if why:
            return f"agent.py:{node.lineno}: {why}; only imports, defs, classes, constants and docstrings may be there"
        if isinstance(node, ast.FunctionDef):
            defs[node.name] = node
        for name in _bound(node):
            if name in ENTRIES and not isinstance(node, ast.FunctionDef):
                return f"agent.py:{node.lineno}: {name} is bound by a statement that is not its def"
    for name in ENTRIES:
        fn = defs.get(name)
        if fn is None:
            return f"agent.py has no top-level def {name}(task, llm)"
        args = fn.args
        names = [a.arg for a in [*args.posonlyargs, *args.args]]
        if names != PARAMETERS or args.vararg or args.kwarg or args.kwonlyargs:
            return f"agent.py:{fn.lineno}: {name}({_params(args)}) must take exactly (task, llm)"
    return ""


def _top_level(node: ast.stmt) -> str:
    """Why a top-level statement may have a side effect at import, or ""."""
    if isinstance(node, ast.Import | ast.ImportFrom | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return ""
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
        return ""  # a docstring
    if isinstance(node, ast.Assign | ast.AnnAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if not all(_names_only(t) for t in targets):
            return "an assignment to something other than a name"
        if node.value is not None and not _constant(node.value):
            return "an assignment whose value is computed by a call"
        return ""
    if isinstance(node, ast.If) and _is_main_guard(node.test) and not node.orelse:
        return ""  # never runs on import
    return f"a top-level {type(node).__name__.lower()} statement runs at import"


def _names_only(target: ast.expr) -> bool:
    if isinstance(target, ast.Tuple | ast.List):
        return all(_names_only(t) for t in target.elts)
    return isinstance(target, ast.Name)


def _constant(node: ast.expr) -> bool:
    """A value built of literals, names and pure constructors: evaluating it reaches nothing outside."""
    if isinstance(node, ast.Call):
        pure = isinstance(node.func, ast.Name) and node.func.id in PURE_CALLS
        return pure and all(_constant(a) for a in node.args) and all(_constant(k.value) for k in node.keywords)
    if isinstance(node, ast.Lambda | ast.NamedExpr | ast.Await | ast.Yield | ast.YieldFrom):
        return False
    if isinstance(node, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
        return False
    return all(_constant(child) for child in ast.iter_child_nodes(node) if isinstance(child, ast.expr))


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


def _bound(node: ast.stmt) -> list[str]:
    """The top-level names a statement binds."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    if isinstance(node, ast.Import | ast.ImportFrom):
        return [(a.asname or a.name).split(".")[0] for a in node.names]
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
    return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]


def _params(args: ast.arguments) -> str:
    names = [a.arg for a in [*args.posonlyargs, *args.args]]
    names += [f"*{args.vararg.arg}"] if args.vararg else ["*"] if args.kwonlyargs else []
    names += [a.arg for a in args.kwonlyargs] + ([f"**{args.kwarg.arg}"] if args.kwarg else [])
    return ", ".join(names)


# --- the gates that run it, in a sandboxed child ----------------------------------------------------------------


def isolated(
    candidate: Path,
    task: Task,
    jail: AbstractContextManager[Jail],
    log: Path,
    limits: Limits,
    entered: Callable[[str], None] | None = None,
) -> Rejection | None:
    """The import, signature and smoke gates of the candidate at `candidate` (a scratch copy the jail shows it),
    in a fresh interpreter inside `jail`, each gate with its own time limit; the first that fails, or None.
    `entered` hears the name of each gate as the child enters it."""
    request = {
        "path": str(candidate),
        "task": task.to_json(),
        "limits": {"memory": limits.memory, "cpu": limits.cpu, "files": limits.files, "processes": limits.processes},
    }
    stage = "import"
    log.parent.mkdir(parents=True, exist_ok=True)
    with jail as cell, open(log, "wb") as sink:
        child = cell.spawn(
            [sys.executable, "-I", "-m", "harness.hyper.gate_child"],
            stdin=process.PIPE,
            stdout=process.PIPE,
            stderr=sink,
        )
        try:
            child.stdin.write((json.dumps(request) + "\n").encode())
            child.stdin.flush()
            lines, calls = Lines(child.stdout.fileno()), 0
            while True:
                started = time.monotonic()
                line = lines.next(limits.seconds(stage))
                if line is None:
                    late = time.monotonic() - started >= limits.seconds(stage)
                    child.kill_tree(grace=0.5)
                    code = None if late else child.wait(timeout=2)
                    return Rejection(stage, _ended(stage, code, limits, log))
                message = json.loads(line)
                op = message.get("op")
                if op == "stage" and message.get("stage") in ("import", "signature", "smoke"):
                    stage = message["stage"]
                    if entered is not None:
                        entered(stage)
                elif op == "llm":
                    calls += 1
                    _answer(child, _stub(task) if calls <= STUB_CALLS else _refused("too many LLM calls"))
                elif op == "tool":
                    _answer(child, {"ok": False, "text": "no tools in the smoke test"})
                elif op == "result":
                    return _proposal(message.get("proposal"), task.mutable_path)
                else:
                    return Rejection(stage, one_line(str(message.get("error", "the child broke the protocol")))[:300])
        except (BrokenPipeError, ValueError, AttributeError) as e:
            return Rejection(stage, f"the candidate broke the gate protocol ({type(e).__name__}); see {log}")
        finally:
            child.kill_tree(grace=0.5)


def _ended(stage: str, code: int | None, limits: Limits, log: Path) -> str:
    """Why the child said nothing more: its time limit (`code` None), a resource limit, or its own exit."""
    if code is None:
        return f"the {stage} gate took longer than {limits.seconds(stage):g} s (stopped); see {log}"
    if code in (-24, 152):  # SIGXCPU, directly or through bwrap
        return f"the candidate used more than {limits.cpu} s of CPU (stopped); see {log}"
    if code in (-25, 153):  # SIGXFSZ
        return f"the candidate wrote a file over {limits.files:,} bytes (stopped); see {log}"
    return f"the child ended (status {code}) during the {stage} gate; see {log}"


def _proposal(raw: Any, path: str) -> Rejection | None:
    """The smoke test's verdict on what propose returned (checked again here: the child is not trusted)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("content"), str):
        return Rejection("smoke", "propose returned no file content")
    description = raw.get("description")
    if not isinstance(description, str) or not one_line(description):
        return Rejection("smoke", "propose returned a Proposal without a description")
    error = compiles(raw["content"], path) if path.endswith(".py") else ""
    return Rejection("smoke", f"the proposed file does not parse: {error}") if error else None


def _stub(task: Task) -> dict[str, Any]:
    """The smoke test's LLM reply: in agent.py's format, the whole file with one comment line added."""
    content = task.mutable_content if task.mutable_content.endswith("\n") else task.mutable_content + "\n"
    fence = fence_for(content)
    text = f"DESCRIPTION: smoke test\nNOTES: smoke test\n{fence}python\n{content}# smoke test\n{fence}\n"
    block = {"type": "text", "text": text}
    return {"ok": True, "text": text, "stop_reason": "end_turn", "model": "smoke-stub", "content": [block],
            "usage": Spend().to_json()}  # fmt: skip


def _refused(why: str) -> dict[str, Any]:
    return {"ok": False, "error": why}


def _answer(child: process.Child, answer: dict[str, Any]) -> None:
    child.stdin.write((json.dumps(answer) + "\n").encode())
    child.stdin.flush()
