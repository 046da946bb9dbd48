"""Stage 1: CLIP features. Load an open_clip model (tag, local checkpoint, or the offline tiny CLIP),
train the tiny CLIP contrastively on the toy training split, and extract cached embeddings.

The artifact ``runs/<run>/features.pt`` (kind ``features``) holds L2-normalised image and
text embeddings, the bag-of-words, labels and the split (see docs/architecture.md).
"""
from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import math
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .artifacts import atomic_write_bytes, cached_artifact, run_dir
from .config import Config
from .utils import resolve_device

MODEL_CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"
TINY_CLIP = "egath-tiny-clip"
# Bumped whenever the way pixels/tags become model inputs changes: it is part of the cache key.
PREPROCESS_VERSION = "v1:uint8->[0,1]->clip-mean/std; PIL preprocess when resizing; tags tokenised+truncated"
TINY_CLIP_FORMAT = "egath_lite.tiny_clip/1"
FEATURE_TENSORS = ("image_emb", "text_emb", "bow", "labels", "query_idx", "train_idx", "val_idx", "retrieval_idx")
# The config fields that decide which items, labels, tags and split the features describe.
DATA_FIELDS = ("dataset", "data_root", "toy_size", "image_size", "seed", "num_query", "num_train",
               "split_seed", "val_fraction", "vocab_size")
TINY_CLIP_FIELDS = tuple(f for f in DATA_FIELDS if f != "vocab_size") + (
    "clip_model", "clip_epochs", "clip_lr", "clip_batch_size")
_RANDOM_INIT = (None, "", "none", "random")


class ClipWeightsError(RuntimeError):
    """Pretrained CLIP weights cannot be had here (offline, unknown tag, missing or unfit file)."""


# --------------------------------------------------------------------------- loading
def register_model_configs() -> None:
    """Register the model configs shipped in egath_lite/model_configs with open_clip (idempotent)."""
    import open_clip
    from open_clip import factory

    if MODEL_CONFIG_DIR not in factory._MODEL_CONFIG_PATHS:
        open_clip.add_model_config(MODEL_CONFIG_DIR)


def _check_model_name(model_name: str) -> None:
    import open_clip

    register_model_configs()
    if model_name.startswith(("hf-hub:", "local-dir:")) or model_name in open_clip.list_models():
        return
    close = difflib.get_close_matches(model_name, open_clip.list_models(), n=5)
    raise ValueError(
        f"unknown open_clip model {model_name!r}; close names: {close or 'none'}. "
        f"Use {TINY_CLIP!r} offline or e.g. 'ViT-B-32' (see open_clip.list_models())"
    )


def hub_cache_dir() -> str:
    """Where open_clip's Hugging Face downloads are cached (HF_HUB_CACHE / HF_HOME)."""
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def _hub_reachable(timeout: float = 3.0) -> bool:
    """One TCP connect to the hub: a closed network answers in seconds, not after minute-long retries."""
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _hub_offline_unless_reachable():
    """Inside the block the hub serves cached files only, unless it is reachable and offline mode is not set.

    huggingface_hub reads HF_HUB_OFFLINE once at import, so the flag is set on its constants module;
    every open_clip tag is fetched through the hub, so a missing weight then fails at once.
    """
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE
    offline = bool(saved) or os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0") or not _hub_reachable()
    constants.HF_HUB_OFFLINE = offline
    try:
        yield offline
    finally:
        constants.HF_HUB_OFFLINE = saved


def _weights_help(model_name: str, pretrained: str) -> str:
    return (
        f"How to provide them: (1) on a connected machine or Colab run "
        f"`python -c \"import open_clip; open_clip.create_model_and_transforms('{model_name}', pretrained='{pretrained}')\"` "
        f"and copy the Hugging Face cache folder {hub_cache_dir()} (set HF_HOME/HF_HUB_CACHE to move it) to this machine; "
        f"(2) or pass a local checkpoint file as PRETRAINED='/path/to/open_clip_pytorch_model.bin' "
        f"(OpenAI weights from a file need the '-quickgelu' model name, e.g. 'ViT-B-32-quickgelu'); "
        f"(3) or work offline with MODEL='{TINY_CLIP}', PRETRAINED='train'."
    )


def load_clip(
    model_name: str,
    pretrained: str | os.PathLike | None,
    device: str | torch.device = "auto",
    seed: int | None = None,
) -> tuple[torch.nn.Module, Callable, Callable]:
    """``(model in eval mode, PIL preprocess, tokenizer)``; ``pretrained`` is a tag, a checkpoint path, or None (random init)."""
    import open_clip

    _check_model_name(model_name)
    device = resolve_device(device) if not isinstance(device, torch.device) else device
    # hf-hub: models fetch their config and tokenizer from the hub too
    offline_ctx = _hub_offline_unless_reachable() if model_name.startswith("hf-hub:") else contextlib.nullcontext(False)
    if isinstance(pretrained, os.PathLike):
        pretrained = os.fspath(pretrained)
    if pretrained in _RANDOM_INIT:
        pretrained = None
    elif pretrained == "train":
        raise ValueError(
            "pretrained='train' means 'train the tiny CLIP first'; load_clip needs a tag or a file. "
            "Use ensure_tiny_clip(cfg) (or ensure_features(cfg)), which trains it and loads it by path"
        )
    elif open_clip.get_pretrained_cfg(model_name, pretrained):
        offline_ctx = _hub_offline_unless_reachable()
    elif _looks_like_path(pretrained):
        if not Path(pretrained).is_file():
            raise ClipWeightsError(
                f"CLIP checkpoint file {pretrained!r} does not exist; pass an existing open_clip checkpoint "
                f"(.pt/.bin/.safetensors) or a pretrained tag of {model_name!r}: "
                f"{open_clip.list_pretrained_tags_by_model(model_name)}"
            )
    else:
        raise ClipWeightsError(
            f"{pretrained!r} is neither a pretrained tag of {model_name!r} nor a file. Tags: "
            f"{open_clip.list_pretrained_tags_by_model(model_name) or 'none (a custom config)'}; "
            f"or pass a checkpoint path, or None for random initialisation"
        )
    with offline_ctx as offline:
        try:
            rng = torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext()
            with rng:
                if seed is not None:
                    torch.manual_seed(seed)  # random init is part of the experiment: make it repeatable
                model, _, preprocess = open_clip.create_model_and_transforms(
                    model_name, pretrained=pretrained, device=device
                )
            tokenizer = open_clip.get_tokenizer(model_name)
        except (RuntimeError, AssertionError, KeyError) as exc:
            msg = str(exc)
            if pretrained is None:
                raise
            if isinstance(exc, RuntimeError) and "download" in msg.lower():
                state = "the hub is unreachable / HF_HUB_OFFLINE is set" if offline else "the download failed"
                raise ClipWeightsError(
                    f"pretrained weights {pretrained!r} for {model_name!r} are not in the local cache and "
                    f"{state} ({msg[:200]}). {_weights_help(model_name, pretrained)}"
                ) from exc
            if Path(pretrained).is_file():  # open_clip raises RuntimeError/AssertionError/KeyError on a misfit
                raise ClipWeightsError(
                    f"checkpoint {pretrained!r} does not fit model {model_name!r} ({type(exc).__name__}: {msg[:300]}); "
                    f"pass the model name the checkpoint was trained with"
                ) from exc
            raise
    model.eval()
    return model, preprocess, tokenizer


def _looks_like_path(value: str) -> bool:
    return os.sep in value or value.endswith((".pt", ".pth", ".bin", ".safetensors", ".npz")) or Path(value).exists()


# --------------------------------------------------------------------------- inputs
def preprocess_config(model: torch.nn.Module) -> dict[str, Any]:
    """The model's preprocessing: ``size`` (H, W), ``mean``, ``std``, ``interpolation``."""
    import open_clip

    cfg = open_clip.get_model_preprocess_cfg(model)
    size = cfg["size"]
    cfg["size"] = (size, size) if isinstance(size, int) else tuple(size)
    return cfg


def images_to_tensor(images: np.ndarray, model: torch.nn.Module) -> torch.Tensor:
    """uint8 (N, S, S, 3) at the model's input size -> normalised float (N, 3, S, S), equal to the PIL preprocess."""
    _check_images(images)
    cfg = preprocess_config(model)
    if tuple(images.shape[1:3]) != cfg["size"]:
        raise ValueError(
            f"images are {images.shape[1]}x{images.shape[2]} but the model takes {cfg['size']}; "
            f"use the model's own preprocess (encode_images does this automatically)"
        )
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(cfg["mean"], dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"], dtype=torch.float32).view(1, 3, 1, 1)
    return (x - mean) / std


def _check_images(images: np.ndarray) -> None:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        desc = f"{type(images).__name__} {getattr(images, 'dtype', '')} {getattr(images, 'shape', '')}"
        raise ValueError(f"images must be a uint8 array (N, H, W, 3), got {desc}; convert with np.asarray(img, np.uint8)")
    if len(images) == 0:
        raise ValueError("no images given (N = 0); check the split indices")


def _check_texts(texts: Sequence[str], n: int) -> None:
    if len(texts) != n:
        raise ValueError(f"{len(texts)} texts for {n} images; images and texts must be paired one to one")
    bad = [i for i, t in enumerate(texts[:n]) if not isinstance(t, str)]
    if bad:
        raise ValueError(f"texts must be strings; item {bad[0]} is {type(texts[bad[0]]).__name__}")


class _ImageView:
    """Items ``idx`` of a dataset whose images load lazily (``get_image``): what encode_images takes."""

    def __init__(self, ds: Any, idx: np.ndarray):
        self.ds, self.idx = ds, np.asarray(idx, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.idx)

    def get_image(self, i: int) -> Any:
        return self.ds.get_image(int(self.idx[i]))


def select_images(ds: Any, idx: Sequence[int] | np.ndarray | None = None) -> Any:
    """Images of items ``idx`` (all when None) as encode_images takes them: uint8 (n, H, W, 3) or a lazy view."""
    images = getattr(ds, "images", None)
    if idx is None:
        return images if images is not None else _ImageView(ds, np.arange(len(ds)))
    idx = np.asarray(idx, dtype=np.int64)
    return images[idx] if images is not None else _ImageView(ds, idx)


def _image_batch(images: Any, idx: np.ndarray, model: torch.nn.Module, preprocess: Callable) -> torch.Tensor:
    """Model input (B, 3, S, S) for items ``idx``: vectorised when no resize is needed, else the PIL preprocess."""
    if isinstance(images, np.ndarray):
        if tuple(images.shape[1:3]) == preprocess_config(model)["size"]:
            return images_to_tensor(images[idx], model)
        from PIL import Image

        return torch.stack([preprocess(Image.fromarray(images[i])) for i in idx])
    return torch.stack([preprocess(images.get_image(int(i)).convert("RGB")) for i in idx])


def _amp(device: torch.device) -> contextlib.AbstractContextManager:
    # fp16 autocast on CUDA halves memory and doubles speed; CPU/MPS run in float32.
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


# --------------------------------------------------------------------------- extraction
@torch.no_grad()
def encode_images(
    model: torch.nn.Module, preprocess: Callable, images: Any, batch_size: int = 256,
    device: str | torch.device | None = None, progress: bool = True,
) -> np.ndarray:
    """L2-normalised image embeddings float32 (N, D); ``images`` is uint8 (N, H, W, 3) or has ``get_image(i)``/``len``."""
    if isinstance(images, np.ndarray):
        _check_images(images)
    elif not hasattr(images, "get_image"):
        raise TypeError(f"images must be a uint8 array or a dataset with get_image(i); got {type(images).__name__}")
    n = len(images)
    if n == 0:
        raise ValueError("no images given (N = 0); check the split indices")
    _check_batch_size(batch_size)
    device = _model_device(model) if device is None else torch.device(device)
    model.eval()
    out = []
    for start in tqdm(range(0, n, batch_size), desc="image embeddings", disable=not progress, leave=False):
        idx = np.arange(start, min(start + batch_size, n))
        x = _image_batch(images, idx, model, preprocess).to(device)
        with _amp(device):
            out.append(model.encode_image(x, normalize=True).float().cpu())
    return _finite(torch.cat(out).numpy(), "image embeddings")


@torch.no_grad()
def encode_texts(
    model: torch.nn.Module, tokenizer: Callable, texts: Sequence[str], batch_size: int = 256,
    device: str | torch.device | None = None, progress: bool = True,
) -> np.ndarray:
    """L2-normalised CLIP text embeddings float32 (N, D) of the strings (tokenised, truncated to the context)."""
    if len(texts) == 0:
        raise ValueError("no texts given (N = 0)")
    _check_texts(texts, len(texts))
    _check_batch_size(batch_size)
    device = _model_device(model) if device is None else torch.device(device)
    model.eval()
    out = []
    for start in tqdm(range(0, len(texts), batch_size), desc="text embeddings", disable=not progress, leave=False):
        tokens = tokenizer(list(texts[start:start + batch_size])).to(device)
        with _amp(device):
            out.append(model.encode_text(tokens, normalize=True).float().cpu())
    return _finite(torch.cat(out).numpy(), "text embeddings")


def extract_features(
    model: torch.nn.Module, preprocess: Callable, tokenizer: Callable, images: Any, texts: Sequence[str],
    batch_size: int = 256, progress: bool = True,
) -> dict[str, Any]:
    """Paired embeddings: ``image_emb``, ``text_emb`` float32 (N, D), plus ``seconds`` and ``items_per_second``."""
    n = len(images)
    _check_texts(texts, n)
    device = _model_device(model)
    _sync(device)
    t0 = time.perf_counter()
    image_emb = encode_images(model, preprocess, images, batch_size, device, progress)
    _sync(device)
    t1 = time.perf_counter()
    text_emb = encode_texts(model, tokenizer, texts, batch_size, device, progress)
    _sync(device)
    t2 = time.perf_counter()
    return {
        "image_emb": image_emb, "text_emb": text_emb, "seconds": t2 - t0,
        "image_seconds": t1 - t0, "text_seconds": t2 - t1, "items_per_second": n / max(t2 - t0, 1e-9),
    }


def _model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _check_batch_size(batch_size: int) -> None:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")


def _finite(x: np.ndarray, what: str) -> np.ndarray:
    if not np.isfinite(x).all():
        raise FloatingPointError(f"{what} contain NaN/Inf; the weights are broken (retrain or reload them)")
    return x


# --------------------------------------------------------------------------- tiny CLIP training
def train_tiny_clip(
    model: torch.nn.Module, images: np.ndarray, texts: Sequence[str], tokenizer: Callable, *,
    epochs: int, lr: float, batch_size: int, seed: int = 0, weight_decay: float = 0.1,
    warmup_fraction: float = 0.1, progress: bool = True,
    on_epoch_end: Callable[[int, torch.nn.Module], dict[str, float]] | None = None, augment: bool = True,
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
        (no_decay if p.ndim < 2 or "logit_scale" in name or "positional" in name or "class_embedding" in name
         else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.98), eps=1e-6,
                            # fused: one kernel for all tensors, ~10x faster than the loop on a CPU, where
                            # the 6.3 M-entry token embedding otherwise makes the update a third of each step
                            fused=device.type in ("cpu", "cuda"))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, total - warmup))))
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    loss_fn = ClipLoss()
    gen = torch.Generator().manual_seed(seed)
    tokens_all = None if augment else tokenizer(list(texts))
    rng = np.random.default_rng(seed)
    history: dict[str, Any] = {"step_loss": [], "epoch_loss": [], "epoch_seconds": [], "steps_per_epoch": steps_per_epoch,
                               "num_pairs": int(len(images)), "batch_size": batch_size, "lr": lr, "epochs": epochs,
                               "augment": augment}
    model.train()
    bar = tqdm(total=total, desc="tiny CLIP training", disable=not progress, leave=False)
    for epoch in range(epochs):
        t0 = time.perf_counter()
        order = torch.randperm(len(images), generator=gen).numpy()
        losses = []
        for step in range(steps_per_epoch):
            idx = np.sort(order[step * batch_size:(step + 1) * batch_size])
            x = images_to_tensor(images[idx], model)
            if augment:
                flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
                x[flip] = x[flip].flip(-1)
                t = tokenizer([_shuffle_tags(texts[i], rng) for i in idx])
            else:
                t = tokens_all[idx]
            x, t = x.to(device), t.to(device)
            with _amp(device):
                loss = loss_fn(model.encode_image(x, normalize=True), model.encode_text(t, normalize=True),
                               model.logit_scale.exp())
            if not torch.isfinite(loss):
                raise FloatingPointError(f"tiny CLIP loss became {loss.item()} at epoch {epoch}, step {step}; lower clip_lr")
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
def recalibrate_batchnorm(model: torch.nn.Module, images: np.ndarray, batch_size: int = 256,
                          max_items: int = 4096) -> int:
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
        x = images_to_tensor(images[start:min(start + batch_size, n)], model).to(device)
        with _amp(device):
            model.visual(x)
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    model.train(was_training)
    return n


def _shuffle_tags(text: str, rng: np.random.Generator) -> str:
    tags = text.split()
    return " ".join(tags[i] for i in rng.permutation(len(tags)))


def tiny_clip_key(cfg: Config) -> str:
    """Cache key of the tiny CLIP checkpoint: data config + training hyperparameters + preprocessing."""
    # The shipped architecture JSON is part of the key: editing it must not reuse an old checkpoint.
    arch = MODEL_CONFIG_DIR / f"{cfg.clip_model}.json"
    arch_digest = hashlib.sha256(arch.read_bytes()).hexdigest()[:16] if arch.is_file() else None
    return _digest({"cfg": cfg.key(TINY_CLIP_FIELDS), "preprocess": PREPROCESS_VERSION, "format": TINY_CLIP_FORMAT,
                    "architecture": arch_digest})


def tiny_clip_path(cfg: Config) -> Path:
    """``runs/<run>/tiny_clip_<key>.pt``."""
    return run_dir(cfg) / f"tiny_clip_{tiny_clip_key(cfg)}.pt"


def read_tiny_clip_info(path: str | os.PathLike) -> dict[str, Any]:
    """The ``egath_lite`` record (key, history, ...) stored beside the state dict in a tiny CLIP checkpoint."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to unpickle means a corrupt file
        raise ClipWeightsError(f"{path} is not a readable checkpoint ({type(exc).__name__}: {exc}); delete it and rerun") from exc
    info = ckpt.get("egath_lite") if isinstance(ckpt, dict) else None
    if not isinstance(info, dict) or info.get("format") != TINY_CLIP_FORMAT or "state_dict" not in ckpt:
        raise ClipWeightsError(f"{path} is not an egath_lite tiny CLIP checkpoint; delete it and rerun")
    return json.loads(info["json"])


def ensure_tiny_clip(cfg: Config, force: bool = False, progress: bool = True) -> tuple[Path, dict[str, Any]]:
    """Train the tiny CLIP on the training split, train ∪ val (or reuse the checkpoint with the same key): ``(path, info)``."""
    path = tiny_clip_path(cfg)
    key = tiny_clip_key(cfg)
    if path.is_file() and not force:
        try:
            info = read_tiny_clip_info(path)
            if info.get("key") == key:
                print(f"[cache] reusing tiny CLIP checkpoint {path} (key {key})")
                return path, {**info, "cache_hit": True}
            print(f"[cache] retraining tiny CLIP: {path} has key {info.get('key')} != {key}")
        except ClipWeightsError as exc:
            print(f"[cache] retraining tiny CLIP: {exc}")
    from .data import dataset_from_config, split_from_config

    ds = dataset_from_config(cfg)
    _, train, val, _ = split_from_config(ds, cfg)
    # The whole training split: validation items are training items too (they steer early stopping
    # of later stages, never a reported number); the query items stay unseen.
    train_idx = np.sort(np.concatenate([train, val]))
    images = _in_memory_images(ds)
    model, _, tokenizer = load_clip(cfg.clip_model, None, cfg.device, seed=cfg.seed)
    history = train_tiny_clip(
        model, images[train_idx], [ds.texts[i] for i in train_idx], tokenizer,
        epochs=cfg.clip_epochs, lr=cfg.clip_lr, batch_size=cfg.clip_batch_size, seed=cfg.seed, progress=progress,
    )
    info = {"key": key, "model": cfg.clip_model, "dataset": cfg.dataset,
            "config": {f: cfg.to_dict()[f] for f in TINY_CLIP_FIELDS}, "history": history}
    save_tiny_clip(model, path, info)
    return path, {**info, "cache_hit": False}


def save_tiny_clip(model: torch.nn.Module, path: str | os.PathLike, info: dict[str, Any]) -> Path:
    """Atomically write an open_clip checkpoint (``state_dict``) with ``info`` beside it; load it with load_clip(name, path)."""
    info = {**info, "format": TINY_CLIP_FORMAT}
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    # info travels as one JSON string so that torch.load(weights_only=True) reads it safely.
    ckpt = {"state_dict": state, "egath_lite": {"format": TINY_CLIP_FORMAT, "json": json.dumps(info)}}
    atomic_write_bytes(path, lambda f: torch.save(ckpt, f))
    return Path(path)


def _in_memory_images(ds: Any) -> np.ndarray:
    images = getattr(ds, "images", None)
    if images is None:
        raise ValueError(
            f"dataset {ds.name!r} has no in-memory images; the tiny CLIP is trained on toy_nuswide only. "
            f"For real benchmarks use real CLIP weights, e.g. MODEL='ViT-B-32', PRETRAINED='openai'"
        )
    return images


# --------------------------------------------------------------------------- the stage
def resolve_pretrained(cfg: Config, progress: bool = True) -> tuple[str | None, dict[str, Any] | None]:
    """``cfg.clip_pretrained`` as load_clip takes it (training the tiny CLIP for 'train'), plus the training info."""
    if cfg.clip_pretrained == "train":
        path, info = ensure_tiny_clip(cfg, progress=progress)
        return str(path), info
    return cfg.clip_pretrained, None


def weights_fingerprint(cfg: Config) -> str:
    """What identifies the weights: the tiny CLIP key, the tag, or a content hash of a checkpoint file."""
    p = cfg.clip_pretrained
    if p == "train":
        return f"train:{tiny_clip_key(cfg)}"
    if p in _RANDOM_INIT:
        return f"random:{cfg.seed}"
    if Path(p).is_file():  # a file can change in place: hash its bytes
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        return f"file:{h.hexdigest()[:16]}"
    return f"tag:{p}"


def features_key(cfg: Config) -> str:
    """Cache key of features.pt: (dataset, split, model, weights, preprocessing)."""
    return _digest({"data": cfg.key(DATA_FIELDS), "model": cfg.clip_model, "weights": weights_fingerprint(cfg),
                    "preprocess": PREPROCESS_VERSION})


def features_path(cfg: Config) -> Path:
    """``runs/<run>/features.pt``."""
    return run_dir(cfg) / "features.pt"


def ensure_features(cfg: Config, force: bool = False, progress: bool = True) -> dict[str, Any]:
    """Load ``features.pt`` when its key matches, else extract it (training the tiny CLIP if asked)."""

    def compute() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        from .data import bag_of_words, build_vocabulary, dataset_from_config, split_from_config

        ds = dataset_from_config(cfg)
        query, train, val, retrieval = split_from_config(ds, cfg)
        labels = np.asarray(ds.labels, dtype=np.float32)
        empty = int((labels.sum(1) == 0).sum())
        if empty:
            raise ValueError(f"{empty} items of {cfg.dataset!r} have no label; drop them in the data stage "
                             f"(relevance 'shares a label' is undefined for them)")
        vocab = build_vocabulary(ds.texts, train, cfg.vocab_size)
        bow = np.asarray(bag_of_words(ds.texts, vocab), dtype=np.float32)
        pretrained, clip_train = resolve_pretrained(cfg, progress)
        model, preprocess, tokenizer = load_clip(cfg.clip_model, pretrained, cfg.device, seed=cfg.seed)
        images = select_images(ds)
        feats = extract_features(model, preprocess, tokenizer, images, list(ds.texts), cfg.batch_size, progress)
        tensors = {
            "image_emb": torch.from_numpy(feats["image_emb"]), "text_emb": torch.from_numpy(feats["text_emb"]),
            "bow": torch.from_numpy(bow), "labels": torch.from_numpy(labels),
            "query_idx": _idx(query), "train_idx": _idx(train), "val_idx": _idx(val), "retrieval_idx": _idx(retrieval),
        }
        meta = {
            "label_names": list(ds.label_names), "vocab": list(vocab), "dataset": cfg.dataset,
            "clip_model": cfg.clip_model, "clip_pretrained": cfg.clip_pretrained,
            "clip_checkpoint": pretrained if cfg.clip_pretrained == "train" else None,
            "extract_seconds": feats["seconds"], "items_per_second": feats["items_per_second"],
            "image_seconds": feats["image_seconds"], "text_seconds": feats["text_seconds"],
            "device": str(_model_device(model)), "normalized": True, "preprocess": PREPROCESS_VERSION,
            "clip_train": None if clip_train is None else {
                "cache_hit": clip_train["cache_hit"], **{k: clip_train["history"][k] for k in (
                    "seconds", "seconds_per_epoch", "epoch_loss", "step_loss", "steps_per_epoch", "num_pairs")}},
        }
        return tensors, meta

    return cached_artifact(features_path(cfg), "features", features_key(cfg), compute, cfg,
                           required=FEATURE_TENSORS, force=force)


def _idx(a: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.int64))


def encode_label_prompts(cfg: Config, label_names: Sequence[str], template: str = "a photo of a {}") -> np.ndarray:
    """CLIP text embeddings of ``template.format(name)`` per label: float32 (C, D), L2-normalised."""
    if "{}" not in template:
        raise ValueError(f"template {template!r} needs a '{{}}' where the label name goes")
    if len(label_names) == 0:
        raise ValueError("no label names given")
    pretrained, _ = resolve_pretrained(cfg, progress=False)
    model, _, tokenizer = load_clip(cfg.clip_model, pretrained, cfg.device, seed=cfg.seed)
    prompts = [template.format(name.replace("_", " ")) for name in label_names]
    return encode_texts(model, tokenizer, prompts, batch_size=max(1, len(prompts)), progress=False)


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]
