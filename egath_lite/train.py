"""Training: the label classifier on frozen features (notebook 03) and EGATH's hash learning (04).

Both loops seed everything, show a progress bar, keep a per-epoch history, select the model
on a validation split carved from the training items (never on the query set), and cache
their result as an artifact keyed by the configuration that made it:

- ``ensure_label_classifier(cfg, kind)`` / ``ensure_gat(cfg)`` → ``runs/<run>/gat.pt``
  (``classifier_<kind>.pt`` for the ``gcn`` / ``independent`` comparisons);
- ``ensure_codes(cfg, bits)`` → ``runs/<run>/codes_<variant>_<bits>.pt`` plus the model
  checkpoint ``runs/<run>/egath_<variant>_<bits>.pt`` (loaded with ``weights_only``).
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from .artifacts import ArtifactError, cached_artifact, load_artifact, run_dir, save_artifact
from .config import Config
from .losses import (
    classification_loss,
    cosine_similarity_loss,
    discrete_code_step,
    quantization_loss,
    triplet_loss,
)
from .models import EGATH, build_classifier
from .utils import resolve_device, seed_everything

# What each ablation changes relative to EGATH (the `variant` parameter).
VARIANTS: dict[str, dict[str, Any]] = {
    "egath": {},
    "no_gat": {"classifier": "independent"},  # C independent linear classifiers, no label graph
    "gcn": {"classifier": "gcn"},  # graph convolution instead of graph attention
    "no_triplet": {"w_triplet": 0.0},
    "no_cosine": {"w_cosine": 0.0},
    "clip_text": {"text_input": "clip"},  # CLIP text vectors instead of the bag of words
}

# Config fields that shape the label classifier of notebook 03 and the hash model of 04.
CLASSIFIER_FIELDS = ("gat_layers", "gat_hidden", "gat_heads", "gat_dropout", "gat_negative_slope",
                     "gat_bias", "gat_input_dropout", "gat_init_gain", "gat_label_bias",
                     "gat_epochs", "gat_lr", "weight_decay", "seed")
HASH_FIELDS = ("variant", "hidden_dim", "trans_layers", "trans_heads", "trans_tokens", "trans_width", "trans_dropout",
               "label_fusion", "epochs", "hash_batch_size", "lr", "lr_min", "weight_decay", "alpha", "mu",
               "w_cosine", "w_triplet", "w_cls", "w_quant", "finetune_clip", "finetune_lr_scale", "early_stop_patience",
               "gat_layers", "gat_hidden", "gat_heads", "gat_dropout", "gat_negative_slope",
               "gat_bias", "gat_input_dropout", "gat_init_gain", "gat_label_bias", "seed")

FEATURE_TENSORS = ("image_emb", "text_emb", "bow", "labels", "query_idx", "train_idx", "val_idx", "retrieval_idx")
GRAPH_TENSORS = ("edge_index", "edge_weight", "label_emb")
CODE_TENSORS = ("query_image_codes", "query_text_codes", "retrieval_image_codes", "retrieval_text_codes",
                "query_labels", "retrieval_labels", "history_loss", "history_val_map_i2t", "history_val_map_t2i")


@contextlib.contextmanager
def _cpu_threads(n: int = 1):
    """Run torch's CPU ops on ``n`` threads inside the block, then restore the previous setting.

    These models are small (batches of 64, ten label nodes): op overhead dominates, and a
    second intra-op thread only spins. Measured on the 2-core machine with other load: the
    GAT classifier of notebook 03 (5 epochs) took 37.6 s wall / 24.9 s CPU on 2 threads and
    7.3 s / 4.9 s on one.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --------------------------------------------------------------------------- inputs
def _load_inputs(cfg: Config) -> tuple[dict[str, Any], dict[str, Any]]:
    """The features and label-graph payloads of this run (computed by their stages when missing)."""
    from .features import ensure_features
    from .graph import ensure_graph

    features = ensure_features(cfg)
    graph = ensure_graph(cfg)
    for name in FEATURE_TENSORS:
        if name not in features["tensors"]:
            raise ArtifactError(f"features artifact lacks {name!r}; rebuild it with ensure_features(cfg, force=True)")
    for name in GRAPH_TENSORS:
        if name not in graph["tensors"]:
            raise ArtifactError(f"graph artifact lacks {name!r}; rebuild it with ensure_graph(cfg, force=True)")
    return features, graph


def _digest(*parts: Any) -> str:
    """16-hex key of upstream keys and this stage's fields."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _split(features: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Index arrays; training items exclude the validation items (checked, never assumed)."""
    t = features["tensors"]
    train, val = t["train_idx"].long(), t["val_idx"].long()
    if len(val) == 0:
        raise ValueError("the validation split is empty; set val_fraction > 0 so the model can be selected without the query set")
    if len(np.intersect1d(val.numpy(), t["query_idx"].numpy())):
        raise ValueError("validation items overlap the query set; the split is broken, rebuild the features")
    train = torch.from_numpy(np.setdiff1d(train.numpy(), val.numpy())).long()
    if len(train) == 0:
        raise ValueError("no training items left after removing the validation items")
    return {"train": train, "val": val, "query": t["query_idx"].long(), "retrieval": t["retrieval_idx"].long()}


# --------------------------------------------------------------------------- metrics
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


def retrieval_map(qB: torch.Tensor, rB: torch.Tensor, qL: torch.Tensor, rL: torch.Tensor) -> float:
    """mAP@all by Hamming ranking (``egath_lite.metrics``: stable ties, queries without a relevant item skipped).

    Always the numpy kernel: validation sets are small, and numba's OpenMP worker threads
    keep spinning after a parallel call, which slowed the following torch training steps
    about 20-fold on a 2-core machine (measured: 58 → 1,091 ms CPU per step).
    """
    from .metrics import mean_average_precision

    return float(mean_average_precision(qB, rB, qL, rL, backend="numpy"))


# --------------------------------------------------------------------------- label classifier (03)
class FrozenFeatureClassifier(nn.Module):
    """Ŝ = z(x) Hᵀ + b on frozen CLIP features x (n, D), z = standardisation, H from a label classifier."""

    def __init__(self, classifier: nn.Module, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.classifier = classifier
        self.register_buffer("mean", mean.float().clone())
        self.register_buffer("std", std.float().clone())

    def forward(self, x: torch.Tensor, E: torch.Tensor, edge_index: torch.Tensor, edge_weight: torch.Tensor | None = None) -> torch.Tensor:
        """x (n, D) → logits (n, C)."""
        H = self.classifier(E, edge_index, edge_weight)
        return self.classifier.scores((x - self.mean) / self.std, H)


def build_label_classifier(kind: str, cfg: Config, feature_dim: int, label_emb: torch.Tensor,
                           mean: torch.Tensor | None = None, std: torch.Tensor | None = None) -> FrozenFeatureClassifier:
    """A ``gat`` | ``gcn`` | ``independent`` classifier over frozen features of dimension D."""
    clf = build_classifier(kind, label_emb.shape[1], feature_dim, label_emb.shape[0], cfg.gat_hidden,
                           cfg.gat_layers, cfg.gat_heads, cfg.gat_dropout, cfg.gat_negative_slope, bias=cfg.gat_bias,
                           input_dropout=cfg.gat_input_dropout, init_gain=cfg.gat_init_gain,
                           label_bias=cfg.gat_label_bias)
    mean = torch.zeros(feature_dim) if mean is None else mean
    std = torch.ones(feature_dim) if std is None else std
    return FrozenFeatureClassifier(clf, mean, std)


def train_label_classifier(kind: str, cfg: Config, X: dict[str, torch.Tensor], Y: dict[str, torch.Tensor],
                           graph: dict[str, torch.Tensor], progress: bool = True) -> tuple[FrozenFeatureClassifier, dict[str, Any]]:
    """Train on X["train"] (n, D) / Y["train"] (n, C); select the epoch with the best validation mAP.

    ``X``/``Y`` hold ``train`` and ``val``; ``graph`` holds ``label_emb``, ``edge_index``,
    ``edge_weight``. Returns the best model (eval mode) and a history dict.
    """
    with _cpu_threads(1):
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
    batch = 256
    history: dict[str, list[float]] = {"loss": [], "val_map": []}
    best = (-1.0, 0, None)
    t0 = time.perf_counter()
    bar = tqdm(range(cfg.gat_epochs), desc=f"{kind} classifier", disable=not progress)
    for epoch in bar:
        model.train()
        perm = torch.randperm(len(Xtr), generator=gen)
        total = 0.0
        for i in range(0, len(perm), batch):  # noqa: B007
            idx = perm[i:i + batch]
            loss = classification_loss(model(Xtr[idx].to(device), E, ei, ew), Ytr[idx].to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        val_map = float(label_average_precision(predict_scores(model, X["val"], graph), Y["val"]).mean())
        history["loss"].append(total / len(Xtr))
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
    out = model(X.float().to(device), graph["label_emb"].float().to(device), graph["edge_index"].long().to(device),
                graph["edge_weight"].float().to(device)).cpu()
    model.train(was)
    return out


def classifier_path(cfg: Config, kind: str) -> Path:
    """``gat.pt`` for the GAT, ``classifier_<kind>.pt`` for the comparisons."""
    return run_dir(cfg) / ("gat.pt" if kind == "gat" else f"classifier_{kind}.pt")


def ensure_label_classifier(cfg: Config, kind: str = "gat", force: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train (or load) a label classifier on the frozen image and text CLIP features of the run.

    One classifier serves both modalities (as in EGATH, H is shared): it is trained on the
    image and the text vectors of the training items together. Tensors: ``state.*`` (the
    model), ``ap_image`` / ``ap_text`` (C) per-label AP on the query split, ``history_loss``,
    ``history_val_map``; meta: ``kind``, ``map_image``, ``map_text``, ``best_epoch``, ...
    """
    features, graph = _load_inputs(cfg)
    key = _digest(features["key"], graph["key"], kind, cfg.key(CLASSIFIER_FIELDS))

    def compute():
        ft, gt = features["tensors"], graph["tensors"]
        split = _split(features)
        img, txt, L = ft["image_emb"].float(), ft["text_emb"].float(), ft["labels"].float()
        X = {s: torch.cat([img[split[s]], txt[split[s]]]) for s in ("train", "val")}
        Y = {s: torch.cat([L[split[s]], L[split[s]]]) for s in ("train", "val")}
        model, hist = train_label_classifier(kind, cfg, X, Y, gt, progress)
        q = split["query"]
        ap_image = label_average_precision(predict_scores(model, img[q], gt), L[q])
        ap_text = label_average_precision(predict_scores(model, txt[q], gt), L[q])
        tensors = {f"state.{k}": v for k, v in model.state_dict().items()}
        tensors.update(ap_image=ap_image.float(), ap_text=ap_text.float(),
                       history_loss=torch.tensor(hist["loss"]), history_val_map=torch.tensor(hist["val_map"]))
        meta = dict(kind=kind, feature_dim=int(img.shape[1]), map_image=float(ap_image.mean()),
                    map_text=float(ap_text.mean()), best_epoch=int(hist["best_epoch"]),
                    best_val_map=float(hist["best_val_map"]), train_seconds=float(hist["train_seconds"]),
                    label_names=list(features["meta"].get("label_names", [])))
        return tensors, meta

    def compute_one_thread():
        with _cpu_threads(1):
            return compute()

    return cached_artifact(classifier_path(cfg, kind), "label_classifier", key, compute_one_thread, cfg,
                           required=("ap_image", "ap_text", "history_loss"), force=force)


def ensure_gat(cfg: Config, force: bool = False, progress: bool = True) -> dict[str, Any]:
    """The GAT label classifier of notebook 03 → ``runs/<run>/gat.pt``."""
    return ensure_label_classifier(cfg, "gat", force=force, progress=progress)


def load_label_classifier(cfg: Config, payload: dict[str, Any], label_emb: torch.Tensor) -> FrozenFeatureClassifier:
    """Rebuild the classifier stored in an ``ensure_label_classifier`` payload (eval mode)."""
    state = _state_from(payload)
    model = build_label_classifier(payload["meta"]["kind"], cfg, int(payload["meta"]["feature_dim"]), label_emb)
    _load_state(model, state, "label classifier")
    return model.eval()


# --------------------------------------------------------------------------- EGATH hash learning (04)
def variant_settings(cfg: Config) -> dict[str, Any]:
    """Loss weights and model switches of ``cfg.variant``."""
    if cfg.variant not in VARIANTS:
        raise ValueError(f"unknown variant {cfg.variant!r}; choose one of {', '.join(VARIANTS)}")
    settings = dict(classifier="gat", text_input="bow", w_cosine=cfg.w_cosine, w_triplet=cfg.w_triplet,
                    w_cls=cfg.w_cls, w_quant=cfg.w_quant)
    settings.update(VARIANTS[cfg.variant])
    return settings


def build_egath(cfg: Config, bits: int, image_dim: int, text_dim: int, graph: dict[str, torch.Tensor],
                image_backbone: nn.Module | None = None) -> EGATH:
    """EGATH (or the ablation ``cfg.variant``) for ``bits``-bit codes."""
    s = variant_settings(cfg)
    return EGATH(image_dim, text_dim, graph["label_emb"], graph["edge_index"], graph.get("edge_weight"), bits,
                 hidden_dim=cfg.hidden_dim, text_input=s["text_input"], classifier=s["classifier"],
                 trans_tokens=cfg.trans_tokens, trans_width=cfg.trans_width, trans_layers=cfg.trans_layers,
                 trans_heads=cfg.trans_heads, trans_dropout=cfg.trans_dropout, gat_hidden=cfg.gat_hidden, gat_layers=cfg.gat_layers,
                 gat_heads=cfg.gat_heads, gat_dropout=cfg.gat_dropout, gat_negative_slope=cfg.gat_negative_slope,
                 label_fusion=cfg.label_fusion, image_backbone=image_backbone, gat_bias=cfg.gat_bias,
                 gat_input_dropout=cfg.gat_input_dropout, gat_init_gain=cfg.gat_init_gain,
                 gat_label_bias=cfg.gat_label_bias)


@dataclass
class HashData:
    """Inputs of hash learning: image inputs (N, D) or pixels, text inputs (N, V|D), labels (N, C), split."""

    image: torch.Tensor
    text: torch.Tensor
    labels: torch.Tensor
    split: dict[str, torch.Tensor]


def egath_losses(out: dict[str, torch.Tensor], Y: torch.Tensor, B: torch.Tensor, cfg: Config,
                 weights: dict[str, float]) -> dict[str, torch.Tensor]:
    """The four weighted terms and their sum for one batch (see egath_lite.losses).

    The batch is validated once here; the terms then skip their own checks (speed: the
    loop is dominated by per-operation overhead on a CPU).
    """
    h_i, h_t = out["h_image"], out["h_text"]
    for name in ("h_image", "h_text", "logits_image", "logits_text"):
        if not torch.isfinite(out[name]).all():
            raise FloatingPointError(f"{name} became NaN/Inf; lower the learning rate (lr={cfg.lr})")
    if h_i.shape != B.shape or h_t.shape != B.shape or Y.shape != out["logits_image"].shape:
        raise ValueError(f"batch shapes disagree: h {tuple(h_i.shape)}, B {tuple(B.shape)}, Y {tuple(Y.shape)}")
    zero = h_i.sum() * 0.0
    # the pairs (I,T), (I,I), (T,T) [and (T,I) for triplets] share the batch's labels: stack them, one pass each
    anchors, targets = torch.stack([h_i, h_i, h_t, h_t]), torch.stack([h_t, h_i, h_t, h_i])
    terms = {
        # inter- and intra-modal similarity preservation: mean over I–T, I–I, T–T
        "cosine": cosine_similarity_loss(anchors[:3], targets[:3], Y, Y, validate=False) if weights["w_cosine"] else zero,
        # cross-modal triplets both ways plus intra-modal ones, as in GCDH: mean over I→T, I→I, T→T, T→I
        "triplet": triplet_loss(anchors, targets, Y, Y, cfg.alpha, validate=False) if weights["w_triplet"] else zero,
        "cls": (classification_loss(out["logits_image"], Y, validate=False)
                + classification_loss(out["logits_text"], Y, validate=False)) / 2,
        "quant": (quantization_loss(h_i, B, validate=False) + quantization_loss(h_t, B, validate=False)) / 2,
    }
    terms["total"] = (weights["w_cosine"] * terms["cosine"] + weights["w_triplet"] * terms["triplet"]
                      + weights["w_cls"] * terms["cls"] + weights["w_quant"] * terms["quant"])
    return terms


@torch.no_grad()
def validation_map(model: EGATH, data: HashData, query: torch.Tensor, retrieval: torch.Tensor) -> tuple[float, float]:
    """(I→T, T→I) mAP@all of ``query`` items against ``retrieval`` items."""
    qi, qt = model.encode(data.image[query], "image"), model.encode(data.text[query], "text")
    ri, rt = model.encode(data.image[retrieval], "image"), model.encode(data.text[retrieval], "text")
    qL, rL = data.labels[query], data.labels[retrieval]
    return retrieval_map(qi, rt, qL, rL), retrieval_map(qt, ri, qL, rL)


def train_egath(cfg: Config, bits: int, data: HashData, graph: dict[str, torch.Tensor],
                image_backbone: nn.Module | None = None, progress: bool = True,
                on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> tuple[EGATH, dict[str, Any]]:
    """Train EGATH / an ablation on the training items; keep the epoch with the best validation mAP.

    Adam (weight decay ``cfg.weight_decay``), batches of ``cfg.hash_batch_size``, learning
    rate decayed geometrically from ``cfg.lr`` to ``cfg.lr_min`` over ``cfg.epochs`` (GCDH's
    schedule), GCDH's discrete code step after each epoch, early stop after
    ``cfg.early_stop_patience`` epochs without a better validation mAP (mean of I→T, T→I).
    ``seconds_per_epoch`` is the median epoch time (training steps and code step, without
    validation), so one-off start-up costs of the first epoch do not count. CPU work runs
    on one thread (see ``_cpu_threads``).
    """
    with _cpu_threads(1):
        return _train_egath(cfg, bits, data, graph, image_backbone, progress, on_epoch)


def _train_egath(cfg, bits, data, graph, image_backbone, progress, on_epoch):
    if cfg.epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {cfg.epochs}")
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    weights = variant_settings(cfg)
    text_dim = data.text.shape[1]
    image_dim = data.image.shape[1] if image_backbone is None else int(image_backbone.output_dim)
    model = build_egath(cfg, bits, image_dim, text_dim, graph, image_backbone).to(device)
    backbone = set(map(id, model.image_backbone.parameters())) if image_backbone is not None else set()
    groups = [{"params": [p for p in model.parameters() if id(p) not in backbone], "lr": cfg.lr}]
    if backbone:  # a pretrained tower moves more slowly than the fresh layers on top of it
        groups.append({"params": list(model.image_backbone.parameters()), "lr": cfg.lr * cfg.finetune_lr_scale})
    # fused Adam: one kernel for all parameters instead of ~10 small ops per tensor (CPU and CUDA)
    opt = torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=device.type in ("cpu", "cuda"))
    gamma = (cfg.lr_min / cfg.lr) ** (1.0 / cfg.epochs)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma)
    train_idx = data.split["train"]
    Ytr = data.labels[train_idx].float()
    gen = torch.Generator().manual_seed(cfg.seed)
    # shared binary codes of the training items, GCDH-style: random start, updated per epoch
    B = torch.where(torch.rand(len(train_idx), bits, generator=gen) < 0.5, -1.0, 1.0)
    H_i, H_t = torch.zeros(len(train_idx), bits), torch.zeros(len(train_idx), bits)
    names = ("total", "cosine", "triplet", "cls", "quant")
    hist: dict[str, list[float]] = {f"loss_{n}" if n != "total" else "loss": [] for n in names}
    hist.update(val_map_i2t=[], val_map_t2i=[], lr=[], epoch_seconds=[], epoch_cpu_seconds=[])
    best_score, best_epoch, best_state, stale = -1.0, -1, None, 0
    t_start = time.perf_counter()
    bar = tqdm(range(cfg.epochs), desc=f"{cfg.variant} {bits} bits", disable=not progress)
    for epoch in bar:
        t0, c0 = time.perf_counter(), time.process_time()
        model.train()
        perm = torch.randperm(len(train_idx), generator=gen)
        sums = dict.fromkeys(names, 0.0)
        for i in range(0, len(perm), cfg.hash_batch_size):
            pos = perm[i:i + cfg.hash_batch_size]
            if len(pos) < 2:  # a triplet or a similarity needs two items
                continue
            items = train_idx[pos]
            Y = Ytr[pos].to(device)
            out = model(data.image[items].to(device), data.text[items].to(device))
            terms = egath_losses(out, Y, B[pos].to(device), cfg, weights)
            opt.zero_grad()
            terms["total"].backward()
            opt.step()
            H_i[pos], H_t[pos] = out["h_image"].detach().cpu(), out["h_text"].detach().cpu()
            for n in names:
                sums[n] += terms[n].item() * len(pos)
        B = discrete_code_step(Ytr, H_i, H_t, B, cfg.mu)
        hist["lr"].append(opt.param_groups[0]["lr"])
        sched.step()
        hist["epoch_seconds"].append(time.perf_counter() - t0)
        hist["epoch_cpu_seconds"].append(time.process_time() - c0)  # CPU time of this process: robust to a busy machine
        for n in names:
            hist["loss" if n == "total" else f"loss_{n}"].append(sums[n] / len(train_idx))
        if not math.isfinite(hist["loss"][-1]):
            raise FloatingPointError(f"loss became {hist['loss'][-1]} at epoch {epoch}; lower lr (now {cfg.lr})")
        i2t, t2i = validation_map(model, data, data.split["val"], train_idx)
        hist["val_map_i2t"].append(i2t)
        hist["val_map_t2i"].append(t2i)
        score = (i2t + t2i) / 2
        if score > best_score:
            best_score, best_epoch, stale = score, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
        bar.set_postfix(loss=f"{hist['loss'][-1]:.3f}", val_i2t=f"{i2t:.3f}", val_t2i=f"{t2i:.3f}")
        if on_epoch is not None:
            on_epoch(epoch, {k: v[-1] for k, v in hist.items()})
        if stale >= cfg.early_stop_patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    hist_out: dict[str, Any] = dict(hist)
    hist_out.update(best_epoch=best_epoch, val_map=best_score, train_seconds=time.perf_counter() - t_start,
                    seconds_per_epoch=float(np.median(hist["epoch_seconds"])),
                    cpu_seconds_per_epoch=float(np.median(hist["epoch_cpu_seconds"])), epochs_run=len(hist["loss"]))
    return model, hist_out


def codes_path(cfg: Config, bits: int) -> Path:
    """``runs/<run>/codes_<variant>_<bits>.pt``."""
    return run_dir(cfg) / f"codes_{cfg.variant}_{bits}.pt"


def checkpoint_path(cfg: Config, bits: int) -> Path:
    """``runs/<run>/egath_<variant>_<bits>.pt`` (model state dict)."""
    return run_dir(cfg) / f"egath_{cfg.variant}_{bits}.pt"


def hash_data(cfg: Config, features: dict[str, Any]) -> HashData:
    """Image / text inputs of ``cfg.variant`` from the features payload (uint8 pixels when fine-tuning CLIP)."""
    t = features["tensors"]
    text = t["text_emb"] if variant_settings(cfg)["text_input"] == "clip" else t["bow"]
    image = t["image_emb"].float()
    if cfg.finetune_clip:
        image = dataset_pixels(cfg, len(image))
    labels = t["labels"].float()
    empty = (labels.sum(1) == 0).nonzero().flatten()
    if len(empty):
        raise ValueError(f"{len(empty)} item(s) have no label (e.g. {empty[:3].tolist()}); rebuild the features")
    return HashData(image=image, text=text.float(), labels=labels, split=_split(features))


class CLIPImageBackbone(nn.Module):
    """Trainable CLIP image tower: uint8 images (n, H, W, 3) → L2-normalised CLIP vectors (n, D)."""

    def __init__(self, visual: nn.Module, mean: Any, std: Any, size: tuple[int, int]):
        super().__init__()
        self.visual = visual
        self.size = tuple(size)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        with torch.no_grad():
            was = visual.training
            visual.eval()
            self.output_dim = int(visual(torch.zeros(1, 3, *self.size)).shape[-1])
            visual.train(was)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (n, H, W, 3) at the model's input size → (n, D), the same preprocessing as the features stage."""
        if images.dtype != torch.uint8 or images.dim() != 4 or tuple(images.shape[1:3]) != self.size:
            raise ValueError(f"CLIP fine-tuning takes uint8 images (n, {self.size[0]}, {self.size[1]}, 3), "
                             f"got {images.dtype} {tuple(images.shape)}")
        x = images.permute(0, 3, 1, 2).float().div(255.0)
        return torch.nn.functional.normalize(self.visual((x - self.mean) / self.std), dim=-1)


def dataset_pixels(cfg: Config, n: int) -> torch.Tensor:
    """The run's images as a uint8 tensor (N, H, W, 3); fine-tuning needs an in-memory image set."""
    from .data import dataset_from_config

    images = getattr(dataset_from_config(cfg), "images", None)
    if images is None:
        raise ValueError(f"finetune_clip=True needs the images in memory (toy_nuswide); dataset {cfg.dataset!r} "
                         f"streams its images from disk, which this loop does not do yet: use finetune_clip=False")
    if len(images) != n:
        raise ValueError(f"the dataset has {len(images)} images but the features {n} rows; rebuild the features")
    return torch.from_numpy(np.ascontiguousarray(images))


def clip_image_backbone(cfg: Config, features: dict[str, Any]) -> CLIPImageBackbone:
    """The CLIP image tower the features were extracted with, as a trainable module (for ``finetune_clip``)."""
    from .features import load_clip, preprocess_config

    weights = features["meta"].get("clip_checkpoint") if cfg.clip_pretrained == "train" else cfg.clip_pretrained
    if cfg.clip_pretrained == "train" and not weights:
        raise ArtifactError("the features artifact does not name its tiny CLIP checkpoint; rebuild it with "
                            "ensure_features(cfg, force=True)")
    model, _, _ = load_clip(cfg.clip_model, weights, "cpu", seed=cfg.seed)
    pc = preprocess_config(model)
    return CLIPImageBackbone(model.visual, pc["mean"], pc["std"], pc["size"])


def ensure_codes(cfg: Config, bits: int, force: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train (or load) ``cfg.variant`` at ``bits`` bits; return the hash-code payload (see docs/architecture.md)."""
    bits = int(bits)
    variant_settings(cfg)  # unknown variant → clear error before any work
    features, graph = _load_inputs(cfg)
    key = _digest(features["key"], graph["key"], bits, cfg.key(HASH_FIELDS))
    ckpt = checkpoint_path(cfg, bits)

    def compute():
        data = hash_data(cfg, features)
        gt = graph["tensors"]
        backbone = clip_image_backbone(cfg, features) if cfg.finetune_clip else None
        model, hist = train_egath(cfg, bits, data, gt, backbone, progress)
        save_artifact(ckpt, "egath_checkpoint", key, dict(model.state_dict()),
                      meta=dict(variant=cfg.variant, bits=bits, best_epoch=int(hist["best_epoch"])), cfg=cfg)
        q, r = data.split["query"], data.split["retrieval"]
        tensors = {
            "query_image_codes": model.encode(data.image[q], "image"),
            "query_text_codes": model.encode(data.text[q], "text"),
            "retrieval_image_codes": model.encode(data.image[r], "image"),
            "retrieval_text_codes": model.encode(data.text[r], "text"),
            "query_labels": data.labels[q].to(torch.uint8),
            "retrieval_labels": data.labels[r].to(torch.uint8),
        }
        for name in ("loss", "loss_cosine", "loss_triplet", "loss_cls", "loss_quant", "val_map_i2t",
                     "val_map_t2i", "lr", "epoch_seconds", "epoch_cpu_seconds"):
            tensors[f"history_{name}"] = torch.tensor(hist[name], dtype=torch.float64)
        meta = dict(variant=cfg.variant, bits=bits, best_epoch=int(hist["best_epoch"]), val_map=float(hist["val_map"]),
                    train_seconds=float(hist["train_seconds"]), seconds_per_epoch=float(hist["seconds_per_epoch"]),
                    cpu_seconds_per_epoch=float(hist["cpu_seconds_per_epoch"]), threads=torch.get_num_threads(),
                    epochs_run=int(hist["epochs_run"]), checkpoint=str(ckpt), selected_on="validation",
                    device=str(resolve_device(cfg.device)))
        return tensors, meta

    def compute_one_thread():
        with _cpu_threads(1):
            return compute()

    payload = cached_artifact(codes_path(cfg, bits), "codes", key, compute_one_thread, cfg, required=CODE_TENSORS, force=force)
    if payload["cache_hit"] and not ckpt.is_file():
        raise ArtifactError(f"codes at {codes_path(cfg, bits)} exist but the checkpoint {ckpt} is missing; "
                            f"rerun with force=True to retrain")
    _check_codes(payload, bits)
    return payload


def _check_codes(payload: dict[str, Any], bits: int) -> None:
    """Codes must be int8 ±1 with ``bits`` columns and one label row per code row."""
    t = payload["tensors"]
    for name in CODE_TENSORS[:4]:
        c = t[name]
        if c.dtype != torch.int8 or c.dim() != 2 or c.shape[1] != bits or not ((c == 1) | (c == -1)).all():
            raise ArtifactError(f"{name} is not an int8 ±1 matrix with {bits} columns; delete the codes file and rerun")
    if len(t["query_image_codes"]) != len(t["query_labels"]) or len(t["retrieval_image_codes"]) != len(t["retrieval_labels"]):
        raise ArtifactError("codes and labels disagree on the number of items; delete the codes file and rerun")


def load_egath(cfg: Config, bits: int, graph: dict[str, torch.Tensor], image_dim: int, text_dim: int,
               image_backbone: nn.Module | None = None) -> EGATH:
    """Rebuild the checkpoint ``egath_<variant>_<bits>.pt`` (weights_only load, validated)."""
    payload = load_artifact(checkpoint_path(cfg, bits), "egath_checkpoint")
    model = build_egath(cfg, bits, image_dim, text_dim, graph, image_backbone)
    _load_state(model, payload["tensors"], "EGATH checkpoint")
    return model.eval()


def _state_from(payload: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {k[len("state."):]: v for k, v in payload["tensors"].items() if k.startswith("state.")}


def _load_state(model: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ArtifactError(f"{what} does not fit the configured model ({exc}); retrain it with force=True") from exc
