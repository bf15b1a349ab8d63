"""The live view of `autoresearch run`: a status panel in a terminal, plain timestamped lines anywhere else."""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import threading
import time
from typing import Any, TextIO

from rich.console import Console, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from harness.ledger import EVALUATED, Experiment
from harness.status import doing, duration, outlook, standing
from harness.text import flat

REFRESH = 4  # panel redraws per second: enough for a ticking clock, cheap for the loop
STYLES = {"keep": "bold green", "discard": "dim", "crash": "red", "timeout": "red", "tampered": "magenta",
          "invalid": "yellow", "duplicate": "yellow", "interrupted": "yellow"}  # fmt: skip


# Output that cannot be written: the reader went away (`| head`), the terminal hung up, or the stream was closed.
GONE = frozenset({errno.EPIPE, errno.EIO, errno.EBADF, errno.ENXIO, errno.ECONNRESET})


class Sink:
    """A stream that drops what can no longer be written: a lost terminal never ends a night, the ledger and the
    status file go on. Once its reader is gone, the file descriptor points at /dev/null, so that nothing buffered
    (Python's own flush at exit included) fails later."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.gone = False
        self._lock = threading.Lock()  # the live panel redraws from a thread of its own

    def write(self, text: str) -> int:
        with self._lock:
            if not self.gone:
                try:
                    self.stream.write(text)
                except (OSError, ValueError) as e:  # ValueError: the stream was closed
                    self._lost(e)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if not self.gone:
                try:
                    self.stream.flush()
                except (OSError, ValueError) as e:
                    self._lost(e)

    def isatty(self) -> bool:
        if self.gone:
            return False
        try:
            return bool(self.stream.isatty())
        except (OSError, ValueError, AttributeError):
            return False

    def __getattr__(self, name: str) -> object:  # encoding, fileno, ...: what a console asks of its file
        return getattr(self.stream, name)

    def _lost(self, error: OSError | ValueError) -> None:
        if isinstance(error, OSError) and error.errno not in GONE:
            raise error
        self.gone = True
        with contextlib.suppress(OSError, ValueError, AttributeError):
            fd = self.stream.fileno()
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, fd)
            os.close(null)


class Display:
    """Shows the loop's state and each finished experiment; live mode redraws a panel, plain mode appends lines."""

    def __init__(self, stream: TextIO | None = None, live: bool | None = None) -> None:
        given = stream if stream is not None else sys.stdout
        self.stream = Sink(given)
        self.live = self.stream.isatty() if live is None else live
        self.state: dict[str, Any] = {}
        self._console = Console(file=self.stream, force_terminal=True) if self.live else None  # type: ignore[arg-type]
        self._live: Live | None = None  # started at the first update, so nothing is drawn before the loop runs
        self._last: tuple[Any, ...] | None = None  # (phase, experiment, description) of the last plain status line

    def update(self, state: dict[str, Any]) -> None:
        """The loop's state changed (a new phase, a new experiment)."""
        self.state = dict(state)
        if self._console is not None:
            if self._live is None and state.get("phase") != "stopped":
                # Other output to the terminal (a library's warning) is printed above the panel, not through it.
                mine = self.stream.stream in (sys.stdout, sys.__stdout__)
                self._live = Live(console=self._console, get_renderable=self._panel, refresh_per_second=REFRESH,
                                  transient=True, redirect_stdout=mine, redirect_stderr=mine)  # fmt: skip
                self._live.start()
            elif self._live is not None:
                self._live.refresh()
            return
        key = (state.get("phase"), state.get("experiment"), state.get("description"), state.get("step"),
               state.get("rerun"), state.get("why"))  # fmt: skip
        if key == self._last:
            return
        self._last = key
        # Proposing is left out of plain output: one line when a run starts and one when it ends say enough.
        phase, exp = state.get("phase"), state.get("experiment")
        if phase in ("baseline", "remeasuring", "evaluating"):
            self._plain(flat(doing(state, elapsed=False)))
        elif phase == "stopping":
            self._plain(f"stopping after exp {exp}")

    def row(self, row: Experiment) -> None:
        """An experiment finished: one line with its status, metric, delta, time and description."""
        metric = self.state.get("metric") or "metric"
        parts = [f"exp {row.id}", row.status]
        if row.metric is not None:
            parts.append(f"{metric}={row.metric:.6f}" + (f" ({row.delta:+.6f})" if row.delta is not None else ""))
        parts += [f"{row.seconds:.1f}s", flat(row.description)]
        if row.reason and row.status not in EVALUATED:
            parts.append(f"({flat(row.reason)})")
        if self._console is None:
            self._plain(" ".join(parts))
            return
        text = Text(_clock() + " ", style="dim")
        for i, part in enumerate(parts):
            text.append(part + " ", style=STYLES.get(row.status, "") if i == 1 else "")
        self._console.print(text)

    def info(self, text: str) -> None:
        """A message worth a line of its own: a steer event, a warning, a wait for the API."""
        if self._console is None:
            self._plain(flat(text))
        else:
            self._console.print(Text(f"{_clock()} {flat(text)}", style="yellow"))

    def close(self) -> None:
        """Take the panel down (the lines printed above it stay)."""
        if self._live is not None:
            self._live.stop()
            self._live = None

    def say(self, line: str) -> None:
        """A last line of the night's output, after the panel is down (dropped when nobody can read it)."""
        self.stream.write(line + "\n")
        self.stream.flush()

    def _plain(self, line: str) -> None:
        self.stream.write(f"{_clock()} {line}\n")
        self.stream.flush()  # under nohup the lines must reach the file as they happen

    def _panel(self) -> RenderableType:
        s, now = self.state, time.time()
        grid = Table.grid(padding=(0, 1))
        grid.add_column()
        grid.add_row(Text(flat(doing(s, now, elapsed=False)), style="bold"))
        started, phase, step = s.get("started"), s.get("phase"), s.get("step") or "run"
        # Each step against its own limit: the run against its budget (killed at the timeout), the evaluator
        # against evaluate_timeout.
        limit = s.get("evaluate_timeout") if step == "evaluator" else s.get("budget")
        if phase in ("baseline", "remeasuring", "evaluating") and isinstance(started, int | float) and limit:
            spent = max(0.0, now - started)
            over = spent > limit
            style = "red" if over else "bar.finished"
            bar = ProgressBar(total=limit, completed=min(spent, limit), width=24, finished_style=style)
            clock = f"{duration(spent)} / {duration(limit)}"
            timeout = s.get("timeout")
            if over and step != "evaluator":  # past the budget the run may still finish; the timeout kills it
                clock += f", {duration(spent - limit)} over" + (f" (killed at {duration(timeout)})" if timeout else "")
            line = Table.grid(padding=(0, 2))
            line.add_row(bar, Text(clock, style="red" if over else ""))
            grid.add_row(line)
        elif phase == "proposing" and isinstance(started, int | float):
            grid.add_row(Spinner("dots", text=f"{duration(now - started)} so far"))
        grid.add_row(Text(standing(s)))
        ahead = outlook(s, now)
        if ahead:
            grid.add_row(Text(ahead, style="dim"))
        # A Text, not a str: rich reads a str title as markup, and nothing shown here is markup
        title = Text(flat(f"autoresearch {s.get('tag', '')} · agent {s.get('agent', '')}"))
        return Panel(grid, title=title, title_align="left", border_style="blue")


def _clock() -> str:
    """The time of a line, in UTC like the ledger, so the two can be read side by side."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
