"""Per-label average precision of classifier scores (notebook 03's metric)."""

from __future__ import annotations

import torch


def label_average_precision(scores: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """AP of each label over items ranked by score: (n, C) scores, (n, C) 0/1 → (C,) float64.

    Ties are broken by item index (stable sort), so the value is deterministic. A label
    without any positive item has no AP: that raises, since the evaluation split is too small.
    """
    scores, Y = torch.as_tensor(scores, dtype=torch.float64), torch.as_tensor(Y, dtype=torch.float64)
    if scores.shape != Y.shape or scores.dim() != 2:
        raise ValueError(f"scores {tuple(scores.shape)} and labels {tuple(Y.shape)} must be the same (n, C) shape")
    if not torch.isfinite(scores).all():
        raise ValueError("scores contain NaN or Inf; the classifier diverged (lower gat_lr)")
    positives = Y.sum(0)
    if (positives == 0).any():
        missing = torch.nonzero(positives == 0).flatten().tolist()
        raise ValueError(f"label(s) {missing} have no positive item in the evaluation split; use a larger split")
    order = torch.sort(-scores, dim=0, stable=True).indices
    hits = torch.gather(Y, 0, order)  # (n, C) relevance in rank order
    ranks = torch.arange(1, len(Y) + 1, dtype=torch.float64).unsqueeze(1)
    precision = hits.cumsum(0) / ranks
    return (precision * hits).sum(0) / positives
