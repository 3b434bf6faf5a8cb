"""InstructZero's optimiser as an Optuna sampler: a GP with the instruction-coupled kernel and
(q)LogEI maximised with ``optimize_acqf``, after a start from the independent sampler."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna
import torch
from botorch.acquisition.logei import qLogExpectedImprovement
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.transforms.outcome import Standardize
from botorch.optim import optimize_acqf
from gpytorch.kernels import ScaleKernel
from gpytorch.mlls import ExactMarginalLogLikelihood
from gpytorch.priors import GammaPrior
from optuna.distributions import BaseDistribution, FloatDistribution
from optuna.samplers import BaseSampler
from optuna.search_space import IntersectionSearchSpace
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from components.kernel import InstructionCoupledKernel, output_similarity
from components.seeds import derive_seed, draw_number


def unit_cube(d: int) -> torch.Tensor:
    """The ``2 x d`` bounds of [0, 1]^d (float64)."""
    return torch.stack([torch.zeros(d), torch.ones(d)]).double()


def instructzero_candidate(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    similarity: torch.Tensor,
    pending: torch.Tensor | None = None,
    *,
    num_restarts: int = 10,
    raw_samples: int = 256,
    eps: float = 1e-4,
    lengthscale: float = 0.5,
) -> torch.Tensor:
    """The next point in the unit cube.

    Args:
        train_x: ``n x d`` evaluated points in [0, 1]^d.
        train_y: ``n`` scores (maximised).
        similarity: ``n x n`` instruction similarity of the points.
        pending: ``p x d`` points asked but not yet scored (the acquisition integrates over them).
        lengthscale: the prior mean of the kernel's lengthscales on z (in the unit cube).

    Returns:
        ``1 x d`` tensor in [0, 1]^d.
    """
    x, y = train_x.double(), train_y.double().unsqueeze(-1)
    kernel = ScaleKernel(InstructionCoupledKernel(x, similarity.double(), eps=eps, lengthscale=lengthscale),
                         outputscale_prior=GammaPrior(2.0, 0.15))  # as the original's BoTorch
    model = SingleTaskGP(x, y, covar_module=kernel, outcome_transform=Standardize(m=1))
    fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    acqf = qLogExpectedImprovement(model, best_f=y.max(), X_pending=None if pending is None else pending.double())
    candidate, _ = optimize_acqf(acqf, bounds=unit_cube(x.shape[1]), q=1, num_restarts=num_restarts,
                                 raw_samples=raw_samples)
    return candidate.detach()


class InstructZeroSampler(BaseSampler):
    """Bayesian optimisation over z with the instruction-coupled kernel.

    The similarity between trials comes from the black box's outputs, stored on each completed
    trial as the user attribute ``outputs_attr`` (a list of strings, one per validation input).
    Trials without it (or failed ones) are left out; duplicate instructions are fine.

    Args:
        n_startup_trials: completed trials (with outputs) before the GP takes over; it waits
            too until two of them differ in score (the independent sampler serves till then).
        independent_sampler: for the start-up and for parameters outside the search space
            (the pipeline passes a scrambled Sobol sampler); default random.
        seed: seeds the independent sampler, and with the trial's number the acquisition
            optimisation (a resumed or distributed run draws what an uninterrupted one would).
        lengthscale: the prior mean of the GP's lengthscales on z, a share of each parameter's
            range (0.5: the original's Gamma(3, 6)).
    """

    def __init__(
        self,
        *,
        n_startup_trials: int = 8,
        independent_sampler: BaseSampler | None = None,
        seed: int | None = None,
        outputs_attr: str = "outputs",
        num_restarts: int = 10,
        raw_samples: int = 256,
        lengthscale: float = 0.5,
    ) -> None:
        if lengthscale <= 0:
            raise ValueError(f"lengthscale must be > 0, got {lengthscale}")
        self._lengthscale = lengthscale
        self._n_startup_trials = n_startup_trials
        self._independent_sampler = independent_sampler or optuna.samplers.RandomSampler(seed=seed)
        self._seed = seed
        self._outputs_attr = outputs_attr
        self._num_restarts, self._raw_samples = num_restarts, raw_samples
        self._search_space = IntersectionSearchSpace()
        self._study_id: int | None = None

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if self._study_id is None:
            self._study_id = study._study_id
        elif self._study_id != study._study_id:
            raise RuntimeError("InstructZeroSampler cannot serve two studies; create one per study")
        return {
            name: dist for name, dist in self._search_space.calculate(study).items()
            if isinstance(dist, FloatDistribution) and not dist.single() and not dist.log
        }

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        names = sorted(search_space)
        done = [
            t for t in study._get_trials(deepcopy=False, states=(TrialState.COMPLETE,), use_cache=True)
            if self._outputs_attr in t.user_attrs and all(n in t.params for n in names)
        ]
        y = torch.tensor([t.value for t in done], dtype=torch.float64)
        if len(done) < self._n_startup_trials or len(set(y.tolist())) < 2:  # equal scores: nothing to fit yet
            return {}
        low = torch.tensor([search_space[n].low for n in names], dtype=torch.float64)  # type: ignore[attr-defined]
        span = torch.tensor([search_space[n].high for n in names], dtype=torch.float64) - low  # type: ignore[attr-defined]

        def unit(trials: Sequence[FrozenTrial]) -> torch.Tensor:
            return (torch.tensor([[t.params[n] for n in names] for t in trials], dtype=torch.float64) - low) / span

        running = [
            t for t in study._get_trials(deepcopy=False, states=(TrialState.RUNNING,), use_cache=False)
            if t.number != trial.number and all(n in t.params for n in names)
        ]
        if self._seed is not None:
            torch.manual_seed(derive_seed(self._seed, draw_number(study, trial.number)))
        candidate = instructzero_candidate(
            unit(done), y,
            output_similarity([t.user_attrs[self._outputs_attr] for t in done]),
            unit(running) if running else None,
            num_restarts=self._num_restarts,
            raw_samples=self._raw_samples,
            lengthscale=self._lengthscale,
        )
        return self._params(candidate, names, low, span, search_space)

    @staticmethod
    def _params(candidate: torch.Tensor, names: list[str], low: torch.Tensor, span: torch.Tensor,
                search_space: dict[str, BaseDistribution]) -> dict[str, float]:
        """A ``1 x d`` point of the unit cube as the trial's parameters, clipped to their ranges."""
        if candidate.shape != (1, len(names)):
            raise ValueError(f"candidate must be 1 x {len(names)}, got {tuple(candidate.shape)}")
        values = (low + candidate[0] * span).tolist()
        return {n: min(max(v, search_space[n].low), search_space[n].high)  # type: ignore[attr-defined]
                for n, v in zip(names, values, strict=True)}

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self._independent_sampler.sample_independent(study, trial, param_name, param_distribution)

    def reseed_rng(self) -> None:
        self._independent_sampler.reseed_rng()

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._independent_sampler.before_trial(study, trial)

    def after_trial(
        self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self._independent_sampler.after_trial(study, trial, state, values)
