"""Locality-sensitive hashing, the untrained baseline: B = sign((X − mean) W), W Gaussian (D × bits).

Charikar's random hyperplanes. The mean is taken from the data being hashed unless given (pass the
training mean to hash a query set exactly as the database).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def _as_float_matrix(X: Any, name: str) -> torch.Tensor:
    X = torch.as_tensor(np.asarray(X) if not isinstance(X, torch.Tensor) else X).float()
    if X.dim() != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D matrix (n × D), got shape {tuple(X.shape)}")
    if not torch.isfinite(X).all():
        raise ValueError(f"{name} contains NaN or Inf; rebuild the features")
    return X


def lsh_projection(dim: int, bits: int, seed: int) -> torch.Tensor:
    """Gaussian random projection W (dim, bits), reproducible from ``seed`` on every device."""
    if bits < 1 or dim < 1:
        raise ValueError(f"dim and bits must be >= 1, got dim={dim}, bits={bits}")
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randn(dim, bits, generator=gen)


def lsh_codes(X: Any, bits: int, seed: int = 0, mean: Any = None) -> torch.Tensor:
    """sign((X − mean) W) as int8 in {−1, +1}, (n, bits); X (n, D); mean (D,) defaults to X's own mean."""
    X = _as_float_matrix(X, "X")
    mu = X.mean(0) if mean is None else torch.as_tensor(mean).float()
    if mu.shape != (X.shape[1],):
        raise ValueError(f"mean has shape {tuple(mu.shape)}, expected ({X.shape[1]},)")
    proj = (X - mu) @ lsh_projection(X.shape[1], bits, seed)
    return torch.where(proj >= 0, 1, -1).to(torch.int8)
