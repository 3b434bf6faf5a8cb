import pytest
import torch
from gpytorch.kernels import MaternKernel

from components.kernel import InstructionCoupledKernel, nearest_psd, output_similarity


@pytest.fixture(autouse=True)
def _double():
    """These tests in float64, without leaving it the default for the rest of the suite."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def _kernel(n: int = 6, d: int = 3, seed: int = 0) -> InstructionCoupledKernel:
    g = torch.Generator().manual_seed(seed)
    z = torch.rand(n, d, generator=g)
    features = torch.rand(n, 4, generator=g)
    return InstructionCoupledKernel(z, features @ features.T / 4)


def test_output_similarity_is_symmetric_with_unit_diagonal():
    sim = output_similarity([["a b", "c"], ["a b", "d"], ["x", "y"]])
    assert torch.equal(sim, sim.T) and torch.all(sim.diagonal() == 1)
    assert sim[0, 1] == pytest.approx(0.5) and sim[0, 2] == 0


def test_nearest_psd_fixes_negative_eigenvalues():
    m = torch.tensor([[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]])
    assert torch.linalg.eigvalsh(m).min() < 0
    assert torch.linalg.eigvalsh(nearest_psd(m)).min() > 0


def test_kernel_matrix_is_symmetric_psd():
    k = _kernel()
    x = torch.rand(10, 3)
    cov = k(x).to_dense()
    assert cov.shape == (10, 10)
    assert torch.allclose(cov, cov.T, atol=1e-10)
    assert torch.linalg.eigvalsh(cov).min() > -1e-8


def test_batch_shapes_and_diag_as_optimize_acqf_passes_them():
    k = _kernel()
    x1, x2 = torch.rand(7, 2, 3), torch.rand(7, 4, 3)  # b x q x d
    full = k(x1, x2).to_dense()
    assert full.shape == (7, 2, 4)
    diag = k(x1, x1, diag=True)
    assert diag.shape == (7, 2)
    assert torch.allclose(diag, k(x1, x1).to_dense().diagonal(dim1=-2, dim2=-1))
    assert torch.linalg.eigvalsh(k(x2).to_dense()).min() > -1e-8  # each batch PSD


def test_with_s_equal_to_k_z_at_full_weight_it_is_the_plain_kernel_everywhere():
    z = torch.rand(8, 3, generator=torch.Generator().manual_seed(1))
    plain = MaternKernel(nu=2.5, ard_num_dims=3)
    k_z = plain(z, z).to_dense().detach()
    coupled = InstructionCoupledKernel(z, k_z, eps=1e-8)
    coupled.base_kernel.lengthscale = plain.lengthscale.detach()
    _set_weight(coupled, 1 - 1e-9)
    x = torch.rand(5, 3, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(coupled(x, z).to_dense(), plain(x, z).to_dense(), atol=1e-4)
    assert torch.allclose(coupled(x, x).to_dense(), plain(x, x).to_dense(), atol=1e-4)


def test_similarity_shape_is_checked():
    with pytest.raises(ValueError, match=r"similarity must be 3 x 3 for 3 points, got \(2, 2\)"):
        InstructionCoupledKernel(torch.rand(3, 2), torch.eye(2))


def _set_weight(kernel: InstructionCoupledKernel, w: float) -> None:
    kernel.initialize(raw_similarity_weight=kernel.raw_similarity_weight_constraint.inverse_transform(
        torch.tensor([w])))


def test_on_z_it_equals_the_weighted_similarity_and_s_itself_at_full_weight():
    k = _kernel()
    z, s = k.train_z, k.similarity
    for w in (0.3, 0.999):
        _set_weight(k, w)
        expected = (1 - w) * torch.eye(len(z)) + w * s
        assert torch.allclose(k(z, z).to_dense(), expected, atol=2e-3)
    assert torch.allclose(k(z, z).to_dense(), s, atol=5e-3)


def _posterior_std(kernel, z: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    from botorch.models import SingleTaskGP

    model = SingleTaskGP(z, y.unsqueeze(-1), covar_module=kernel)
    model.likelihood.noise = 1e-4
    return model.posterior(x).variance.sqrt().squeeze(-1)


def test_far_from_the_data_the_posterior_std_is_a_plain_gps_and_without_the_residual_it_collapses():
    g = torch.Generator().manual_seed(2)
    z = torch.rand(12, 3, generator=g) * 0.3  # data in one corner of the cube
    features = torch.rand(12, 4, generator=g)
    s, y = features @ features.T / 4, torch.rand(12, generator=g)
    far = torch.tensor([[1.0, 1.0, 1.0], [0.9, 1.0, 0.8]])
    plain = MaternKernel(nu=2.5, ard_num_dims=3)
    plain.lengthscale = 0.3
    coupled, rank_n = (InstructionCoupledKernel(z, s), InstructionCoupledKernel(z, s, residual=False))
    for k in (coupled, rank_n):
        k.base_kernel.lengthscale = 0.3
    reference = _posterior_std(plain, z, y, far)
    assert torch.all((_posterior_std(coupled, z, y, far) - reference).abs() <= 0.25 * reference)
    assert torch.all(_posterior_std(rank_n, z, y, far) < 0.25 * reference)  # the paper's kernel alone


def test_the_similarity_changes_which_candidate_the_acquisition_prefers():
    from botorch.acquisition import LogExpectedImprovement
    from botorch.models import SingleTaskGP

    z = torch.tensor([[0.2, 0.2], [0.8, 0.8], [0.2, 0.8]])  # P1, P2 low scores; P3 the best
    y = torch.tensor([[0.0], [0.0], [1.0]])
    near_p1, near_p2 = torch.tensor([[[0.25, 0.2]]]), torch.tensor([[[0.75, 0.8]]])

    def prefers_p1(s13: float, s23: float) -> bool:
        s = torch.tensor([[1.0, 0.0, s13], [0.0, 1.0, s23], [s13, s23, 1.0]])
        kernel = InstructionCoupledKernel(z, s)
        kernel.base_kernel.lengthscale = 0.3
        _set_weight(kernel, 0.99)
        model = SingleTaskGP(z, y, covar_module=kernel)
        model.likelihood.noise = 0.05
        ei = LogExpectedImprovement(model, best_f=1.0)
        return bool(ei(near_p1) > ei(near_p2))

    assert prefers_p1(s13=0.9, s23=0.0)  # P1's instruction behaves like the best one's
    assert not prefers_p1(s13=0.0, s23=0.9)  # now P2's does


def test_the_lengthscales_prior_and_start_are_centred_on_the_given_mean():
    z = torch.rand(5, 3, generator=torch.Generator().manual_seed(0))
    short = InstructionCoupledKernel(z, torch.eye(5), lengthscale=0.15)
    default = InstructionCoupledKernel(z, torch.eye(5))
    assert torch.allclose(short.base_kernel.lengthscale, torch.full((1, 3), 0.15))
    assert float(short.base_kernel.lengthscale_prior.mean) == pytest.approx(0.15)
    assert float(default.base_kernel.lengthscale_prior.mean) == pytest.approx(0.5)  # the original's Gamma(3, 6)
    near = torch.tensor([[0.5, 0.5, 0.5], [0.65, 0.65, 0.65]])  # 0.15 apart in every coordinate
    assert short(near).to_dense()[0, 1] < 0.5 * default(near).to_dense()[0, 1]  # nearby z are less alike a priori
    with pytest.raises(ValueError, match="lengthscale"):
        InstructionCoupledKernel(z, torch.eye(5), lengthscale=0)
