"""The Ray executor: each measurement one Ray task with the resources it needs (a GPU, or a share of the CPUs), the
commit's files shipped to it and its logs shipped back; the only module that imports ray. Ray places, queues and
retries nothing of ours: the scheduler hands it at most one task per worker and waits on the tasks' futures."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from typing import Any

from harness import sandbox
from harness.config import Config
from harness.errors import HarnessError
from harness.executors import shipped
from harness.executors.shipped import Shipped
from harness.executors.workers import Done, Job
from harness.paths import Layout


class RayExecutor:
    """Measurements as Ray tasks on the cluster `ray_address` names (a Ray instance of its own when empty)."""

    name = "ray"
    inline = False  # its runs go to other threads or machines

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
        self._tree = ray.put(
            shipped.pack(root, files)
        )  # the night's commit, shipped once; each job carries its own file
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

    def _land(self, done: Future[Any], landed: Future[Done], job: Job, slot: int) -> None:
        """The task's result, its logs written where a local run's would be (runs/<tag>/<id>.log)."""
        self._running.pop(slot, None)  # first: once the result is set, the slot may take its next task at once
        try:
            landed.set_result(shipped.land(done.result(), self.layout, self.tag, job, slot))
        except BaseException as e:  # a task that died (cancelled, its node lost): the scheduler's wait raises it
            landed.set_exception(e)

    def cancel(self) -> None:
        for ref in list(self._running.values()):
            self._ray.cancel(ref, force=True)

    def close(self) -> None:
        if self._own:
            self._ray.shutdown()


def _measure(job: Job, config: Config, root: str, files: tuple[str, ...], tree: bytes) -> Shipped:
    """In the Ray task: the shipped measurement, on this node with the GPUs Ray gave it."""
    import ray

    node = ray.get_runtime_context().get_node_id()[:8]
    return shipped.measure(job, config, root, files, tree, node, [str(i) for i in ray.get_gpu_ids()])


def build(
    config: Config, root: Path, tag: str, files: tuple[str, ...], sb: sandbox.Sandbox, nodes: tuple[str, ...]
) -> RayExecutor:
    """Measurements as tasks on the Ray cluster `ray_address` names; the sandbox and devices are each node's own."""
    return RayExecutor(config, root, tag, files)
