"""The git layer: every git command of the harness, each in an environment built for git alone; the experiment
branch, commits with trailers, discarded refs and resets; and the guard of .git's control files and stale locks."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import git

from harness import gitdir, paths
from harness.errors import RepoError
from harness.gitdir import ControlSnapshot
from harness.text import one_line

# Files the harness writes into the repository root; they must never show up as changes to commit.
IGNORED = (paths.LEDGER, paths.RUNS + "/")
IDENTITY = {"GIT_AUTHOR_NAME": "autoresearch", "GIT_AUTHOR_EMAIL": "autoresearch@localhost"}

# --- the environment of every git command -----------------------------------------------------------------------

# All that git keeps of the harness's environment: where programs are, and the time zone a commit records. An API key
# in os.environ would otherwise reach git and every program git runs.
PASSED = ("PATH", "TZ")
GIT_ENV = {
    "HOME": os.devnull,  # nothing under the person's home is read: no ~/.gitconfig, attributes, ignore or credentials
    "LC_ALL": "C",  # git's messages in English, as GitPython's parsers and our error lines expect
    "LANGUAGE": "C",
    "GIT_CONFIG_NOSYSTEM": "1",  # the system config cannot add a program...
    "GIT_CONFIG_GLOBAL": os.devnull,  # ...nor the global one (the identity and safe.directory are read once, before)
    "GIT_TERMINAL_PROMPT": "0",  # nothing ever waits for a person at a terminal
    "GIT_ALLOW_PROTOCOL": "",  # no transport at all: no ssh, remote helper or partial clone's lazy fetch can start
    "GIT_PAGER": "cat",
    "GIT_EDITOR": ":",  # the no-op editor: a command that wants a message gets an empty one and stops
    "GIT_SEQUENCE_EDITOR": ":",
}
# Config given to every git command as command-line config (GIT_CONFIG_COUNT), which wins over every file, .git/config
# included. Each entry switches off a program git could run for one of our commands (git-config(1), git 2.39).
SWITCHED_OFF = (
    ("core.hooksPath", os.devnull),  # every hook: git looks for /dev/null/<hook> and finds nothing
    ("core.fsmonitor", "false"),  # a hook or daemon run by status, add, commit, checkout and reset
    ("core.editor", ":"),
    ("sequence.editor", ":"),
    ("core.pager", "cat"),
    ("diff.external", ""),  # empty: git's own diff
    ("commit.gpgSign", "false"),  # commit and commit-tree would run gpg.program
    ("tag.gpgSign", "false"),
    ("tag.forceSignAnnotated", "false"),
    ("log.showSignature", "false"),  # log would run gpg.program to verify
    ("gpg.program", "false"),
    ("gpg.openpgp.program", "false"),
    ("gpg.x509.program", "false"),
    ("gpg.ssh.program", "false"),
    ("gpg.ssh.defaultKeyCommand", "false"),
    ("core.askPass", ""),  # empty: no prompt program
    ("credential.helper", ""),  # empty: the list of helpers is reset
    ("core.sshCommand", "false"),
    ("protocol.allow", "never"),  # and GIT_ALLOW_PROTOCOL above wins over any protocol.<name>.allow
    ("submodule.recurse", "false"),  # a submodule's own config and hooks are not vetted
    ("gc.auto", "0"),  # no gc left running after a commit: it would hold locks and outlive a kill of the harness
    ("maintenance.auto", "false"),
    ("branch.autoSetupMerge", "false"),  # checkout -b never writes .git/config, so the guard sees only others' edits
)
# Not listed, because none of our commands can reach them:
# - alias.*: we run built-in commands only, and an alias cannot shadow one;
# - transports: remote.<name>.uploadpack/receivepack/vcs, core.gitProxy, core.alternateRefsCommand, ssh.variant,
#   http.*, url.*, credential.<url>.*: GIT_ALLOW_PROTOCOL="" lets no transport start (nor a partial clone's fetch);
# - uploadpack.packObjectsHook: read from protected config only (system, global: off) and only when serving a fetch;
# - difftool/mergetool/guitool.*.cmd, man.*, web.browser, browser.*, instaweb.*, sendemail.*, imap.tunnel,
#   interactive.diffFilter, pager.<cmd>: porcelain we never run, or a pager, and our output is a pipe;
# - trace2.*: read from the system and global config only (both off).
# Named after a driver, so switched off by the names the config holds (_driver_config): filter.<driver>.clean,
# smudge and process (status, add, commit, checkout and reset run them), diff.<driver>.textconv and command,
# merge.<driver>.driver. include.path and includeIf can only be reached from the repository's config now; the
# drivers of included files are read with it, at the start and again after every restore_control.
DRIVER_KEYS = {
    "filter": (("clean", ""), ("smudge", ""), ("process", ""), ("required", "false")),
    "diff": (("textconv", ""), ("command", "")),
    "merge": (("driver", ""),),
}
# What the one read of the person's config keeps of os.environ: where their global and system config files are.
PERSON = ("HOME", "XDG_CONFIG_HOME", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM", "GIT_CONFIG_NOSYSTEM")
LOCK_PATIENCE = 10.0  # seconds a git still running in the repository is given to finish before its locks are judged


def git_env(identity: Mapping[str, str], config: Sequence[tuple[str, str]], work_tree: Path) -> dict[str, str]:
    """The whole environment of a harness git command: PASSED, GIT_ENV, the identity and `config` as git's
    command-line config."""
    env = {name: os.environ[name] for name in PASSED if name in os.environ}
    # The working tree is pinned: a core.worktree slipped into .git/config cannot send reset or clean elsewhere.
    env.update({**GIT_ENV, **identity, "GIT_WORK_TREE": str(work_tree), "GIT_CONFIG_COUNT": str(len(config))})
    for i, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


def _identity(config: Mapping[str, str]) -> dict[str, str]:
    """Author and committer as git itself would choose them (its variables, then author.* or committer.*, then
    user.*), with the harness's name where the machine has none, so that a fresh machine can still commit."""
    env = os.environ
    identity = {}
    for role in ("AUTHOR", "COMMITTER"):
        key = role.lower()
        identity[f"GIT_{role}_NAME"] = (
            env.get(f"GIT_{role}_NAME") or config.get(f"{key}.name") or config.get("user.name")
        ) or IDENTITY["GIT_AUTHOR_NAME"]
        identity[f"GIT_{role}_EMAIL"] = (
            env.get(f"GIT_{role}_EMAIL") or config.get(f"{key}.email") or config.get("user.email") or env.get("EMAIL")
        ) or IDENTITY["GIT_AUTHOR_EMAIL"]
    return identity


def _driver_config(keys: Iterable[str]) -> list[tuple[str, str]]:
    """Config that switches off every filter, diff and merge driver named in `keys`."""
    out: dict[str, str] = {}
    for key in keys:
        section, _, rest = key.partition(".")
        name, _, _variable = rest.rpartition(".")
        if name and section in DRIVER_KEYS:
            out.update((f"{section}.{name}.{variable}", value) for variable, value in DRIVER_KEYS[section])
    return list(out.items())


def _parse_config(listing: str) -> list[tuple[str, str, str]]:
    """(scope, key, value) of each line of `git config --list --show-scope -z`."""
    tokens = listing.split("\0")
    return [(scope, *item.partition("\n")[::2]) for scope, item in zip(tokens[0::2], tokens[1::2], strict=False)]


class _Git(git.Git):
    """GitPython's command runner, except that every git it starts (its persistent cat-file ones too) gets `env`
    and nothing else."""

    def __init__(self, working_dir: str | os.PathLike[str] | None, env: dict[str, str]) -> None:
        super().__init__(working_dir)
        self.env = env
        self.env_program = shutil.which("env") or "/usr/bin/env"

    def execute(self, command: Any, *args: Any, env: Mapping[str, str] | None = None, **kwargs: Any) -> Any:
        # GitPython builds a child's environment from a copy of os.environ and can only add to it. `env -i` starts
        # git from nothing but ours instead; `env` (a whole environment here) replaces ours for one command.
        assignments = [f"{name}={value}" for name, value in (self.env if env is None else env).items()]
        return super().execute([self.env_program, "-i", *assignments, *command], *args, **kwargs)


class _GitRepo(git.Repo):
    """GitPython's repository, whose command runner is _Git."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self._git_env = env  # read by GitCommandWrapperType, which git.Repo.__init__ calls
        super().__init__(root)

    # GitPython's hook for its command runner ("a constructor or type"), called with the working directory.
    def GitCommandWrapperType(self, working_dir: str | os.PathLike[str] | None) -> _Git:  # type: ignore[override]
        return _Git(working_dir, self._git_env)


def blob_sha(content: str) -> str:
    """The git blob sha of a text, computed without git (it names the content in the ledger)."""
    data = content.encode("utf-8")
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Repo:
    """One repository driven by the harness."""

    def __init__(self, root: Path) -> None:
        try:
            self._repo = _GitRepo(root, git_env({}, SWITCHED_OFF, root))  # GitPython starts no git to open it
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise RepoError(f"{root} is not a git repository; run 'git init' there first") from None
        if self._repo.working_tree_dir is None:
            raise RepoError(f"{root} is a bare repository; the loop needs a working tree")
        self.root = Path(self._repo.working_tree_dir)
        self._git = cast(_Git, self._repo.git)
        self._git_dir = Path(self._repo.git_dir)
        self._common_dir = Path(self._repo.common_dir)
        # The person's own config is read once, as plain values, before the global and system files are shut out:
        # their identity, and the safe.directory entries that let git work in a repository owned by another user
        # (honoured from command-line config too). Reading config runs no program.
        person = git_env({}, SWITCHED_OFF, self.root)
        for name in PERSON:
            person.pop(name, None)
            if name in os.environ:
                person[name] = os.environ[name]
        entries = self._config_entries(person)
        self._identity = _identity({key: value for scope, key, value in entries if scope != "command"})
        self._safe = [(k, v) for scope, k, v in entries if k == "safe.directory" and scope in ("system", "global")]
        self._git.env = self._env(entries)

    # --- plumbing -------------------------------------------------------------------------------------------

    def _run(self, *args: str, **kwargs: Any) -> str:
        """Run one git command; a failure is a RepoError naming the command and git's own words."""
        try:
            return self._git.execute(["git", *args], **kwargs)
        except git.GitCommandError as e:
            stderr = (e.stderr or "").strip().removeprefix("stderr: ").strip("'\n ")
            raise RepoError(f"git {' '.join(args)} failed: {stderr or e}") from None

    def _config_entries(self, env: Mapping[str, str] | None = None) -> list[tuple[str, str, str]]:
        listing = self._run("config", "--list", "--show-scope", "-z", env=env, strip_newline_in_stdout=False)
        return _parse_config(listing)

    def _env(self, entries: Sequence[tuple[str, str, str]]) -> dict[str, str]:
        """The environment of our git commands, with every driver named in `entries` switched off."""
        drivers = _driver_config(key for scope, key, _ in entries if scope != "command")
        return git_env(self._identity, [*SWITCHED_OFF, *self._safe, *drivers], self.root)

    # --- state ----------------------------------------------------------------------------------------------

    def head(self) -> str:
        """The full sha of HEAD; a RepoError when the repository has no commit yet."""
        try:
            return self._repo.head.commit.hexsha
        except ValueError:
            raise RepoError(f"{self.root} has no commit yet; commit your files first") from None

    def branch(self) -> str | None:
        """The checked-out branch, or None on a detached HEAD."""
        return None if self._repo.head.is_detached else self._repo.active_branch.name

    def changed(self) -> list[str]:
        """Tracked files that differ from HEAD (staged or not); untracked files do not count."""
        out = self._run("status", "--porcelain", "--untracked-files=no")
        return [line[3:] for line in out.splitlines() if line.strip()]

    def ensure_ignored(self) -> None:
        """Keep the ledger and run logs out of `git status`, even where .gitignore lacks them (locally only)."""
        exclude = self._common_dir / "info" / "exclude"
        exclude.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(exclude, flags, 0o644)
        except OSError as e:
            if e.errno != errno.ELOOP:
                raise
            exclude.unlink()  # a link put in its place: the lines go into a file of git's, never through the link
            fd = os.open(exclude, flags, 0o644)
        with open(fd, "r+", encoding="utf-8", errors="surrogateescape") as f:
            have = f.read().splitlines()
            missing = [p for p in IGNORED if p not in have]
            if missing:
                f.write(("\n" if have and have[-1] else "") + "\n".join(missing) + "\n")

    def exists(self, ref: str) -> bool:
        try:
            self._git.rev_parse("--verify", "--quiet", ref + "^{commit}")
            return True
        except git.GitCommandError:
            return False

    def resolve(self, ref: str) -> str:
        return self._run("rev-parse", "--verify", ref + "^{commit}")

    def parent_of(self, sha: str) -> str | None:
        parents = self._run("rev-list", "--parents", "-n", "1", sha).split()[1:]
        return parents[0] if parents else None

    def show(self, sha: str, path: str) -> str:
        """The content of a file at a commit."""
        return self._run("show", f"{sha}:{path}", strip_newline_in_stdout=False)

    def diff(self, old: str, new: str) -> str:
        return self._run("diff", "--no-color", "--no-ext-diff", old, new, strip_newline_in_stdout=False)

    def message(self, sha: str) -> str:
        return self._run("log", "-1", "--format=%B", sha)

    def refs(self, prefix: str) -> dict[str, str]:
        """Refs under a prefix, name to sha."""
        out = self._run("for-each-ref", "--format=%(refname) %(objectname)", prefix)
        return dict(line.split(" ", 1) for line in out.splitlines() if line)  # type: ignore[misc]

    # --- changes --------------------------------------------------------------------------------------------

    def checkout_branch(self, name: str, start: str | None = None) -> bool:
        """Check out a branch, creating it at `start` (default HEAD) when missing; True when it was created."""
        if self.exists(f"refs/heads/{name}"):
            if self.branch() != name:
                self._run("checkout", "-q", name)
            return False
        self._run("checkout", "-q", "-b", name, *([start] if start else []))
        return True

    def commit_file(self, path: str, content: str, subject: str) -> str:
        """Write one file, commit it alone on the current branch, and return the new commit's sha."""
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink():
            target.unlink()  # a link put in its place: the content goes into the file, never through the link
        target.write_text(content, encoding="utf-8")
        # `commit -- path` stages and commits that one path in a single git process (the loop's hot path).
        self._run("commit", "-q", "--no-verify", "-m", one_line(subject), "--", path)
        return self.head()

    def amend_message(self, sha: str, message: str, parent: str) -> str:
        """A new commit with the tree of `sha`, the given parent and a new message; no branch moves."""
        return self._run("commit-tree", f"{sha}^{{tree}}", "-p", parent, "-m", message)

    def commit_beside(self, parent: str, path: str, source: Path, message: str) -> str:
        """A commit of `parent` with the file at `path` replaced by the file `source`, made in an index of its own:
        the working tree, the index and every branch stay as they are."""
        blob = self._run("hash-object", "-w", "--no-filters", "--", str(source))
        index = self._git_dir / f"autoresearch-{os.getpid()}.index"
        env = {**self._git.env, "GIT_INDEX_FILE": str(index)}
        try:
            self._run("read-tree", parent, env=env)
            self._run("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
            tree = self._run("write-tree", env=env)
        finally:
            index.unlink(missing_ok=True)
        return self._run("commit-tree", tree, "-p", parent, "-m", message)

    def set_ref(self, ref: str, sha: str) -> None:  # sha "": the ref is deleted
        self._run("update-ref", *([ref, sha] if sha else ["-d", ref]))

    def reset_hard(self, sha: str, keep: Sequence[str] = ()) -> None:
        """Move the current branch, index and tracked files to `sha`, leaving the working copies of `keep` alone
        (git never writes them, so an edit saved during the reset cannot be lost)."""
        if not keep:
            self._run("reset", "-q", "--hard", sha)
            return
        self._run("reset", "-q", "--mixed", sha)
        self._run("checkout", "-q", "--", ".", *(f":(exclude){p}" for p in keep))

    def restore(self, paths_: Sequence[str]) -> None:
        """Put protected paths back as HEAD has them, removing files a run added there."""
        tracked = [p for p in paths_ if self._run("ls-files", "--", p)]
        if tracked:
            self._run("checkout", "-q", "HEAD", "--", *tracked)
        self._run("clean", "-q", "-f", "-d", "--", *paths_)

    def commit_all(self, message: str, paths_: Sequence[str]) -> str:
        """Commit the given paths (added or changed) on the current branch."""
        self._run("add", "--", *paths_)
        self._run("commit", "-q", "--no-verify", "-m", message, "--", *paths_)
        return self.head()

    def tag(self, name: str, sha: str) -> None:
        self._run("tag", "-f", name, sha)

    def tracked(self) -> list[str]:
        """Every file git tracks in the working tree, as paths relative to the root."""
        return [p for p in self._run("ls-files", "-z").split("\0") if p]

    def untracked(self) -> set[str]:
        """Untracked and ignored paths as `git status` names them (a folder that is new as a whole is one entry)."""
        out = self._run("status", "--porcelain=v1", "-z", "--untracked-files=normal", "--ignored=matching")
        return {entry[3:] for entry in out.split("\0") if entry[:3] in ("?? ", "!! ")}

    # --- the git directory ----------------------------------------------------------------------------------

    def snapshot_control(self) -> ControlSnapshot:
        """What the files of .git that can make git run a program hold now: config, config.worktree, every entry
        of hooks/ and info/attributes, read without following links. Take it after the harness's own setup."""
        # A linked worktree has its own config.worktree, in its own git directory under the common one.
        own = os.path.relpath(self._git_dir / "config.worktree", self._common_dir)
        return gitdir.snapshot(self._common_dir, () if self._git_dir == self._common_dir else (own,))

    def restore_control(self, snapshot: ControlSnapshot) -> list[str]:
        """Put back whatever differs from `snapshot` (content, mode bits, added or deleted entries, a link in place
        of a file), writing through no link; returns the paths that differed ('.git/hooks/post-commit'), for the
        ledger. Then the config is read again when it can name a new driver (it was put back, or it includes files
        outside .git, which a run may change), so that such a driver is switched off too."""
        changed = gitdir.restore(self._common_dir, snapshot)
        if changed or snapshot.includes:
            self._git.env = self._env(self._config_entries())
        return [os.path.relpath(self._common_dir / path, self.root) for path in changed]

    def clear_stale_locks(self, patience: float = LOCK_PATIENCE) -> list[str]:
        """Remove every *.lock under .git (index, HEAD, refs, packed-refs, config...) that no live process holds,
        whatever its age; returns one line per lock found: removed, or kept and who may hold it.

        Call it only while holding the loop lock, before git changes anything. A lock is held when a process has
        it open, or when a git process that started before the lock was last written runs in this repository: git
        closes a lock's descriptor while a hook or an editor runs and between writing a ref and renaming it into
        place. Such a git gets `patience` seconds to finish. Holders are found in /proc; without root, another
        user's processes cannot be read there, so a lock owned by another user is kept (and said so), not judged."""
        return gitdir.clear_stale_locks(self.root, sorted({self._git_dir, self._common_dir}), patience)

    def clean(self, paths_: Sequence[str]) -> None:
        """Remove untracked or ignored files and folders; a link is removed itself, never what it points to."""
        if paths_:
            self._run("clean", "-q", "-f", "-f", "-d", "-x", "--", *paths_)


def with_trailers(subject: str, trailers: dict[str, str], body: str = "") -> str:
    """A commit message: subject, optional body, then `Key: value` trailers that `git interpret-trailers` reads."""
    parts = [one_line(subject)]
    if body.strip():
        parts.append(body.strip())
    parts.append("\n".join(f"{k}: {v}" for k, v in trailers.items()))
    return "\n\n".join(parts) + "\n"
