"""Retrieval without learning, on a run's features: LSH codes and the continuous CLIP embeddings.

- ``lsh_cross_modal_codes`` / ``lsh_map``: ``core.lsh.lsh_codes`` of both modalities, one shared
  projection, each centred by its training mean: the lower reference every learned hash should beat.
- ``clip_continuous_map`` / ``ensure_clip_baseline``: the CLIP vectors ranked by cosine similarity, no
  binarisation: the upper reference for what a hash of these features can keep.
"""

from __future__ import annotations

from typing import Any

import torch

from egath_lite.core.lsh import _as_float_matrix, lsh_codes
from egath_lite.pipeline.features import FEATURES_STAGE, ensure_features
from egath_lite.pipeline.stages import Stage


def lsh_cross_modal_codes(features: dict[str, Any], bits: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """LSH codes of query/retrieval items in both modalities from a features payload.

    Image and text CLIP vectors share one projection (CLIP aligns the two spaces), each
    centred by its own training mean. Keys as in ``ensure_codes``.
    """
    t = features["tensors"]
    train = t["train_idx"].long()
    out = {}
    for modality, key in (("image", "image_emb"), ("text", "text_emb")):
        X = _as_float_matrix(t[key], key)
        mean = X[train].mean(0)
        for split in ("query", "retrieval"):
            out[f"{split}_{modality}_codes"] = lsh_codes(X[t[f"{split}_idx"].long()], bits, seed, mean)
    out["query_labels"] = t["labels"][t["query_idx"].long()].to(torch.uint8)
    out["retrieval_labels"] = t["labels"][t["retrieval_idx"].long()].to(torch.uint8)
    return out


def lsh_map(features: dict[str, Any], bits: int, seed: int = 0, backend: str = "auto") -> dict[str, float]:
    """{"i2t", "t2i"} mAP@all of LSH codes on the query / retrieval split (``backend`` of egath_lite.metrics)."""
    from egath_lite.metrics import mean_average_precision

    c = lsh_cross_modal_codes(features, bits, seed)
    qL, rL = c["query_labels"], c["retrieval_labels"]
    return {
        "i2t": float(
            mean_average_precision(c["query_image_codes"], c["retrieval_text_codes"], qL, rL, backend=backend)
        ),
        "t2i": float(
            mean_average_precision(c["query_text_codes"], c["retrieval_image_codes"], qL, rL, backend=backend)
        ),
    }


def clip_continuous_map(features: dict[str, Any], topk: int | None = None) -> dict[str, float]:
    """{"i2t", "t2i"} mAP of the continuous CLIP vectors ranked by cosine (no hashing): the upper reference."""
    from egath_lite.metrics import map_from_embeddings

    t = features["tensors"]
    q, r = t["query_idx"].long(), t["retrieval_idx"].long()
    img, txt = _as_float_matrix(t["image_emb"], "image_emb"), _as_float_matrix(t["text_emb"], "text_emb")
    qL, rL = t["labels"][q], t["labels"][r]
    return {
        "i2t": float(map_from_embeddings(img[q], txt[r], qL, rL, topk)),
        "t2i": float(map_from_embeddings(txt[q], img[r], qL, rL, topk)),
    }


CLIP_BASELINE_STAGE = Stage(
    "clip_baseline",
    fields=(),
    upstream=(FEATURES_STAGE,),
    codec="json",
    suffix=".json",
    description="mAP of the continuous CLIP vectors ranked by cosine (computed once per features)",
)


def ensure_clip_baseline(cfg: Any, force: bool = False) -> dict[str, float]:
    """{"i2t", "t2i"} of ``clip_continuous_map`` on the run's features, computed once and cached beside them."""

    def compute():
        return None, clip_continuous_map(ensure_features(cfg, progress=False))

    payload = CLIP_BASELINE_STAGE.run(cfg, compute, force=force)
    return {"i2t": float(payload["meta"]["i2t"]), "t2i": float(payload["meta"]["t2i"])}
