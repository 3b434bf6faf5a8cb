import pytest
import torch
from gpytorch.kernels import MaternKernel

from components.kernel import InstructionCoupledKernel, nearest_psd, output_similarity

torch.set_default_dtype(torch.float64)


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


def test_with_s_equal_to_k_z_it_agrees_with_the_plain_kernel_on_z():
    z = torch.rand(8, 3, generator=torch.Generator().manual_seed(1))
    plain = MaternKernel(nu=2.5, ard_num_dims=3)
    k_z = plain(z, z).to_dense().detach()
    coupled = InstructionCoupledKernel(z, k_z, eps=1e-8)
    assert torch.allclose(coupled(z, z).to_dense(), k_z, atol=1e-4)


def test_similarity_shape_is_checked():
    with pytest.raises(ValueError, match=r"similarity must be 3 x 3 for 3 points, got \(2, 2\)"):
        InstructionCoupledKernel(torch.rand(3, 2), torch.eye(2))
