"""InstructZero's instruction-coupled kernel and the instruction similarity it couples with.

    K(x, x') = k(x, Z) K_Z^-1 S_w K_Z^-1 k(Z, x')  +  [k(x, x') - k(x, Z) K_Z^-1 k(Z, x')]

Z (``n x d``) are the evaluated points, k a Matern-5/2 ARD kernel on z, K_Z = k(Z, Z) (+ eps I)
and S (``n x n``, PSD, unit diagonal) the similarity of the instructions the points produced,
measured on the black box's outputs. S_w = (1 - w) I + w S mixes it with the identity by a
learnable weight w in (0, 1) (how much the outputs' similarity says about the scores).

The first term is the paper's kernel: on Z it equals S_w, elsewhere it extends S_w through k.
Alone it has rank n, so far from the data the GP would be certain of its prior mean; the second
term (the Nystrom residual of k on Z, zero on Z) gives back k's prior variance there, and the
acquisition explores. Both terms are PSD, so K is.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from gpytorch.constraints import Interval
from gpytorch.kernels import Kernel, MaternKernel
from gpytorch.priors import GammaPrior

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
        train_z: ``n x d`` evaluated points (in the unit cube).
        similarity: ``n x n`` instruction similarity (made PSD here).
        eps: jitter added to K_Z before the Cholesky solves.
        residual: add the Nystrom residual (prior variance away from Z); False gives the
            paper's rank-n kernel.
        lengthscale: the mean of the lengthscales' prior Gamma(3, 3 / lengthscale), and their
            start (in the unit cube; 0.5 is the original InstructZero's BoTorch, Gamma(3, 6)).

    Hyperparameters: the Matern-5/2 ARD lengthscales and the similarity weight w
    (``raw_similarity_weight``).
    """

    has_lengthscale = False

    def __init__(
        self, train_z: torch.Tensor, similarity: torch.Tensor, eps: float = 1e-4, residual: bool = True,
        lengthscale: float = 0.5,
    ) -> None:
        super().__init__()
        n, d = train_z.shape
        if similarity.shape != (n, n):
            raise ValueError(f"similarity must be {n} x {n} for {n} points, got {tuple(similarity.shape)}")
        if lengthscale <= 0:
            raise ValueError(f"lengthscale must be > 0, got {lengthscale}")
        self.base_kernel = MaternKernel(nu=2.5, ard_num_dims=d, lengthscale_prior=GammaPrior(3.0, 3.0 / lengthscale))
        self.base_kernel.lengthscale = lengthscale  # the prior's mean
        self.register_buffer("train_z", train_z)
        self.register_buffer("similarity", nearest_psd(similarity.to(train_z)))
        self.register_parameter("raw_similarity_weight", torch.nn.Parameter(torch.zeros(1, dtype=train_z.dtype)))
        self.register_constraint("raw_similarity_weight", Interval(0.0, 1.0))
        self.eps, self.residual = eps, residual

    @property
    def similarity_weight(self) -> torch.Tensor:
        return self.raw_similarity_weight_constraint.transform(self.raw_similarity_weight)

    def coupled_similarity(self) -> torch.Tensor:
        """S_w = (1 - w) I + w S (``n x n``): PSD with a unit diagonal for any w in [0, 1]."""
        w = self.similarity_weight
        eye = torch.eye(self.similarity.shape[0], dtype=self.similarity.dtype, device=self.similarity.device)
        return (1 - w) * eye + w * self.similarity

    def _solve(self, x: torch.Tensor, chol: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """k(Z, x) and (K_Z + eps I)^-1 k(Z, x): each ``batch x n x m`` for ``x`` of shape
        ``batch x m x d``."""
        z = self.train_z.expand(*x.shape[:-2], *self.train_z.shape)  # batch x n x d
        k_zx = self.base_kernel(z, x).to_dense()  # batch x n x m
        return k_zx, torch.cholesky_solve(k_zx, chol)

    def forward(
        self, x1: torch.Tensor, x2: torch.Tensor, diag: bool = False, last_dim_is_batch: bool = False, **params
    ) -> torch.Tensor:
        if last_dim_is_batch:
            raise NotImplementedError("InstructionCoupledKernel does not support last_dim_is_batch")
        n = self.train_z.shape[0]
        k_zz = self.base_kernel(self.train_z, self.train_z).to_dense()  # n x n
        eye = torch.eye(n, dtype=k_zz.dtype, device=k_zz.device)
        chol = torch.linalg.cholesky(k_zz + self.eps * eye)  # n x n
        k1, a1 = self._solve(x1, chol)  # batch x n x m1 (each)
        a2 = a1 if x1 is x2 else self._solve(x2, chol)[1]  # batch x n x m2
        s_w = self.coupled_similarity()  # n x n
        if diag:
            coupled = ((a1.mT @ s_w) * a2.mT).sum(-1)  # batch x m1 (m1 == m2)
            if not self.residual:
                return coupled
            prior = self.base_kernel(x1, x2, diag=True)  # batch x m1
            return coupled + prior - (k1 * a2).sum(-2)
        coupled = a1.mT @ s_w @ a2  # batch x m1 x m2
        if not self.residual:
            return coupled
        return coupled + self.base_kernel(x1, x2).to_dense() - k1.mT @ a2
