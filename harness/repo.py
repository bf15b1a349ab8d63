"""The git layer: the experiment branch, commits with trailers, discarded refs and resets; all git goes here."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import git

from harness import paths
from harness.errors import RepoError
from harness.text import one_line

# Files the harness writes into the repository root; they must never show up as changes to commit.
IGNORED = (paths.LEDGER, paths.RUNS + "/")
IDENTITY = {"GIT_AUTHOR_NAME": "autoresearch", "GIT_AUTHOR_EMAIL": "autoresearch@localhost"}


def blob_sha(content: str) -> str:
    """The git blob sha of a text, computed without git (it names the content in the ledger)."""
    data = content.encode("utf-8")
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Repo:
    """One repository driven by the harness."""

    def __init__(self, root: Path) -> None:
        try:
            self._repo = git.Repo(root)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise RepoError(f"{root} is not a git repository; run 'git init' there first") from None
        if self._repo.working_tree_dir is None:
            raise RepoError(f"{root} is a bare repository; the loop needs a working tree")
        self.root = Path(self._repo.working_tree_dir)
        self._git = self._repo.git
        env = {}
        # A fresh machine may have no git identity; experiments are still committed, under the harness's name.
        if not self._config("user.name"):
            env.update(GIT_AUTHOR_NAME=IDENTITY["GIT_AUTHOR_NAME"], GIT_COMMITTER_NAME=IDENTITY["GIT_AUTHOR_NAME"])
        if not self._config("user.email"):
            env.update(GIT_AUTHOR_EMAIL=IDENTITY["GIT_AUTHOR_EMAIL"], GIT_COMMITTER_EMAIL=IDENTITY["GIT_AUTHOR_EMAIL"])
        if env:
            self._git.update_environment(**env)

    # --- plumbing -------------------------------------------------------------------------------------------

    def _run(self, *args: str, **kwargs: object) -> str:
        """Run one git command; a failure is a RepoError naming the command and git's own words."""
        try:
            return self._git.execute(["git", *args], **kwargs)
        except git.GitCommandError as e:
            stderr = (e.stderr or "").strip().removeprefix("stderr: ").strip("'\n ")
            raise RepoError(f"git {' '.join(args)} failed: {stderr or e}") from None

    def _config(self, key: str) -> str:
        try:
            return self._git.config("--get", key)
        except git.GitCommandError:
            return ""

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
        exclude = Path(self._repo.git_dir) / "info" / "exclude"
        exclude.parent.mkdir(parents=True, exist_ok=True)
        have = exclude.read_text().splitlines() if exclude.exists() else []
        missing = [p for p in IGNORED if p not in have]
        if missing:
            with open(exclude, "a") as f:
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
        target.write_text(content, encoding="utf-8")
        # `commit -- path` stages and commits that one path in a single git process (the loop's hot path).
        self._run("commit", "-q", "--no-verify", "-m", one_line(subject), "--", path)
        return self.head()

    def amend_message(self, sha: str, message: str, parent: str) -> str:
        """A new commit with the tree of `sha`, the given parent and a new message; no branch moves."""
        return self._run("commit-tree", f"{sha}^{{tree}}", "-p", parent, "-m", message)

    def set_ref(self, ref: str, sha: str) -> None:
        self._run("update-ref", ref, sha)

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

    def untracked(self) -> set[str]:
        """Untracked and ignored paths as `git status` names them (a folder that is new as a whole is one entry)."""
        out = self._run("status", "--porcelain=v1", "-z", "--untracked-files=normal", "--ignored=matching")
        return {entry[3:] for entry in out.split("\0") if entry[:3] in ("?? ", "!! ")}

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
