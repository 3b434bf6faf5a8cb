"""The fixed random projection A from the intrinsic space to soft prompts: p = A z, or each soft
token a softmax(A z) mixture of real token embeddings."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class Projection:
    """A seeded random matrix: ``(n_tokens * hidden_size) x intrinsic_dim`` (linear), or
    ``(n_tokens * k) x intrinsic_dim`` with ``atoms`` (``n_tokens x k x hidden_size``, mixture)."""

    matrix: torch.Tensor
    n_tokens: int
    hidden_size: int
    seed: int
    atoms: torch.Tensor | None = None  # each soft token's k candidate embeddings (mixture)

    @property
    def intrinsic_dim(self) -> int:
        return self.matrix.shape[1]

    def soft_prompts(self, z: torch.Tensor) -> torch.Tensor:
        """Map ``b x d`` points to ``b x n_tokens x hidden_size`` soft prompts."""
        if z.ndim != 2 or z.shape[1] != self.intrinsic_dim:
            raise ValueError(f"z must be b x {self.intrinsic_dim}, got {tuple(z.shape)}")
        flat = z.to(self.matrix.dtype) @ self.matrix.T  # b x (n_tokens * width)
        if self.atoms is None:
            return flat.view(-1, self.n_tokens, self.hidden_size)
        weights = flat.view(-1, self.n_tokens, self.atoms.shape[1]).softmax(-1)  # b x n_tokens x k
        return torch.einsum("btk,tkh->bth", weights, self.atoms)

    def save(self, path: Path) -> None:
        """Written whole or not at all (several workers may save the same projection at once)."""
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        torch.save(
            {"matrix": self.matrix, "n_tokens": self.n_tokens, "hidden_size": self.hidden_size, "seed": self.seed,
             "atoms": self.atoms},
            partial,
        )
        partial.replace(path)

    @classmethod
    def load(cls, path: Path) -> Projection:
        state = torch.load(path, weights_only=True)
        return cls(state["matrix"], state["n_tokens"], state["hidden_size"], state["seed"], state.get("atoms"))


def make_projection(
    intrinsic_dim: int, n_tokens: int, hidden_size: int, embedding_std: float, scale: float, seed: int
) -> Projection:
    """A Gaussian projection scaled so that, for z uniform on [-1, 1]^d, every soft-prompt
    coordinate has standard deviation ``scale * embedding_std``.

    Each coordinate is a sum of d terms A_ik z_k with Var(z_k) = 1/3, so
    std(A_ik) = scale * embedding_std / sqrt(d / 3).
    """
    generator = torch.Generator().manual_seed(seed)
    std = scale * embedding_std / math.sqrt(intrinsic_dim / 3)
    matrix = torch.randn(n_tokens * hidden_size, intrinsic_dim, generator=generator) * std
    return Projection(matrix, n_tokens, hidden_size, seed)


def make_mixture_projection(intrinsic_dim: int, embeddings: torch.Tensor, candidates: list[int], n_tokens: int,
                            k: int, scale: float, seed: int) -> Projection:
    """Each of ``n_tokens`` soft tokens a mixture of ``k`` token embeddings (rows of
    ``embeddings``) drawn from ``candidates``, weighted by softmax(A z): for z uniform on
    [-1, 1]^d every logit has standard deviation ``scale`` (large: nearly one real token each)."""
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(len(candidates), (n_tokens, k), generator=generator)
    atoms = embeddings.detach().float()[torch.tensor(candidates)[picks]]  # n_tokens x k x hidden
    matrix = torch.randn(n_tokens * k, intrinsic_dim, generator=generator, dtype=torch.float32)
    matrix = matrix * (scale / math.sqrt(intrinsic_dim / 3))
    return Projection(matrix, n_tokens, embeddings.shape[1], seed, atoms)
