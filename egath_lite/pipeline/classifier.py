"""Notebook 03: label classifiers (GAT, GCN, independent) on frozen CLIP features, and their stage.

The loop is ``core.train.classifier_epoch``; this module adds the seeding, the model selection and the cache.

One classifier serves both modalities (as in EGATH, H is shared): it is trained on the image
and the text vectors of the training items together, and the epoch with the best validation
mAP is kept (never selected on the query set). The artifact ``classifier-<kind>-<key>.pt``
holds the model (``state.*``), per-label AP on the query split and the training history.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import torch
import torch.nn as nn

from egath_lite.core.losses import classification_loss
from egath_lite.core.models import FrozenFeatureClassifier, GATConfig, build_classifier
from egath_lite.core.train import classifier_epoch
from egath_lite.files import ArtifactError
from egath_lite.metrics.classification import label_average_precision
from egath_lite.pipeline.config import Config, component, component_fields
from egath_lite.pipeline.features import FEATURES_STAGE, ensure_features
from egath_lite.pipeline.graph import GRAPH_STAGE, ensure_graph
from egath_lite.pipeline.results import Classifier, state_from, training_split
from egath_lite.pipeline.stages import Stage, shape_problems
from egath_lite.progress import tqdm
from egath_lite.utils import cpu_threads, resolve_device, seed_everything

CLASSIFIER_KINDS = ("gat", "gcn", "independent")


GAT_FIELDS = component_fields(GATConfig)  # gat_layers, gat_hidden, ... (core.models.GATConfig)
CLASSIFIER_FIELDS = GAT_FIELDS + ("gat_epochs", "gat_lr", "gat_batch_size", "weight_decay", "seed")


def _expect(cfg: Config, params: dict[str, Any], payload: dict[str, Any]) -> list[str]:
    c = len(payload["meta"].get("label_names", []))
    return shape_problems(
        payload["tensors"],
        {
            "ap_image": ((c,), torch.float32),
            "ap_text": ((c,), torch.float32),
            "history_loss": ((cfg.gat_epochs,), None),
            "history_val_map": ((cfg.gat_epochs,), None),
        },
    )


CLASSIFIER_STAGE = Stage(
    "classifier",
    fields=CLASSIFIER_FIELDS,
    params=("kind",),
    upstream=(FEATURES_STAGE, GRAPH_STAGE),
    version="2",
    tensors=("ap_image", "ap_text", "history_loss", "history_val_map"),
    expect=_expect,
    code=("egath_lite.core.models", "egath_lite.core.losses", "egath_lite.core.train"),
    description="a label classifier (gat | gcn | independent) trained on frozen CLIP features",
)


def build_label_classifier(
    kind: str,
    cfg: Config,
    feature_dim: int,
    label_emb: torch.Tensor,
    mean: torch.Tensor | None = None,
    std: torch.Tensor | None = None,
) -> FrozenFeatureClassifier:
    """A ``gat`` | ``gcn`` | ``independent`` classifier over frozen features of dimension D."""
    clf = build_classifier(kind, label_emb.shape[1], feature_dim, label_emb.shape[0], component(cfg, GATConfig))
    mean = torch.zeros(feature_dim) if mean is None else mean
    std = torch.ones(feature_dim) if std is None else std
    return FrozenFeatureClassifier(clf, mean, std)


def train_label_classifier(
    kind: str,
    cfg: Config,
    X: dict[str, torch.Tensor],
    Y: dict[str, torch.Tensor],
    graph: dict[str, torch.Tensor],
    progress: bool = True,
) -> tuple[FrozenFeatureClassifier, dict[str, Any]]:
    """Train on X["train"] (n, D) / Y["train"] (n, C); select the epoch with the best validation mAP.

    ``X``/``Y`` hold ``train`` and ``val``; ``graph`` holds ``label_emb``, ``edge_index``,
    ``edge_weight``. Returns the best model (eval mode) and a history dict.
    """
    with cpu_threads(1):
        return _train_label_classifier(kind, cfg, X, Y, graph, progress)


def _train_label_classifier(kind, cfg, X, Y, graph, progress):
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    Xtr, Ytr = X["train"].float(), Y["train"].float()
    mean, std = Xtr.mean(0), Xtr.std(0).clamp_min(1e-6)
    model = build_label_classifier(kind, cfg, Xtr.shape[1], graph["label_emb"], mean, std).to(device)
    E, ei = graph["label_emb"].float().to(device), graph["edge_index"].long().to(device)
    ew = graph["edge_weight"].float().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.gat_lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    batch = cfg.gat_batch_size
    history: dict[str, list[float]] = {"loss": [], "val_map": []}
    best = (-1.0, 0, None)
    t0 = time.perf_counter()
    bar = tqdm(range(cfg.gat_epochs), desc=f"{kind} classifier", disable=not progress)
    for epoch in bar:
        perm = torch.randperm(len(Xtr), generator=gen)
        batches = ((Xtr[idx].to(device), Ytr[idx].to(device)) for idx in perm.split(batch))
        loss = classifier_epoch(model, classification_loss, batches, opt, graph=(E, ei, ew))
        val_map = float(
            label_average_precision(predict_scores(model, X["val"], graph), Y["val"], absent="nan").nanmean()
        )
        history["loss"].append(loss)
        history["val_map"].append(val_map)
        if val_map > best[0]:
            best = (val_map, epoch, copy.deepcopy(model.state_dict()))
        bar.set_postfix(loss=f"{history['loss'][-1]:.4f}", val_map=f"{val_map:.4f}")
    model.load_state_dict(best[2])
    model.eval()
    history.update(best_epoch=best[1], best_val_map=best[0], train_seconds=time.perf_counter() - t0)
    return model, history


@torch.no_grad()
def predict_scores(model: FrozenFeatureClassifier, X: torch.Tensor, graph: dict[str, torch.Tensor]) -> torch.Tensor:
    """Logits (n, C) of a frozen-feature classifier, in eval mode, on the CPU."""
    was = model.training
    model.eval()
    device = model.mean.device
    out = model(
        X.float().to(device),
        graph["label_emb"].float().to(device),
        graph["edge_index"].long().to(device),
        graph["edge_weight"].float().to(device),
    ).cpu()
    model.train(was)
    return out


def ensure_label_classifier(cfg: Config, kind: str = "gat", force: bool = False, progress: bool = True) -> Classifier:
    """Train (or reuse) the ``kind`` classifier on the run's frozen image and text CLIP features.

    Tensors: ``state.*`` (the model), ``ap_image`` / ``ap_text`` (C) per-label AP on the query
    split, ``history_loss``, ``history_val_map``; meta: ``kind``, ``map_image``, ``map_text``,
    ``best_epoch``, ...
    """
    if kind not in CLASSIFIER_KINDS:
        raise ValueError(f"unknown classifier kind {kind!r}; choose one of {CLASSIFIER_KINDS}")
    features, graph = ensure_features(cfg), ensure_graph(cfg)

    def compute():
        ft, gt = features["tensors"], graph["tensors"]
        split = training_split(features)
        img, txt, L = ft["image_emb"].float(), ft["text_emb"].float(), ft["labels"].float()
        X = {s: torch.cat([img[split[s]], txt[split[s]]]) for s in ("train", "val")}
        Y = {s: torch.cat([L[split[s]], L[split[s]]]) for s in ("train", "val")}
        with cpu_threads(1):
            model, hist = train_label_classifier(kind, cfg, X, Y, gt, progress)
            q = split["query"]
            # a small query split of a 24- or 80-label set can miss a label: it has no AP (mean over the others)
            ap_image = label_average_precision(predict_scores(model, img[q], gt), L[q], absent="nan")
            ap_text = label_average_precision(predict_scores(model, txt[q], gt), L[q], absent="nan")
            present = ~torch.isnan(ap_image)
        tensors = {f"state.{k}": v for k, v in model.state_dict().items()}
        tensors.update(
            ap_image=ap_image.nan_to_num(0.0).float(),  # 0 where a label has no query item (ap_present False)
            ap_text=ap_text.nan_to_num(0.0).float(),
            ap_present=present,
            history_loss=torch.tensor(hist["loss"]),
            history_val_map=torch.tensor(hist["val_map"]),
        )
        meta = dict(
            kind=kind,
            feature_dim=int(img.shape[1]),
            map_image=float(ap_image.nanmean()),
            map_text=float(ap_text.nanmean()),
            labels_without_query_items=int((~present).sum()),
            best_epoch=int(hist["best_epoch"]),
            best_val_map=float(hist["best_val_map"]),
            train_seconds=float(hist["train_seconds"]),
            label_names=list(features["meta"].get("label_names", [])),
        )
        return tensors, meta

    return Classifier(CLASSIFIER_STAGE.run(cfg, compute, force=force, kind=kind))


def ensure_gat(cfg: Config, force: bool = False, progress: bool = True) -> Classifier:
    """The GAT label classifier of notebook 03 (``classifier-gat-<key>.pt``)."""
    return ensure_label_classifier(cfg, "gat", force=force, progress=progress)


def load_label_classifier(cfg: Config, payload: dict[str, Any], label_emb: torch.Tensor) -> FrozenFeatureClassifier:
    """Rebuild the classifier stored in an ``ensure_label_classifier`` payload (eval mode)."""
    state = state_from(payload)
    model = build_label_classifier(payload["meta"]["kind"], cfg, int(payload["meta"]["feature_dim"]), label_emb)
    load_state(model, state, f"label classifier {payload.get('path')}")
    return model.eval()


def load_state(model: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """``model.load_state_dict(state)``, or ArtifactError when the stored model does not fit the configured one."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ArtifactError(
            f"{what} does not fit the configured model ({str(exc)[:300]}); "
            f"its key should have prevented this: recompute it with force=True"
        ) from exc
