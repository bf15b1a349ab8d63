"""The Slurm executor: each measurement one Slurm job submitted through submitit (the `slurm` extra), the commit's
files shipped to it and its logs shipped back; the only module that imports submitit. With `slurm_cluster: local`
the same jobs run through submitit's local executor, on this machine, with no Slurm (what the tests use)."""

from __future__ import annotations

import math
import os
import socket
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from harness import sandbox
from harness.config import Config
from harness.errors import HarnessError
from harness.executors import shipped
from harness.executors.base import Lane
from harness.executors.shipped import Shipped
from harness.executors.workers import Done, Job
from harness.paths import Layout

MARGIN_MINUTES = 5  # beyond the run's and the evaluator's limits: the job starts, unpacks, and sends its logs back


class SlurmExecutor:
    """Measurements as Slurm jobs, `workers` of them at once; each slot waits on its job from a lane of its own."""

    name = "slurm"
    inline = False  # its runs go to other threads or machines

    def __init__(self, config: Config, root: Path, tag: str, files: tuple[str, ...]) -> None:
        try:
            import submitit
        except ImportError:
            raise HarnessError(
                "executor: slurm needs submitit: pip install -e \".[slurm]\" (or pip install 'submitit>=1.5')"
            ) from None
        self.root, self.tag, self.layout, self._files = root, tag, Layout(root), files
        self.cluster = config.slurm_cluster or "slurm"
        folder = Path(config.slurm_folder)
        self.folder = (folder if folder.is_absolute() else root / folder) / tag
        self._submitit = submitit.AutoExecutor(folder=self.folder, cluster=self.cluster)
        limit = config.timeout + (config.evaluate_timeout if config.evaluate else 0)
        minutes = config.slurm_time or math.ceil(limit / 60) + MARGIN_MINUTES
        params: dict[str, Any] = {"timeout_min": math.ceil(minutes), "name": f"autoresearch-{tag}", "nodes": 1}
        if config.slurm_gpus:
            params["gpus_per_node"] = config.slurm_gpus
        if config.slurm_partition:
            params["slurm_partition"] = config.slurm_partition
        self._submitit.update_parameters(**params)
        self.partition, self.gpus = config.slurm_partition, config.slurm_gpus
        self.slots = sandbox.worker_count(config.workers, [])
        self._tree = shipped.pack(root, files)  # the night's commit, shipped with each job beside its own file
        self._lanes = [Lane(f"slurm-{i}") for i in range(self.slots)]
        self._jobs: dict[int, Any] = {}  # slot -> the submitit job under way

    def describe(self) -> str:
        if self.cluster == "local":
            return f"jobs on submitit's local executor (logs in {self.folder})"
        where = f"partition {self.partition}" if self.partition else "the default partition"
        return f"Slurm jobs of {self.gpus} GPU(s) each on {where} (logs in {self.folder})"

    def submit(self, job: Job, slot: int, config: Config) -> Future[Done]:
        def measure() -> Done:
            submitted = self._submitit.submit(_measure, job, config, str(self.root), self._files, self._tree)
            self._jobs[slot] = submitted
            try:
                result: Shipped = submitted.result()
            finally:
                self._jobs.pop(slot, None)
            return shipped.land(result, self.layout, self.tag, job, slot)

        return self._lanes[slot].submit(measure)

    def cancel(self) -> None:
        """Cancel every job under way (scancel, or the local job's process); each lane then reports it failed."""
        for submitted in list(self._jobs.values()):
            submitted.cancel(check=False)

    def close(self) -> None:
        for lane in self._lanes:
            lane.close()


def _measure(job: Job, config: Config, root: str, files: tuple[str, ...], tree: bytes) -> Shipped:
    """In the Slurm job: the shipped measurement, on this node with the GPUs Slurm gave it."""
    # The worker is the node and its GPUs, never the job: each worker's offset is fitted over the runs it made.
    node = os.environ.get("SLURMD_NODENAME") or socket.gethostname()
    gpus = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g]
    return shipped.measure(job, config, root, files, tree, node, gpus)


def build(
    config: Config, root: Path, tag: str, files: tuple[str, ...], sb: sandbox.Sandbox, nodes: tuple[str, ...]
) -> SlurmExecutor:
    """Measurements as Slurm jobs (or submitit's local ones); the sandbox and devices are each node's own."""
    return SlurmExecutor(config, root, tag, files)
