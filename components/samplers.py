"""Optuna samplers over z, chosen by name in params.yaml (``bo.sampler``)."""

from __future__ import annotations

import optuna
import torch
from optuna.distributions import FloatDistribution
from optuna_integration import BoTorchSampler
from optuna_integration.botorch import qlogei_candidates_func

from components.instructzero_sampler import InstructZeroSampler
from components.seeds import draw_number

SAMPLERS: tuple[str, ...] = ("instructzero", "botorch", "gp", "tpe", "random", "ape")


class SobolSampler(optuna.samplers.RandomSampler):
    """Scrambled Sobol points, parameter by parameter: the trial serving draw t
    (:func:`components.seeds.draw_number`) gets row t of the sequence, each float parameter its
    own column (in order of first use). Unlike Optuna's QMCSampler
    it works as an *independent* sampler, which is how the model-based samplers start.
    Other distributions, and parameters past ``max_dim``, are sampled at random."""

    def __init__(self, seed: int | None = None, max_dim: int = 256) -> None:
        super().__init__(seed=seed)
        self._engine = torch.quasirandom.SobolEngine(max_dim, scramble=True, seed=seed)
        self._rows = torch.empty(0, max_dim, dtype=torch.float64)
        self._columns: dict[str, int] = {}

    def sample_independent(self, study, trial, param_name, param_distribution):  # type: ignore[no-untyped-def]
        column = self._columns.setdefault(param_name, len(self._columns))
        if not isinstance(param_distribution, FloatDistribution) or param_distribution.log \
                or column >= self._rows.shape[1]:
            return super().sample_independent(study, trial, param_name, param_distribution)
        row = draw_number(study, trial.number)
        if row >= len(self._rows):
            extra = self._engine.draw(row + 1 - len(self._rows), dtype=torch.float64)
            self._rows = torch.cat([self._rows, extra])
        low, high = param_distribution.low, param_distribution.high
        return low + float(self._rows[row, column]) * (high - low)


def make_sampler(name: str, n_startup_trials: int, seed: int, lengthscale: float = 0.5) -> optuna.samplers.BaseSampler:
    """A seeded sampler; the model-based ones start from a scrambled Sobol design.

    ``instructzero``: the GP with the instruction-coupled kernel (the paper's), its
    lengthscales' prior mean ``lengthscale`` (see :class:`InstructZeroSampler`); ``botorch``: a
    GP (BoTorch's SingleTaskGP) with qLogEI, pending trials fantasized so that a batch of asked
    trials is spread out; ``gp``: Optuna's GPSampler; ``tpe``; ``random`` (the paper's Uniform);
    ``ape``: random z that the flow ignores (APE samples instructions without a soft prompt).
    """
    sobol = SobolSampler(seed=seed)
    if name == "instructzero":
        return InstructZeroSampler(n_startup_trials=n_startup_trials, independent_sampler=sobol, seed=seed,
                                   lengthscale=lengthscale)
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
            n_startup_trials=n_startup_trials, independent_sampler=sobol, seed=seed,
            warn_independent_sampling=False,
        )
    if name == "tpe":
        return optuna.samplers.TPESampler(n_startup_trials=n_startup_trials, seed=seed)
    if name in ("random", "ape"):  # APE ignores z; its trials still record one
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"unknown sampler {name!r}; choose one of {list(SAMPLERS)}")
