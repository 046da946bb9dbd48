"""The offline tiny CLIP's training: open_clip's contrastive loss on the toy training pairs.

``train_tiny_clip`` trains an open_clip model (the shipped ``egath-tiny-clip`` config) from random
initialisation; ``PREPROCESS_VERSION`` names how pixels and tags become model inputs (part of every
CLIP stage's key). The stage that caches the checkpoint is ``egath_lite.pipeline.tiny_clip``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from egath_lite.clip.amp import autocast
from egath_lite.clip.encode import (
    _check_batch_size,
    _check_images,
    _check_texts,
    _model_device,
    _sync,
    images_to_tensor,
)
from egath_lite.progress import tqdm


# --------------------------------------------------------------------------- tiny CLIP training
def train_tiny_clip(
    model: torch.nn.Module,
    images: np.ndarray,
    texts: Sequence[str],
    tokenizer: Callable,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int = 0,
    weight_decay: float = 0.1,
    warmup_fraction: float = 0.1,
    progress: bool = True,
    on_epoch_end: Callable[[int, torch.nn.Module], dict[str, float]] | None = None,
    augment: bool = True,
) -> dict[str, Any]:
    """Contrastive training (open_clip's ClipLoss) on paired uint8 images (N, S, S, 3) and tag strings, in place.

    AdamW with linear warm-up and cosine decay; returns the history (per-step loss, per-epoch loss and seconds).
    ``on_epoch_end(epoch, model)`` may return numbers (e.g. a validation mAP) kept in ``history["epoch_eval"]``.
    ``augment``: shuffle each tag list and flip images left-right at random (seeded), since tags are a set
    and the scenes have no handedness; this lets a few thousand pairs go further.
    """
    from open_clip.loss import ClipLoss

    _check_images(images)
    _check_texts(texts, len(images))
    if len(images) < 2:
        raise ValueError("contrastive training needs at least 2 image-text pairs")
    if not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"clip_epochs must be an int >= 1, got {epochs!r}")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"clip_lr must be a positive number, got {lr!r}")
    _check_batch_size(batch_size)
    device = _model_device(model)
    batch_size = min(batch_size, len(images))
    steps_per_epoch = len(images) // batch_size  # drop the ragged tail: a tiny last batch is a weak contrast
    total = epochs * steps_per_epoch
    warmup = max(1, int(warmup_fraction * total))
    # No weight decay on gains, biases, embeddings of position and the temperature (as open_clip's trainer).
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (
            no_decay
            if p.ndim < 2 or "logit_scale" in name or "positional" in name or "class_embedding" in name
            else decay
        ).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, 0.98),
        eps=1e-6,
        # fused: one kernel for all tensors, ~10x faster than the loop on a CPU, where
        # the 6.3 M-entry token embedding otherwise makes the update a third of each step
        fused=device.type in ("cpu", "cuda"),
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (
            (s + 1) / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, total - warmup)))
        ),
    )
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    loss_fn = ClipLoss()
    gen = torch.Generator().manual_seed(seed)
    tokens_all = None if augment else tokenizer(list(texts))
    rng = np.random.default_rng(seed)
    history: dict[str, Any] = {
        "step_loss": [],
        "epoch_loss": [],
        "epoch_seconds": [],
        "steps_per_epoch": steps_per_epoch,
        "num_pairs": int(len(images)),
        "batch_size": batch_size,
        "lr": lr,
        "epochs": epochs,
        "augment": augment,
    }
    model.train()
    bar = tqdm(total=total, desc="tiny CLIP training", disable=not progress, leave=False)
    for epoch in range(epochs):
        t0 = time.perf_counter()
        order = torch.randperm(len(images), generator=gen).numpy()
        losses = []
        for step in range(steps_per_epoch):
            idx = np.sort(order[step * batch_size : (step + 1) * batch_size])
            x = images_to_tensor(images[idx], model)
            if augment:
                flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
                x[flip] = x[flip].flip(-1)
                t = tokenizer([_shuffle_tags(texts[i], rng) for i in idx])
            else:
                t = tokens_all[idx]
            x, t = x.to(device), t.to(device)
            with autocast(device)[0]:
                loss = loss_fn(
                    model.encode_image(x, normalize=True), model.encode_text(t, normalize=True), model.logit_scale.exp()
                )
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"tiny CLIP loss became {loss.item()} at epoch {epoch}, step {step}; lower clip_lr"
                )
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            with torch.no_grad():  # CLIP's temperature cap: logit scale at most 100
                model.logit_scale.clamp_(0, math.log(100))
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
        _sync(device)
        history["epoch_seconds"].append(time.perf_counter() - t0)
        history["epoch_loss"].append(float(np.mean(losses)))
        history["step_loss"].extend(float(v) for v in losses)
        if on_epoch_end is not None:
            recalibrate_batchnorm(model, images, batch_size)  # so the evaluation sees what the final model will do
            model.eval()
            history.setdefault("epoch_eval", []).append(dict(on_epoch_end(epoch, model)))
            model.train()
    bar.close()
    history["bn_recalibration_items"] = recalibrate_batchnorm(model, images, batch_size)
    model.eval()
    history["seconds"] = float(sum(history["epoch_seconds"]))
    history["seconds_per_epoch"] = history["seconds"] / epochs
    return history


@torch.no_grad()
def recalibrate_batchnorm(
    model: torch.nn.Module, images: np.ndarray, batch_size: int = 256, max_items: int = 4096
) -> int:
    """Reset BatchNorm running statistics to exact averages over (up to max_items) training images; returns the count.

    The tiny CLIP's ResNet image tower normalises with batch statistics while training but with running
    averages at test time; after a few dozen steps those averages still lag far behind the weights, and
    eval-mode embeddings are then much worse than the trained model (precise BN, Wu & Johnson 2021).
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    device = _model_device(model)
    was_training = model.training
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    model.visual.train()
    n = min(len(images), max_items)
    for start in range(0, n, batch_size):
        x = images_to_tensor(images[start : min(start + batch_size, n)], model).to(device)
        with autocast(device)[0]:
            model.visual(x)
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    model.train(was_training)
    return n


def _shuffle_tags(text: str, rng: np.random.Generator) -> str:
    tags = text.split()
    return " ".join(tags[i] for i in rng.permutation(len(tags)))


# --------------------------------------------------------------------------- the stage
# Bumped whenever the way pixels/tags become model inputs changes: it is part of every CLIP stage's key.
PREPROCESS_VERSION = (
    "v2:uint8 -> antialiased resize (model interpolation) + centre crop on tensors (egath_lite.clip.images)"
    " -> [0,1] -> clip mean/std; tags tokenised+truncated"
)
