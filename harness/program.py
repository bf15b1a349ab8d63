"""program.md: the person's steering file, YAML front matter (the config) and free text (for the agent)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from harness.config import Config, build_config
from harness.errors import ProgramError


@dataclass(frozen=True)
class Program:
    """A parsed program.md: its config, its free text, and the hash that identifies this version."""

    config: Config
    text: str
    sha: str
    path: Path = field(default=Path("program.md"))
    lines: dict[str, int] = field(default_factory=dict, compare=False)  # front-matter key -> its line in the file

    def where(self, key: str) -> str:
        """`program.md:<line>` of a front-matter key (the file alone when the key is not written in it)."""
        line = self.lines.get(key)
        return f"{self.path.name}:{line}" if line else self.path.name


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
    return Program(config, body.strip() + "\n", sha, path, lines)


def locate(text: str) -> dict[tuple[str | int, ...], int]:
    """The line of every key and list item of the front matter, by its path: ("search", "DEPTH") -> 14,
    ("protected", 1) -> 9; {} when there is no front matter (parse reports a malformed one)."""
    try:
        front, _, first = split_front_matter(text)
        node = yaml.compose(front or "", Loader=yaml.SafeLoader)
    except (ProgramError, yaml.YAMLError):
        return {}
    found: dict[tuple[str | int, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str | int, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    found[(*path, key.value)] = first + key.start_mark.line
                    walk(value, (*path, key.value))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                found[(*path, i)] = first + item.start_mark.line
                walk(item, (*path, i))

    if node is not None:
        walk(node, ())
    return found


def load(path: Path) -> Program:
    """Read and parse program.md; a missing or unreadable file is a ProgramError too."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProgramError(f"{path}: not found; write one (see README) or run 'autoresearch init'") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ProgramError(f"{path}: cannot be read: {e}") from None
    return parse(text, path)
