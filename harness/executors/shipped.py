"""A measurement shipped to another machine (a Ray task, a Slurm job): the commit's files as a tar archive, measured
there in that machine's sandbox, and its logs brought back to where a local run's would be (runs/<tag>/)."""

from __future__ import annotations

import dataclasses
import io
import os
import tarfile
import tempfile
from pathlib import Path

from harness import sandbox
from harness.config import Config
from harness.evaluate import RunResult
from harness.executors import workers
from harness.executors.workers import Device, Done, Job, Spot
from harness.paths import Layout

# What a node sends back: the result, the run's log, the evaluator's log (or None), the worker's name, its cores.
Shipped = tuple[RunResult, bytes, bytes | None, str, int]


def pack(root: Path, files: tuple[str, ...]) -> bytes:
    """The tracked files of `root` as a tar archive: what a task on another machine checks out from."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for rel in files:
            if (root / rel).exists() or (root / rel).is_symlink():
                tar.add(root / rel, arcname=rel, recursive=False)
    return buffer.getvalue()


def measure(
    job: Job, config: Config, root: str, files: tuple[str, ...], tree: bytes, where: str, gpus: list[str]
) -> Shipped:
    """On the node: one measurement in a checkout of the shipped commit, in the sandbox of this machine; the
    repository's own path is shown when this machine has it (its untracked data), else the commit alone. `where`
    names the node, `gpus` are the GPUs it gave this task."""
    cpus = tuple(sorted(os.sched_getaffinity(0)))
    device = Device(f"{where}/gpu{','.join(gpus)}" if gpus else where, ",".join(gpus) or None, cpus)
    sb = sandbox.probe(config.sandbox)
    with tempfile.TemporaryDirectory(prefix="autoresearch-task-") as tmp:
        work = Path(tmp)
        source = work / "commit"
        with tarfile.open(fileobj=io.BytesIO(tree)) as tar:
            tar.extractall(source, filter="data")
        here = Path(root) if Path(root).is_dir() else source
        spot = Spot(
            root=here, source=source, files=files, tree=work / "tree", eval_work=work / "evaluator", out=work / "out",
            log=work / "run.log", eval_log=work / "eval.log",
        )  # fmt: skip
        result = workers.measure(config, sb, sandbox.gpu_devices(), device, spot, job)
        eval_log = spot.eval_log.read_bytes() if spot.eval_log.exists() else None
        return result, spot.log.read_bytes(), eval_log, device.name, len(cpus)


def land(shipped: Shipped, layout: Layout, tag: str, job: Job, slot: int) -> Done:
    """What a node sent back, its logs written where a local run's would be (runs/<tag>/<id>.log)."""
    result, log, eval_log, worker, cores = shipped
    args = (tag, job.experiment, job.repeat, job.kind)
    path, eval_path = layout.run_log(*args), layout.eval_log(*args)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(log)
    if eval_log is not None:
        eval_path.write_bytes(eval_log)
    # Its output folder stayed in the node's temporary folder.
    return Done(job, slot, worker, dataclasses.replace(result, log=path, out=None), cores)
