"""What the scheduler needs of an executor (the seam between this machine's workers and a cluster), and the lane a
worker or a proposal runs on. An executor takes a Job for a slot and gives back a Future of what was measured; the
scheduler waits on those futures and on nothing else."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol, TypeVar

from harness.config import Config
from harness.executors.workers import Done, Job

T = TypeVar("T")


class Executor(Protocol):
    """What the scheduler needs of where measurements run."""

    slots: int  # measurements it runs at once
    name: str  # its name in the registry (harness.executors), for the start line and the ledger
    inline: bool  # submit() makes the run in the calling thread and returns it done (one at a time, in place)

    def describe(self) -> str: ...

    def submit(self, job: Job, slot: int, config: Config) -> Future[Done]: ...

    def cancel(self) -> None: ...

    def close(self) -> None: ...


class Lane:
    """One long-lived thread that runs what it is given, in order; a daemon, so a stuck call never holds the exit."""

    def __init__(self, name: str, setup: Callable[[], None] = lambda: None) -> None:
        self._work: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = queue.SimpleQueue()
        self._setup = setup
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        self._work.put((fn, future))
        return future

    def close(self) -> None:
        self._work.put(None)

    def _serve(self) -> None:
        self._setup()
        while (item := self._work.get()) is not None:
            fn, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as e:  # handed to whoever waits on the future, which raises it there
                future.set_exception(e)


class Inline:
    """A lane that runs what it is given at once, in the calling thread: the future it returns is done (an exception
    is kept in it; Ctrl-C is not caught)."""

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn())
        except Exception as e:  # handed to whoever reads the future, which raises it there
            future.set_exception(e)
        return future

    def close(self) -> None:
        pass
