"""InstructZero's instruction-coupled kernel and the instruction similarity it couples with.

    K(x, x') = k(x, Z) (K_Z + eps I)^-1 S (K_Z + eps I)^-1 k(Z, x')

Z (``n x d``) are the evaluated points, k a Matern-5/2 ARD kernel on z, K_Z = k(Z, Z) and S
(``n x n``, PSD) the similarity of the instructions the points produced, measured on the black
box's outputs. At the evaluated points K equals S (up to eps); elsewhere it extends S smoothly
through k.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from gpytorch.kernels import Kernel, MaternKernel

from components.metrics import f1


def output_similarity(outputs: Sequence[Sequence[str]]) -> torch.Tensor:
    """S_ij = mean over validation inputs of token F1 between the black box's outputs under
    instructions i and j (``n`` lists of ``m`` outputs -> ``n x n``, unit diagonal)."""
    n = len(outputs)
    sim = torch.eye(n, dtype=torch.float64)
    for i in range(n):
        for j in range(i + 1, n):
            pairs = list(zip(outputs[i], outputs[j], strict=True))
            value = sum(1.0 if a == b else f1(a, b) for a, b in pairs) / max(len(pairs), 1)
            sim[i, j] = sim[j, i] = value
    return sim


def nearest_psd(matrix: torch.Tensor, floor: float = 1e-6) -> torch.Tensor:
    """The symmetric matrix nearest to ``matrix`` with eigenvalues >= ``floor``."""
    sym = (matrix + matrix.transpose(-1, -2)) / 2
    values, vectors = torch.linalg.eigh(sym)
    return (vectors * values.clamp_min(floor).unsqueeze(-2)) @ vectors.transpose(-1, -2)


class InstructionCoupledKernel(Kernel):
    """A gpytorch kernel over z that carries the instruction similarity S of the points Z.

    Args:
        train_z: ``n x d`` evaluated points.
        similarity: ``n x n`` instruction similarity (made PSD here).
        eps: jitter added to K_Z before the Cholesky solves.

    The Matern-5/2 ARD base kernel's lengthscales are this kernel's hyperparameters.
    """

    has_lengthscale = False

    def __init__(self, train_z: torch.Tensor, similarity: torch.Tensor, eps: float = 1e-4) -> None:
        super().__init__()
        n, d = train_z.shape
        if similarity.shape != (n, n):
            raise ValueError(f"similarity must be {n} x {n} for {n} points, got {tuple(similarity.shape)}")
        self.base_kernel = MaternKernel(nu=2.5, ard_num_dims=d)
        self.register_buffer("train_z", train_z)
        self.register_buffer("similarity", nearest_psd(similarity.to(train_z)))
        self.eps = eps

    def _solve(self, x: torch.Tensor, chol: torch.Tensor) -> torch.Tensor:
        """(K_Z + eps I)^-1 k(Z, x): ``batch x n x m`` for ``x`` of shape ``batch x m x d``."""
        z = self.train_z.expand(*x.shape[:-2], *self.train_z.shape)  # batch x n x d
        k_zx = self.base_kernel(z, x).to_dense()  # batch x n x m
        return torch.cholesky_solve(k_zx, chol)

    def forward(
        self, x1: torch.Tensor, x2: torch.Tensor, diag: bool = False, last_dim_is_batch: bool = False, **params
    ) -> torch.Tensor:
        if last_dim_is_batch:
            raise NotImplementedError("InstructionCoupledKernel does not support last_dim_is_batch")
        n = self.train_z.shape[0]
        k_zz = self.base_kernel(self.train_z, self.train_z).to_dense()  # n x n
        eye = torch.eye(n, dtype=k_zz.dtype, device=k_zz.device)
        chol = torch.linalg.cholesky(k_zz + self.eps * eye)  # n x n
        a1 = self._solve(x1, chol)  # batch x n x m1
        a2 = a1 if x1 is x2 else self._solve(x2, chol)  # batch x n x m2
        left = a1.mT @ self.similarity  # batch x m1 x n
        if diag:
            return (left * a2.mT).sum(-1)  # batch x m1 (m1 == m2)
        return left @ a2  # batch x m1 x m2
