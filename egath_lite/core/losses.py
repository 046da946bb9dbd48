"""EGATH's training objectives, each a plain function with its formula in the docstring.

Notation: ``h`` continuous codes (n × bits, tanh outputs in training), ``Y`` multi-hot
labels (n × C), ``B`` binary codes in {−1, +1}. Every loss returns a scalar tensor and
checks its inputs: a NaN, a shape mismatch or an item with no label raises a ValueError
naming the problem, because a silently wrong loss trains a silently wrong model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from egath_lite.core.models import setting

_EPS = 1e-12


def _check_matrix(name: str, x: torch.Tensor, rows: int | None = None, cols: int | None = None) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a 2-D tensor (n × k), got {shape}")
    if rows is not None and x.shape[0] != rows:
        raise ValueError(f"{name} has {x.shape[0]} rows, expected {rows} (one per item of the batch)")
    if cols is not None and x.shape[1] != cols:
        raise ValueError(f"{name} has {x.shape[1]} columns, expected {cols}")
    if x.is_floating_point() and not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf; lower the learning rate or check the inputs")


def _check_labels(name: str, Y: torch.Tensor, rows: int | None = None) -> torch.Tensor:
    _check_matrix(name, Y, rows=rows)
    Y = Y.float()
    empty = (Y.sum(dim=1) <= 0).nonzero().flatten()
    if len(empty):
        raise ValueError(
            f"{name} has {len(empty)} item(s) without any label (first rows {empty[:5].tolist()}); "
            f"label similarity is undefined for them: drop such items when building the split"
        )
    return Y


def label_cosine_similarity(Y_a: torch.Tensor, Y_b: torch.Tensor) -> torch.Tensor:
    """S_ij = ⟨y_i, y_j⟩ / (‖y_i‖ ‖y_j‖) ∈ [0, 1] of multi-hot labels: (n, C), (m, C) → (n, m)."""
    Y_a = _check_labels("Y_a", Y_a)
    Y_b = _check_labels("Y_b", Y_b)
    if Y_a.shape[1] != Y_b.shape[1]:
        raise ValueError(f"label matrices disagree on the number of labels: {Y_a.shape[1]} vs {Y_b.shape[1]}")
    return F.normalize(Y_a, dim=1) @ F.normalize(Y_b, dim=1).t()


def cosine_similarity_loss(
    h_a: torch.Tensor, h_b: torch.Tensor, Y_a: torch.Tensor, Y_b: torch.Tensor, validate: bool = True
) -> torch.Tensor:
    """Similarity preservation: mean_ij (cos(h_a_i, h_b_j) − S_ij)², S = label cosine ∈ [0, 1].

    Shapes: h_a (n, K), h_b (m, K), Y_a (n, C), Y_b (m, C) → scalar. Pairs that share no
    label are pushed to orthogonal codes (cos 0, i.e. half the bits differ), pairs with the
    same label set to identical codes (cos 1). ``validate=False`` skips the input checks
    (for a training loop that checked the batch once).
    """
    if validate:
        _check_matrix("h_a", h_a)
        _check_matrix("h_b", h_b, cols=h_a.shape[1])
        S = label_cosine_similarity(_as_rows("Y_a", Y_a, h_a), _as_rows("Y_b", Y_b, h_b))
    else:  # also takes stacked pairs (P, n, K) / (P, m, K) with shared labels: mean of the P losses
        S = F.normalize(Y_a.float(), dim=1) @ F.normalize(Y_b.float(), dim=1).t()
    cos = F.normalize(h_a, dim=-1, eps=_EPS) @ F.normalize(h_b, dim=-1, eps=_EPS).transpose(-1, -2)
    return ((cos - S) ** 2).mean()


def triplet_loss(
    anchor: torch.Tensor,
    target: torch.Tensor,
    Y_anchor: torch.Tensor,
    Y_target: torch.Tensor,
    margin: float = 0.3,
    normalize: bool = True,
    validate: bool = True,
) -> torch.Tensor:
    """Batch-all triplet loss: mean over valid (a, p, n) of max(‖a − p‖² − ‖a − n‖² + α, 0).

    Shapes: anchor (n, K), target (m, K), Y_anchor (n, C), Y_target (m, C) → scalar.
    p and n range over ``target`` (the other modality for a cross-modal triplet); p is
    valid when it shares at least one label with a, n when it shares none. With
    ``normalize`` the vectors are L2-normalised first, so ‖u − v‖² = 2 − 2 cos ∈ [0, 4]
    and the paper's margin α = 0.3 has a scale that does not depend on the code length.
    A batch without any valid triplet contributes 0. Stacked pairs (P, n, K) / (P, m, K)
    with the same labels give the mean of the P losses in one pass (the training loop's
    four directions I→T, T→I, I→I, T→T).
    """
    stacked = anchor.dim() == 3
    if validate:
        for name, x in (("anchor", anchor), ("target", target)):
            _check_matrix(name, x[0] if stacked and x.dim() == 3 else x)
        if stacked and (target.dim() != 3 or target.shape[0] != anchor.shape[0]):
            raise ValueError(f"stacked anchors {tuple(anchor.shape)} need stacked targets, got {tuple(target.shape)}")
        if target.shape[-1] != anchor.shape[-1]:
            raise ValueError(f"target has {target.shape[-1]} columns, expected {anchor.shape[-1]}")
        _check_matrix("Y_anchor", Y_anchor, rows=anchor.shape[-2])
        _check_matrix("Y_target", Y_target, rows=target.shape[-2])
        if margin < 0:
            raise ValueError(f"triplet margin must be >= 0, got {margin}")
    Y_anchor, Y_target = Y_anchor.float(), Y_target.float()
    if normalize:
        anchor = F.normalize(anchor, dim=-1, eps=_EPS)
        target = F.normalize(target, dim=-1, eps=_EPS)
    dist = torch.cdist(anchor, target, p=2.0) ** 2  # (..., n, m) squared Euclidean
    relevant = (Y_anchor @ Y_target.t()) > 0  # (n, m)
    # valid[a, p, n]: p relevant to a and n irrelevant to a
    valid = relevant.unsqueeze(2) & (~relevant).unsqueeze(1)
    count = valid.sum()
    if count == 0:
        return anchor.sum() * 0.0  # keeps the graph; no triplet to learn from in this batch
    per_triplet = F.relu(dist.unsqueeze(-1) - dist.unsqueeze(-2) + margin)
    total = torch.where(valid, per_triplet, 0.0).sum()
    return total / (count * (anchor.shape[0] if stacked else 1))


def classification_loss(logits: torch.Tensor, Y: torch.Tensor, validate: bool = True) -> torch.Tensor:
    """Multi-label BCE: −mean_ic [y_ic log σ(ŝ_ic) + (1 − y_ic) log(1 − σ(ŝ_ic))]; (n, C), (n, C) → scalar."""
    if validate:
        _check_matrix("logits", logits)
        _check_matrix("Y", Y, rows=logits.shape[0], cols=logits.shape[1])
    return F.binary_cross_entropy_with_logits(logits, Y.float())


def quantization_loss(h: torch.Tensor, B: torch.Tensor, validate: bool = True) -> torch.Tensor:
    """Quantisation towards the shared binary code: mean_ik (B_ik − h_ik)²; (n, K), (n, K) → scalar."""
    if validate:
        _check_matrix("h", h)
        _check_matrix("B", B, rows=h.shape[0], cols=h.shape[1])
    return ((B.to(h.dtype) - h) ** 2).mean()


def discrete_code_step(
    Y: torch.Tensor, H_image: torch.Tensor, H_text: torch.Tensor, B: torch.Tensor, mu: float = 0.5
) -> torch.Tensor:
    """GCDH's discrete step without its orthogonality terms: B ← sign(Y R + μ (H_I + H_T)).

    R = (YᵀY + I)⁻¹ Yᵀ B (C, K) regresses the current codes on the labels, so items with the
    same labels are pulled to the same code; μ weighs what the two networks currently
    output. Shapes: Y (N, C), H_image / H_text / B (N, K) → new B (N, K) in {−1, +1}
    (sign(0) is taken as +1 so that every bit is a bit).
    """
    _check_matrix("H_image", H_image)
    n, k = H_image.shape
    _check_matrix("H_text", H_text, rows=n, cols=k)
    _check_matrix("B", B, rows=n, cols=k)
    Y = _check_labels("Y", Y, rows=n)
    if mu < 0:
        raise ValueError(f"mu must be >= 0, got {mu}")
    eye = torch.eye(Y.shape[1], dtype=Y.dtype, device=Y.device)
    R = torch.linalg.solve(Y.t() @ Y + eye, Y.t() @ B.to(Y.dtype))
    Q = Y @ R + mu * (H_image.to(Y.dtype) + H_text.to(Y.dtype))
    return torch.where(Q >= 0, 1.0, -1.0).to(B.dtype)


def _as_rows(name: str, Y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    _check_matrix(name, Y, rows=x.shape[0])
    return Y


@dataclass(frozen=True)
class LossConfig:
    """The weights of EGATH's four terms and the triplet margin α (run config fields of the same names)."""

    alpha: float = setting(0.3, "triplet margin", ge=0.0)
    w_cosine: float = setting(1.0, ge=0.0)
    w_triplet: float = setting(1.0, ge=0.0)
    w_cls: float = setting(1.0, ge=0.0)
    w_quant: float = setting(0.1, ge=0.0)


LOSS_TERMS = ("cosine", "triplet", "cls", "quant")


def egath_loss(
    out: dict[str, torch.Tensor], Y: torch.Tensor, B: torch.Tensor, cfg: LossConfig | None = None
) -> dict[str, torch.Tensor]:
    """EGATH's objective on one batch: the four terms and their weighted sum ``total``.

    L = w_cos · L_cos + w_tri · L_tri + w_cls · L_cls + w_q · L_q, where, over the batch's items,
    L_cos is the similarity loss over the pairs I–T, I–I, T–T; L_tri the triplet loss over I→T, I→I, T→T, T→I
    (GCDH's four directions); L_cls the BCE of both modalities' scores Ŝ; L_q = mean (B − h)² of both
    modalities. Inputs: ``out`` of ``EGATH.forward`` (h_* (n, K), logits_* (n, C)), Y (n, C), B (n, K) ±1.
    The batch is validated once here; the terms then skip their own checks (the loop is dominated by
    per-operation overhead on a CPU). A term whose weight is 0 is not computed.
    """
    cfg = cfg or LossConfig()
    h_i, h_t = out["h_image"], out["h_text"]
    for name in ("h_image", "h_text", "logits_image", "logits_text"):
        if not torch.isfinite(out[name]).all():
            raise FloatingPointError(f"{name} became NaN/Inf; lower the learning rate (lr)")
    if h_i.shape != B.shape or h_t.shape != B.shape or Y.shape != out["logits_image"].shape:
        raise ValueError(f"batch shapes disagree: h {tuple(h_i.shape)}, B {tuple(B.shape)}, Y {tuple(Y.shape)}")
    zero = h_i.sum() * 0.0
    # the pairs (I,T), (I,I), (T,T) [and (T,I) for triplets] share the batch's labels: stack them, one pass each
    anchors, targets = torch.stack([h_i, h_i, h_t, h_t]), torch.stack([h_t, h_i, h_t, h_i])
    terms = {
        "cosine": cosine_similarity_loss(anchors[:3], targets[:3], Y, Y, validate=False) if cfg.w_cosine else zero,
        "triplet": triplet_loss(anchors, targets, Y, Y, cfg.alpha, validate=False) if cfg.w_triplet else zero,
        "cls": (
            classification_loss(out["logits_image"], Y, validate=False)
            + classification_loss(out["logits_text"], Y, validate=False)
        )
        / 2,
        "quant": (quantization_loss(h_i, B, validate=False) + quantization_loss(h_t, B, validate=False)) / 2,
    }
    terms["total"] = (
        cfg.w_cosine * terms["cosine"]
        + cfg.w_triplet * terms["triplet"]
        + cfg.w_cls * terms["cls"]
        + cfg.w_quant * terms["quant"]
    )
    return terms
