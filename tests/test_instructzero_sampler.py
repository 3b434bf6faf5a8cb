"""The instruction-coupled sampler on a synthetic black box with a known optimum (no LLM)."""

import math
import statistics

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


def _trials_to(target: float, sampler: optuna.samplers.BaseSampler, cap: int) -> int:
    """Trials until the best value reaches ``target`` (``cap`` + 1 if never)."""
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for n in range(1, cap + 1):
        study.optimize(_synthetic, n_trials=1)
        if study.best_value >= target:
            return n
    return cap + 1


@pytest.mark.slow
def test_reaches_a_target_in_fewer_trials_than_uniform_over_seeds():
    """A RandomSampler cannot pass this: the model must find the optimum's cell sooner."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seeds, cap, target = range(4), 40, 0.9
    ours = [_trials_to(target, InstructZeroSampler(n_startup_trials=6, seed=s, num_restarts=2, raw_samples=64), cap)
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
