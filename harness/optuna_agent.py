"""The offline agent: Bayesian search (Optuna TPE) over the `search:` constants of the mutable file."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from harness.config import Param
from harness.errors import AgentError, ProgramError
from harness.source import literal, read_constants, set_constants
from harness.task import Proposal, Proposed, Result, Spend, Task

NAME = "optuna"
STARTUP_TRIALS = 5  # random trials before TPE models the results; few, because a night has ~100 experiments


class OptunaAgent:
    """Asks Optuna for the next constants, rewrites them into the champion file, and tells Optuna every result."""

    name = NAME

    def __init__(self, space: tuple[Param, ...], direction: str, *, baseline_content: str = "", seed: int = 0) -> None:
        import optuna

        if not space:
            raise ProgramError(
                "program.md: the optuna agent needs a 'search:' space in the front matter, "
                "e.g. search: {LEARNING_RATE: {low: 1.0e-4, high: 1.0e-2, log: true}}"
            )
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._optuna = optuna
        self.space = space
        self.sign = 1 if direction == "maximize" else -1
        self.sha = hashlib.sha256(json.dumps([repr(p) for p in space]).encode()).hexdigest()[:16]
        self.dists = {p.name: _distribution(optuna, p) for p in space}
        # constant_liar: a trial asked for and not yet told counts as a bad result, so several proposals in flight at
        # once (workers > 1) are spread out instead of landing on one point; with one in flight it changes nothing.
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=STARTUP_TRIALS, constant_liar=True)
        self.study = optuna.create_study(direction=direction, sampler=sampler)
        self.pending: dict[int, Any] = {}  # experiment id -> optuna trial
        self.worst: float | None = None
        self.baseline_content = baseline_content  # the unmodified file: its constants are the first point Optuna learns

    def check(self, content: str, path: str) -> None:
        """A ProgramError when the mutable file lacks a constant named in `search:`."""
        missing = [p.name for p in self.space if p.name not in read_constants(content)]
        if missing:
            raise ProgramError(
                f"program.md: search names {', '.join(missing)}, but {path} has no such top-level constant"
            )

    def resume(self, results: list[Result]) -> None:
        """Tell Optuna every earlier result of this tag (the ledger carries each proposal's parameters)."""
        for result in results:
            self._learn(result)

    def _learn(self, row: Result) -> None:
        if row.id == 0:
            params = self._params_of(self.baseline_content) if self.baseline_content else None
            if params is not None and row.metric is not None:
                self._add(params, row.metric)
            return
        params = row.extra.get("params") if isinstance(row.extra, dict) else None
        if isinstance(params, dict) and set(params) == set(self.dists):
            self._add(params, self._value(row))

    def propose(self, task: Task) -> Proposed:
        trial = self.study.ask(self.dists)
        params = dict(trial.params)
        current = read_constants(task.mutable_content)
        try:
            content = set_constants(task.mutable_content, params)
        except KeyError as e:
            self.study.tell(trial, state=self._optuna.trial.TrialState.FAIL)
            raise AgentError(f"{task.mutable_path} has no top-level constant {e.args[0]}") from None
        self.pending[task.experiment] = trial
        changed = [f"{k}={literal(v)}" for k, v in params.items() if current.get(k) != v]
        description = ", ".join(changed) if changed else "same constants as the champion"
        return Proposed(Proposal(description=description, content=content), extra={"params": params})

    def observe(self, row: Result) -> None:
        trial = self.pending.pop(row.id, None)
        if trial is None:
            self._learn(row)
            return
        if row.metric is not None and math.isfinite(row.metric):
            self.worst = row.metric if self.worst is None else _worse(self.worst, row.metric, self.sign)
        if row.status == "invalid":
            self.study.tell(trial, state=self._optuna.trial.TrialState.FAIL)
            return
        value = self._value(row)
        if value is None:
            self.study.tell(trial, state=self._optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, value)

    def take_spend(self) -> Spend:
        return Spend()

    def close(self) -> None:
        self.pending.clear()

    # --- helpers ------------------------------------------------------------------------------------------

    def _value(self, row: Result) -> float | None:
        """The result Optuna learns from; a crash or timeout counts as the worst result seen, so TPE avoids it."""
        if row.metric is not None and math.isfinite(row.metric) and row.status not in ("tampered", "invalid"):
            return row.metric
        if row.status == "duplicate" and isinstance(row.extra.get("earlier_metric"), float | int):
            return float(row.extra["earlier_metric"])
        return self.worst

    def _add(self, params: dict[str, Any], value: float | None) -> None:
        optuna = self._optuna
        try:
            if value is None:
                trial = optuna.trial.create_trial(
                    params=params, distributions=self.dists, state=optuna.trial.TrialState.FAIL
                )
            else:
                trial = optuna.trial.create_trial(params=params, distributions=self.dists, value=value)
                self.worst = value if self.worst is None else _worse(self.worst, value, self.sign)
        except ValueError:
            return  # a value outside today's search space (program.md was steered): nothing to learn from it
        self.study.add_trial(trial)

    def _params_of(self, content: str) -> dict[str, Any] | None:
        values = read_constants(content)
        params = {name: values.get(name) for name in self.dists}
        return params if all(v is not None for v in params.values()) else None


def _worse(a: float, b: float, sign: int) -> float:
    return min(a, b) if sign > 0 else max(a, b)


def _distribution(optuna: Any, p: Param) -> Any:
    d = optuna.distributions
    if p.choices:
        return d.CategoricalDistribution(list(p.choices))
    if p.integer:
        return d.IntDistribution(int(p.low), int(p.high), log=p.log, step=int(p.step or 1))
    return d.FloatDistribution(float(p.low), float(p.high), log=p.log, step=p.step)  # type: ignore[arg-type]
