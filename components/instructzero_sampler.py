"""InstructZero's optimiser as an Optuna sampler: a GP with the instruction-coupled kernel,
(q)LogEI maximised with ``optimize_acqf`` (optionally, every other trial inside a trust region
around the best point), a scrambled Sobol start (optionally, while every score is equal, the
points where a GP prior is most uncertain)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, get_args

import optuna
import torch
from botorch.acquisition.analytic import PosteriorStandardDeviation
from botorch.acquisition.logei import qLogExpectedImprovement
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.transforms.outcome import Standardize
from botorch.optim import optimize_acqf
from gpytorch.kernels import MaternKernel, ScaleKernel
from gpytorch.mlls import ExactMarginalLogLikelihood
from gpytorch.priors import GammaPrior
from optuna.distributions import BaseDistribution, FloatDistribution
from optuna.samplers import BaseSampler
from optuna.search_space import IntersectionSearchSpace
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from components.kernel import InstructionCoupledKernel, output_similarity

Flat = Literal["sobol", "uncertain"]  # what InstructZeroSampler proposes while every score is equal


def unit_cube(d: int) -> torch.Tensor:
    """The ``2 x d`` bounds of [0, 1]^d (float64)."""
    return torch.stack([torch.zeros(d), torch.ones(d)]).double()


def instructzero_candidate(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    similarity: torch.Tensor,
    pending: torch.Tensor | None = None,
    *,
    bounds: torch.Tensor | None = None,
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
        bounds: ``2 x d`` box in which the acquisition is maximised (default: the unit cube).
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
    if bounds is None:
        bounds = unit_cube(x.shape[1])
    candidate, _ = optimize_acqf(acqf, bounds=bounds.double(), q=1, num_restarts=num_restarts, raw_samples=raw_samples)
    return candidate.detach()


def uncertain_candidate(
    asked: torch.Tensor, *, lengthscale: float = 0.5, num_restarts: int = 10, raw_samples: int = 256,
) -> torch.Tensor:
    """The point in the unit cube where a GP prior (Matern-5/2 with this lengthscale) given the
    points ``asked`` is most uncertain: what an acquisition chooses when every score is equal, far
    from every point asked (the variance does not depend on the scores, so pending points count).

    Returns:
        ``1 x d`` tensor in [0, 1]^d.
    """
    x = asked.double()
    kernel = MaternKernel(nu=2.5, ard_num_dims=x.shape[1])
    kernel.lengthscale = lengthscale
    model = SingleTaskGP(x, torch.zeros(len(x), 1, dtype=torch.float64), covar_module=kernel, outcome_transform=None)
    model.likelihood.noise = 1e-4
    model.eval()
    candidate, _ = optimize_acqf(PosteriorStandardDeviation(model), bounds=unit_cube(x.shape[1]), q=1,
                                 num_restarts=num_restarts, raw_samples=raw_samples)
    return candidate.detach()


def trust_region(centre: torch.Tensor, side: float) -> torch.Tensor:
    """The ``2 x d`` box of side ``side`` around ``centre`` (in the unit cube), cut to the cube."""
    return torch.stack([(centre - side / 2).clamp(0, 1), (centre + side / 2).clamp(0, 1)])


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
        trust_region: side (a share of each parameter's range) of the box around the best
            trial's point in which even-numbered trials maximise the acquisition; odd ones use
            the whole space. Tried because nearby z write better instructions near a hit than
            one lengthscale away (benchmarks/results/locality.md); at 0.1 it changed 2 of 12
            comparison runs' choice, no better (benchmarks/results/trust_region_0.1/). None (the
            pipeline's default): the whole space for every trial.
        partial_credit: the GP fits each trial's value plus this times the mean of its
            ``partial_attr`` (per-example partial credit, e.g. token F1 against the answers), so
            it has something to fit while every exact score is 0; the study's values (ranking,
            the final choice) are untouched. At 1 (token F1) it was no better in the comparison
            (benchmarks/results/partial_credit_1/): F1 is ~0 where every score is 0. 0 (the
            pipeline's default): the value alone.
        partial_attr: the user attribute holding a trial's per-example partial credit (absent: 0).
        lengthscale: the prior mean of the GP's lengthscales on z, a share of each parameter's
            range (0.5: the original's Gamma(3, 6)). Nearby z write alike-scoring instructions
            only within ~0.15 of the range around a scoring one
            (benchmarks/results/locality_temperature.md).
        flat: what comes after the start-up while every target is equal (nothing to fit):
            ``"sobol"``, more of the independent sampler's points; ``"uncertain"``, the point
            where a GP prior with the lengthscale ``lengthscale`` given every z asked so far (of
            any trial) is most uncertain, as Optuna's GPSampler does on flat scores: a corner far
            from them. On sentiment (no pool, 10 seeds) it scored 0.055 on test vs 0.035 for
            ``"sobol"``, within noise (benchmarks/results/flat_uncertain_pool_0/); the pipeline's
            default is ``"sobol"``.
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
        trust_region: float | None = None,
        partial_credit: float = 0.0,
        partial_attr: str = "partial_scores",
        lengthscale: float = 0.5,
        flat: Flat = "sobol",
    ) -> None:
        if trust_region is not None and not 0 < trust_region <= 1:
            raise ValueError(f"trust_region must be in (0, 1], got {trust_region}")
        if lengthscale <= 0:
            raise ValueError(f"lengthscale must be > 0, got {lengthscale}")
        if partial_credit < 0:
            raise ValueError(f"partial_credit must be >= 0, got {partial_credit}")
        if flat not in get_args(Flat):
            raise ValueError(f"flat must be one of {get_args(Flat)}, got {flat!r}")
        self._trust_region, self._lengthscale, self._flat = trust_region, lengthscale, flat
        self._partial_credit, self._partial_attr = partial_credit, partial_attr
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
        y = torch.tensor([self._target(t) for t in done], dtype=torch.float64)
        if len(done) < self._n_startup_trials:
            return {}
        flat = len(set(y.tolist())) < 2  # equal targets: nothing to fit (the GP sent z to the corners or the centre)
        if flat and self._flat == "sobol":
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
            torch.manual_seed(self._seed * 1_000_003 + trial.number)
        if flat:  # every z asked so far, whatever became of its trial
            asked = [t for t in study._get_trials(deepcopy=False, use_cache=False)
                     if t.number != trial.number and all(n in t.params for n in names)]
            candidate = uncertain_candidate(unit(asked), lengthscale=self._lengthscale,
                                            num_restarts=self._num_restarts, raw_samples=self._raw_samples)
            return self._params(candidate, names, low, span, search_space)
        x = unit(done)
        side = self._trust_region if trial.number % 2 == 0 else None  # odd trials: the whole space
        candidate = instructzero_candidate(
            x, y,
            output_similarity([t.user_attrs[self._outputs_attr] for t in done]),
            unit(running) if running else None,
            bounds=None if side is None else trust_region(x[int(y.argmax())], side),
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

    def _target(self, trial: FrozenTrial) -> float:
        """What the GP fits for a completed trial: its value plus the weighted partial credit."""
        assert trial.value is not None  # a complete single-objective trial has one
        partial = trial.user_attrs.get(self._partial_attr) or [0.0]
        return trial.value + self._partial_credit * sum(partial) / len(partial)

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
