"""Label scarcity: frozen-feature classifiers trained on fewer labelled items (notebook 03, the graph study).

Does the label graph help more when labels are scarce? ``scarce_subsets`` draws nested, seeded subsets
of the training (and validation) items; ``scarcity_curve`` rebuilds the graph from each subset's labels
and trains each classifier kind on it.
"""

from __future__ import annotations

from typing import Any

import torch

from egath_lite.metrics.classification import label_average_precision
from egath_lite.pipeline.classifier import CLASSIFIER_KINDS, predict_scores, train_label_classifier
from egath_lite.pipeline.config import Config
from egath_lite.pipeline.results import training_split
from egath_lite.utils import cpu_threads


def scarce_subsets(train: torch.Tensor, val: torch.Tensor, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, val) index subsets holding ``size`` training items and the same share of validation items.

    Seeded and nested (a smaller size is a subset of a larger one); the original order is kept, so
    ``size = len(train)`` returns the split unchanged.
    """
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= len(train):
        raise ValueError(f"size must be an integer in 1..{len(train)} (the training items), got {size!r}")
    gen = torch.Generator().manual_seed(seed)
    keep_t = torch.randperm(len(train), generator=gen)[:size].sort().values
    n_val = max(1, round(size * len(val) / len(train)))
    keep_v = torch.randperm(len(val), generator=gen)[:n_val].sort().values
    return train[keep_t], val[keep_v]


def scarcity_curve(
    cfg: Config,
    features: dict[str, Any],
    graph: dict[str, Any],
    sizes: list[int],
    kinds: tuple[str, ...] = ("gat", "independent"),
    progress: bool = False,
) -> dict[str, dict[str, list[float]]]:
    """Frozen-feature classifiers trained on ``sizes`` labelled training items each: mean AP on the query split.

    Per size the label graph is rebuilt from the labels of the kept items (train ∪ val subset, at
    ``cfg.zeta``), as the graph stage would; validation shrinks in proportion (``scarce_subsets``).
    Returns {kind: {"sizes", "map_image", "map_text", "val_map", "num_edges"}}; at the full training
    size it reproduces ``ensure_label_classifier`` (tested).
    """
    from egath_lite.pipeline.graph import graph_from_labels

    unknown = [k for k in kinds if k not in CLASSIFIER_KINDS]
    if unknown:
        raise ValueError(f"unknown classifier kind(s) {unknown}; choose from {CLASSIFIER_KINDS}")
    ft, gt = features["tensors"], graph["tensors"]
    split = training_split(features)
    img, txt, L = ft["image_emb"].float(), ft["text_emb"].float(), ft["labels"].float()
    labels_u8 = ft["labels"].numpy().astype("uint8")
    q = split["query"]
    out = {k: {"sizes": [], "map_image": [], "map_text": [], "val_map": [], "num_edges": []} for k in kinds}
    for size in sizes:
        train, val = scarce_subsets(split["train"], split["val"], size, cfg.seed)
        g = graph_from_labels(labels_u8, None, q.numpy(), train.numpy(), val.numpy(), cfg)  # train ∪ val rows
        g_t = {"label_emb": gt["label_emb"], "edge_index": g.edge_index, "edge_weight": g.edge_weight}
        X = {"train": torch.cat([img[train], txt[train]]), "val": torch.cat([img[val], txt[val]])}
        Y = {"train": torch.cat([L[train], L[train]]), "val": torch.cat([L[val], L[val]])}
        for kind in kinds:
            with cpu_threads(1):
                model, hist = train_label_classifier(kind, cfg, X, Y, g_t, progress)
                ap_i = label_average_precision(predict_scores(model, img[q], g_t), L[q], absent="nan")
                ap_t = label_average_precision(predict_scores(model, txt[q], g_t), L[q], absent="nan")
            row = out[kind]
            row["sizes"].append(size)
            row["map_image"].append(float(ap_i.nanmean()))
            row["map_text"].append(float(ap_t.nanmean()))
            row["val_map"].append(float(hist["best_val_map"]))
            row["num_edges"].append(g.num_edges)
    return out
