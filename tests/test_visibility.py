"""What runs and agents see: `hidden:` anywhere on the machine, only the tracked files and `data:` of the repository,
and one test of "is this path hidden" for the sandbox, the scratch copy and the tools."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import sandbox
from harness.brief import Evidence
from harness.repo import Repo
from harness.task import Task
from harness.testing import PY, TOY_TRAIN, cli, git, make_repo, toy_program
from harness.toolbox import serve
from harness.visibility import Sight

ACTIVE = sandbox.probe("auto").active
needs_sandbox = pytest.mark.skipif(not ACTIVE, reason=f"no OS sandbox here: {sandbox.probe('auto').missing}")
KEY = "sk-ant-api03-leakedkey0123456789"


def rows(repo: Path) -> list[dict]:
    return [json.loads(line) for line in (repo / "experiments.log").read_text().splitlines()]


def everything_written(repo: Path) -> str:
    """Every log, the ledger, and every commit message of every ref: where a leaked secret would show."""
    logs = [p.read_text(errors="replace") for p in (repo / "runs").rglob("*") if p.is_file()]
    messages = git(repo, "log", "--all", "--format=%B")
    return "\n".join([*logs, (repo / "experiments.log").read_text(), messages])


# --- the one test of "hidden" -------------------------------------------------------------------------------------


def test_a_path_is_hidden_when_it_or_any_folder_it_lies_in_is_named(tmp_path: Path):
    sight = Sight.of(tmp_path, ["x/*/answers", "/srv/heldout/", "~/labels.csv", "deep/**/secret"])
    assert sight.is_hidden("x/a/answers")
    assert sight.is_hidden("x/a/answers/q1.txt")  # under a hidden folder matched by a glob
    assert sight.is_hidden(tmp_path / "x" / "b" / "answers" / "deeper" / "q2.txt")
    assert not sight.is_hidden("x/a/questions/q1.txt")
    assert not sight.is_hidden("x/answers")  # `*` is one folder, as in a glob
    assert sight.is_hidden("/srv/heldout/val.bin") and not sight.is_hidden("/srv/heldout-not/val.bin")
    assert sight.is_hidden(Path.home() / "labels.csv")
    assert sight.is_hidden("deep/secret") and sight.is_hidden("deep/a/b/secret/x")
    assert not sight.is_hidden("train.py")


def test_a_link_that_leads_into_hidden_data_is_hidden(tmp_path: Path):
    (tmp_path / "heldout").mkdir()
    (tmp_path / "heldout" / "val.bin").write_text("answers")
    (tmp_path / "innocent.txt").symlink_to(tmp_path / "heldout" / "val.bin")
    assert Sight.of(tmp_path, ["heldout"]).is_hidden("innocent.txt")


def test_view_file_refuses_a_file_under_a_hidden_folder_matched_by_a_glob(tmp_path: Path):
    files = {"train.py": TOY_TRAIN, "program.md": toy_program(), "x/a/answers/key.txt": "42\n", "x/a/q.txt": "?\n"}
    repo = make_repo(tmp_path / "r", files)
    head = git(repo, "rev-parse", "HEAD")
    task = Task("", "train.py", TOY_TRAIN, "val_bpb", "minimize", None, None, champion=head, hidden=("x/*/answers",))
    evidence = Evidence(Repo(repo), repo)
    for path in ("x/a/answers/key.txt", "x/a/answers", "./x/a/answers//key.txt"):
        text, ok = serve("view_file", {"path": path}, task, evidence)
        assert not ok and "hidden" in text and "42" not in text
    text, ok = serve("view_file", {"path": "x/a/q.txt"}, task, evidence)
    assert ok and "?" in text


# --- hostile runs ---------------------------------------------------------------------------------------------------

PEEK = """\
import json, os, sys
seen = {}
for path in sys.argv[1:]:
    try:
        seen[path] = sorted(os.listdir(path)) if os.path.isdir(path) else open(path).read()
    except OSError as error:
        seen[path] = type(error).__name__
print("PEEK " + json.dumps(seen))
print("val_bpb: 1.0")
"""


def peeked(repo: Path, log: str) -> dict[str, object]:
    text = (repo / "runs" / "t" / log).read_text()
    return json.loads(next(line for line in text.splitlines() if line.startswith("PEEK "))[5:])


@pytest.fixture
def outside() -> Iterator[Path]:
    """A folder outside the repository and outside /tmp (which every sandbox replaces anyway), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="autoresearch-test-", dir="/var/tmp"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@needs_sandbox
def test_a_run_sees_tracked_files_and_data_but_no_env_file_or_other_untracked_file(tmp_path: Path):
    program = toy_program(run=f"{PY} peek.py .env data/train.txt cache/blob notes.txt", data="[data/]")
    repo = make_repo(tmp_path / "r", {"train.py": TOY_TRAIN, "program.md": program, "peek.py": PEEK})
    (repo / ".gitignore").write_text((repo / ".gitignore").read_text() + ".env\ncache/\ndata/\nnotes.txt\n")
    git(repo, "commit", "-qam", "ignore local files")
    (repo / ".env").write_text(f"ANTHROPIC_API_KEY={KEY}\n")
    (repo / "data").mkdir()
    (repo / "data" / "train.txt").write_text("training text")
    (repo / "cache").mkdir()
    (repo / "cache" / "blob").write_text(KEY)
    (repo / "notes.txt").write_text(KEY)
    out = cli(repo, "run", "--tag", "t", "--agent", "optuna", "--max-experiments", "0")
    assert out.returncode == 0, out.stderr
    assert "runs and agents see the tracked files and the untracked data/; no other untracked" in out.stdout
    seen = peeked(repo, "0.log")
    assert seen["data/train.txt"] == "training text"
    assert seen[".env"] == seen["cache/blob"] == seen["notes.txt"] == "FileNotFoundError"
    assert KEY not in everything_written(repo)


HUNTER = """\
import glob, os
from harness.task import Proposal


def propose(task, llm):
    found = []
    for path in [".env", *glob.glob("**/.env", recursive=True, include_hidden=True)][:50]:
        try:
            found.append(open(path).read())
        except OSError:
            pass
    steal = "import glob\\nfor p in ['.env', *glob.glob('**/.env', recursive=True, include_hidden=True)][:50]:\\n"
    steal += "    try:\\n        print(p, open(p).read())\\n    except OSError:\\n        pass\\n"
    return Proposal("found " + " ".join(found).replace("\\n", " "), steal + task.mutable_content, notes=" ".join(found))
"""


@needs_sandbox
def test_a_git_ignored_env_file_never_reaches_the_log_the_ledger_or_a_commit(tmp_path: Path):
    repo = make_repo(tmp_path / "r", {"train.py": TOY_TRAIN, "program.md": toy_program()})
    (repo / ".gitignore").write_text((repo / ".gitignore").read_text() + ".env\n")
    git(repo, "commit", "-qam", "ignore .env")
    (repo / ".env").write_text(f"OPENAI_API_KEY={KEY}\n")
    agent = tmp_path / "hunter.py"
    agent.write_text(HUNTER)
    out = cli(repo, "run", "--tag", "t", "--agent", str(agent), "--max-experiments", "1")
    assert out.returncode == 0, out.stderr
    assert [r["status"] for r in rows(repo) if r["kind"] == "experiment"][-1] in ("keep", "discard")
    assert KEY not in everything_written(repo)
    assert KEY not in out.stdout + out.stderr


EVALUATE = """\
import sys
print("val_bpb:", len(open(sys.argv[1]).read()))
"""


@needs_sandbox
def test_hidden_data_outside_the_repository_is_out_of_a_runs_reach_and_in_the_evaluators(tmp_path: Path, outside: Path):
    (outside / "heldout").mkdir()
    (outside / "heldout" / "val.txt").write_text("held-out answers")
    (outside / "public.txt").write_text("public")
    target = outside / "heldout" / "val.txt"
    program = toy_program(
        run=f"{PY} peek.py {target} {outside / 'heldout'} {outside / 'public.txt'}",
        evaluate=json.dumps(f"{PY} evaluate.py {target}"), hidden=f"[{outside / 'heldout'}/]",
    )  # fmt: skip
    repo = make_repo(tmp_path / "r", {"train.py": TOY_TRAIN, "program.md": program, "peek.py": PEEK,
                                      "evaluate.py": EVALUATE})  # fmt: skip
    out = cli(repo, "run", "--tag", "t", "--agent", "optuna", "--max-experiments", "0")
    assert out.returncode == 0, out.stderr
    seen = peeked(repo, "0.log")
    assert seen[str(outside / "heldout")] == [] and seen[str(target)] == "FileNotFoundError"
    assert seen[str(outside / "public.txt")] == "public"
    baseline = next(r for r in rows(repo) if r["kind"] == "experiment")
    assert baseline["status"] == "keep" and baseline["metric"] == len("held-out answers")


@needs_sandbox
def test_a_tracked_file_under_a_hidden_folder_is_not_in_the_runs_copy(tmp_path: Path):
    program = toy_program(run=f"{PY} peek.py x/a/answers x/a/answers/key.txt x/a/q.txt", hidden='["x/*/answers"]')
    files = {"train.py": TOY_TRAIN, "program.md": program, "peek.py": PEEK}
    repo = make_repo(tmp_path / "r", {**files, "x/a/answers/key.txt": "42", "x/a/q.txt": "?"})
    out = cli(repo, "run", "--tag", "t", "--agent", "optuna", "--max-experiments", "0")
    assert out.returncode == 0, out.stderr
    seen = peeked(repo, "0.log")
    assert seen["x/a/answers"] == [] and seen["x/a/answers/key.txt"] == "FileNotFoundError"
    assert seen["x/a/q.txt"] == "?"


@pytest.mark.parametrize("key", ["hidden", "data"])
def test_an_entry_that_names_nothing_stops_the_start_with_its_line(tmp_path: Path, key: str):
    program = toy_program(**{key: "[/nowhere/at/all/]"})
    repo = make_repo(tmp_path / "r", {"train.py": TOY_TRAIN, "program.md": program})
    out = cli(repo, "run", "--tag", "t", "--agent", "optuna", "--max-experiments", "0")
    assert out.returncode == 2
    line = next(i for i, text in enumerate(program.splitlines(), 1) if text.startswith(f"{key}:"))
    assert f"program.md:{line}: {key}: '/nowhere/at/all/' matches nothing" in out.stderr


def test_an_entry_the_evaluator_cannot_read_stops_the_start(tmp_path: Path):
    program = toy_program(hidden="[locked/]")
    repo = make_repo(tmp_path / "r", {"train.py": TOY_TRAIN, "program.md": program})
    (repo / "locked").mkdir(mode=0o000)
    try:
        if os.access(repo / "locked", os.R_OK) and not ACTIVE:
            pytest.skip("this user reads any folder, and no sandbox runs the evaluator as another user")
        out = cli(repo, "run", "--tag", "t", "--agent", "optuna", "--max-experiments", "0")
        assert out.returncode == 2 and "'hidden' entry" in out.stderr and "cannot be read" in out.stderr
    finally:
        (repo / "locked").chmod(0o755)
