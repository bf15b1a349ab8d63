"""The git directory as files: its control files snapshotted and put back without following links, and its lock files
cleared when no live process holds them. No git runs here; repo.py owns git."""

from __future__ import annotations

import base64
import contextlib
import errno
import json
import os
import shutil
import stat
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

# The files of a git directory that can make git run a program: the config (hooks path, fsmonitor, drivers, includes)
# and its per-worktree part, every hook, and info/attributes (it routes paths to drivers the config defines). The rest
# (info/exclude, refs, objects, the index) can change what git looks at, never what it runs.
CONTROL = ("config", "config.worktree", "info", "info/attributes", "hooks")
DEEP = ("hooks",)  # compared entry by entry, at any depth
PROC = "/proc"
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a planted fifo must not hang us
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MISSING = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)  # a path that is not there as a real file or directory

Kind = Literal["file", "dir", "link", "other"]  # other: a fifo, socket or device, never kept, only removed


@dataclass(frozen=True)
class Entry:
    """One path of the control files: a regular file (mode, content), a directory (mode) or a link (its target)."""

    kind: Kind
    mode: int = 0  # permission bits; 0 for a link
    data: bytes = b""


@dataclass(frozen=True)
class ControlSnapshot:
    """What the control files of one git directory held at one moment, by path relative to that directory."""

    paths: tuple[str, ...]  # what was looked at, so that a path added since is found and removed
    entries: Mapping[str, Entry]

    @property
    def includes(self) -> bool:
        """Whether a config file here includes others (include.path, includeIf), whose content is not snapshotted."""
        configs = [e.data for p, e in self.entries.items() if p.rpartition("/")[2].startswith("config")]
        return any(b"include" in data.lower() for data in configs)

    def dumps(self) -> str:
        """The snapshot as JSON, to keep it across a restart of the harness."""
        entries = {p: [e.kind, e.mode, base64.b64encode(e.data).decode()] for p, e in self.entries.items()}
        return json.dumps({"paths": list(self.paths), "entries": entries})

    @classmethod
    def loads(cls, text: str) -> ControlSnapshot:
        """The snapshot `dumps` wrote."""
        raw = json.loads(text)
        entries = {p: Entry(k, mode, base64.b64decode(data)) for p, (k, mode, data) in raw["entries"].items()}
        return cls(tuple(raw["paths"]), entries)


# --- control files ----------------------------------------------------------------------------------------------


def snapshot(git_dir: Path, extra: Sequence[str] = ()) -> ControlSnapshot:
    """The control files of `git_dir` (plus `extra` paths relative to it) as they are now, read without following
    a link: a link in their place is recorded as a link, never read through."""
    paths = (*CONTROL, *extra)
    base = os.open(git_dir, _DIR & ~os.O_NOFOLLOW)  # the git directory itself as git found it; below it, no link
    try:
        found = _scan(base, paths)
    finally:
        os.close(base)
    return ControlSnapshot(paths, {p: e for p, e in found.items() if e.kind != "other"})


def restore(git_dir: Path, snap: ControlSnapshot) -> list[str]:
    """Put back every control path of `git_dir` that differs from `snap` (content, mode, kind, added or deleted),
    writing through no link; returns the paths that differed, relative to `git_dir`, outermost first."""
    base = os.open(git_dir, _DIR & ~os.O_NOFOLLOW)
    try:
        now = _scan(base, snap.paths)
        changed: list[str] = []
        cleared: list[str] = []  # directories removed whole: nothing below them is there any more
        for rel in sorted(now.keys() | snap.entries.keys(), key=lambda p: (p.count("/"), p)):
            want = snap.entries.get(rel)
            have = None if _below(rel, cleared) else now.get(rel)
            if have == want:
                continue
            if not _below(rel, changed):
                changed.append(rel)
            parent, _, name = rel.rpartition("/")
            fd = _open_dir(base, parent)
            if fd is None:  # parents come first in this order, so only a path under a removed one gets here
                continue
            try:
                _put(fd, name, have, want)
            finally:
                os.close(fd)
            if have is not None and have.kind == "dir" and not (want and want.kind == "dir"):
                cleared.append(rel)
        if changed:
            os.fsync(base)
        return changed
    finally:
        os.close(base)


def _below(path: str, tops: Iterable[str]) -> bool:
    return any(path.startswith(top + "/") for top in tops)


def _open_dir(base: int, rel: str) -> int | None:
    """A descriptor of the directory `rel` under `base`, reached through no link; None where a part of it is not a
    real directory."""
    fd = os.dup(base)
    for part in filter(None, rel.split("/")):
        try:
            child = os.open(part, _DIR, dir_fd=fd)
        except OSError as e:
            os.close(fd)
            if e.errno in _MISSING:
                return None
            raise
        os.close(fd)
        fd = child
    return fd


def _entry(dir_fd: int, name: str) -> Entry | None:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return Entry("link", 0, os.fsencode(os.readlink(name, dir_fd=dir_fd)))
    if stat.S_ISDIR(st.st_mode):
        return Entry("dir", stat.S_IMODE(st.st_mode))
    if not stat.S_ISREG(st.st_mode):
        return Entry("other")
    try:
        fd = os.open(name, _READ, dir_fd=dir_fd)
    except OSError as e:
        if e.errno == errno.ELOOP:  # swapped for a link since the stat
            return Entry("other")
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return Entry("other")
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return Entry("file", stat.S_IMODE(st.st_mode), b"".join(chunks))
    finally:
        os.close(fd)


def _scan(base: int, paths: Sequence[str]) -> dict[str, Entry]:
    found: dict[str, Entry] = {}

    def visit(rel: str, deep: bool) -> None:
        parent, _, name = rel.rpartition("/")
        fd = _open_dir(base, parent)
        if fd is None:
            return
        try:
            entry = _entry(fd, name)
        finally:
            os.close(fd)
        if entry is None:
            return
        found[rel] = entry
        if deep and entry.kind == "dir":
            inner = _open_dir(base, rel)
            if inner is None:
                return
            try:
                names = sorted(os.listdir(inner))
            finally:
                os.close(inner)
            for child in names:
                visit(f"{rel}/{child}", True)

    for rel in paths:
        visit(rel, rel in DEEP)
    return found


def _put(dir_fd: int, name: str, have: Entry | None, want: Entry | None) -> None:
    """Make `name` in `dir_fd` what `want` says (None: nothing), given that it is `have` now."""
    if have is not None and want is not None and have.kind == want.kind == "dir":
        fd = os.open(name, _DIR, dir_fd=dir_fd)
        try:
            os.fchmod(fd, want.mode)
        finally:
            os.close(fd)
        return
    if have is not None and have.kind == "dir":
        shutil.rmtree(name, dir_fd=dir_fd)
    elif have is not None and (want is None or want.kind == "dir"):
        os.unlink(name, dir_fd=dir_fd)
    if want is None:
        return
    if want.kind == "dir":
        os.mkdir(name, 0o700, dir_fd=dir_fd)
        _put(dir_fd, name, want, want)  # the mode, exactly, whatever the umask
        return
    # A file or a link is made aside and renamed into place: the rename replaces a link itself, never its target.
    tmp = f".{name}.restoring"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp, dir_fd=dir_fd)
    if want.kind == "link":
        os.symlink(os.fsdecode(want.data), tmp, dir_fd=dir_fd)
    else:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
        try:
            view = memoryview(want.data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, want.mode)
            os.fsync(fd)
        finally:
            os.close(fd)
    os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


# --- stale locks ------------------------------------------------------------------------------------------------


def clear_stale_locks(root: Path, git_dirs: Sequence[Path], patience: float) -> list[str]:
    """Remove every *.lock under `git_dirs` that no live process holds, whatever its age; one line per lock found,
    saying it was removed or who may hold it. See Repo.clear_stale_locks for what counts as holding."""
    locks = _locks(git_dirs)
    if not locks:
        return []
    places = _places(root, git_dirs)
    deadline = time.monotonic() + patience
    holders = _holders(locks, places)
    # A git that is running finishes by itself (hooks, editors and prompts are off for ours): give it time.
    while any(h.git for hold in holders.values() for h in hold) and time.monotonic() < deadline:
        time.sleep(0.05)
        locks = [lock for lock in locks if os.path.lexists(lock)]  # a git that finished renamed its locks away
        holders = _holders(locks, places)
    lines = []
    for lock in locks:
        name = os.path.relpath(lock, root)
        try:
            owner = os.lstat(lock).st_uid
        except FileNotFoundError:
            continue
        if lock in holders:
            lines.append(f"kept {name}: {holders[lock][0]} may hold it; end that process, then start again")
        elif owner != os.geteuid() and os.geteuid() != 0:
            lines.append(
                f"kept {name}: it belongs to uid {owner}, whose processes this user cannot inspect; "
                f"remove it by hand if no git of theirs is running"
            )
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)
            lines.append(f"removed {name}: no live process held it")
    return lines


def _locks(git_dirs: Sequence[Path]) -> list[str]:
    """Every *.lock under the git directories (real paths), skipping the fan-out of loose objects."""
    found: set[str] = set()
    for top in git_dirs:
        real = os.path.realpath(top)
        for dirpath, dirnames, filenames in os.walk(real):
            if dirpath == os.path.join(real, "objects"):
                dirnames[:] = [d for d in dirnames if d in ("info", "pack")]
            found.update(os.path.join(dirpath, f) for f in filenames if f.endswith(".lock"))
    return sorted(found)


def _places(root: Path, git_dirs: Sequence[Path]) -> tuple[str, ...]:
    """Where a git working on this repository runs: the working trees (linked ones too) and the git directories."""
    places = {os.path.realpath(p) for p in (root, *git_dirs)}
    for top in git_dirs:
        worktrees = Path(top, "worktrees")
        for gitdir_file in worktrees.glob("*/gitdir") if worktrees.is_dir() else ():
            with contextlib.suppress(OSError):
                places.add(os.path.realpath(os.path.dirname(gitdir_file.read_text().strip())))
    return tuple(sorted(places))


def _link(path: str) -> str | None:
    try:
        return os.readlink(path)
    except (FileNotFoundError, ProcessLookupError, PermissionError, NotADirectoryError):
        return None  # gone, or not ours to read


@dataclass(frozen=True)
class Holder:
    """A live process that may hold a lock."""

    pid: int
    command: str
    git: bool  # a git process: it will finish by itself
    open: bool  # it has the lock open (otherwise: a git running in this repository)

    def __str__(self) -> str:
        where = "has it open" if self.open else "runs in this repository"
        return f"pid {self.pid} ({self.command}, which {where})"


def _holders(locks: Iterable[str], places: Sequence[str]) -> dict[str, list[Holder]]:
    """Lock -> who may hold it: a process with it open, or a git running in this repository that started before
    the lock was last written (git closes a lock's descriptor before it runs a hook or an editor, and between
    writing a ref and renaming it into place; a git started later cannot have made it)."""
    changed = {}
    for lock in locks:
        with contextlib.suppress(FileNotFoundError):
            changed[lock] = os.lstat(lock).st_ctime
    me = os.getpid()
    held: dict[str, list[Holder]] = {}
    gits: list[tuple[float, Holder]] = []
    for entry in os.scandir(PROC):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        pid = int(entry.name)
        try:
            fds = os.listdir(f"{PROC}/{pid}/fd")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        exe, cwd = _link(f"{PROC}/{pid}/exe"), _link(f"{PROC}/{pid}/cwd")
        is_git = exe is not None and os.path.basename(exe.removesuffix(" (deleted)")) == "git"
        for fd in fds:
            target = _link(f"{PROC}/{pid}/fd/{fd}")
            if target in changed:
                held.setdefault(target, []).append(Holder(pid, _cmdline(pid), is_git, True))
        command = _cmdline(pid)
        # cat-file (GitPython's long-lived reader among them) never takes a lock.
        if is_git and cwd and any(cwd == p or cwd.startswith(p + "/") for p in places) and " cat-file " not in command:
            started = _started(pid)
            if started is not None:
                gits.append((started, Holder(pid, command, True, False)))
    for lock, ctime in changed.items():
        # A second of doubt (the clock may have been set since) goes to the process.
        held.setdefault(lock, []).extend(h for started, h in gits if started <= ctime + 1)
    return {lock: hold for lock, hold in held.items() if hold}


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"{PROC}/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return "?"
    line = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    return line[:80] + ("…" if len(line) > 80 else "")


def _started(pid: int) -> float | None:
    """When a process started, in seconds since the epoch; None when it is gone."""
    try:
        raw = Path(f"{PROC}/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    ticks = int(raw[raw.rfind(b")") + 2 :].split()[19])  # field 22, starttime: clock ticks after boot
    boot = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)  # /proc/stat's btime is rounded to a second
    return boot + ticks / os.sysconf("SC_CLK_TCK")
