"""The Ray executor: each measurement one Ray task with the resources it needs (a GPU, or a share of the CPUs), the
commit's files shipped to it and its logs shipped back; the only module that imports ray. Ray places, queues and
retries nothing of ours: the scheduler hands it at most one task per worker and waits on the tasks' futures."""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from harness import sandbox
from harness.config import Config
from harness.errors import HarnessError
from harness.evaluate import RunResult
from harness.executors import workers
from harness.executors.workers import Device, Done, Job, Spot
from harness.paths import Layout


class RayExecutor:
    """Measurements as Ray tasks on the cluster `ray_address` names (a Ray instance of its own when empty)."""

    name = "ray"

    def __init__(self, config: Config, root: Path, tag: str, files: tuple[str, ...]) -> None:
        try:
            import ray
        except ImportError:
            raise HarnessError(
                "executor: ray needs Ray: pip install -e \".[ray]\" (or pip install 'ray>=2.9')"
            ) from None
        self._ray = ray
        self.root, self.tag, self.layout = root, tag, Layout(root)
        self._own = not ray.is_initialized()
        if self._own:
            ray.init(address=config.ray_address or None, include_dashboard=False, log_to_driver=False)
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
        self.slots = sandbox.worker_count(config.workers, ["gpu"] * gpus)
        self.gpus = gpus
        # A GPU task gets a fresh worker process each time (max_calls=1), so no CUDA state outlives its run.
        shape: dict[str, Any] = (
            {"num_gpus": 1, "num_cpus": 1, "max_calls": 1} if gpus else {"num_cpus": max(1, cpus // self.slots)}
        )
        self._measure = ray.remote(**shape)(_measure)
        self._tree = ray.put(pack(root, files))  # the night's commit, shipped once; each job carries its own file
        self._files = files
        self._running: dict[int, Any] = {}

    def describe(self) -> str:
        where = "a Ray instance of its own" if self._own else "the Ray cluster"
        return f"tasks of 1 GPU each on {where}" if self.gpus else f"CPU tasks on {where}"

    def submit(self, job: Job, slot: int, config: Config) -> Future[Done]:
        ref = self._measure.remote(job, config, str(self.root), self._files, self._tree)
        self._running[slot] = ref
        landed: Future[Done] = Future()
        ref.future().add_done_callback(lambda f: self._land(f, landed, job, slot))
        return landed

    def _land(self, shipped: Future[Any], landed: Future[Done], job: Job, slot: int) -> None:
        """The task's result, its logs written where a local run's would be (runs/<tag>/<id>.log)."""
        self._running.pop(slot, None)  # first: once the result is set, the slot may take its next task at once
        try:
            result, log, eval_log, worker, cores = shipped.result()
            args = (self.tag, job.experiment, job.repeat, job.kind)
            path, eval_path = self.layout.run_log(*args), self.layout.eval_log(*args)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(log)
            if eval_log is not None:
                eval_path.write_bytes(eval_log)
            landed.set_result(Done(job, slot, worker, _with_log(result, path), cores))
        except BaseException as e:  # a task that died (cancelled, its node lost): the scheduler's wait raises it
            landed.set_exception(e)

    def cancel(self) -> None:
        for ref in list(self._running.values()):
            self._ray.cancel(ref, force=True)

    def close(self) -> None:
        if self._own:
            self._ray.shutdown()


def pack(root: Path, files: tuple[str, ...]) -> bytes:
    """The tracked files of `root` as a tar archive: what a task on another machine checks out from."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for rel in files:
            if (root / rel).exists() or (root / rel).is_symlink():
                tar.add(root / rel, arcname=rel, recursive=False)
    return buffer.getvalue()


def _measure(job: Job, config: Config, root: str, files: tuple[str, ...], tree: bytes) -> tuple[Any, ...]:
    """In the Ray task: one measurement in a checkout of the shipped commit, in the sandbox of this machine; the
    repository's own path is shown when this machine has it (its untracked data), else the commit alone."""
    import ray

    ids = [str(i) for i in ray.get_gpu_ids()]
    node = ray.get_runtime_context().get_node_id()[:8]
    cpus = tuple(sorted(os.sched_getaffinity(0)))
    device = Device(f"{node}/gpu{','.join(ids)}" if ids else node, ",".join(ids) or None, cpus)
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


def _with_log(result: RunResult, log: Path) -> RunResult:
    import dataclasses

    return dataclasses.replace(result, log=log, out=None)  # its output folder stayed in the task's temporary folder


def build(
    config: Config, root: Path, tag: str, files: tuple[str, ...], sb: sandbox.Sandbox, nodes: tuple[str, ...]
) -> RayExecutor:
    """Measurements as tasks on the Ray cluster `ray_address` names; the sandbox and devices are each node's own."""
    return RayExecutor(config, root, tag, files)
