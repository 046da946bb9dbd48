"""Notebook 04: EGATH hash learning on the run's features and label graph (the loop, not the cache).

``train_egath`` seeds everything, shows a progress bar, keeps a per-epoch history and selects
the epoch with the best validation mAP (never the query set). ``egath_lite.codes`` caches what
it produces.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
from .progress import tqdm

from .config import Config
from .features import training_split
from .losses import discrete_code_step, egath_losses
from .models import EGATH, CLIPImageBackbone
from .utils import cpu_threads, resolve_device, seed_everything
from .variants import variant_settings


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
    on one thread (see ``utils.cpu_threads``).
    """
    with cpu_threads(1):
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


def hash_data(cfg: Config, features: dict[str, Any]) -> HashData:
    """Image / text inputs of ``cfg.variant`` from the features payload (uint8 pixels when fine-tuning CLIP)."""
    t = features["tensors"]
    text = t["text_emb"] if variant_settings(cfg)["text_input"] == "clip" else t["bow"]  # bow: uint8 0/1
    image = t["image_emb"].float()
    if cfg.finetune_clip:
        image = dataset_pixels(cfg, len(image))
    labels = t["labels"].float()
    empty = (labels.sum(1) == 0).nonzero().flatten()
    if len(empty):
        raise ValueError(f"{len(empty)} item(s) have no label (e.g. {empty[:3].tolist()}); rebuild the features")
    return HashData(image=image, text=text.float(), labels=labels, split=training_split(features))


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
    from .clip_weights import load_clip
    from .encode import preprocess_config
    from .features import resolve_pretrained

    weights, _ = resolve_pretrained(cfg, progress=False)  # the tiny CLIP stage's checkpoint, or the tag/file
    model, _, _ = load_clip(cfg.clip_model, weights, "cpu", seed=cfg.seed)
    pc = preprocess_config(model)
    return CLIPImageBackbone(model.visual, pc["mean"], pc["std"], pc["size"])


def retrieval_map(qB: torch.Tensor, rB: torch.Tensor, qL: torch.Tensor, rL: torch.Tensor) -> float:
    """mAP@all by Hamming ranking (``egath_lite.metrics``: stable ties, queries without a relevant item skipped).

    Always the numpy kernel: validation sets are small, and numba's OpenMP worker threads
    keep spinning after a parallel call, which slowed the following torch training steps
    about 20-fold on a 2-core machine (measured: 58 → 1,091 ms CPU per step).
    """
    from .metrics import mean_average_precision

    return float(mean_average_precision(qB, rB, qL, rL, backend="numpy"))

