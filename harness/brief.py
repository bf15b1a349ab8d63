"""What an agent is told before each proposal: the Task, built from the program in force and the night so far.

`build_task` reads only the night's rows (what the ledger says); `Evidence.attach` then adds what the files say:
the context files and the archive's diffs at their commits, and digests of the runs' logs.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from harness import digest, edits, memory, outline
from harness.config import Config
from harness.errors import RepoError
from harness.ledger import EVALUATED, FAILED, INTERRUPTED, Experiment
from harness.night import Night
from harness.paths import RUNS
from harness.task import Attempt, ContextFile, Inspiration, Task
from harness.visibility import Sight

if TYPE_CHECKING:
    from harness.repo import Repo

KEPT_SHOWN = 10  # how many kept experiments an agent sees besides the recent history
ARCHIVE_KEPT = 6  # kept experiments considered for the archive (the newest) ...
ARCHIVE_NEAR = 6  # ... and near misses (the discards that came closest to a keep)
ARCHIVE_SHOWN = 6  # diffs in the archive, at most
ARCHIVE_DIFF_CHARS = 2500  # of one diff
ARCHIVE_CHARS = 9000  # of all its diffs together, about 2,300 tokens in the cached prefix
SIMILAR = 0.6  # a diff whose changed names overlap a picked one's this much (Jaccard) adds nothing new
CONTEXT_CHARS = 16_000  # of one context file, about 4,000 tokens in the cached prefix. A Python file is shown as its
# contract with the mutable file (what that file takes from it, what its docstring says the contract is) when that
# is under half its size; a longer one without a contract as its outline; view_file shows either whole
CRASH_CHARS = 8000  # of a failed run's log: its last traceback and what came just before it
DIGEST_CHARS = 900  # of one run's digest
RAN = EVALUATED | FAILED | INTERRUPTED  # rows whose run left a log worth a digest


def build_task(night: Night, program_text: str, config: Config, content: str) -> Task:
    """The task for the night's next experiment: the history (bounded by config.history), the last crash's tail,
    the agent's latest notes and reflection, the evidence of the runs, and the archive's candidates."""
    rows = night.rows
    tried = [r for r in rows if r.id != 0]
    last = rows[-1] if rows else None
    champion = next((r for r in reversed(rows) if r.status == "keep" and r.file_sha == night.champion_sha), None)
    reflection, since = _reflection(tried)
    margin = night.margin(config)
    contended = {m.experiment for m in night.measured_rows if m.contended and m.purpose == "candidate"}

    def attempt(r: Experiment) -> Attempt:
        return _attempt(r, r.id in contended)

    tries = [_try(r) for r in tried if r.status in RAN]
    stalled, patience = memory.stalled(tries, margin)
    runs = night.referee.trusted(night.champion_sha) if night.champion_sha else ()
    return Task(
        program=program_text,
        mutable_path=config.mutable,
        mutable_content=content,
        metric=config.metric,
        direction=config.direction,
        best=night.best,
        baseline=night.baseline,
        history=tuple(attempt(r) for r in tried[-config.history :]),
        kept=tuple(attempt(r) for r in tried if r.status == "keep")[-KEPT_SHOWN:],
        crash_tail=last.tail if last and last.status in FAILED else "",
        notes=next((r.notes for r in reversed(rows) if r.notes), ""),
        experiment=night.next_id(),
        search=config.search_dict(),
        budget=config.budget,
        timeout=config.timeout,
        margin=margin,
        machine=machine(),
        champion=night.champion,
        champion_run=attempt(champion) if champion else None,
        context=tuple(ContextFile(p) for p in config.context if p != config.mutable),
        archive=_candidates(tried, config.sign),
        reflection=reflection,
        reflect=since >= config.reflect_every,
        agent_steps=config.agent_steps,
        hidden=config.hidden,
        noise=night.noise,
        champion_runs=tuple(m.value for m in runs),
        keep_rule=keep_rule(config, margin, deterministic=night.referee.deterministic()),
        families=memory.families(tries, config.sign, margin),
        mode="broaden" if stalled >= patience else "exploit",
        stalled=stalled,
        patience=patience,
    )


def keep_rule(config: Config, margin: float, *, deterministic: bool = False) -> str:
    """The keep rule in one sentence (a deterministic metric's wins need no confirming run)."""
    better = "lower" if config.direction == "minimize" else "higher"
    again = ", then win a confirming run again" if config.confirm and not deterministic else ""
    if deterministic:
        again = " (the metric is deterministic: one run decides)"
    return f"a change is kept when its run is {better} than the champion's median by more than {margin:.4g}{again}"


def in_flight(flights: list[tuple[int, str, str]]) -> tuple[Attempt, ...]:
    """The experiments proposed and not finished, as (id, description, family), for a parallel night's Task."""
    return tuple(Attempt(i, "in flight", None, None, d or "(being proposed)", family=f) for i, d, f in flights)


def _try(row: Experiment) -> memory.Try:
    family = row.extra.get("family") if isinstance(row.extra, dict) else None
    return memory.Try(row.id, family if isinstance(family, str) else "", row.status, row.delta)


def _attempt(row: Experiment, contended: bool = False) -> Attempt:
    ran = row.status in RAN and bool(row.log)
    extra = row.extra if isinstance(row.extra, dict) else {}
    said = {k: str(extra.get(k) or "") for k in ("family", "expected", "mode")}
    return Attempt(
        row.id, row.status, row.metric, row.delta, row.description, row.reason,
        seconds=row.seconds if ran else None, peak_mem_mb=row.peak_mem_mb if ran else None,
        digest=digest.digest(row.tail, DIGEST_CHARS) if row.tail else "", commit=row.commit or "", log=row.log,
        contended=contended, **said,
    )  # fmt: skip


def _reflection(tried: list[Experiment]) -> tuple[str, int]:
    """The latest reflection and how many experiments ran since it was written (all, when none was): the one whose
    proposal wrote it, and those after."""
    for back, row in enumerate(reversed(tried), 1):
        text = row.extra.get("reflection") if isinstance(row.extra, dict) else None
        if isinstance(text, str) and text.strip():
            return text, back
    return "", len(tried)


def _candidates(tried: list[Experiment], sign: int) -> tuple[Inspiration, ...]:
    """Kept experiments (newest first) and near misses (closest to a keep first), alternating, diffs still to read.
    Only the experiments up to the latest keep count: the archive sits in the cached prefix, which then changes
    only with the champion (the near misses since are in the history and the memory)."""
    last = next((i for i in range(len(tried) - 1, -1, -1) if tried[i].status == "keep"), -1)
    tried = tried[: last + 1]
    kept = [r for r in reversed(tried) if r.status == "keep" and r.commit][:ARCHIVE_KEPT]
    misses = [r for r in tried if r.status == "discard" and r.commit and r.delta is not None]
    near = sorted(misses, key=lambda r: -sign * (r.delta or 0.0))[:ARCHIVE_NEAR]
    order = [r for i in range(max(len(kept), len(near))) for r in kept[i : i + 1] + near[i : i + 1]]
    return tuple(Inspiration(r.id, r.status, r.metric, r.delta, r.description, r.commit or "") for r in order)


def machine() -> str:
    """What a run runs on, in one line: the NVIDIA GPUs the driver lists, CPU cores, memory."""
    gpus = []
    for info in sorted(Path("/proc/driver/nvidia/gpus").glob("*/information")):
        found = re.search(r"^Model:\s*(.+)$", info.read_text(errors="replace"), re.MULTILINE)
        gpus.append(found.group(1).strip() if found else "NVIDIA GPU")
    parts = [f"{len(gpus)} GPU: {', '.join(gpus)}" if gpus else "no NVIDIA GPU found (runs use the CPU)"]
    if gpus and "CUDA_VISIBLE_DEVICES" in os.environ:
        parts.append(f"CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']}")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    parts.append(f"{cores} CPU cores")
    try:
        total = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
    except OSError:
        total = None
    if total:
        parts.append(f"{int(total.group(1)) / 2**20:.1f} GiB RAM")
    return "; ".join(parts)


class Evidence:
    """Reads what the files say for a Task, from the repository at the harness's side; what never changes (a
    commit's diff, a finished run's digest) is read once."""

    def __init__(self, repo: Repo, root: Path) -> None:
        self.repo = repo
        self.root = root
        self._diffs: dict[tuple[str, str], str] = {}
        self._digests: dict[str, str] = {}

    def attach(self, task: Task) -> Task:
        """The task with its context files read, its runs digested from their logs, the last crash's log tail,
        and its archive picked from its candidates' diffs."""
        history = tuple(self._digested(a) for a in task.history)
        crash = task.crash_tail
        if crash and history and history[-1].log:
            crash = self.crash_log(history[-1].log) or crash
        return replace(
            task,
            history=history,
            kept=tuple(self._digested(a) for a in task.kept),
            champion_run=self._digested(task.champion_run) if task.champion_run else None,
            crash_tail=crash,
            context=tuple(c for c in (self._context(task, c.path) for c in task.context) if c.content),
            archive=self._pick(task.archive, task.mutable_path),
        )

    def diff(self, commit: str, path: str) -> str:
        """The diff of `path` made by `commit` against its parent (the champion it was tried on); "" if none."""
        key = (commit, path)
        if key not in self._diffs:
            try:
                parent = self.repo.parent_of(commit)
                old = self.repo.show(parent, path) if parent else ""
                self._diffs[key] = edits.diff(old, self.repo.show(commit, path), path)
            except RepoError:
                self._diffs[key] = ""
        return self._diffs[key]

    def log_text(self, log: str) -> str:
        """A run's log (its start and end when long), or "" when it is not a log of this repository's runs."""
        path = (self.root / log).resolve()
        if not log or not path.is_relative_to((self.root / RUNS).resolve()):
            return ""
        return digest.read_log(path)

    def crash_log(self, log: str) -> str:
        """The end of a failed run's log, from its last traceback on when that fits, bounded."""
        text = self.log_text(log)
        start = text.rfind("Traceback (most recent call last)")
        if start >= 0 and len(text) - start <= CRASH_CHARS:
            before = text.rfind("\n", 0, max(0, text.rfind("\n", 0, start)))  # one line of what came before
            return text[before + 1 :].strip()
        return edits.tail(text, CRASH_CHARS).strip()

    def _digested(self, attempt: Attempt) -> Attempt:
        if not attempt.log:
            return attempt
        if attempt.log not in self._digests:
            self._digests[attempt.log] = digest.digest(self.log_text(attempt.log), DIGEST_CHARS)
        return replace(attempt, digest=self._digests[attempt.log] or attempt.digest)

    def _context(self, task: Task, path: str) -> ContextFile:
        champion = task.champion
        if Sight.of(self.root, task.hidden).is_hidden(path):
            return ContextFile(path)  # named in program.md by mistake: hidden data is never shown
        try:
            text = self.repo.show(champion, path)
        except RepoError:
            return ContextFile(path)  # named in program.md but not in the tree: skipped
        if "\0" in text or text.startswith(f"tree {champion}:"):
            return ContextFile(path)  # binary, or a folder
        module = path[:-3].replace("/", ".") if path.endswith(".py") else ""
        said = outline.contract(text, module, task.mutable_content) if module else ""
        if said:
            what = f"its contract with {task.mutable_path}: the whole file is {len(text)} characters"
            said = f"({what}; view_file {path} shows any part)\n{said}"
        short = outline.outline(text) if len(text) > CONTEXT_CHARS and module else ""
        if said and len(said) < len(text) // 2:  # a short file is shown whole: its contract would save nothing
            text = said
        elif short:
            text = f"(its outline: the whole file is {len(text)} characters; view_file {path} shows any part)\n{short}"
        return ContextFile(path, edits.head(text, CONTEXT_CHARS, f"[... {path} cut at {CONTEXT_CHARS} characters]"))

    def _pick(self, candidates: tuple[Inspiration, ...], path: str) -> tuple[Inspiration, ...]:
        """Diverse candidates, in order: one whose changed names mostly repeat a picked one's is passed over."""
        picked: list[Inspiration] = []
        names: list[set[str]] = []
        total = 0
        for c in candidates:
            text = edits.head(self.diff(c.commit, path), ARCHIVE_DIFF_CHARS, "[... diff cut]")
            changed = set(re.findall(r"[A-Za-z_]\w*", "\n".join(_changed_lines(text))))
            if not text or total + len(text) > ARCHIVE_CHARS:
                continue
            if any(len(changed & n) > SIMILAR * len(changed | n) for n in names):
                continue
            picked.append(replace(c, diff=text))
            names.append(changed)
            total += len(text)
            if len(picked) == ARCHIVE_SHOWN:
                break
        return tuple(picked)


def _changed_lines(diff: str) -> list[str]:
    return [line[1:] for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
