"""What an agent is told: log digests, the crash log, the archive of diffs, and the read-only tools, from a real
repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import digest, toolbox
from harness.brief import ARCHIVE_CHARS, CRASH_CHARS, Evidence, keep_rule
from harness.config import Config
from harness.repo import Repo
from harness.task import Attempt, ContextFile, Inspiration, Task
from harness.testing import git, make_repo

TRAIN = "LR = 0.001\nDEPTH = 4\nWIDTH = 128\n\nprint('val_bpb: 1.0')\n"


def commit(repo: Path, content: str, message: str, parent: str) -> str:
    """A commit of train.py on top of `parent`, left out of any branch (as a discarded experiment is)."""
    git(repo, "checkout", "-q", "--detach", parent)
    (repo / "train.py").write_text(content)
    git(repo, "commit", "-qam", message)
    sha = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "main")
    return sha


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "r", {"train.py": TRAIN, "prepare.py": "EVAL = 1\n" * 600, "data/x.txt": "x\n"})


def task_of(repo: Path, **kw) -> Task:
    base = dict(program="p", mutable_path="train.py", mutable_content=TRAIN, metric="val_bpb",
                direction="minimize", best=1.0, baseline=1.0, champion=git(repo, "rev-parse", "HEAD"))  # fmt: skip
    return Task(**{**base, **kw})


def test_a_digest_samples_the_progress_and_keeps_the_summary():
    log = [f"step {s:5d} | loss {3 - s / 1000:.3f} | {40000 + s} tok/s" for s in range(0, 1000, 10)]
    log += ["---", "training_seconds: 300.2", "steps:            990", "peak_memory_mb:   2048", "val_bpb: 0.981"]
    text = digest.digest("\n".join(log))
    lines = text.splitlines()
    assert lines[0].startswith("step     0") and lines[4].startswith("step   990")
    assert len([line for line in lines if line.startswith("step ")]) == digest.SAMPLES
    assert lines[-1] == "val_bpb: 0.981" and "peak_memory_mb:   2048" in lines


def test_a_long_log_is_read_at_its_start_and_end_only(tmp_path: Path):
    path = tmp_path / "run.log"
    path.write_text("first line\n" + "noise " * 100_000 + "\nlast line\n")
    text = digest.read_log(path)
    assert text.startswith("first line") and text.rstrip().endswith("last line")
    assert len(text) <= digest.HEAD_BYTES + digest.TAIL_BYTES + 10


def test_the_crash_log_starts_at_the_traceback(repo: Path):
    log = repo / "runs" / "t" / "3.log"
    log.parent.mkdir(parents=True)
    frames = "".join(f'  File "train.py", line {i}, in f{i}\n    f{i + 1}()\n' for i in range(40))
    log.write_text("x" * 20_000 + "\nstep 10 | loss 2.0\nTraceback (most recent call last):\n" + frames + "Boom\n")
    crash = Evidence(Repo(repo), repo).crash_log("runs/t/3.log")
    assert crash.startswith("step 10 | loss 2.0\nTraceback") and crash.endswith("Boom")
    assert len(crash) <= CRASH_CHARS


def test_the_archive_is_diverse_and_bounded(repo: Path):
    head = git(repo, "rev-parse", "HEAD")
    lr = [commit(repo, TRAIN.replace("0.001", f"0.00{i}"), f"lr {i}", head) for i in (2, 3)]
    depth = commit(repo, TRAIN.replace("DEPTH = 4", "DEPTH = 6"), "deeper", head)
    big = commit(repo, TRAIN + "".join(f"# comment {i} " + "y" * 80 + "\n" for i in range(200)), "big", head)
    candidates = (
        Inspiration(1, "keep", 0.9, -0.1, "lr 2", lr[0]),
        Inspiration(2, "discard", 0.95, 0.05, "lr 3", lr[1]),  # the same names as #1: nothing new
        Inspiration(3, "discard", 0.96, 0.06, "deeper", depth),
        Inspiration(4, "discard", 0.97, 0.07, "big", big),
    )
    picked = Evidence(Repo(repo), repo).attach(task_of(repo, archive=candidates)).archive
    assert [i.id for i in picked] == [1, 3, 4]
    assert "+LR = 0.002" in picked[0].diff and "-DEPTH = 4\n+DEPTH = 6" in picked[1].diff
    assert picked[2].diff.endswith("[... diff cut]") and sum(len(i.diff) for i in picked) <= ARCHIVE_CHARS


def test_view_file_reads_the_champion_tree_in_windows(repo: Path):
    evidence, task = Evidence(Repo(repo), repo), task_of(repo)
    (repo / "prepare.py").write_text("uncommitted\n")  # the working tree is not what the tools read
    text, ok = toolbox.serve("view_file", {"path": "prepare.py", "start": 10, "end": 12}, task, evidence)
    assert ok and text.startswith("prepare.py: lines 10-12 of 600") and "   11  EVAL = 1" in text
    text, ok = toolbox.serve("view_file", {"path": "prepare.py"}, task, evidence)
    assert ok and f"lines 1-{toolbox.VIEW_LINES} of 600 (ask with start/end" in text
    text, ok = toolbox.serve("view_file", {"path": "."}, task, evidence)
    assert ok and "train.py" in text and "data/" in text


@pytest.mark.parametrize("path", ["../outside.txt", "/etc/passwd", ".git/config", "data/../../x", ".gitignore2", 7])
def test_view_file_refuses_paths_that_leave_the_tree(repo: Path, path):
    (repo.parent / "outside.txt").write_text("secret\n")
    text, ok = toolbox.serve("view_file", {"path": path}, task_of(repo), Evidence(Repo(repo), repo))
    assert not ok and "secret" not in text and "not a path inside" in text


def test_view_file_cannot_read_what_git_does_not_track(repo: Path):
    (repo / "experiments.log").write_text('{"secret": 1}\n')
    text, ok = toolbox.serve("view_file", {"path": "experiments.log"}, task_of(repo), Evidence(Repo(repo), repo))
    assert not ok and "no file experiments.log" in text


def test_show_experiment_and_run_log_answer_for_the_experiments_the_task_knows(repo: Path):
    head = git(repo, "rev-parse", "HEAD")
    sha = commit(repo, TRAIN.replace("WIDTH = 128", "WIDTH = 256"), "wider", head)
    log = repo / "runs" / "t" / "5.log"
    log.parent.mkdir(parents=True)
    log.write_text("".join(f"line {i}\n" for i in range(300)))
    a = Attempt(5, "discard", 1.01, 0.01, "wider", "not better", 301.0, 2048.0, "val_bpb: 1.01", sha, "runs/t/5.log")
    task, evidence = task_of(repo, history=(a,)), Evidence(Repo(repo), repo)
    text, ok = toolbox.serve("show_experiment", {"id": 5}, task, evidence)
    assert ok and text.startswith("#5 discard val_bpb=1.01") and "-WIDTH = 128\n+WIDTH = 256" in text
    assert "301 s, peak memory 2048 MB" in text
    text, ok = toolbox.serve("run_log", {"id": 5, "lines": 3}, task, evidence)
    assert ok and text.endswith("line 297\nline 298\nline 299")
    text, ok = toolbox.serve("run_log", {"id": 5, "lines": 10_000}, task, evidence)
    assert ok and f"the last {toolbox.LOG_MAX_LINES} lines" in text
    text, ok = toolbox.serve("show_experiment", {"id": 99}, task, evidence)
    assert not ok and "experiment 99 is not among" in text
    text, ok = toolbox.serve("rm_rf", {}, task, evidence)
    assert not ok and "no tool named 'rm_rf'" in text


def test_hidden_data_is_never_shown_by_a_tool_or_as_context(repo: Path):
    evidence = Evidence(Repo(repo), repo)
    task = task_of(repo, hidden=("data/*.txt",), context=(ContextFile("data/x.txt"), ContextFile("prepare.py")))
    text, ok = toolbox.serve("view_file", {"path": "data/x.txt"}, task, evidence)
    assert not ok and "hidden data" in text
    assert [c.path for c in evidence.attach(task).context] == ["prepare.py"]


def test_a_python_context_file_is_shown_as_its_contract_with_the_mutable_file(tmp_path: Path):
    body = "".join(f"    x{i} = {i}  # a line of the body\n" for i in range(800))
    source = (
        '"""The fixed evaluation.\n\nIt reads data/.\n\nModel contract: model(x) gives logits."""\n\n'
        "EVAL_TOKENS = 4096  # bytes scored\nVOCAB = 256  # bytes\n_PRIVATE = 1\n\n\n"
        f'def evaluate_bpb(model, device) -> float:\n    """Bits per byte of `model`."""\n{body}\n\n'
        f'def get_batch(split):\n    """A batch."""\n{body}\n\ndef _helper():\n{body}'
    )
    train = "from prepare import VOCAB, get_batch\n" + TRAIN
    repo = make_repo(tmp_path / "o", {"train.py": train, "prepare.py": source})
    task = task_of(repo, mutable_content=train, context=(ContextFile("prepare.py"),))
    [shown] = Evidence(Repo(repo), repo).attach(task).context
    assert shown.content.startswith("(its contract with train.py: the whole file is")
    assert "view_file prepare.py shows any part" in shown.content
    # Its docstring's first line and the paragraphs that state a contract; what train.py takes from it.
    assert "The fixed evaluation.\nModel contract: model(x) gives logits." in shown.content
    assert "VOCAB = 256  # bytes" in shown.content and 'def get_batch(split):\n    """A batch."""' in shown.content
    assert "It reads data/" not in shown.content and "EVAL_TOKENS" not in shown.content
    assert "evaluate_bpb" not in shown.content and "x799" not in shown.content and "_helper" not in shown.content


def test_a_long_python_context_file_without_a_contract_is_shown_as_its_outline(tmp_path: Path):
    body = "".join(f"    x{i} = {i}  # a line of the body\n" for i in range(800))
    source = (
        "EVAL_TOKENS = 4096  # bytes scored\n_PRIVATE = 1\n\n\n"
        f'def evaluate_bpb(model, device) -> float:\n    """Bits per byte of `model`."""\n{body}\n\n'
        f"def _helper():\n{body}"
    )
    repo = make_repo(tmp_path / "o", {"train.py": TRAIN, "prepare.py": source})
    [shown] = Evidence(Repo(repo), repo).attach(task_of(repo, context=(ContextFile("prepare.py"),))).context
    assert shown.content.startswith("(its outline: the whole file is")
    assert "EVAL_TOKENS = 4096  # bytes scored" in shown.content and "_PRIVATE" not in shown.content
    assert 'def evaluate_bpb(model, device) -> float:\n    """Bits per byte of `model`."""' in shown.content
    assert "x799" not in shown.content and "_helper" not in shown.content


def test_the_keep_rule_a_deterministic_night_states_needs_no_confirming_run():
    noisy, exact = keep_rule(Config(), 0.01), keep_rule(Config(), 0.0, deterministic=True)
    assert "confirming run" in noisy and "confirming run" not in exact
    assert "deterministic: one run decides" in exact
