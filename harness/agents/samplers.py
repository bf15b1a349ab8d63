"""The samplers the offline agents draw from: which one runs for a search space, and a fresh one for each draw, seeded
by (the night's seed, the experiment, the attempt) so a restart goes on with the sequence it would have had."""

from __future__ import annotations

import hashlib
import importlib.util
import warnings
from typing import Any, Literal

from harness.config import Param

Sampler = Literal["auto", "gp", "tpe", "random"]
NAMES: dict[str, str] = {"auto": "optuna", "gp": "optuna", "tpe": "optuna", "random": "random"}  # ledger names
SHOWN: dict[str, str] = {"gp": "Gaussian process (Bayesian)", "tpe": "TPE (Bayesian)", "random": "uniform random"}
STARTUP_TRIALS = 5  # random trials before TPE (or the Gaussian process) models the results; a night has ~100
# `auto` models up to 8 constants with a Gaussian process, more with TPE. On bench/yield.py's synthetic task (5
# constants, 20 seeds, 30 experiments) the GP's best beat random's by 0.0146 [0.0112, 0.0180]; TPE's did not.
GP_MAX_DIMS = 8


def choose(asked: Sampler, space: tuple[Param, ...]) -> Sampler:
    """The sampler that runs: `auto` is a Gaussian process up to GP_MAX_DIMS constants (sample-efficient at the
    20-100 experiments of a night) when PyTorch and SciPy are installed, which it needs; TPE otherwise."""
    if asked != "auto":
        return asked
    if len(space) <= GP_MAX_DIMS and all(importlib.util.find_spec(m) is not None for m in ("torch", "scipy")):
        return "gp"
    return "tpe"


def make(optuna: Any, sampler: Sampler, seed: int, experiment: int, attempt: int) -> Any:
    """The Optuna sampler for one draw: its seed depends on (seed, experiment, attempt) only, never on how many draws
    this process made before. Points in flight: TPE treats them as bad results not seen yet (constant liar), the
    Gaussian process as points whose results it does not know yet (a batch acquisition)."""
    digest = hashlib.sha256(f"{seed}:{experiment}:{attempt}".encode()).digest()
    drawn = int.from_bytes(digest[:4], "big")
    if sampler == "random":
        return optuna.samplers.RandomSampler(seed=drawn)
    if sampler == "gp":
        return optuna.samplers.GPSampler(seed=drawn, n_startup_trials=STARTUP_TRIALS, warn_independent_sampling=False)
    with warnings.catch_warnings():
        # Older Optuna marks these options experimental; Optuna 5 makes both the default.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=drawn, n_startup_trials=STARTUP_TRIALS, multivariate=True, constant_liar=True
        )
