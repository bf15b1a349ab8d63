"""The offline agents: Bayesian optimization (Optuna's Gaussian-process sampler, or TPE in many dimensions) or uniform
random search over the `search:` constants of the file."""

from __future__ import annotations

import ast
import hashlib
import json
import math
import warnings
from collections.abc import Iterable
from typing import Any

from harness.agents import Setup, samplers
from harness.agents.samplers import NAMES, SHOWN, STARTUP_TRIALS, Sampler, choose
from harness.config import Config, Param
from harness.errors import AgentError, ProgramError
from harness.night import Night
from harness.repo import Repo
from harness.source import literal, read_constants, set_constants
from harness.task import Proposal, Proposed, Result, Spend, Task

REDRAWS = 10  # draws to find a point not already tried or in flight, before proposing a repeat anyway
TRIALS_SHOWN = 40  # of the trials, how many (the latest) the hybrid's LLM sees
BEST_SHARE = 0.25  # the best region: the range of the best quarter of the trials (at least three) ...
REGION_TRIALS = 8  # ... once there are this many: before, a "best quarter" would cover every trial
IMPORTANCE_TRIALS = 5  # completed trials before each parameter's importance is estimated (PED-ANOVA)


class OptunaAgent:
    """Asks Optuna for the next constants, rewrites them into the champion file, and tells Optuna every result.

    The point proposed for experiment k is drawn with a seed made from (seed, k): a restart goes on with the
    sequence an uninterrupted night would have had instead of repeating its first points, and the same seed and the
    same results give the same points. Several points may be asked for before any result is known (experiments
    k, k+1, ... in flight): TPE treats the ones in flight as bad results it has not seen yet (constant liar), and no
    point in flight or already tried is proposed again while another can be drawn.
    """

    def __init__(
        self,
        space: tuple[Param, ...],
        direction: str,
        *,
        sampler: Sampler = "auto",
        baseline_content: str = "",
        seed: int = 0,
    ) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._optuna = optuna
        self.asked = sampler  # what was asked for; `sampler` is what runs (auto: by the space, see `choose`)
        self.name = NAMES[sampler]
        self._shape(space, direction, seed)
        self.study = optuna.create_study(direction=direction, sampler=self._sampler(0, 0))
        self.pending: dict[int, Any] = {}  # experiment id -> optuna trial, asked and not yet told
        self.worst: float | None = None
        self.baseline_content = baseline_content  # the unmodified file: its constants are the first point Optuna learns
        # The version of the code around the search constants: a trial says which it ran on, and a kept change of
        # the code starts a fresh study (its trials measured another program), with the trials of that code only.
        self.code = self.version(baseline_content) if baseline_content else ""
        self.told: list[tuple[dict[str, Any], float | None, int, str, str]] = []  # (params, value, id, code, status)
        self.fresh_at: int | None = None  # the experiment whose proposal started the current study, if any
        self.replay: dict[int, tuple[dict[str, Any], str]] = {}  # in flight when a fresh study began: (point, code)

    def _shape(self, space: tuple[Param, ...], direction: str, seed: int) -> None:
        """Take a search space, a direction and a seed (at the start, and again when program.md is steered)."""
        if not space:
            raise ProgramError(
                f"program.md: the {self.name} agent needs a 'search:' space in the front matter, "
                "e.g. search: {LEARNING_RATE: {low: 1.0e-4, high: 1.0e-2, log: true}}"
            )
        self.space, self.direction, self.seed = space, direction, seed
        self.sampler = choose(self.asked, space)
        self.sign = 1 if direction == "maximize" else -1
        self.sha = hashlib.sha256(json.dumps([self.asked, *map(repr, space)]).encode()).hexdigest()[:16]
        self.dists = {p.name: _distribution(self._optuna, p) for p in space}

    def steer(self, config: Config) -> None:
        """Take program.md's edit before the next proposal: a new `search:` space (or direction, or seed) starts a
        study that keeps every point learned so far that is still inside the space (a constant no longer tuned is
        dropped from it); a point in flight is learned when its result comes, if it is inside."""
        if (config.search, config.direction, config.seed) == (self.space, self.direction, self.seed):
            return
        optuna = self._optuna
        for trial in self.pending.values():
            self.replay[trial.user_attrs["experiment"]] = (dict(trial.params), trial.user_attrs.get("code", ""))
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)  # closed in the old study
        self.pending = {}
        self._shape(config.search, config.direction, config.seed)
        self.study = optuna.create_study(direction=self.direction, sampler=self._sampler(0, 0))
        self.worst = None
        for params, value, exp_id, version, status in self.told:
            self._add(params, value, exp_id, version, status, log=False, current=version == self.code)

    def check(self, content: str, path: str) -> None:
        """A ProgramError when the mutable file lacks a constant named in `search:`."""
        missing = [p.name for p in self.space if p.name not in read_constants(content)]
        if missing:
            raise ProgramError(
                f"program.md: search names {', '.join(missing)}, but {path} has no such top-level constant"
            )

    def resume(self, results: Iterable[Result]) -> None:
        """Tell Optuna every earlier result of this tag (the ledger carries each proposal's parameters)."""
        for result in results:
            self._learn(result)

    # --- the Agent protocol ---------------------------------------------------------------------------------

    def version(self, content: str) -> str:
        """The code version of a file: a short hash of it with the search constants' values masked."""
        try:
            masked = set_constants(content, {p.name: 0 for p in self.space})
        except (KeyError, SyntaxError):
            masked = content
        return hashlib.sha256(masked.encode()).hexdigest()[:8]

    def propose(self, task: Task) -> Proposed:
        code = self.version(task.mutable_content)
        if self.code and code != self.code:
            self._fresh(code, task.experiment)
        self.code = code
        trial = self._ask(task.experiment)
        trial.set_user_attr("code", code)
        params = dict(trial.params)
        self.pending[task.experiment] = trial  # told when its result comes, even an `invalid` one
        current = read_constants(task.mutable_content)
        try:
            content = set_constants(task.mutable_content, params)
        except KeyError as e:
            raise AgentError(f"{task.mutable_path} has no top-level constant {e.args[0]}") from None
        changed = [f"{k}={literal(v)}" for k, v in params.items() if current.get(k) != v]
        description = ", ".join(changed) if changed else "same constants as the champion"
        return Proposed(Proposal(description=description, content=content), extra={"params": params, "code": code})

    def in_startup(self) -> bool:
        """Whether the next point is one of the random start-up trials, drawn before TPE models the results."""
        return self.sampler in ("tpe", "gp") and len(self._complete()) < STARTUP_TRIALS

    def observe(self, row: Result) -> None:
        trial = self.pending.pop(row.id, None)
        if row.id in self.replay:
            params, code = self.replay.pop(row.id)
            self._add(params, self._value(row), row.id, code, row.status, current=code == self.code)
            return
        if trial is None:
            self._learn(row)
            return
        value = self._value(row)
        trial.set_user_attr("status", row.status)
        self.told.append((dict(trial.params), value, row.id, trial.user_attrs.get("code", ""), row.status))
        if value is None:
            self.study.tell(trial, state=self._optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, value)
            self.worst = value if self.worst is None else _worse(self.worst, value, self.sign)

    def take_spend(self) -> Spend:
        return Spend()

    def close(self) -> None:
        self.pending.clear()

    # --- for an agent that composes this one (the hybrid) ---------------------------------------------------

    def withdraw(self, experiment: int, why: str) -> None:
        """The point asked for `experiment` will not run (another proposal took its place): nothing is learned."""
        trial = self.pending.pop(experiment, None)
        if trial is not None:
            trial.set_user_attr("withdrawn", why)
            self.study.tell(trial, state=self._optuna.trial.TrialState.FAIL)

    def params_of_edit(self, champion: str, content: str) -> dict[str, Any] | None:
        """The point an edit of the champion tried, when it changed nothing but `search:` constants and stays inside
        the space (so Optuna can learn it as a trial of its own); None for a code change or a point outside."""
        params = self._params_of(content)
        if params is None or not self._inside(params):
            return None
        try:
            same = ast.dump(ast.parse(set_constants(champion, params))) == ast.dump(ast.parse(content))
        except (SyntaxError, KeyError):
            return None
        return params if same else None

    def state(self) -> dict[str, Any]:
        """What the optimizer knows, as plain data: the latest trials (failed ones too, each with its status and code
        version), the best one, the best region once there are enough trials, each parameter's importance, and
        whether it is still drawing its random start-up points."""
        done = self._complete()
        shown = [t for t in self.study.trials if "status" in t.user_attrs and t.params][-TRIALS_SHOWN:]
        trials = [
            {"experiment": t.user_attrs.get("experiment"), "params": t.params, "value": t.value,
             "status": t.user_attrs.get("status", ""), "code": t.user_attrs.get("code", "")}
            for t in shown
        ]  # fmt: skip
        ranked = sorted(done, key=lambda t: -self.sign * t.value)
        region: dict[str, dict[str, Any]] = {}
        top = ranked[: max(3, math.ceil(BEST_SHARE * len(ranked)))] if len(ranked) >= REGION_TRIALS else []
        for name, dist in self.dists.items():
            values = [t.params[name] for t in top if name in t.params]
            if values and hasattr(dist, "choices"):
                region[name] = {"choices": [c for c in dist.choices if c in values]}  # in the space's own order
            elif values:
                region[name] = {"low": min(values), "high": max(values)}
        first = ranked[0] if ranked else None
        best = (
            {"experiment": first.user_attrs.get("experiment"), "params": first.params, "value": first.value}
            if first
            else {}
        )
        sampler = SHOWN[self.sampler]
        return {
            "sampler": sampler, "trials": trials, "told": len(done), "best": best, "region": region,
            "region_of": [len(top), len(ranked)], "importance": self._importance(done),
            "startup": [min(len(done), STARTUP_TRIALS), STARTUP_TRIALS] if self.sampler != "random" else [],
            "code": self.code, "fresh_at": self.fresh_at,
        }  # fmt: skip

    def _importance(self, done: list[Any]) -> dict[str, float]:
        """Each parameter's share of the variation of the results (PED-ANOVA, no extra dependency); {} while there
        are too few trials, or the values do not vary."""
        optuna = self._optuna
        if len(done) < IMPORTANCE_TRIALS or len({t.value for t in done}) < 2:
            return {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            evaluator = optuna.importance.PedAnovaImportanceEvaluator()
            try:
                found = optuna.importance.get_param_importances(self.study, evaluator=evaluator)
            except (ValueError, RuntimeError, ZeroDivisionError):
                return {}
        return {k: round(float(v), 3) for k, v in found.items()}

    def _complete(self) -> list[Any]:
        return [t for t in self.study.trials if t.state.name == "COMPLETE" and t.params]

    def _fresh(self, code: str, experiment: int) -> None:
        """A new study for a new version of the code: it starts from the trials of that code only (none, unless
        the night went back to it). A point in flight on the old code is learned by the new study only if its
        code is the new one."""
        optuna = self._optuna
        for trial in self.pending.values():
            self.replay[trial.user_attrs["experiment"]] = (dict(trial.params), trial.user_attrs.get("code", ""))
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)  # closed in the old study
        self.pending = {}
        self.study = optuna.create_study(direction=self.direction, sampler=self._sampler(experiment, 0))
        self.fresh_at = experiment
        for params, value, exp_id, version, status in self.told:
            if version == code:
                self._add(params, value, exp_id, version, status, log=False)

    # --- helpers ------------------------------------------------------------------------------------------

    def _sampler(self, experiment: int, attempt: int) -> Any:
        return samplers.make(self._optuna, self.sampler, self.seed, experiment, attempt)

    def _ask(self, experiment: int) -> Any:
        """A trial for `experiment`, drawn again (with the next seed) while its point is one in flight or tried."""
        taken = {_key(t.params) for t in self.study.trials if not ({"withdrawn", "redrawn"} & set(t.user_attrs))}
        for attempt in range(REDRAWS):
            # A sampler of its own for each draw: the point depends on (seed, experiment, attempt) and what Optuna
            # was told, not on how many draws this process made before (a restart would repeat them).
            self.study.sampler = self._sampler(experiment, attempt)
            trial = self.study.ask(self.dists)
            trial.set_user_attr("experiment", experiment)
            if _key(trial.params) not in taken or attempt == REDRAWS - 1:
                return trial
            trial.set_user_attr("redrawn", True)
            self.study.tell(trial, state=self._optuna.trial.TrialState.FAIL)
        raise AssertionError("unreachable: the last draw is always returned")

    def _learn(self, row: Result) -> None:
        """Learn a result this agent did not ask for: the baseline, a row of the ledger on resume, or another
        proposer's experiment (whose point is known only when it changed nothing but the search constants)."""
        extra = row.extra if isinstance(row.extra, dict) else {}
        if row.id == 0:
            params = self._params_of(self.baseline_content) if self.baseline_content else None
        else:
            params = extra.get("params")
        if isinstance(params, dict) and self._project(params) is not None:
            code = extra.get("code") if row.id else self.code
            code = code if isinstance(code, str) and code else self.code  # a ledger older than code versions
            self._add(params, self._value(row), row.id, code, row.status, current=code == self.code)
            return
        # Information it cannot use (a code change, another agent's row, a point outside today's space): kept as a
        # failed trial that TPE ignores, so that every experiment of the night is in the study.
        attrs = {"experiment": row.id, "unusable": "not a point of the search space", "metric": row.metric}
        self.study.add_trial(
            self._optuna.trial.create_trial(state=self._optuna.trial.TrialState.FAIL, user_attrs=attrs)
        )

    def _value(self, row: Result) -> float | None:
        """The result Optuna learns from; a crash, timeout or tampered run counts as the worst result seen, so TPE
        avoids it; an invalid or interrupted one says nothing of its point (None)."""
        if row.status in ("invalid", "interrupted"):
            return None
        if row.metric is not None and math.isfinite(row.metric) and row.status != "tampered":
            return row.metric
        if row.status == "duplicate" and isinstance(row.extra.get("earlier_metric"), float | int):
            return float(row.extra["earlier_metric"])
        return self.worst

    def _add(
        self,
        params: dict[str, Any],
        value: float | None,
        experiment: int,
        code: str,
        status: str,
        *,
        log: bool = True,
        current: bool = True,
    ) -> None:
        """Learn a point: logged with its code version (for a fresh study later), and added to the study when it
        ran on the current code."""
        if log:
            self.told.append((params, value, experiment, code, status))
        params = self._project(params) if current else None  # a point of an earlier space, or outside this one
        if params is None:
            return
        optuna = self._optuna
        attrs = {"experiment": experiment, "code": code, "status": status}
        if value is None:
            state = optuna.trial.TrialState.FAIL
            trial = optuna.trial.create_trial(params=params, distributions=self.dists, state=state, user_attrs=attrs)
        else:
            trial = optuna.trial.create_trial(params=params, distributions=self.dists, value=value, user_attrs=attrs)
            self.worst = value if self.worst is None else _worse(self.worst, value, self.sign)
        self.study.add_trial(trial)

    def _project(self, params: dict[str, Any]) -> dict[str, Any] | None:
        """A point as a point of this space: the constants it names, when the point has them all and they are
        inside it (a constant the space no longer tunes is dropped); None otherwise."""
        point = {name: params[name] for name in self.dists if name in params}
        return point if len(point) == len(self.dists) and self._inside(point) else None

    def _inside(self, params: dict[str, Any]) -> bool:
        try:
            self._optuna.trial.create_trial(params=params, distributions=self.dists, value=0.0)
        except (ValueError, TypeError):
            return False  # outside today's search space (program.md was steered, or another proposer went beyond)
        return True

    def _params_of(self, content: str) -> dict[str, Any] | None:
        try:
            values = read_constants(content)
        except SyntaxError:
            return None
        params = {name: values.get(name) for name in self.dists}
        return params if all(v is not None for v in params.values()) else None


SAMPLERS: dict[str, Sampler] = {"optuna": "auto", "random": "random"}  # by agent kind


def build(kind: str, setup: Setup) -> OptunaAgent:
    """The offline agent `kind` (optuna or random), having learned the night so far from the ledger."""
    agent = offline(SAMPLERS[kind], setup.config, setup.night, setup.repo)
    agent.resume(setup.night.results())
    return agent


def offline(sampler: Sampler, config: Config, night: Night, repo: Repo) -> OptunaAgent:
    """An optimizer over program.md's `search:` space, checked against the champion file; it learns the baseline's
    constants from the file the baseline ran."""
    champion = repo.show(night.champion, config.mutable)
    base = [r for r in night.rows if r.id == 0 and r.status == "keep" and r.commit]
    baseline = repo.show(base[-1].commit, config.mutable) if base and base[-1].commit else champion
    agent = OptunaAgent(config.search, config.direction, sampler=sampler, baseline_content=baseline, seed=config.seed)
    agent.check(champion, config.mutable)
    return agent


def _key(params: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


def _worse(a: float, b: float, sign: int) -> float:
    return min(a, b) if sign > 0 else max(a, b)


def _distribution(optuna: Any, p: Param) -> Any:
    d = optuna.distributions
    if p.choices:
        return d.CategoricalDistribution(list(p.choices))
    if p.integer:
        return d.IntDistribution(int(p.low), int(p.high), log=p.log, step=int(p.step or 1))
    return d.FloatDistribution(float(p.low), float(p.high), log=p.log, step=p.step)  # type: ignore[arg-type]
