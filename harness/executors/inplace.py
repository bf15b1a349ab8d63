"""The executor of a night with one worker of this machine and no proposal ahead (the classic night): each run is made
in the repository's own tree, in the engine's thread, one at a time; the candidate is the checked-out commit, and a
version measured beside it (the champion) is in the tree for that run only."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from concurrent.futures import Future

from harness import flight
from harness.config import Config
from harness.executors import workers
from harness.executors.workers import Done, Job
from harness.measure import Tree, measure


class InPlace:
    """One worker: the repository's working tree."""

    name = "local"
    slots = 1
    inline = True

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        # Told when a run starts and when its evaluator starts (what the engine publishes as the night's step).
        self.step: Callable[[Job, str], None] = lambda job, step: None

    def describe(self) -> str:
        return "the repository's own tree"

    def submit(self, job: Job, slot: int, config: Config) -> Future[Done]:
        """Make the run now, in this thread; a bug or Ctrl-C is raised here, a failed run is its result."""
        path = self.tree.repo.root / config.mutable
        current = path.read_text(encoding="utf-8")
        swap = job.content != current
        if swap:
            path.write_text(job.content, encoding="utf-8")
        try:
            measured = measure(
                self.tree, config, job.experiment, job.repeat, lambda: self.step(job, "run"), job.kind,
                lambda: self.step(job, "evaluator"),
            )  # fmt: skip
        finally:
            if swap:
                path.write_text(current, encoding="utf-8")
        result = measured.result
        if result.load is None:  # the run's cores could not be read (not Linux): the machine's load, a laggy stand-in
            result = dataclasses.replace(result, load=_load())
        future: Future[Done] = Future()
        future.set_result(Done(job, slot, "", result, len(workers.cores()), tuple(measured.removed)))
        return future

    def cancel(self) -> None:
        flight.end_orphans(self.tree.repo.root)

    def close(self) -> None:
        pass


def _load() -> float | None:
    """The 1-minute load average per core."""
    try:
        return os.getloadavg()[0] / len(workers.cores())
    except OSError:
        return None
