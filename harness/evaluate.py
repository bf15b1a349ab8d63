"""One evaluation: the run under a hard time limit, then (when program.md names one) the trusted evaluator; the
verdict from what they did, never from what the run says of itself beyond its last metric line."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness import outputs, proctable
from harness.cgroup import Cgroup
from harness.jails import Jail
from harness.limits import MIB, shown
from harness.process import Child
from harness.runlog import LogReader, last_value, metric_names, parse_metric, tail

Outcome = Literal["ok", "crash", "timeout", "tampered"]

READER_JOIN = 2.0  # seconds to wait for the reader after the tree is dead; EOF normally comes at once
MISSING = "missing"  # the hash of a protected path that does not exist, so that deleting one counts as a change
LOG_CAP = 10 * 2**20


@dataclass(frozen=True)
class RunResult:
    """What one evaluation did, as the loop records it."""

    outcome: Outcome
    metric: float | None  # the evaluator's number when there is one, else the run's last metric line
    exit_code: int | None  # None when killed at the timeout
    seconds: float  # the run's wall time, measured by the harness
    peak_mem_mb: float | None  # from wait4's ru_maxrss; never below the harness's own peak (see Child.peak_mem_mb)
    log: Path
    tail: str  # the end of the log, for a failed run ("" for an ok one)
    reason: str  # one line: why it is not ok ("" for an ok one)
    tampered: tuple[str, ...] = ()  # protected paths (relative) whose content changed during the run
    cpu_seconds: float | None = None  # user + system time of the run's processes that were waited for
    load: float | None = None  # how busy its cores were during the run, per core (its own work included; see execute)
    claimed: float | None = None  # with an evaluator: the number the run printed itself, kept for comparison
    eval_seconds: float | None = None  # the evaluator's wall time, apart from the run's
    out: Path | None = None  # the run's $AUTORESEARCH_OUT, where the locked test finds what a champion made


@dataclass(frozen=True)
class Spawned:
    """How one child ended: its exit status (None: killed at the time limit), wall and CPU time, peak memory."""

    code: int | None
    seconds: float
    cpu_seconds: float | None
    peak_mem_mb: float | None
    text: str  # the (capped) log, decoded
    load: float | None = None  # busy CPU seconds of the cores it could use, per core and wall second; None: unknown
    breach: str = ""  # the limit it went past ("out of memory: limit 8 GiB"), which ended it; "" when none


class Watch:
    """The limits of one process tree, checked while it runs: its cgroup's counters, and what it wrote to disk."""

    def __init__(self, jail: Jail, cgroup: Cgroup | None) -> None:
        self.limits = jail.enforcement.limits if jail.enforcement else None
        self.cgroup = cgroup
        self.folders = jail.written
        self.started = time.time()
        self.before = self._written()[0]

    def _written(self) -> tuple[int, int]:
        """(the disk space the files in its folders take, the size of the largest)."""
        found = [_disk_bytes(folder, self.started) for folder in self.folders]
        return sum(total for total, _ in found), max((largest for _, largest in found), default=0)

    def breach(self, code: int | None = None) -> str:
        """The limit the tree went past, as one line naming it; "" when none."""
        if self.limits is None:
            return ""
        if self.cgroup is not None and self.cgroup.out_of_memory():
            return f"out of memory: limit {shown(self.limits.memory)}"
        if self.cgroup is not None and self.cgroup.out_of_processes():
            return f"too many processes: limit {self.limits.processes}"
        total, largest = self._written() if self.folders else (self.before, 0)
        if code in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ) or (code is not None and largest >= self.limits.output):
            return f"wrote a file over the output limit: limit {shown(self.limits.output)}"
        if total - self.before > self.limits.output:
            return f"wrote too much to disk: limit {shown(self.limits.output)}"
        return ""


def execute(
    jail: Jail, command: str, *, timeout: float, log: Path, grace: float = 5.0, log_cap: int = LOG_CAP
) -> Spawned:
    """Run `command` through /bin/sh in `jail`, stdout and stderr into `log`, and end its whole tree when it exits or
    at `timeout` seconds (SIGTERM, SIGKILL after `grace`); nothing of it survives."""
    log.parent.mkdir(parents=True, exist_ok=True)
    # One pipe for stdout and stderr, so the log keeps their interleaving as the run printed it. The log is opened
    # here, so that a log that cannot be written is the caller's error before anything runs.
    out = open(log, "wb")  # noqa: SIM115  (the reader thread closes it)
    read_fd, write_fd = os.pipe()
    times_read, times_write = os.pipe()  # the shell's `times`: the CPU time of the run, wherever it runs
    reader = LogReader(read_fd, out, log_cap)
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    busy = proctable.busy_seconds(cores)  # what ran on its cores meanwhile, the run included: contention shows
    started = time.monotonic()
    cgroup = jail.enforcement.new_cgroup() if jail.enforcement else None
    try:
        # The shell's stdin is the pipe for `times`; the command itself reads /dev/null (see _timed).
        child = jail.spawn(
            ["/bin/sh", "-c", _timed(command)], cgroup, stdin=times_write, stdout=write_fd, stderr=write_fd
        )
    except BaseException:
        for fd in (read_fd, times_read):
            os.close(fd)
        out.close()
        if cgroup is not None:
            cgroup.remove()
        raise
    finally:
        os.close(write_fd)  # the child has its copy; ours would keep the pipe open past the run's end
        os.close(times_write)
    watch = Watch(jail, cgroup)
    breach = ""
    try:
        reader.start()
        code, breach = _wait(child, timeout, watch)
        seconds = time.monotonic() - started
        after = proctable.busy_seconds(cores)
    finally:
        # Always, also after a normal exit: a daemon left behind would hold the GPU, and the pipe, open. On
        # Ctrl-C or any error this ends the tree before the exception goes on.
        try:
            child.kill_tree(grace)
        except KeyboardInterrupt:
            child.kill_tree(0)  # a second Ctrl-C during the grace: no more patience, but still no survivors
            raise
        finally:
            cpu = _cpu_seconds(times_read)
            if reader.ident is None:  # interrupted before it started: its pipe and file are still ours to close
                os.close(read_fd)
                out.close()
            else:
                reader.join(READER_JOIN)
                if reader.is_alive():  # a survivor stuck in the kernel still holds the pipe: stop reading it
                    reader.stop.set()
                    reader.join()
            if cgroup is not None:
                cgroup.remove()  # its counters stay readable from the object (see Cgroup.usage)
    if code is None:
        seconds = time.monotonic() - started  # a timed-out run lasted until its tree was dead
    breach = breach or watch.breach(code)
    text = log.read_bytes().decode("utf-8", errors="replace")
    load = (after - busy) / (seconds * len(cores)) if busy is not None and after is not None and seconds > 0 else None
    peak = child.peak_mem_mb
    if cgroup is not None and cgroup.usage.peak_memory is not None:
        peak = cgroup.usage.peak_memory / MIB  # the whole sandbox, daemons and tmpfs included
    if cgroup is not None and cgroup.usage.cpu_seconds is not None:
        cpu = cgroup.usage.cpu_seconds  # every process it had, daemons included: a run cannot look contended
    return Spawned(code, seconds, cpu, peak, text, load, breach)


WATCH_EVERY = 0.25  # seconds between checks of a running tree's limits


def _wait(child: Child, timeout: float, watch: Watch) -> tuple[int | None, str]:
    """Wait up to `timeout` seconds for `child`, checking its limits meanwhile: (its exit status or None, the limit
    it went past or "")."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        code = child.wait(max(0.0, min(left, WATCH_EVERY)))
        if code is not None:
            return code, ""
        if breach := watch.breach():
            return None, breach
        if left <= WATCH_EVERY:
            return child.wait(0), ""


def _disk_bytes(folder: Path, since: float) -> tuple[int, int]:
    """(the disk space the files under `folder` take, the size of the largest written since `since`), never
    following a link."""
    total = largest = 0
    for place, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                info = os.lstat(os.path.join(place, name))
                total += info.st_blocks * 512
                if info.st_mtime >= since - 1:
                    largest = max(largest, info.st_size)
    return total, largest


def _timed(command: str) -> str:
    """`command` run by the shell with /dev/null as its stdin; then the shell writes its children's CPU times
    (`times`) on its own stdin, a pipe to the harness. The command never holds that pipe, so a run cannot write its
    own figures; an `exit` inside it skips the report (the time is then unknown). A sandboxed run's time cannot
    come from wait4: bwrap's init reaps it and is never waited for itself. (fd 0, because dash takes one digit.)"""
    return f"{{ {command}\n}} </dev/null\nstatus=$?\ntimes >&0\nexit $status"


def _cpu_seconds(fd: int) -> float | None:
    """The children's user + system seconds from what `times` wrote ("0m1.02s 0m0.03s" on its second line)."""
    try:
        os.set_blocking(fd, False)
        text = os.read(fd, 4096).decode(errors="replace")
    except (BlockingIOError, OSError):
        text = ""
    finally:
        os.close(fd)
    lines = text.strip().splitlines()
    found = re.findall(r"(\d+)m([\d.]+)s", lines[-1]) if len(lines) >= 2 else []
    return sum(int(m) * 60 + float(sec) for m, sec in found) if len(found) == 2 else None


def evaluate(
    root: Path,
    command: str,
    *,
    metric: str,
    timeout: float,
    log: Path,
    jail: Jail,
    protected: Sequence[str] = (),
    grace: float = 5.0,
    log_cap: int = LOG_CAP,
) -> RunResult:
    """Run `command` in `jail` and judge it: killed with its whole tree past `timeout` seconds, a crash without a
    `<metric>: <float>` line or with a non-zero exit, tampered if a protected path (relative to `root`) changed."""
    before = hash_paths(root, protected)
    ran = execute(jail, command, timeout=timeout, log=log, grace=grace, log_cap=log_cap)
    tampered = changed(before, hash_paths(root, protected))
    found = parse_metric(ran.text, metric)
    if tampered:
        outcome: Outcome = "tampered"
        reason = "changed protected files: " + ", ".join(tampered)
    elif ran.breach:
        outcome, reason = "crash", ran.breach
    elif ran.code is None:
        outcome, reason = "timeout", f"timed out after {timeout:g} s"
    elif ran.code != 0:
        outcome, reason = "crash", _exit_reason(ran.code)
    elif found is None:
        outcome = "crash"
        value = last_value(ran.text, metric)  # nan or inf, or no line at all
        reason = f"{metric} was {value}" if value is not None else no_metric(ran.text, metric, "the run", log)
    else:
        outcome, reason = "ok", ""
    return RunResult(
        outcome=outcome,
        metric=found,
        exit_code=ran.code,
        seconds=ran.seconds,
        peak_mem_mb=ran.peak_mem_mb,
        log=log,
        tail="" if outcome == "ok" else tail(ran.text),
        reason=reason,
        tampered=tampered,
        cpu_seconds=ran.cpu_seconds,
        load=ran.load,
    )


def trusted_metric(
    result: RunResult, jail: Jail, command: str, *, metric: str, timeout: float, log: Path, out: Path | None = None
) -> RunResult:
    """The run's result with its metric decided by the evaluator `command` (run in `jail` after a run that ended
    well): its last `<metric>: <float>` line is the metric; what the run printed becomes only its claim. A run that
    exited 0 without a metric line is fine here: the evaluator decides. An evaluator that fails or prints no metric
    makes the run a crash, with the evaluator's last words as the reason. What the run left in `out` (its
    $AUTORESEARCH_OUT) must be regular files under the output limit, or the evaluator never runs and it is a crash."""
    if result.outcome not in ("ok", "crash") or result.exit_code != 0:
        return result
    if out is not None:
        cap = jail.enforcement.limits.output if jail.enforcement else sys.maxsize
        if refused := outputs.refusal(out, cap):
            return _with(result, outcome="crash", metric=None, reason=refused, claimed=result.metric)
    ran = execute(jail, command, timeout=timeout, log=log)
    found = parse_metric(ran.text, metric)
    claimed, seconds = result.metric, round(ran.seconds, 3)
    if ran.code == 0 and found is not None:
        return _with(result, outcome="ok", metric=found, tail="", reason="", claimed=claimed, eval_seconds=seconds)
    if ran.breach:
        why = f"the evaluator went past a limit: {ran.breach}"
    elif ran.code is None:
        why = f"the evaluator timed out after {timeout:g} s"
    else:
        last = [line.strip() for line in ran.text.splitlines() if line.strip()]
        said = last[-1] if last else _exit_reason(ran.code)
        if ran.code != 0:
            why = f"the evaluator refused it: {said} (its log: {log})"
        elif (value := last_value(ran.text, metric)) is not None:
            why = f"the evaluator gave {metric} = {value} (its log: {log})"
        else:
            why = no_metric(ran.text, metric, "the evaluator", log)
    return _with(result, outcome="crash", metric=None, tail=tail(ran.text), reason=why, claimed=claimed,
                 eval_seconds=seconds)  # fmt: skip


def no_metric(text: str, metric: str, who: str, log: Path) -> str:
    """Why no metric was read, and the fix: the names it did print, and `metric:` in program.md when the line is
    there under another name."""
    printed = metric_names(text)
    if not printed:
        return f"{who} printed no '{metric}: <float>' line (its log: {log})"
    said = ", ".join(f"'{name}'" for name in printed[-3:])
    return (
        f"{who} printed no '{metric}: <float>' line, but printed {said} (its log: {log}); if {printed[-1]} is the "
        f"number to judge by, set 'metric: {printed[-1]}' in program.md"
    )


def baseline_failed(status: str, result: RunResult, mutable: str, run: str) -> str:
    """Why a night cannot start from this baseline, and the fix: the baseline must run before anything is tried."""
    if result.outcome == "timeout":
        fix = f"see {result.log}; raise 'budget' or 'timeout' in program.md, or make {mutable} end within its budget"
    elif "program.md" in result.reason or "its log:" in result.reason:
        fix = "fix that"  # the reason names the fix and the log already
    elif result.outcome == "tampered":
        fix = f"see {result.log}; {mutable} must leave the protected files alone"
    else:
        fix = f"see {result.log}; fix {mutable} or the run command ('{run}')"
    return f"the baseline failed ({status}: {result.reason}); {fix}, then start again ('autoresearch check' tries it)"


def _with(result: RunResult, **changes: object) -> RunResult:
    from dataclasses import replace

    return replace(result, **changes)  # type: ignore[arg-type]


def hash_paths(root: Path, paths: Sequence[str]) -> dict[str, str]:
    """sha256 of every file under each path (a file or a directory, walked), keyed by its path relative to root;
    __pycache__ and *.pyc are passed over (Python writes them; see measure.purge_compiled for how a planted one is
    defused), and a missing path gets a hash of its own so that deleting it counts."""
    hashes: dict[str, str] = {}
    for rel in paths:
        top = root / rel
        key = Path(rel).as_posix()
        if top.is_dir():  # following a link: a protected data folder may well be one
            if top.is_symlink():
                hashes[key] = "symlink:" + os.readlink(top)
            for folder, dirs, files in os.walk(top):
                dirs.sort()
                for name in [*dirs]:
                    if name == "__pycache__":
                        dirs.remove(name)
                    elif os.path.islink(os.path.join(folder, name)):  # os.walk does not enter it, so note where it goes
                        link = Path(folder, name)
                        hashes[f"{key}/{link.relative_to(top).as_posix()}"] = "symlink:" + os.readlink(link)
                for name in sorted(files):
                    if not name.endswith(".pyc"):
                        path = Path(folder, name)
                        hashes[f"{key}/{path.relative_to(top).as_posix()}"] = _hash_file(path)
        else:
            hashes[key] = _hash_file(top)
    return hashes


def _hash_file(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
    except FileNotFoundError:
        digest = MISSING  # never there, deleted, or a link to nothing
    if path.is_symlink():
        # Retargeting a link changes what the run reads as surely as editing the file does.
        return f"symlink:{os.readlink(path)}:{digest}"
    return digest


def changed(before: Mapping[str, str], after: Mapping[str, str]) -> tuple[str, ...]:
    """The paths whose hash differs, including those that appeared or disappeared."""
    return tuple(sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p)))


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    if code > 128 and code - 128 in {s.value for s in signal.Signals}:
        return f"exit status {code} (killed by {signal.Signals(code - 128).name}?)"  # how a shell or bwrap says it
    return f"exit status {code}"
