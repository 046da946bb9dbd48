"""Decode each image once for fine-tuning: a compact uint8 cache, the random crops taken from it on the device.

Fine-tuning (``finetune_clip``) used to decode every training JPEG in every epoch for its random
crop, and every validation and training image again for the validation mAP. ``decode_images``
decodes each image of a run once, in DataLoader workers, and keeps

* for the items that train: the image with its shortest side reduced to ``cache_side(prep)`` (never
  enlarged), stored flat as uint8 (3, h, w) per item, with the decoded size (H, W) beside it;
* for the items that validate: the eval preprocessing (``images.eval_resize``), uint8 (3, S, S).

``DecodedImages.crop_batch`` then draws each item's crop box exactly as ``images.train_crop`` does
(``images.train_crop_box`` on the decoded size (H, W), seeded by (seed, epoch, item)), scales it to the
cached image (fractional edges kept), and resizes that region to the model size on the device
(``resample_crop``: the same antialiased filter as torch's, the model's interpolation). Images no larger
than the cache side are stored as decoded and give the same pixels as ``train_crop``; larger ones are
resampled twice (to the cache, then the crop), which tests/test_decode_once.py bounds. ``cache_side`` is
the smallest side at which every crop of open_clip's RandomResizedCrop (scale >= 0.9, ratio >= 3/4) still
has at least S pixels across, so the second resize only ever shrinks: S / sqrt(0.9 * 3/4) = 1.22 S (273 at
224, 78 at 64). open_clip's train transform has no flip, so neither has this one.

The cache is one file of raw bytes and a small index (``torch.load(weights_only=True)``, checked
against the file's size before use) under a key the caller gives; it is read into memory when it
takes at most a quarter of the available memory, else memory-mapped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from egath_lite.clip import images as _images
from egath_lite.clip.images import TRAIN_RATIO, TRAIN_SCALE, ImageItems, Preprocess

CACHE_FORMAT = "egath_lite.decoded_images/1"


def cache_side(prep: Preprocess) -> int:
    """Shortest side of the cached training images: every train crop of it still spans >= the model size."""
    return math.ceil(max(prep.size) / math.sqrt(TRAIN_SCALE[0] * TRAIN_RATIO[0]))


def cached_size(height: int, width: int, side: int) -> tuple[int, int]:
    """(h, w) an image of ``height`` x ``width`` is cached at: shortest side ``side`` (torchvision's rule), never enlarged."""
    if min(height, width) <= side:
        return int(height), int(width)
    if height <= width:
        return side, int(side * width / height)
    return int(side * height / width), side


def map_box(
    box: tuple[int, int, int, int], decoded: tuple[int, int], cached: tuple[int, int]
) -> tuple[float, float, float, float]:
    """A crop box ``(top, left, h, w)`` on the decoded image, in the cached image's pixel units (not rounded)."""
    sy, sx = cached[0] / decoded[0], cached[1] / decoded[1]
    top, left, h, w = box
    return top * sy, left * sx, h * sy, w * sx


def _kernel(d: torch.Tensor, interpolation: str) -> torch.Tensor:
    """The antialiased resize's filter: Keys' cubic with a = -0.5 (PIL's and torch's antialias bicubic), or the triangle."""
    d = d.abs()
    if interpolation == "bilinear":
        return (1 - d).clamp(min=0)
    a = -0.5
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = (((d - 5) * d + 8) * d - 4) * a
    return torch.where(d < 1, near, torch.where(d < 2, far, torch.zeros_like(d)))


def _taps(n_out: int, start: float, length: float, n_in: int, interpolation: str, device: Any):
    """(index (n_out, K), weight (n_out, K)) of one axis of an antialiased resize of [start, start + length) to n_out."""
    scale = length / n_out
    fs = max(scale, 1.0)  # shrinking widens the filter (antialias), enlarging does not
    support = (2.0 if interpolation == "bicubic" else 1.0) * fs
    k = 2 * math.ceil(support) + 1
    centers = start + (torch.arange(n_out, dtype=torch.float64) + 0.5) * scale
    idx = torch.floor(centers - support + 0.5).long()[:, None] + torch.arange(k)[None, :]
    w = _kernel((idx + 0.5 - centers[:, None]) / fs, interpolation)
    w = torch.where((idx >= 0) & (idx < n_in), w, torch.zeros_like(w))
    w = w / w.sum(1, keepdim=True)
    return idx.clamp(0, n_in - 1).to(device), w.float().to(device)


def resample_crop(
    src: torch.Tensor, box: tuple[float, float, float, float], size: tuple[int, int], interpolation: str
) -> torch.Tensor:
    """uint8 (3, h, w) -> uint8 (3, H, W): the region ``box`` (top, left, h, w; fractional) resized, antialiased.

    Separable like torch's uint8 antialiased resize: the horizontal pass first, rounded to uint8, then the
    vertical one, each a product with a (banded) weight matrix over the rows and columns the filter reaches.
    """
    top, left, h, w = box
    iy, wy = _taps(size[0], top, h, src.shape[-2], interpolation, src.device)
    ix, wx = _taps(size[1], left, w, src.shape[-1], interpolation, src.device)
    r0, r1, c0, c1 = int(iy.min()), int(iy.max()) + 1, int(ix.min()), int(ix.max()) + 1
    Wx = torch.zeros(size[1], c1 - c0, device=src.device).scatter_add_(1, ix - c0, wx)
    Wy = torch.zeros(size[0], r1 - r0, device=src.device).scatter_add_(1, iy - r0, wy)
    x = (src[:, r0:r1, c0:c1].float() @ Wx.T).round_().clamp_(0, 255)  # (3, rows, W)
    return (Wy @ x).round_().clamp_(0, 255).to(torch.uint8)  # (3, H, W)


class _DecodeOnce(torch.utils.data.Dataset):
    """Position ``pos`` of ``items`` -> (pos, decoded (H, W), cached crop source or None, eval pixels or None, error)."""

    def __init__(self, items: ImageItems, crop: np.ndarray, evals: np.ndarray, side: int, decoder: str):
        self.items, self.crop, self.evals, self.side, self.decoder = items, crop, evals, side, decoder

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, pos: int):
        import torchvision.transforms.v2.functional as F

        items = self.items
        try:
            if items.in_memory:
                pixels = torch.from_numpy(np.asarray(items.array[int(items.items[pos])])).permute(2, 0, 1)
            else:  # the module attribute, so that a test can count the decoder calls
                pixels = _images.decode_bytes(items.read_bytes(pos), self.decoder)
            H, W = int(pixels.shape[-2]), int(pixels.shape[-1])
            crop = None
            if self.crop[pos]:
                h, w = cached_size(H, W, self.side)
                crop = (
                    pixels
                    if (h, w) == (H, W)
                    else F.resize(pixels, [self.side], interpolation=items.prep.interpolation_mode(), antialias=True)
                )
                if tuple(crop.shape[-2:]) != (h, w):
                    raise ValueError(f"resized to {tuple(crop.shape[-2:])}, expected {(h, w)}")
                crop = crop.contiguous()
            ev = _images.eval_resize(pixels, items.prep).contiguous() if self.evals[pos] else None
            return pos, (H, W), crop, ev, None
        except Exception as exc:  # noqa: BLE001 - never raise in a worker: every bad file is reported together
            reason = _images._clean_reason(exc) if not isinstance(exc, FileNotFoundError) else "file not found"
            return pos, None, None, None, reason


def _as_list(samples):
    return samples


def _memory_budget() -> int:
    """A quarter of the available memory (MemAvailable), or 2 GiB where /proc/meminfo is missing."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024 // 4
    except OSError:
        pass
    return 2 << 30


class DecodedImages:
    """Images of ``items`` decoded once: train crops (``crop_batch``) and eval inputs (``eval_view``) from memory.

    ``index``: int64 arrays ``items`` (sorted dataset ids), ``decoded`` (n, 2) sizes as decoded,
    ``cached`` (n, 2) sizes as cached (0 where not cached for crops), ``crop_offset`` (n,), ``eval_row`` (n,),
    and scalars ``eval_offset`` (where the (m, 3, S, S) eval block starts), ``nbytes``; ``data``: uint8 bytes.
    """

    def __init__(self, index: dict[str, Any], data: np.ndarray, prep: Preprocess, seed: int, device: Any):
        self.index, self.data, self.prep, self.seed = index, data, prep, int(seed)
        self.device = torch.device(device)
        self.items = index["items"].numpy()
        self.decoded = index["decoded"].numpy()
        self.cached = index["cached"].numpy()
        self.crop_offset = index["crop_offset"].numpy()
        self.eval_row = index["eval_row"].numpy()
        self.eval_offset = int(index["eval_offset"])
        self.in_memory = not isinstance(data, np.memmap)

    @property
    def nbytes(self) -> int:
        """Bytes of cached pixels."""
        return int(self.data.shape[0])

    def _pos(self, items) -> np.ndarray:
        items = np.asarray(items, dtype=np.int64).reshape(-1)
        pos = np.searchsorted(self.items, items)
        if len(items) and (
            pos.max() >= len(self.items) or np.any(self.items[np.minimum(pos, len(self.items) - 1)] != items)
        ):
            raise KeyError(f"items {items[:5].tolist()}... are not in the decoded-image cache")
        return pos

    def source(self, item: int) -> torch.Tensor:
        """uint8 (3, h, w): the cached image item ``item``'s train crops are taken from."""
        p = int(self._pos([item])[0])
        h, w = (int(v) for v in self.cached[p])
        if self.crop_offset[p] < 0:
            raise KeyError(f"item {item} was decoded for evaluation only, not for training crops")
        start = int(self.crop_offset[p])
        return torch.from_numpy(np.array(self.data[start : start + 3 * h * w])).view(3, h, w)

    def crop_box(self, item: int, epoch: int) -> tuple[tuple[int, int, int, int], tuple[float, ...]]:
        """(box on the decoded image, as ``images.train_crop`` draws it; the same box on the cached image)."""
        p = int(self._pos([item])[0])
        H, W = (int(v) for v in self.decoded[p])
        box = _images.train_crop_box(H, W, self.seed, epoch, int(item))
        return box, map_box(box, (H, W), tuple(int(v) for v in self.cached[p]))

    def crop_pixels(self, items, epoch: int, device: Any = None) -> torch.Tensor:
        """uint8 (B, 3, S, S) on ``device``: each item's train crop of epoch ``epoch``, resized on the device."""
        import torchvision.transforms.v2.functional as F

        device = self.device if device is None else torch.device(device)
        items = [int(i) for i in np.asarray(items).reshape(-1)]
        out = torch.empty((len(items), 3, *self.prep.size), dtype=torch.uint8, device=device)
        mode = self.prep.interpolation_mode()
        for j, item in enumerate(items):
            box, scaled = self.crop_box(item, epoch)
            src = self.source(item).to(device, non_blocking=True)
            if tuple(src.shape[-2:]) == tuple(int(v) for v in self.decoded[self._pos([item])[0]]):
                # kept as decoded: the very call images.train_crop makes, the same pixels
                out[j] = F.resized_crop(src, *box, list(self.prep.size), interpolation=mode, antialias=True)
            else:
                out[j] = resample_crop(src, scaled, self.prep.size, self.prep.interpolation)
        return out

    def crop_batch(self, items, epoch: int, device: Any = None) -> torch.Tensor:
        """float32 (B, 3, S, S) model inputs, normalised on the device: the train crops of ``items`` in ``epoch``."""
        device = self.device if device is None else torch.device(device)
        return _images.normalize(self.crop_pixels(items, epoch, device), self.prep, device)

    def eval_pixels(self, items) -> torch.Tensor:
        """uint8 (n, 3, S, S): the eval preprocessing of ``items`` (as decoded once)."""
        rows = self.eval_row[self._pos(items)]
        if len(rows) and rows.min() < 0:
            raise KeyError("some items were decoded for training crops only, not for evaluation")
        S = 3 * self.prep.size[0] * self.prep.size[1]
        block = self.data[self.eval_offset :].reshape(-1, S) if S else self.data[:0]
        return torch.from_numpy(np.ascontiguousarray(block[rows])).view(len(rows), 3, *self.prep.size)

    def eval_view(self, items) -> CachedEvalImages:
        """What ``EGATH.encode`` takes: the eval inputs of ``items``, batch by batch."""
        return CachedEvalImages(self, np.asarray(items, dtype=np.int64).reshape(-1))


class CachedEvalImages:
    """Eval-preprocessed images of some items from a ``DecodedImages``; ``iter_batches`` as ``StreamedImages``'s."""

    def __init__(self, cache: DecodedImages, items: np.ndarray):
        self.cache, self.items = cache, items

    def __len__(self) -> int:
        return len(self.items)

    def iter_batches(self, batch_size: int, epoch: int = 0, train: bool = False, batches=None):
        """Yield float (b, 3, S, S) normalised eval inputs on the cache's device, in order."""
        if train or batches is not None:
            raise ValueError("cached eval images give eval batches in order only")
        for s in range(0, len(self.items), batch_size):
            px = self.cache.eval_pixels(self.items[s : s + batch_size])
            yield _images.normalize(px, self.cache.prep, self.cache.device)


def _build(items: ImageItems, crop: np.ndarray, evals: np.ndarray, side: int, decoder: str, num_workers: int, f):
    """Decode every position once and write the cached bytes to ``f``; returns the index (errors raise).

    The global torch RNG is left as it was (a DataLoader draws its base seed from it): a run that builds
    the cache and one that reuses it train the same.
    """
    with torch.random.fork_rng(devices=[]):
        return _build_inner(items, crop, evals, side, decoder, num_workers, f)


def _build_inner(items, crop, evals, side, decoder, num_workers, f):
    n = len(items)
    decoded = np.zeros((n, 2), np.int64)
    cached = np.zeros((n, 2), np.int64)
    crop_offset = np.full(n, -1, np.int64)
    eval_row = np.full(n, -1, np.int64)
    eval_parts, errors, offset = [], [], 0
    ds = _DecodeOnce(items, crop, evals, side, decoder)
    kwargs = {"prefetch_factor": 4} if num_workers > 0 else {}
    loader = torch.utils.data.DataLoader(ds, batch_size=16, num_workers=num_workers, collate_fn=_as_list, **kwargs)
    for batch in loader:
        for pos, size, src, ev, reason in batch:
            if reason is not None:
                errors.append(f"item {int(items.items[pos])} {items.path_of(pos)}: {reason}")
                continue
            decoded[pos] = size
            if src is not None:
                cached[pos] = src.shape[-2:]
                crop_offset[pos] = offset
                f.write(src.numpy().tobytes())
                offset += src.numel()
            if ev is not None:
                eval_row[pos] = len(eval_parts)
                eval_parts.append(ev.numpy().tobytes())
    if errors:
        raise ValueError(
            f"{len(errors)} image(s) cannot be read during fine-tuning ({'; '.join(errors[:10])}); "
            f"the features stage reports them all: fix the files and rerun"
        )
    eval_offset = offset
    for part in eval_parts:
        f.write(part)
        offset += len(part)
    t = torch.from_numpy
    return {
        "format": CACHE_FORMAT,
        "items": t(items.items.copy()),
        "decoded": t(decoded),
        "cached": t(cached),
        "crop_offset": t(crop_offset),
        "eval_row": t(eval_row),
        "eval_offset": eval_offset,
        "nbytes": offset,
    }


def _valid(index: Any, key: str, items: np.ndarray, nbytes: int, prep: Preprocess) -> bool:
    """Whether an untrusted index describes ``items`` under ``key`` and fits a data file of ``nbytes``."""
    try:
        if index.get("format") != CACHE_FORMAT or index.get("key") != key or int(index["nbytes"]) != nbytes:
            return False
        if not np.array_equal(index["items"].numpy(), items):
            return False
        cached, off, rows = index["cached"].numpy(), index["crop_offset"].numpy(), index["eval_row"].numpy()
        ends = off + 3 * cached[:, 0] * cached[:, 1]
        has = off >= 0
        S = 3 * prep.size[0] * prep.size[1]
        m = int((rows >= 0).sum())
        return bool(
            np.all(ends[has] <= int(index["eval_offset"]))
            and int(index["eval_offset"]) + m * S == nbytes
            and (m == 0 or sorted(rows[rows >= 0].tolist()) == list(range(m)))
        )
    except Exception:  # noqa: BLE001 - untrusted file: anything odd means rebuild
        return False


def decode_images(
    source: Any,
    crop_items,
    eval_items,
    prep: Preprocess,
    *,
    seed: int,
    device: Any = "cpu",
    decoder: str = "auto",
    num_workers: int | None = None,
    folder: str | Path | None = None,
    key: str = "",
    log=print,
) -> DecodedImages:
    """Decode the images of dataset items ``crop_items`` (kept for train crops) and ``eval_items`` (eval inputs) once.

    ``source``: what ``images.ImageItems`` takes (a dataset, a uint8 array, paths). With ``folder`` the
    cache is the file ``decoded-<digest>.u8`` there (``key`` names what it was made from, e.g. the features
    artifact's key) and a later call with the same key reuses it; without, it lives in memory only.
    """
    from egath_lite.files import atomic_write_bytes, file_lock

    crop_items = np.unique(np.asarray(crop_items, dtype=np.int64))
    eval_items = np.unique(np.asarray(eval_items, dtype=np.int64))
    items = np.union1d(crop_items, eval_items)
    decoder = "auto" if decoder == "cuda" else decoder  # decoded once on the CPU workers
    side = cache_side(prep)
    # the module attribute (not a copy of the name): a test counting the decoder calls sees these too
    img_items = ImageItems(source, items, prep, decoder=decoder)
    crop, evals = np.isin(items, crop_items), np.isin(items, eval_items)
    workers = _images.default_num_workers(img_items) if num_workers is None else int(num_workers)
    full_key = hashlib.sha256(
        repr(
            (
                CACHE_FORMAT,
                key,
                items.tobytes(),
                crop.tobytes(),
                evals.tobytes(),
                side,
                decoder,
                sorted(dataclasses.asdict(prep).items()),
            )
        ).encode()
    ).hexdigest()[:16]
    if folder is None:
        buf = io.BytesIO()
        index = _build(img_items, crop, evals, side, decoder, workers, buf)
        return DecodedImages(index, np.frombuffer(buf.getbuffer(), np.uint8), prep, seed, device)
    data_path = Path(folder) / f"decoded-{full_key}.u8"
    index_path = data_path.with_suffix(".index.pt")
    with file_lock(data_path, f"decoded images {data_path.name}", log):
        index = None
        if data_path.is_file() and index_path.is_file():
            try:
                index = torch.load(index_path, map_location="cpu", weights_only=True)
            except Exception:  # noqa: BLE001 - untrusted: rebuild
                index = None
            if not _valid(index, full_key, items, data_path.stat().st_size, prep):
                log(f"[decode] ignoring {data_path.name}: its index does not match; decoding again")
                index = None
            else:
                log(f"[decode] reusing {data_path} ({data_path.stat().st_size / 2**20:.0f} MiB)")
        if index is None:
            index_path.unlink(missing_ok=True)  # the index goes last: a data file without it is never used
            holder: dict[str, Any] = {}
            atomic_write_bytes(
                data_path, lambda f: holder.update(_build(img_items, crop, evals, side, decoder, workers, f))
            )
            index = {**holder, "key": full_key}
            atomic_write_bytes(index_path, lambda f: torch.save(index, f))
            log(f"[decode] decoded {len(items)} images once into {data_path} ({int(index['nbytes']) / 2**20:.0f} MiB)")
    nbytes = int(index["nbytes"])
    if nbytes <= _memory_budget():
        data = np.fromfile(data_path, dtype=np.uint8)
    else:
        data = np.memmap(data_path, dtype=np.uint8, mode="r", shape=(nbytes,)) if nbytes else np.zeros(0, np.uint8)
    return DecodedImages(index, data, prep, seed, device)
