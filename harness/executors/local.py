"""The local executor: this machine's workers, one long-lived thread per worker, pinned to its device (bubblewrap's
--die-with-parent follows the thread that started it, and a thread's CPU mask is what its runs inherit)."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path

from harness import flight, jails, sandbox
from harness.config import Config
from harness.executors import workers
from harness.executors.base import Lane
from harness.executors.workers import Device, Done, Job, Spot
from harness.paths import Layout
from harness.sandbox import Sandbox


class LocalExecutor:
    """This machine's workers: one lane per device, each measuring in its own checkout under runs/<tag>/work/."""

    name = "local"
    inline = False  # its runs go to other threads or machines

    def __init__(
        self, root: Path, tag: str, files: tuple[str, ...], sb: Sandbox, nodes: tuple[str, ...], devices: list[Device]
    ) -> None:
        self.root, self.tag, self.files, self.sb, self.nodes = root, tag, files, sb, nodes
        self.layout = Layout(root)
        self.devices = devices
        self.slots = len(devices)
        many = len(devices) > 1
        self._lanes = [
            Lane(f"worker-{d.name}", (lambda d=d: workers.pin(d)) if many else lambda: None) for d in devices
        ]

    def describe(self) -> str:
        """Each worker's device, in one line: 'GPU 0, GPU 1' or 'cores 0-3, cores 4-7'."""
        return ", ".join(f"GPU {d.gpu}" if d.gpu is not None else f"cores {_span(d.cpus)}" for d in self.devices)

    def submit(self, job: Job, slot: int, config: Config) -> Future[Done]:
        device, layout, tag = self.devices[slot], self.layout, self.tag
        run = (tag, job.experiment, job.repeat, job.kind)
        spot = Spot(
            root=self.root, source=self.root, files=self.files, tree=layout.work(tag, f"worker-{slot}"),
            eval_work=layout.work(tag, f"evaluator-{slot}"), out=layout.run_out(*run), log=layout.run_log(*run),
            eval_log=layout.eval_log(*run),
        )  # fmt: skip

        def measure() -> Done:
            result = workers.measure(config, self.sb, self.nodes, device, spot, job)
            return Done(job, slot, device.name, result, len(device.cpus))

        return self._lanes[slot].submit(measure)

    def cancel(self) -> None:
        """End every run and evaluator under way (they carry this repository's marker); each lane then reports its
        measurement as failed."""
        flight.end_orphans(self.root)

    def close(self) -> None:
        for lane in self._lanes:
            lane.close()
        for slot in range(self.slots):
            for name in (f"worker-{slot}", f"evaluator-{slot}"):
                jails.remove(self.layout.work(self.tag, name))


def build(
    config: Config, root: Path, tag: str, files: tuple[str, ...], sb: Sandbox, nodes: tuple[str, ...]
) -> LocalExecutor:
    """`workers` of this machine's devices: one per visible GPU, or a share of the CPU cores each."""
    gpus = sandbox.visible_gpus()
    n = sandbox.worker_count(config.workers, gpus)
    return LocalExecutor(root, tag, files, sb, nodes, workers.plan(n, gpus, workers.cores()))


def _span(cpus: tuple[int, ...]) -> str:
    if len(cpus) > 1 and cpus[-1] - cpus[0] == len(cpus) - 1:
        return f"{cpus[0]}-{cpus[-1]}"
    return ",".join(map(str, cpus))
