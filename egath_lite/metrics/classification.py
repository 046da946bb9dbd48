"""Per-label average precision of classifier scores (notebook 03's metric)."""

from __future__ import annotations

import torch


def label_average_precision(scores: torch.Tensor, Y: torch.Tensor, absent: str = "raise") -> torch.Tensor:
    """AP of each label over items ranked by score: (n, C) scores, (n, C) 0/1 → (C,) float64.

    Ties are broken by item index (stable sort), so the value is deterministic. A label
    without any positive item has no AP: ``absent="raise"`` raises (the split is too small),
    ``absent="nan"`` gives NaN for it (a small split of a 24- or 80-label set; average with nanmean).
    """
    if absent not in ("raise", "nan"):
        raise ValueError(f"absent must be 'raise' or 'nan', got {absent!r}")
    scores, Y = torch.as_tensor(scores, dtype=torch.float64), torch.as_tensor(Y, dtype=torch.float64)
    if scores.shape != Y.shape or scores.dim() != 2:
        raise ValueError(f"scores {tuple(scores.shape)} and labels {tuple(Y.shape)} must be the same (n, C) shape")
    if not torch.isfinite(scores).all():
        raise ValueError("scores contain NaN or Inf; the classifier diverged (lower gat_lr)")
    positives = Y.sum(0)
    if (positives == 0).any() and absent == "raise":
        missing = torch.nonzero(positives == 0).flatten().tolist()
        raise ValueError(f"label(s) {missing} have no positive item in the evaluation split; use a larger split")
    order = torch.sort(-scores, dim=0, stable=True).indices
    hits = torch.gather(Y, 0, order)  # (n, C) relevance in rank order
    ranks = torch.arange(1, len(Y) + 1, dtype=torch.float64).unsqueeze(1)
    precision = hits.cumsum(0) / ranks
    ap = (precision * hits).sum(0) / positives
    return torch.where(positives > 0, ap, torch.full_like(ap, float("nan")))
