"""What a model-written process may see: program.md's `hidden:` and `data:` entries, anywhere on the machine, and the
one test of whether a path is hidden, for the sandbox's view, the scratch copy and the agents' tools alike."""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ProgramError

_MAGIC = frozenset("*?[")


def expand(entry: str, root: Path) -> str:
    """An entry as an absolute pattern: `~` is the home, a relative one is under `root`; no trailing slash."""
    text = os.path.expanduser(entry.strip())
    path = text if os.path.isabs(text) else os.path.join(str(root), text)
    return os.path.normpath(path)  # keeps `*`, `?` and `[...]` as they are


def _parts_match(parts: Sequence[str], pattern: Sequence[str]) -> bool:
    """Whether path components match pattern components one for one, `**` standing for any number of them."""
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_parts_match(parts[i:], rest) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], head) and _parts_match(parts[1:], rest)


def matches(path: str, pattern: str) -> bool:
    """Whether the absolute `path` itself is named by the absolute `pattern` (a glob's `*` stays in one folder)."""
    return _parts_match(Path(path).parts, Path(pattern).parts)


@dataclass(frozen=True)
class Sight:
    """program.md's `hidden:` and `data:` entries for the repository at `root`, expanded to absolute patterns."""

    root: Path
    hidden: tuple[str, ...] = ()  # absolute patterns
    data: tuple[str, ...] = ()

    @classmethod
    def of(cls, root: Path, hidden: Iterable[str] = (), data: Iterable[str] = ()) -> Sight:
        root = Path(os.path.realpath(root))
        return cls(root, tuple(expand(e, root) for e in hidden), tuple(expand(e, root) for e in data))

    def is_hidden(self, path: str | Path) -> bool:
        """Whether `path` (absolute, or relative to the repository) or any folder it lies in is `hidden:` data; a
        link is judged by where it leads as well as by where it stands."""
        text = os.path.normpath(os.path.join(str(self.root), os.path.expanduser(str(path))))
        places = {text}
        if os.path.lexists(text):
            places.add(os.path.realpath(text))
        return any(self._named(place) for place in places)

    def _named(self, path: str) -> bool:
        chain = [Path(path), *Path(path).parents]
        return any(matches(str(p), pattern) for pattern in self.hidden for p in chain)

    def masked(self) -> list[Path]:
        """Every path `hidden:` names now, outermost only, for the sandbox to cover."""
        return _outermost(_found(self.hidden))

    def declared(self) -> list[Path]:
        """Every path `data:` names now that is not hidden: the untracked files a run may read."""
        return [p for p in _outermost(_found(self.data)) if not self.is_hidden(p)]

    def problems(self, where: dict[str, str], user: tuple[int, int] | None = None) -> list[str]:
        """One line per path an entry names that cannot be read (by `user`, the uid and gid of the sandbox's
        processes, when not the harness's own), each with its place in program.md (`where` maps the keys 'hidden'
        and 'data' to it). An entry that names nothing is check.read_against's to say."""
        out = []
        for key, entries in (("hidden", self.hidden), ("data", self.data)):
            for pattern in entries:
                for path in _found((pattern,)):
                    if not _readable(path, user):
                        out.append(f"{where.get(key, 'program.md')}: '{key}' entry {path} cannot be read")
        return out


def matched(entry: str, root: Path) -> list[Path]:
    """What one `hidden:` or `data:` entry names now, as Sight reads it (relative to `root`, `~/`, or absolute)."""
    return _found((expand(entry, Path(os.path.realpath(root))),))


def _readable(path: Path, user: tuple[int, int] | None) -> bool:
    """Whether `user` (None: this process) may read `path` (and list it, a folder)."""
    folder = path.is_dir()
    if user is None:
        return os.access(path, os.R_OK) and (not folder or os.access(path, os.X_OK))
    try:
        info = path.stat()
    except OSError:
        return False
    shift = 6 if info.st_uid == user[0] else 3 if info.st_gid == user[1] else 0
    bits = (info.st_mode >> shift) & 0o7
    return bool(bits & 0o4) and (not folder or bool(bits & 0o1))


def _found(patterns: Iterable[str]) -> list[Path]:
    found: set[Path] = set()
    for pattern in patterns:
        if _MAGIC & set(pattern):
            found.update(Path(p) for p in glob.glob(pattern, recursive=True, include_hidden=True))
        elif os.path.lexists(pattern):
            found.add(Path(pattern))
    return sorted(found)


def _outermost(paths: Iterable[Path]) -> list[Path]:
    chosen = set(paths)
    return sorted(p for p in chosen if not any(other in p.parents for other in chosen))


def check(sight: Sight, where: dict[str, str], user: tuple[int, int] | None = None) -> None:
    """Raise ProgramError with every path a `hidden:` or `data:` entry names that cannot be read (by `user`)."""
    if problems := sight.problems(where, user):
        raise ProgramError("\n".join(problems))
