"""CLIP inputs and embeddings: images and tags to model inputs, batched encoding, paired extraction."""

from __future__ import annotations

import contextlib
import os
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from egath_lite.clip.amp import autocast
from egath_lite.progress import tqdm


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
        raise ValueError(
            f"images must be a uint8 array (N, H, W, 3), got {desc}; convert with np.asarray(img, np.uint8)"
        )
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


# --------------------------------------------------------------------------- threads
def available_cores() -> int:
    """CPU cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS / Windows
        return os.cpu_count() or 1


# model -> {(what, thread limit): the count a loop measured fastest}; weak: a freed model's id is never reused here
_CHOSEN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class ThreadChooser:
    """The intra-op thread count of a batch loop, chosen by timing it: never slower than one thread.

    The CPU count torch would use (``torch.get_num_threads()``, capped by the cores left beside
    ``workers`` DataLoader processes) is raced against one thread: after one untimed warm-up batch,
    ``trials`` batches run on each, alternating, and the rest run on the faster (per item). Small models
    lose with more threads (their ops are too short to split: the tiny CLIP encoded 118 texts/s on two
    busy cores and 403 on one, issue 22); large ones win. The choice is remembered per model for the
    process, and the thread setting is restored on exit. On a GPU it does nothing.
    """

    def __init__(self, model: Any, what: str, device: Any, workers: int = 0, trials: int = 2):
        self.saved = torch.get_num_threads()
        cpu = torch.device(device).type == "cpu"
        self.most = max(1, min(self.saved, available_cores() - max(0, workers))) if cpu else self.saved
        try:
            self.memo = _CHOSEN.setdefault(model, {})
        except TypeError:  # not weakly referenceable: measured per call
            self.memo = {}
        self.memo_key = (what, self.most)
        self.candidates = [self.most, 1] if cpu and self.most > 1 else []
        self.chosen = self.memo.get(self.memo_key) if self.candidates else self.saved
        self.trials, self.seen, self.times = trials, 0, {c: [] for c in self.candidates}

    def __enter__(self) -> ThreadChooser:
        return self

    def __exit__(self, *exc: Any) -> None:
        torch.set_num_threads(self.saved)

    def _next(self) -> tuple[int, bool]:
        """(threads for the next batch, whether to time it)."""
        if self.chosen is not None:
            return self.chosen, False
        if self.seen == 0:
            return self.most, False  # warm-up: first-call costs (allocations, lazy init) are nobody's
        pending = [c for c in self.candidates if len(self.times[c]) < self.trials]
        return min(pending, key=lambda c: len(self.times[c])), True

    @contextlib.contextmanager
    def batch(self, items: int) -> Iterator[int]:
        """Run one batch of ``items`` on the chosen (or the trial's) thread count."""
        threads, timed = self._next()
        torch.set_num_threads(threads)
        start = time.perf_counter()
        yield threads
        self.seen += 1
        if timed:
            self.times[threads].append((time.perf_counter() - start) / max(1, items))
            if all(len(t) >= self.trials for t in self.times.values()):
                self.chosen = min(self.candidates, key=lambda c: (sorted(self.times[c])[len(self.times[c]) // 2], c))
                self.memo[self.memo_key] = self.chosen


# --------------------------------------------------------------------------- extraction
@torch.no_grad()
def encode_images(
    model: torch.nn.Module,
    preprocess: Callable,
    images: Any,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    progress: bool = True,
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
    with ThreadChooser(model, "image", device) as threads:
        for start in tqdm(range(0, n, batch_size), desc="image embeddings", disable=not progress, leave=False):
            idx = np.arange(start, min(start + batch_size, n))
            with threads.batch(len(idx)):
                x = _image_batch(images, idx, model, preprocess).to(device)
                with autocast(device)[0]:
                    out.append(model.encode_image(x, normalize=True).float().cpu())
    return _finite(torch.cat(out).numpy(), "image embeddings")


@torch.no_grad()
def encode_texts(
    model: torch.nn.Module,
    tokenizer: Callable,
    texts: Sequence[str],
    batch_size: int = 256,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> np.ndarray:
    """L2-normalised CLIP text embeddings float32 (N, D) of the strings (tokenised, truncated to the context)."""
    if len(texts) == 0:
        raise ValueError("no texts given (N = 0)")
    _check_texts(texts, len(texts))
    _check_batch_size(batch_size)
    device = _model_device(model) if device is None else torch.device(device)
    model.eval()
    out = []
    with ThreadChooser(model, "text", device) as threads:
        for start in tqdm(range(0, len(texts), batch_size), desc="text embeddings", disable=not progress, leave=False):
            chunk = list(texts[start : start + batch_size])
            with threads.batch(len(chunk)):
                tokens = tokenizer(chunk).to(device)
                with autocast(device)[0]:
                    out.append(model.encode_text(tokens, normalize=True).float().cpu())
    return _finite(torch.cat(out).numpy(), "text embeddings")


def extract_features(
    model: torch.nn.Module,
    preprocess: Callable,
    tokenizer: Callable,
    images: Any,
    texts: Sequence[str],
    batch_size: int = 256,
    progress: bool = True,
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
        "image_emb": image_emb,
        "text_emb": text_emb,
        "seconds": t2 - t0,
        "image_seconds": t1 - t0,
        "text_seconds": t2 - t1,
        "items_per_second": n / max(t2 - t0, 1e-9),
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
