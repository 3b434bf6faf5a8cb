"""The fixed random projection A from the intrinsic space to soft prompts: p = A z."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class Projection:
    """A seeded random matrix: ``(n_tokens * hidden_size) x intrinsic_dim``."""

    matrix: torch.Tensor
    n_tokens: int
    hidden_size: int
    seed: int

    @property
    def intrinsic_dim(self) -> int:
        return self.matrix.shape[1]

    def soft_prompts(self, z: torch.Tensor) -> torch.Tensor:
        """Map ``b x d`` points to ``b x n_tokens x hidden_size`` soft prompts."""
        if z.ndim != 2 or z.shape[1] != self.intrinsic_dim:
            raise ValueError(f"z must be b x {self.intrinsic_dim}, got {tuple(z.shape)}")
        flat = z.to(self.matrix.dtype) @ self.matrix.T  # b x (n_tokens * hidden_size)
        return flat.view(-1, self.n_tokens, self.hidden_size)

    def save(self, path: Path) -> None:
        """Written whole or not at all (several workers may save the same projection at once)."""
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        torch.save(
            {"matrix": self.matrix, "n_tokens": self.n_tokens, "hidden_size": self.hidden_size, "seed": self.seed},
            partial,
        )
        partial.replace(path)

    @classmethod
    def load(cls, path: Path) -> Projection:
        state = torch.load(path, weights_only=True)
        return cls(state["matrix"], state["n_tokens"], state["hidden_size"], state["seed"])


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
