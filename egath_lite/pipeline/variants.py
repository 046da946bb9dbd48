"""The ablations of EGATH (the ``variant`` config field) and what each changes."""

from __future__ import annotations

from typing import Any

# What each ablation changes relative to EGATH.
VARIANTS: dict[str, dict[str, Any]] = {
    "egath": {},
    "no_gat": {"classifier": "independent"},  # C independent linear classifiers, no label graph
    "gcn": {"classifier": "gcn"},  # graph convolution instead of graph attention
    "no_triplet": {"w_triplet": 0.0},
    "no_cosine": {"w_cosine": 0.0},
    "clip_text": {"text_input": "clip"},  # CLIP text vectors instead of the bag of words
}


def variant_settings(cfg: Any) -> dict[str, Any]:
    """Loss weights and model switches of ``cfg.variant``."""
    if cfg.variant not in VARIANTS:
        raise ValueError(f"unknown variant {cfg.variant!r}; choose one of {', '.join(VARIANTS)}")
    settings = dict(
        classifier="gat",
        text_input="bow",
        w_cosine=cfg.w_cosine,
        w_triplet=cfg.w_triplet,
        w_cls=cfg.w_cls,
        w_quant=cfg.w_quant,
    )
    settings.update(VARIANTS[cfg.variant])
    return settings


def loss_config(cfg: Any) -> Any:
    """``core.losses.LossConfig`` of ``cfg`` with its variant's weights (``no_triplet``: w_triplet 0, ...)."""
    from egath_lite.core.losses import LossConfig

    s = variant_settings(cfg)
    return LossConfig(alpha=cfg.alpha, **{w: s[w] for w in ("w_cosine", "w_triplet", "w_cls", "w_quant")})
