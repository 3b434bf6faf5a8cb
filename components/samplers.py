"""Optuna samplers over z, chosen by name in params.yaml (``bo.sampler``)."""

from __future__ import annotations

import optuna
from optuna_integration import BoTorchSampler
from optuna_integration.botorch import qlogei_candidates_func

from components.instructzero_sampler import InstructZeroSampler

SAMPLERS: tuple[str, ...] = ("instructzero", "botorch", "gp", "tpe", "random")


def make_sampler(name: str, n_startup_trials: int, seed: int) -> optuna.samplers.BaseSampler:
    """A seeded sampler; the model-based ones start from a scrambled Sobol design.

    ``instructzero``: the GP with the instruction-coupled kernel (the paper's); ``botorch``: a GP (BoTorch's SingleTaskGP) with (q)LogEI, pending trials fantasized, so
    a batch of asked trials is spread out; ``gp``: Optuna's GPSampler; ``tpe``; ``random``.
    """
    sobol = optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed)
    if name == "instructzero":
        return InstructZeroSampler(n_startup_trials=n_startup_trials, independent_sampler=sobol, seed=seed)
    if name == "botorch":
        return BoTorchSampler(
            candidates_func=qlogei_candidates_func,
            n_startup_trials=n_startup_trials,
            consider_running_trials=True,
            independent_sampler=sobol,
            seed=seed,
        )
    if name == "gp":
        return optuna.samplers.GPSampler(
            n_startup_trials=n_startup_trials, independent_sampler=sobol, seed=seed
        )
    if name == "tpe":
        return optuna.samplers.TPESampler(n_startup_trials=n_startup_trials, seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"unknown sampler {name!r}; choose one of {list(SAMPLERS)}")
