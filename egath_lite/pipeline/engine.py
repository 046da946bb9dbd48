"""The training engine around ``core.train.egath_epoch`` (notebook 04's library call; the cache is ``codes``).

``train_egath`` seeds everything, builds the model (``model_fn``, default ``build_egath``) and the loss
(``loss_fn``, default ``core.losses.egath_loss`` with the variant's weights), and runs ``egath_epoch`` with
what the paper's loop needs around it: Adam with GCDH's geometric learning-rate decay, mixed precision on
CUDA, images streamed from disk when the CLIP tower is fine-tuned, a resumable state after every epoch,
a per-epoch history, and the epoch with the best validation mAP (never the query set), with early stopping.
``egath_lite.pipeline.codes`` caches what it produces.
"""

from __future__ import annotations

import copy
import functools
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from egath_lite.clip.amp import autocast
from egath_lite.core.losses import egath_loss
from egath_lite.core.models import EGATH, CLIPImageBackbone, EncoderConfig, GATConfig, HashConfig
from egath_lite.core.train import DiscreteCodes, egath_epoch
from egath_lite.files import atomic_write_bytes
from egath_lite.pipeline.config import Config, component
from egath_lite.pipeline.results import training_split
from egath_lite.pipeline.variants import loss_config, variant_settings
from egath_lite.progress import tqdm
from egath_lite.utils import cpu_threads, resolve_device, seed_everything


def build_egath(
    cfg: Config,
    bits: int,
    image_dim: int,
    text_dim: int,
    graph: dict[str, torch.Tensor],
    image_backbone: nn.Module | None = None,
) -> EGATH:
    """EGATH (or the ablation ``cfg.variant``) for ``bits``-bit codes, from the run config's component configs."""
    s = variant_settings(cfg)
    return EGATH(
        image_dim,
        text_dim,
        graph["label_emb"],
        graph["edge_index"],
        graph.get("edge_weight"),
        bits,
        component(cfg, HashConfig),
        component(cfg, EncoderConfig),
        component(cfg, GATConfig),
        classifier=s["classifier"],
        text_input=s["text_input"],
        image_backbone=image_backbone,
    )


@dataclass
class HashData:
    """Inputs of hash learning: image inputs (N, D) or pixels, text inputs (N, V|D), labels (N, C), split."""

    image: torch.Tensor
    text: torch.Tensor
    labels: torch.Tensor
    split: dict[str, torch.Tensor]


@torch.no_grad()
def validation_map(
    model: EGATH, data: HashData, query: torch.Tensor, retrieval: torch.Tensor, images: tuple[Any, Any] | None = None
) -> tuple[float, float]:
    """(I→T, T→I) mAP@all of ``query`` items against ``retrieval`` items.

    ``images``: the image inputs of the query and retrieval items when they come from elsewhere than
    ``data.image`` (fine-tuning: ``decode_cache.CachedEvalImages``, decoded once).
    """
    q_img, r_img = images if images is not None else (data.image[query], data.image[retrieval])
    qi, qt = model.encode(q_img, "image"), model.encode(data.text[query], "text")
    ri, rt = model.encode(r_img, "image"), model.encode(data.text[retrieval], "text")
    qL, rL = data.labels[query], data.labels[retrieval]
    return retrieval_map(qi, rt, qL, rL), retrieval_map(qt, ri, qL, rL)


def train_egath(
    cfg: Config,
    bits: int,
    data: HashData,
    graph: dict[str, torch.Tensor],
    image_backbone: nn.Module | None = None,
    progress: bool = True,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    resume_path: str | os.PathLike | None = None,
    resume_key: str = "",
    loss_fn: Callable[..., dict[str, torch.Tensor]] | None = None,
    model_fn: Callable[..., nn.Module] | None = None,
) -> tuple[EGATH, dict[str, Any]]:
    """Train EGATH / an ablation on the training items; keep the epoch with the best validation mAP.

    Adam (weight decay ``cfg.weight_decay``), batches of ``cfg.hash_batch_size``, learning
    rate decayed geometrically from ``cfg.lr`` to ``cfg.lr_min`` over ``cfg.epochs`` (GCDH's
    schedule), GCDH's discrete code step after each epoch, early stop after
    ``cfg.early_stop_patience`` epochs without a better validation mAP (mean of I→T, T→I).
    With an ``image_backbone`` (``finetune_clip``) the CLIP image tower trains too, at
    ``lr × finetune_lr_scale``, from images streamed by the image pipeline with CLIP's train-time
    crops; on CUDA under autocast (bf16 where supported, else fp16 with a grad scaler).
    ``resume_path``: the whole training state is written there after every epoch (atomically)
    and a run that finds one with ``resume_key`` continues after its epoch, to the same result.
    ``seconds_per_epoch`` is the median epoch time (training steps and code step, without
    validation). CPU work runs on one thread (see ``utils.cpu_threads``).
    """
    with cpu_threads(1):
        return _train_egath(
            cfg, bits, data, graph, image_backbone, progress, on_epoch, resume_path, resume_key, loss_fn, model_fn
        )


RESUME_FORMAT = "egath_lite.hash_resume/1"


def validation_items(train_idx: torch.Tensor, size: int, seed: int) -> torch.Tensor:
    """The training items validation retrieves from: all (``size`` 0 or >= their count), else a fixed seeded sample.

    Drawn from its own generator (``numpy`` seeded by (seed, 0x7A1)), so the training's random streams are untouched.
    """
    if size <= 0 or size >= len(train_idx):
        return train_idx
    pick = np.sort(np.random.default_rng([int(seed), 0x7A1]).choice(len(train_idx), int(size), replace=False))
    return train_idx[torch.from_numpy(pick)]


def _train_egath(
    cfg, bits, data, graph, image_backbone, progress, on_epoch, resume_path, resume_key, loss_fn, model_fn
):
    if cfg.epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {cfg.epochs}")
    from egath_lite.pipeline import distributed

    seed_everything(cfg.seed)
    device = distributed.local_device(resolve_device(cfg.device))
    world = distributed.world_size()
    streamed = isinstance(data.image, StreamedImages)
    if streamed != (image_backbone is not None):
        raise ValueError("an image backbone needs streamed images (hash_data with the backbone) and vice versa")
    text_dim = data.text.shape[1]
    image_dim = data.image.shape[1] if image_backbone is None else int(image_backbone.output_dim)
    model = (model_fn or build_egath)(cfg, bits, image_dim, text_dim, graph, image_backbone).to(device)
    if world > 1:  # BatchNorm (CLIP's ResNet towers) normalises over the whole batch, not each rank's chunk
        model = distributed.global_batchnorm(model)
    loss_fn = loss_fn or functools.partial(egath_loss, cfg=loss_config(cfg))
    backbone = set(map(id, model.image_backbone.parameters())) if image_backbone is not None else set()
    groups = [{"params": [p for p in model.parameters() if id(p) not in backbone], "lr": cfg.lr}]
    if backbone:  # a pretrained tower moves more slowly than the fresh layers on top of it
        groups.append({"params": list(model.image_backbone.parameters()), "lr": cfg.lr * cfg.finetune_lr_scale})
    # fused Adam: one kernel for all parameters instead of ~10 small ops per tensor (CPU and CUDA)
    opt = torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=device.type in ("cpu", "cuda"))
    gamma = (cfg.lr_min / cfg.lr) ** (1.0 / cfg.epochs)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma)
    amp, needs_scaler = autocast(device, "auto")
    scaler = torch.amp.GradScaler("cuda", enabled=needs_scaler)

    # torchrun: DDP on each rank's chunk of every batch, the outputs gathered (pipeline.distributed.GatheredBatch)
    forward = model
    if world > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
        forward = distributed.GatheredBatch(ddp)

    def step(loss: torch.Tensor) -> None:  # core.train.plain_step, with the fp16 grad scaler on CUDA
        opt.zero_grad()
        # each rank backpropagates the whole batch's loss through its own rows; DDP averages over the ranks
        scaler.scale(loss * world if world > 1 else loss).backward()
        scaler.step(opt)
        scaler.update()

    train_idx = data.split["train"]
    Ytr = data.labels[train_idx].float()
    val_query = data.split["val"]
    val_retrieval = validation_items(train_idx, cfg.val_sample_size, cfg.seed)
    val_images, decoded = None, None
    if streamed:  # each image decoded once: training crops and validation inputs come from memory (decode_cache)
        if not distributed.is_main():
            distributed.barrier()  # torchrun: rank 0 writes the cache file, the others then read it
        decoded = data.image.decode_once(train_idx, torch.cat([val_query, val_retrieval]))
        if distributed.is_main():
            distributed.barrier()
        val_images = (
            decoded.eval_view(data.image.ids[val_query.numpy()]),
            decoded.eval_view(data.image.ids[val_retrieval.numpy()]),
        )
    gen = torch.Generator().manual_seed(cfg.seed)
    # shared binary codes of the training items, GCDH-style: random start, updated per epoch
    codes = DiscreteCodes.random(len(train_idx), bits, gen)
    names = ("loss", "val_map_i2t", "val_map_t2i", "lr", "epoch_seconds", "epoch_cpu_seconds")
    hist: dict[str, list[float]] = {name: [] for name in names}  # + loss_<term> for each term the loss returns
    best_score, best_epoch, best_state, stale, start_epoch = -1.0, -1, None, 0, 0
    state = load_resume(resume_path, RESUME_FORMAT, resume_key)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        scaler.load_state_dict(state["scaler"])
        codes = DiscreteCodes(state["B"], state["H_i"], state["H_t"])
        gen.set_state(state["gen"])
        torch.set_rng_state(state["rng"])
        hist = {k: list(v) for k, v in state["hist"].items()}
        best_score, best_epoch, stale = float(state["best_score"]), int(state["best_epoch"]), int(state["stale"])
        best_state, start_epoch = state["best_state"], int(state["epoch"]) + 1
        print(f"[codes] resuming training after epoch {start_epoch} of {cfg.epochs} from {resume_path}")
    t_start = time.perf_counter()
    bar = tqdm(range(start_epoch, cfg.epochs), desc=f"{cfg.variant} {bits} bits", disable=not progress)
    for epoch in bar:
        if best_state is not None and stale >= cfg.early_stop_patience:
            break  # the saved state had already stopped early
        t0, c0 = time.perf_counter(), time.process_time()
        perm = torch.randperm(len(train_idx), generator=gen)
        batches = [perm[i : i + cfg.hash_batch_size] for i in range(0, len(perm), cfg.hash_batch_size)]
        batches = [pos for pos in batches if len(pos) >= 2]  # a triplet or a similarity needs two items

        def inputs(batches=batches, epoch=epoch):
            for pos in batches:
                items = train_idx[pos]
                if streamed:  # each rank crops only the rows it runs (GatheredBatch takes a chunk as it is)
                    start, stop, _ = distributed.chunk_of(len(items))
                    x = decoded.crop_batch(data.image.ids[items[start:stop].numpy()], epoch, device)
                else:
                    x = data.image[items]
                yield pos, x.to(device), data.text[items].to(device)

        means = egath_epoch(forward, loss_fn, inputs(), Ytr, codes, opt, cfg.mu, step=step, autocast=amp)
        hist["lr"].append(opt.param_groups[0]["lr"])
        sched.step()
        hist["epoch_seconds"].append(time.perf_counter() - t0)
        hist["epoch_cpu_seconds"].append(time.process_time() - c0)  # CPU time of this process: robust to a busy machine
        for name, value in means.items():
            hist.setdefault("loss" if name == "total" else f"loss_{name}", []).append(value)
        if not math.isfinite(hist["loss"][-1]):
            raise FloatingPointError(f"loss became {hist['loss'][-1]} at epoch {epoch}; lower lr (now {cfg.lr})")
        i2t, t2i = validation_map(model, data, val_query, val_retrieval, val_images)
        hist["val_map_i2t"].append(i2t)
        hist["val_map_t2i"].append(t2i)
        score = (i2t + t2i) / 2
        if score > best_score:
            best_score, best_epoch, stale = score, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
        bar.set_postfix(loss=f"{hist['loss'][-1]:.3f}", val_i2t=f"{i2t:.3f}", val_t2i=f"{t2i:.3f}")
        if resume_path is not None and distributed.is_main():  # rank 0 alone writes
            save_resume(
                resume_path,
                RESUME_FORMAT,
                resume_key,
                epoch,
                model,
                opt,
                gen,
                hist,
                best_score,
                best_epoch,
                best_state,
                stale,
                sched=sched.state_dict(),
                scaler=scaler.state_dict(),
                B=codes.B,
                H_i=codes.H_image,
                H_t=codes.H_text,
            )
        distributed.barrier()
        if on_epoch is not None:
            on_epoch(epoch, {k: v[-1] for k, v in hist.items()})
        if stale >= cfg.early_stop_patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    return model, training_record(hist, best_epoch, best_score, t_start, start_epoch if state is not None else None)


def training_record(
    hist: dict[str, list[float]], best_epoch: int, best_score: float, t_start: float, resumed_after: int | None
) -> dict[str, Any]:
    """The per-epoch history plus the run's record: the kept epoch and its validation mAP, wall time since
    ``t_start``, median seconds per epoch (wall and CPU), epochs run, and the epoch it resumed after (or None)."""
    out: dict[str, Any] = dict(hist)
    out.update(
        best_epoch=best_epoch,
        val_map=best_score,
        train_seconds=time.perf_counter() - t_start,
        seconds_per_epoch=float(np.median(hist["epoch_seconds"])),
        cpu_seconds_per_epoch=float(np.median(hist["epoch_cpu_seconds"])),
        epochs_run=len(hist["loss"]),
        resumed_after_epoch=resumed_after,
    )
    return out


def save_resume(
    path, fmt: str, key: str, epoch: int, model, opt, gen, hist, best_score, best_epoch, best_state, stale, **extra
) -> None:
    """Everything a training loop needs to continue after ``epoch`` exactly as an uninterrupted run would: the
    model, optimiser, generator and torch RNG states, the history and the early-stopping record, plus ``extra``
    (the EGATH loop's scheduler, scaler and discrete codes; a comparison method's state). ``fmt`` names the loop."""
    state = {
        "format": fmt,
        "key": key,
        "epoch": epoch,
        "model": model.state_dict(),
        "opt": opt.state_dict(),
        "gen": gen.get_state(),
        "rng": torch.get_rng_state(),
        "hist": {k: [float(x) for x in v] for k, v in hist.items()},
        "best_score": float(best_score),
        "best_epoch": int(best_epoch),
        "best_state": best_state,
        "stale": int(stale),
        **extra,
    }
    atomic_write_bytes(path, lambda f: torch.save(state, f))


def load_resume(path, fmt: str, key: str) -> dict[str, Any] | None:
    """A valid resume state of this loop (``fmt``) and key, or None: the file is untrusted (weights_only), and a
    foreign or damaged one is reported and ignored, so training starts over."""
    if path is None or not Path(path).is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - untrusted file: any failure means start over
        print(f"[codes] ignoring {path}: unreadable ({type(exc).__name__}); training from the start")
        return None
    if not isinstance(state, dict) or state.get("format") != fmt or state.get("key") != key:
        print(f"[codes] ignoring {path}: made by another configuration; training from the start")
        return None
    return state


class StreamedImages:
    """The images of items ``ids`` of a data set, decoded on demand by the image pipeline (never all in memory).

    ``view[idx]`` is another view (of those items); ``iter_batches`` yields model inputs float
    (B, 3, S, S), normalised, on ``device``: CLIP's eval preprocessing, or its seeded train-time
    crops (``train=True``), decoded by DataLoader workers. In-memory toy images take the same path.
    ``decode_once`` decodes items once into a ``decode_cache.DecodedImages`` (a keyed file in ``cache_dir``
    when given: ``cache_key`` names the data it was made from), which fine-tuning takes its crops from.
    """

    def __init__(
        self,
        ds: Any,
        prep: Any,
        seed: int,
        num_workers: int | None,
        device: Any,
        decoder: str = "auto",
        ids: np.ndarray | None = None,
        cache_dir: str | os.PathLike | None = None,
        cache_key: str = "",
    ):
        self.ds, self.prep, self.seed, self.num_workers, self.device, self.decoder = (
            ds,
            prep,
            seed,
            num_workers,
            device,
            decoder,
        )
        self.ids = np.arange(len(ds), dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
        self.cache_dir, self.cache_key = cache_dir, cache_key

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, idx: Any) -> StreamedImages:
        idx = np.asarray(idx.cpu() if isinstance(idx, torch.Tensor) else idx, dtype=np.int64)
        return StreamedImages(
            self.ds,
            self.prep,
            self.seed,
            self.num_workers,
            self.device,
            self.decoder,
            self.ids[idx],
            self.cache_dir,
            self.cache_key,
        )

    def decode_once(self, crop_positions: Any, eval_positions: Any) -> Any:
        """A ``decode_cache.DecodedImages`` of the items at ``crop_positions`` (train crops) and ``eval_positions``."""
        from egath_lite.clip.decode_cache import decode_images

        def ids(positions):
            p = positions.cpu().numpy() if isinstance(positions, torch.Tensor) else np.asarray(positions)
            return self.ids[p.astype(np.int64)]

        return decode_images(
            self.ds,
            ids(crop_positions),
            ids(eval_positions),
            self.prep,
            seed=self.seed,
            device=self.device,
            decoder=self.decoder,
            num_workers=self.num_workers,
            folder=self.cache_dir,
            key=self.cache_key,
        )

    def iter_batches(
        self, batch_size: int, epoch: int = 0, train: bool = False, batches: list[list[int]] | None = None
    ):
        """Yield float (b, 3, S, S) model inputs of ``batches`` (positions in this view; default: in order)."""
        from egath_lite.clip.images import ImageItems, main_threads_beside_workers, make_image_loader, to_model_input

        items = ImageItems(self.ds, self.ids, self.prep, decoder=self.decoder, train=train, seed=self.seed)
        if batches is None:
            batches = [list(range(s, min(s + batch_size, len(self)))) for s in range(0, len(self), batch_size)]
        if not batches:
            return
        loader = make_image_loader(items, batch_size, self.num_workers, self.device, batches=batches)
        loader.batch_sampler.set_epoch(epoch)
        with main_threads_beside_workers(loader.num_workers, self.device):
            for want, batch in zip(batches, loader):
                positions, x, errors = to_model_input(batch, items, self.device)
                if errors:
                    listed = "; ".join(f"item {e.item} {e.path}: {e.reason}" for e in errors[:10])
                    raise ValueError(
                        f"{len(errors)} image(s) cannot be read during fine-tuning ({listed}); "
                        f"the features stage reports them all: fix the files and rerun"
                    )
                order = {p: i for i, p in enumerate(positions.tolist())}
                yield x[[order[p] for p in want]]


def hash_data(cfg: Config, features: dict[str, Any], image_backbone: CLIPImageBackbone | None = None) -> HashData:
    """Image / text inputs of ``cfg.variant`` from the features payload; with a backbone, the images stream from the data set."""
    t = features["tensors"]
    text = t["text_emb"] if variant_settings(cfg)["text_input"] == "clip" else t["bow"]  # bow: uint8 0/1
    image: Any = t["image_emb"].float()
    if image_backbone is not None:
        from egath_lite.data import dataset_from_config

        ds = dataset_from_config(cfg)
        if len(ds) != len(image):
            raise ValueError(
                f"the data set has {len(ds)} items but the features {len(image)} rows; "
                f"recompute the features (ensure_features(cfg, force=True))"
            )
        from egath_lite.pipeline.artifacts import run_dir

        image = StreamedImages(
            ds,
            image_backbone.prep,
            cfg.seed,
            cfg.num_workers,
            resolve_device(cfg.device),
            cfg.image_decoder,
            cache_dir=run_dir(cfg),
            cache_key=str(features.get("key", "")),
        )
    labels = t["labels"].float()
    empty = (labels.sum(1) == 0).nonzero().flatten()
    if len(empty):
        raise ValueError(f"{len(empty)} item(s) have no label (e.g. {empty[:3].tolist()}); rebuild the features")
    return HashData(image=image, text=text.float(), labels=labels, split=training_split(features))


def clip_image_backbone(cfg: Config) -> CLIPImageBackbone:
    """The CLIP image tower the features were extracted with, as a trainable module (for ``finetune_clip``)."""
    from egath_lite.clip.images import Preprocess
    from egath_lite.clip.weights import load_clip
    from egath_lite.pipeline.features import resolve_pretrained

    weights, _ = resolve_pretrained(cfg, progress=False)  # the tiny CLIP stage's checkpoint, or the tag/file
    model, _, _ = load_clip(cfg.clip_model, weights, "cpu", seed=cfg.seed)
    if cfg.grad_checkpointing:
        if not hasattr(model.visual, "set_grad_checkpointing"):
            raise ValueError(
                f"{cfg.clip_model}'s image tower has no gradient checkpointing; set grad_checkpointing=False"
            )
        model.visual.set_grad_checkpointing(True)
    return CLIPImageBackbone(model.visual, Preprocess.from_model(model))


def retrieval_map(qB: torch.Tensor, rB: torch.Tensor, qL: torch.Tensor, rL: torch.Tensor) -> float:
    """mAP@all by Hamming ranking (``egath_lite.metrics``: stable ties, queries without a relevant item skipped).

    Always the numpy kernel: validation sets are small, and numba's OpenMP worker threads
    keep spinning after a parallel call, which slowed the following torch training steps
    about 20-fold on a 2-core machine (measured: 58 → 1,091 ms CPU per step).
    """
    from egath_lite.metrics import mean_average_precision

    return float(mean_average_precision(qB, rB, qL, rL, backend="numpy"))
