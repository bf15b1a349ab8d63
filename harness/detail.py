"""One experiment in full: its diff, parameters, measurements, the keep rule's verdict in words, its logs and refs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import nights
from harness.errors import HarnessError
from harness.ledger import Experiment, MeasurementRow
from harness.nights import Place, place
from harness.paths import branch, discarded_ref
from harness.review import Night
from harness.text import clean, num, signed

LOG_TAIL = 16 * 1024  # bytes of a run's or an evaluator's log shown from its end
DIFF_CHARS = 200_000  # a diff longer than this is cut (a whole file rewritten many times over)

# What each status means, for a person reading one experiment.
MEANING = {
    "keep": "kept: it beat the champion by more than the noise, and became the champion",
    "discard": "discarded: it ran and gave a metric, which did not beat the champion by more than the noise",
    "crash": "crashed: the run or its evaluator failed and left no metric",
    "timeout": "timed out: the run was killed at its hard limit",
    "invalid": "invalid: refused before any run (it did not parse, changed another file, or the agent failed)",
    "duplicate": "duplicate: the same file already ran in this night, so it was not run again",
    "tampered": "tampered: the run changed a protected file or git's control files; that was undone",
    "interrupted": "interrupted: the harness stopped while it ran (a kill, a power cut)",
}


@dataclass(frozen=True)
class Detail:
    """Everything about one experiment a person reviewing it wants on one page."""

    row: Experiment
    metric: str
    proposer: str  # the agent that proposed it ("seed", "gen3", "optuna", ...)
    parent_id: int | None  # the experiment whose commit was its champion, when the ledger has it
    vs_baseline: float | None  # its metric minus the night's baseline
    meaning: str  # what its status means
    verdict: str  # the keep rule's words (or why it failed or was refused)
    params: dict[str, Any]
    runs: tuple[MeasurementRow, ...]  # every run of it (and the champion's re-runs just before it)
    ref: str  # where its commit lives: the branch (kept) or its discarded ref
    diff: str
    run_log: str  # the tail of its run's log
    eval_log: str  # the tail of its evaluator's log
    run_log_path: str
    eval_log_path: str
    previous: int | None  # the experiment before and after it in the night, for paging
    next: int | None

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in vars(self).items() if k not in ("row", "runs")}
        return {"experiment": self.row.to_json(), "runs": [_run_json(m) for m in self.runs], **out}


def _run_json(m: MeasurementRow) -> dict[str, Any]:
    import msgspec

    return msgspec.to_builtins(m)


def detail(where: Place, night: Night, rows: list[Any], exp_id: int) -> Detail:
    """Experiment `exp_id` of the night, from its rows (every typed row of the tag), git and runs/."""
    from harness.repo import Repo

    experiments = [r for r in rows if type(r) is Experiment]
    matches = [r for r in experiments if r.id == exp_id]
    if not matches:
        raise HarnessError(f"night '{night.tag}' has no experiment {exp_id}; its ids run 0 to "
                           f"{max((r.id for r in experiments), default=0)}")  # fmt: skip
    row = matches[-1]  # a resumed night may hold a re-run baseline: the last row of an id is the one that counts
    by_commit = {r.commit: r.id for r in experiments if r.commit}
    ids = sorted({r.id for r in experiments})
    at = ids.index(exp_id)
    runs = tuple(r for r in rows if type(r) is MeasurementRow and r.experiment == exp_id)
    repo = Repo(where.root)
    layout = where.layout
    run_log, eval_log = layout.run_log(night.tag, exp_id), layout.eval_log(night.tag, exp_id)
    return Detail(
        row=row,
        metric=night.metric,
        proposer=night.proposer(row),
        parent_id=by_commit.get(row.parent) if row.parent != row.commit else None,
        vs_baseline=row.metric - night.baseline if row.metric is not None and night.baseline is not None else None,
        meaning=MEANING.get(row.status, row.status),
        verdict=verdict(row),
        params=params(row, where, repo),
        runs=runs,
        ref=_ref(row, night.tag),
        diff=_diff(repo, row),
        run_log=log_tail(run_log),
        eval_log=log_tail(eval_log),
        run_log_path=str(run_log.relative_to(where.root)),
        eval_log_path=str(eval_log.relative_to(where.root)),
        previous=ids[at - 1] if at > 0 else None,
        next=ids[at + 1] if at + 1 < len(ids) else None,
    )


def verdict(row: Experiment) -> str:
    """The keep rule's decision in words, or why the experiment failed or was refused."""
    if row.reason:
        return clean(row.reason)
    if row.id == 0:
        return "the baseline: the unmodified file, the first champion of the night"
    if row.status in ("keep", "discard") and row.delta is not None:
        return f"{row.status}: delta {signed(row.delta)} against its champion"
    return MEANING.get(row.status, row.status)


def params(row: Experiment, where: Place, repo: Any) -> dict[str, Any]:
    """Its parameters: what the agent recorded (an optimizer's point), else the `search:` constants in its file."""
    recorded = row.extra.get("params") if isinstance(row.extra, dict) else None
    if isinstance(recorded, dict) and recorded:
        return dict(recorded)
    if not where.search or not row.commit:
        return {}
    from harness.errors import RepoError
    from harness.source import read_constants

    try:
        constants = read_constants(repo.show(row.commit, where.mutable))
    except (RepoError, SyntaxError, ValueError, RecursionError, MemoryError):
        return {}  # its file is gone from git, or is not Python that parses
    return {k: constants[k] for k in where.search if k in constants}


def _ref(row: Experiment, tag: str) -> str:
    if row.commit is None:
        return ""
    return branch(tag) if row.status == "keep" else discarded_ref(tag, row.id)


def _diff(repo: Any, row: Experiment) -> str:
    from harness.errors import RepoError

    if not row.commit or not row.parent or row.commit == row.parent:
        return ""
    try:
        text = repo.diff(row.parent, row.commit)
    except RepoError as e:
        return f"(no diff: {e})"
    text = clean(text)
    return text if len(text) <= DIFF_CHARS else text[:DIFF_CHARS] + f"\n… (cut at {DIFF_CHARS:,} characters)"


def log_tail(path: Path, limit: int = LOG_TAIL) -> str:
    """The last `limit` bytes of a log, cleaned, from a whole line; "" when there is none. Links are not followed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return ""
    with open(fd, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - limit))
        data = f.read(limit)
    if size > limit and b"\n" in data:
        data = data[data.index(b"\n") + 1 :]
    return clean(data.decode("utf-8", errors="replace"))


# --- `autoresearch show` ---------------------------------------------------------------------------------------------


def text(d: Detail) -> str:
    """The experiment as plain text, as the page shows it."""
    r = d.row
    lines = [
        f"experiment {r.id} of {r.tag}: {clean(r.description)}",
        "---",
        f"status:       {d.meaning}",
        f"verdict:      {d.verdict}",
        f"{d.metric}:{' ' * max(1, 13 - len(d.metric) - 1)}{num(r.metric)}",
        f"delta:        {signed(r.delta)} against its champion, {signed(d.vs_baseline)} against the baseline",
        f"best after:   {num(r.best)}",
        f"agent:        {d.proposer}" + (f" (worker {r.worker})" if r.worker else ""),
        f"seconds:      {r.seconds:.1f}" + (f", peak memory {r.peak_mem_mb:.0f} MB" if r.peak_mem_mb else ""),
        f"cost:         ${r.cost_usd:.4f} ({r.tokens_in:,} tokens in, {r.tokens_out:,} out)",
        f"commit:       {r.commit or '-'}" + (f" ({d.ref})" if d.ref else ""),
        f"parent:       {r.parent}" + (f" (experiment {d.parent_id})" if d.parent_id is not None else ""),
        f"time:         {r.time}",
    ]
    if d.params:
        lines.append("parameters:   " + ", ".join(f"{k}={v}" for k, v in d.params.items()))
    if d.runs:
        lines += ["", "runs:"]
        lines += [f"  {m.purpose:<10} {num(m.value):>14}  {m.seconds:7.1f} s  {m.outcome}"
                  + ("  contended" if m.contended else "") + (f"  worker {m.worker}" if m.worker else "")
                  for m in d.runs]  # fmt: skip
    if r.notes:
        lines += ["", "agent's notes:", clean(r.notes)]
    for title, body in (("diff against its parent", d.diff), (f"run log ({d.run_log_path}, tail)", d.run_log),
                        (f"evaluator log ({d.eval_log_path}, tail)", d.eval_log)):  # fmt: skip
        if body:
            lines += ["", f"{title}:", body.rstrip("\n")]
    return "\n".join(lines) + "\n"


def show_repo(root: Path, tag: str | None, exp_id: int, as_json: bool = False) -> str:
    """What `autoresearch show` prints for the repository at `root`."""
    import json

    where = place(root)
    rows = nights.read(where.layout.ledger)
    tag = tag or (rows.rows[-1].tag if rows.rows else None)
    if tag is None:
        raise HarnessError("the ledger has no rows yet; start a night with 'autoresearch run --tag <name>'")
    night = nights.night_of(rows, tag, where.metric, where.direction)
    d = detail(where, night, rows.of(tag), exp_id)
    return json.dumps(d.to_json(), indent=2) + "\n" if as_json else text(d)
