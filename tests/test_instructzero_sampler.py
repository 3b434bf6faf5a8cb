"""The instruction-coupled sampler on a synthetic black box with a known optimum (no LLM)."""

import math
import statistics
from collections.abc import Callable

import optuna
import pytest
from optuna.testing.pytest_samplers import BasicSamplerTestCase

from components.instructzero_sampler import InstructZeroSampler

DIM, OPTIMUM = 3, (0.5, -0.3, 0.2)


def _synthetic(trial: optuna.Trial) -> float:
    """z -> an 'instruction' (a cell of a grid) -> 'outputs' per example -> a score.

    Like the real pipeline, nearby z often give the same instruction, and the score depends on
    z only through it. The outputs name the cell, so similar instructions have similar outputs.
    """
    z = [trial.suggest_float(f"z{i}", -1, 1) for i in range(DIM)]
    cell = [round(v * 4) / 4 for v in z]
    outputs = [" ".join(f"{name}{c:+.2f}" for name, c in zip("abc", cell, strict=True)) + f" ex{k}" for k in range(4)]
    trial.set_user_attr("outputs", outputs)
    return math.exp(-sum((c - o) ** 2 for c, o in zip(cell, OPTIMUM, strict=True)) / 0.3)


def test_startup_is_sobol_and_then_model_based():
    sampler = InstructZeroSampler(n_startup_trials=3, seed=0, num_restarts=2, raw_samples=16)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_synthetic, n_trials=5)
    assert len(study.trials) == 5 and all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert all(-1 <= v <= 1 for t in study.trials for v in t.params.values())


def test_copes_with_failed_trials_trials_without_outputs_and_pending_batches():
    sampler = InstructZeroSampler(n_startup_trials=2, seed=1, num_restarts=2, raw_samples=16)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_synthetic, n_trials=3)
    failed = study.ask()
    [failed.suggest_float(f"z{i}", -1, 1) for i in range(DIM)]
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    bare = study.ask()  # completed without outputs: left out of the GP
    study.tell(bare, sum(bare.suggest_float(f"z{i}", -1, 1) for i in range(DIM)))
    batch = [study.ask() for _ in range(3)]  # pending-aware: later asks see the earlier z
    zs = [[t.suggest_float(f"z{i}", -1, 1) for i in range(DIM)] for t in batch]
    assert len({tuple(z) for z in zs}) == 3
    for t in batch:
        study.tell(t, _synthetic(t))


def test_waits_for_two_different_scores_before_the_gp():
    """On equal scores (every instruction 0 on a hard task) the GP has nothing to fit: Sobol serves."""
    sampler = _sampler()
    study = optuna.create_study(direction="maximize", sampler=sampler)
    space = {f"z{i}": optuna.distributions.FloatDistribution(-1, 1) for i in range(DIM)}
    for value in (0.0, 0.0, 0.0):
        study.add_trial(optuna.trial.create_trial(
            params={n: 0.1 * len(study.trials) for n in space}, distributions=space, value=value,
            user_attrs={"outputs": [f"out{len(study.trials)}"] * 4}))
    assert sampler.sample_relative(study, study.ask(), space) == {}
    study.add_trial(optuna.trial.create_trial(params={n: -0.5 for n in space}, distributions=space, value=0.3,
                                              user_attrs={"outputs": ["hit"] * 4}))
    assert set(sampler.sample_relative(study, study.ask(), space)) == set(space)


def test_even_trials_search_a_trust_region_around_the_best_point_odd_ones_everywhere():
    sampler = InstructZeroSampler(n_startup_trials=2, seed=0, num_restarts=2, raw_samples=16, trust_region=0.1)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    space = {f"z{i}": optuna.distributions.FloatDistribution(-1, 1) for i in range(DIM)}
    points = [(-0.8, -0.8, -0.8), (0.8, 0.8, 0.8), (0.4, -0.6, 0.0), (-0.2, 0.6, -0.6)]
    for k, (point, value) in enumerate(zip(points, (0.0, 0.1, 0.6, 0.2), strict=True)):
        study.add_trial(optuna.trial.create_trial(params=dict(zip(space, point, strict=True)), distributions=space,
                                                  value=value, user_attrs={"outputs": [f"out{k}"] * 4}))
    best = points[2]
    asked = [study.ask() for _ in range(4)]  # numbers 4-7: pending-aware, as the flow asks a batch
    outside = []
    for t in asked:
        z = sampler.sample_relative(study, t, space)
        distance = max(abs(z[n] - c) for n, c in zip(space, best, strict=True))
        if t.number % 2 == 0:
            assert distance <= 0.1 + 1e-9, (t.number, z)  # side 0.1 of the range 2: +-0.1
        else:
            outside.append(distance > 0.1)
    assert any(outside), "odd trials never left the trust region: it is not every other trial"


def test_trust_region_is_cut_to_the_cube_and_checked():
    import torch

    from components.instructzero_sampler import trust_region

    box = trust_region(torch.tensor([0.02, 0.5, 1.0], dtype=torch.float64), 0.1)
    assert torch.allclose(box, torch.tensor([[0.0, 0.45, 0.95], [0.07, 0.55, 1.0]], dtype=torch.float64))
    with pytest.raises(ValueError, match="trust_region"):
        InstructZeroSampler(trust_region=0)


def test_refuses_a_second_study():
    sampler, storage = InstructZeroSampler(seed=0), optuna.storages.InMemoryStorage()
    optuna.create_study(sampler=sampler, storage=storage).optimize(_synthetic, n_trials=1)
    with pytest.raises(RuntimeError, match="cannot serve two studies"):
        optuna.create_study(sampler=sampler, storage=storage).optimize(_synthetic, n_trials=1)


def test_sobol_start_is_a_seeded_low_discrepancy_design():
    from components.samplers import SobolSampler

    def first(seed: int) -> list[list[float]]:
        study = optuna.create_study(sampler=SobolSampler(seed=seed))
        trials = [study.ask() for _ in range(8)]  # asked as a batch, before any completes
        return [[t.suggest_float(f"z{i}", -1, 1) for i in range(DIM)] for t in trials]

    points = first(0)
    assert points == first(0) and points != first(1)
    # One point in each half of every axis, four times over: Sobol's balance, not luck.
    for i in range(DIM):
        assert sum(p[i] > 0 for p in points) == 4


def _flat(trial: optuna.Trial) -> float:
    """Like the real pipeline on a hard task: the score is 0 but in the optimum's cell, while
    the partial credit (token F1 of answers nearly right) grows towards it."""
    value = _synthetic(trial)
    trial.set_user_attr("partial_scores", [value] * 4)
    return float(value >= 0.9)


def test_partial_credit_lets_the_gp_fit_while_every_score_is_0():
    space = {f"z{i}": optuna.distributions.FloatDistribution(-1, 1) for i in range(DIM)}

    def flat_study(partial: list[float]) -> optuna.Study:
        study = optuna.create_study(direction="maximize")
        for k, credit in enumerate(partial):
            study.add_trial(optuna.trial.create_trial(
                params={n: 0.1 * k for n in space}, distributions=space, value=0.0,
                user_attrs={"outputs": [f"out{k}"] * 4, "partial_scores": [credit] * 4}))
        return study

    study = flat_study([0.1, 0.4, 0.2])
    sampler = InstructZeroSampler(n_startup_trials=2, seed=0, num_restarts=2, raw_samples=16, partial_credit=0.5)
    assert set(sampler.sample_relative(study, study.ask(), space)) == set(space)
    assert _sampler().sample_relative(study, study.ask(), space) == {}  # off: equal values, Sobol serves
    same = flat_study([0.3, 0.3, 0.3])
    assert sampler.sample_relative(same, same.ask(), space) == {}
    with pytest.raises(ValueError, match="partial_credit"):
        InstructZeroSampler(partial_credit=-1)


@pytest.mark.slow
def test_partial_credit_finds_a_flat_objectives_only_hit_sooner_over_seeds():
    """Without it the GP waits (Sobol) until the single good cell is hit; with it, it climbs."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seeds, cap = range(4), 40

    def sampler(seed: int, credit: float) -> InstructZeroSampler:
        return InstructZeroSampler(n_startup_trials=6, seed=seed, num_restarts=2, raw_samples=64,
                                   partial_credit=credit)

    credited = [_trials_to(1.0, sampler(s, 1.0), cap, _flat) for s in seeds]
    plain = [_trials_to(1.0, sampler(s, 0.0), cap, _flat) for s in seeds]
    assert statistics.mean(credited) < statistics.mean(plain), (credited, plain)
    assert sum(c < p for c, p in zip(credited, plain, strict=True)) > len(seeds) / 2, (credited, plain)


def _trials_to(
    target: float, sampler: optuna.samplers.BaseSampler, cap: int,
    objective: Callable[[optuna.Trial], float] = _synthetic,
) -> int:
    """Trials until the best value reaches ``target`` (``cap`` + 1 if never)."""
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for n in range(1, cap + 1):
        study.optimize(objective, n_trials=1)
        if study.best_value >= target:
            return n
    return cap + 1


@pytest.mark.slow
@pytest.mark.parametrize("trust_region", [None, 0.1])
def test_reaches_a_target_in_fewer_trials_than_uniform_over_seeds(trust_region):
    """A RandomSampler cannot pass this: the model must find the optimum's cell sooner (with the
    whole space for every trial, the default, and with every other trial in a trust region)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seeds, cap, target = range(4), 40, 0.9
    ours = [_trials_to(target, InstructZeroSampler(n_startup_trials=6, seed=s, num_restarts=2, raw_samples=64,
                                                   trust_region=trust_region), cap)
            for s in seeds]
    uniform = [_trials_to(target, optuna.samplers.RandomSampler(seed=s), cap) for s in seeds]
    assert statistics.mean(ours) < statistics.mean(uniform), (ours, uniform)
    assert sum(o < u for o, u in zip(ours, uniform, strict=True)) > len(seeds) / 2, (ours, uniform)


def _sampler() -> InstructZeroSampler:
    return InstructZeroSampler(n_startup_trials=2, seed=0, num_restarts=2, raw_samples=16)


class TestOptunaSamplerContract(BasicSamplerTestCase):
    """Optuna's own sampler tests (trials without outputs: the independent sampler serves)."""

    @pytest.fixture
    def sampler(self):
        return _sampler


def test_the_lengthscale_reaches_the_gp(monkeypatch):
    import components.instructzero_sampler as module

    seen = {}
    real = module.instructzero_candidate

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "instructzero_candidate", spy)
    sampler = InstructZeroSampler(n_startup_trials=2, seed=0, num_restarts=2, raw_samples=16, lengthscale=0.15)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    space = {f"z{i}": optuna.distributions.FloatDistribution(-1, 1) for i in range(DIM)}
    for k, value in enumerate((0.0, 0.4)):
        study.add_trial(optuna.trial.create_trial(params={n: 0.5 * k - 0.2 for n in space}, distributions=space,
                                                  value=value, user_attrs={"outputs": [f"out{k}"] * 4}))
    sampler.sample_relative(study, study.ask(), space)
    assert seen["lengthscale"] == 0.15
    with pytest.raises(ValueError, match="lengthscale"):
        InstructZeroSampler(lengthscale=-1)


def test_on_equal_scores_uncertain_goes_far_from_every_z_asked():
    """flat="uncertain": while every score is equal, the next z is far from all z asked so far
    (completed, failed or running), not one more Sobol point; once two differ, the GP serves."""
    sampler = InstructZeroSampler(n_startup_trials=3, seed=0, num_restarts=4, raw_samples=64, flat="uncertain")
    study = optuna.create_study(direction="maximize", sampler=sampler)
    space = {f"z{i}": optuna.distributions.FloatDistribution(-1, 1) for i in range(DIM)}
    corners = [(-1, -1, -1), (1, 1, 1), (1, -1, 1)]
    for k, corner in enumerate(corners):
        study.add_trial(optuna.trial.create_trial(
            params=dict(zip(space, corner, strict=True)), distributions=space, value=0.0,
            user_attrs={"outputs": [f"out{k}"] * 4}))
    study.add_trial(optuna.trial.create_trial(  # a failed trial's z counts as asked too
        params=dict(zip(space, (-1, 1, -1), strict=True)), distributions=space,
        state=optuna.trial.TrialState.FAIL))
    z = sampler.sample_relative(study, study.ask(), space)
    asked = [*corners, (-1, 1, -1)]
    nearest = min(math.dist([z[n] for n in space], a) for a in asked)
    assert nearest > 1.5  # the centre is 1.73 from every corner; a uniform z is ~0.9 from its nearest
    study.add_trial(optuna.trial.create_trial(params={n: 0.0 for n in space}, distributions=space, value=0.3,
                                              user_attrs={"outputs": ["hit"] * 4}))
    assert set(sampler.sample_relative(study, study.ask(), space)) == set(space)
    with pytest.raises(ValueError, match="flat"):
        InstructZeroSampler(flat="corners")  # type: ignore[arg-type]
