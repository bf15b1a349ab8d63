"""The workers of a parallel night: each one's device (a GPU, or a share of the CPU cores), and one measurement of one
version in a checkout of its own, sandboxed as every run is; the same code serves a local worker and a Ray task."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from harness import jails, sandbox
from harness.config import Config
from harness.evaluate import RunResult, evaluate, trusted_metric
from harness.measure import compiled_files, purge_compiled
from harness.paths import LEDGER, RUNS
from harness.sandbox import Sandbox

WORKER = "AUTORESEARCH_WORKER"  # a run is told which worker it is on (its logs can say so; a fake task can use it)
_NOT_IN_CHECKOUT = frozenset({".git", LEDGER, RUNS})  # never linked into a checkout: git's, and the harness's own


@dataclass(frozen=True)
class Device:
    """Where one worker's runs go: its GPU (CUDA_VISIBLE_DEVICES) or none, and the CPU cores they may use."""

    name: str  # what the ledger calls the worker ("0", "1", ...)
    gpu: str | None  # the GPU's index as CUDA numbers it; None: the CPU only
    cpus: tuple[int, ...]  # the cores its runs are pinned to

    def env(self) -> dict[str, str]:
        """What a run on this device is told: its GPU, its thread count, and the worker it is."""
        env = {WORKER: self.name, "OMP_NUM_THREADS": str(max(1, len(self.cpus)))}
        if self.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.gpu
            env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # the order nvidia-smi shows, so GPU 3 is the card it calls 3
        return env


def plan(n: int, gpus: Sequence[str], cpus: Sequence[int]) -> list[Device]:
    """N devices: the GPUs dealt out in turn, and the CPU cores split into N blocks (a core each at least)."""
    cores = sorted(cpus) or [0]
    devices = []
    for i in range(n):
        # More workers than cores (runs that wait on a GPU or sleep): a core each, dealt out in turn.
        share = cores[i * len(cores) // n : (i + 1) * len(cores) // n] if n <= len(cores) else [cores[i % len(cores)]]
        devices.append(Device(str(i), gpus[i % len(gpus)] if gpus else None, tuple(share)))
    return devices


def cores() -> list[int]:
    """The CPU cores this process may run on."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def pin(device: Device) -> None:
    """Pin the calling thread to the device's cores: on Linux the mask is the thread's, and every run it starts
    inherits it. Call it once in the worker's own long-lived thread."""
    if hasattr(os, "sched_setaffinity") and len(device.cpus) < len(cores()):
        os.sched_setaffinity(0, device.cpus)


# --- one measurement ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One run of one version to make, as plain data: it goes to a worker thread, or to a Ray task, as it is."""

    experiment: int  # the experiment it serves (the next one, for the champion's re-runs)
    repeat: int  # the how-many-th run of that experiment and kind it is (names its log)
    kind: str  # "" or "remeasure": the champion's re-runs are named apart
    purpose: str  # baseline, candidate, confirm or remeasure
    content: str  # the mutable file as this run has it
    file_sha: str  # its git blob sha: the version the rule weighs


@dataclass(frozen=True)
class Spot:
    """Where one measurement works on its machine: the tree it stands in for, and its own folders and logs."""

    root: Path  # the repository as the sandbox shows it: protected files and untracked data come from here
    source: Path  # where the tracked files are copied from: `root`, or the commit as it was shipped to this machine
    files: tuple[str, ...]  # the tracked files (every version of the night shares all but the mutable one)
    tree: Path  # the worker's checkout of the version: made for the run, removed after it
    eval_work: Path  # the evaluator's scratch folder
    out: Path  # $AUTORESEARCH_OUT
    log: Path
    eval_log: Path


def checkout(sb: Sandbox, config: Config, spot: Spot, content: str) -> None:
    """The worker's checkout of a version: the tracked files as the night's commits have them (they differ only in
    the mutable file), with the mutable file's content. Without a sandbox it is the run's working folder, so the
    protected files and the untracked entries of the repository (its data, its venv) are links to the real ones: a
    run that writes one writes the real file, and is caught as tampered as it would be working in the repository."""
    jails.remove(spot.tree)
    seen = jails.sight(spot.root, config)
    copied = [rel for rel in jails.copied(spot.files, config, seen) if rel != config.mutable]
    jails.scratch(sb, spot.source, spot.tree, copied)
    target = spot.tree / config.mutable
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content, encoding="utf-8")
    if not sb.active:  # in the sandbox, the protected files are shown read-only over the checkout instead
        kept = set(copied) | {config.mutable}
        tops = {rel.split("/")[0] for rel in spot.files if rel not in kept} | set(os.listdir(spot.root))
        for name in sorted(tops - _NOT_IN_CHECKOUT):
            if not (spot.tree / name).exists() and not (spot.tree / name).is_symlink():
                (spot.tree / name).symlink_to(spot.root / name)
    sandbox.own(sb, spot.tree)


def measure(config: Config, sb: Sandbox, devices: tuple[str, ...], device: Device, spot: Spot, job: Job) -> RunResult:
    """Run one version once on `device` in its own checkout, then the trusted evaluator when program.md names one;
    the checkout is gone afterwards. What the run left in the repository's protected folders as compiled files
    (without a sandbox) is removed, as a run in place does (harness.measure)."""
    jails.remove(spot.out)
    spot.out.mkdir(parents=True)
    sandbox.own(sb, spot.out)
    guarded = jails.guarded(config)
    compiled = {} if sb.active else compiled_files(spot.root, guarded)
    try:
        checkout(sb, config, spot, job.content)
        with jails.tree_jail(sb, spot.root, config, spot.tree, spot.out, devices, device.env()) as jail:
            result = evaluate(
                spot.root, config.run, metric=config.metric, timeout=config.timeout, log=spot.log, jail=jail,
                protected=guarded,
            )  # fmt: skip
    finally:
        jails.remove(spot.tree)
    if not sb.active:
        purge_compiled(spot.root, guarded, compiled)
    result = replace(result, out=spot.out)
    if config.evaluate and result.outcome != "tampered":
        with jails.evaluator_jail_at(sb, spot.root, config, spot.eval_work, spot.out, device.env()) as jail:
            result = trusted_metric(
                result,
                jail,
                config.evaluate,
                metric=config.metric,
                timeout=config.evaluate_timeout,
                log=spot.eval_log,
                out=spot.out,
            )
    return result


@dataclass(frozen=True)
class Done:
    """A measurement made: the job, the slot and the device it ran on, and what it did."""

    job: Job
    slot: int  # the scheduler's slot it took (0 .. workers - 1)
    worker: str  # the device it ran on, as the ledger names it
    result: RunResult
    cores: int  # CPU cores the run had, against which its CPU time is read
    removed: tuple[str, ...] = ()  # files the run left in the repository's tree (no sandbox, in place), now gone
