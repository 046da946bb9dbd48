"""Image extraction in shards that loses nothing: resumable, and every unreadable image reported at once.

``encode_images_sharded`` writes ``<shard_dir>/<key>-shard<i>of<n>.pt`` atomically, one per
``shard_size`` items; a rerun with the same key reuses every valid shard and encodes only the
rest. Batches never straddle shards, so a shard encoded now equals the one a clean run would
have written. An image that cannot be read does not stop the pass: its shard is not written,
and at the end ``UnreadableImagesError`` lists every bad file (item, path, reason), with a
copy in ``<key>-unreadable.json``; fix them and rerun, and only those shards are recomputed.
An interrupt (Ctrl-C, SIGINT) leaves only complete shards behind.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from egath_lite.clip.amp import autocast
from egath_lite.clip.encode import ThreadChooser
from egath_lite.clip.images import (
    ImageError,
    ImageItems,
    default_num_workers,
    main_threads_beside_workers,
    make_image_loader,
    to_model_input,
)
from egath_lite.errors import EgathError
from egath_lite.files import atomic_write_bytes
from egath_lite.progress import tqdm

SHARD_FORMAT = "egath_lite.image_shard/1"
_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
# How many bad files the exception message lists; all of them go to the JSON report.
MESSAGE_LIMIT = 50


class UnreadableImagesError(EgathError, ValueError):
    """Images that could not be read in a pass: ``errors`` (ImageError list), ``failed_shards``, ``report`` path."""

    def __init__(
        self, errors: list[ImageError], failed_shards: list[int], num_shards: int, shard_dir: Path, report: Path | None
    ):
        self.errors, self.failed_shards, self.num_shards = errors, failed_shards, num_shards
        self.shard_dir, self.report = shard_dir, report
        lines = [
            (
                f"{len(errors)} unreadable image(s) in {len(failed_shards)} of {num_shards} shard(s); the "
                f"{num_shards - len(failed_shards)} other shard(s) are finished and kept in {shard_dir}:"
            )
        ]
        lines += [f"  item {e.item}: {e.path}: {e.reason}" for e in errors[:MESSAGE_LIMIT]]
        if len(errors) > MESSAGE_LIMIT:
            lines.append(f"  ... and {len(errors) - MESSAGE_LIMIT} more (all listed in {report})")
        lines.append(
            f"Fix: replace these files with readable images (or remove the items from the data set) and "
            f"rerun; only shard(s) {_ranges(failed_shards)} are recomputed."
            + (f" The full list is in {report}." if report is not None else "")
        )
        super().__init__("\n".join(lines))


def _ranges(values: list[int]) -> str:
    return ", ".join(str(v) for v in values[:20]) + (f", ... ({len(values)} in all)" if len(values) > 20 else "")


def shard_path(shard_dir: str | os.PathLike, key: str, shard: int, num_shards: int) -> Path:
    """``<shard_dir>/<key>-shard<i>of<n>.pt`` (i zero-padded to the width of n)."""
    width = len(str(num_shards))
    return Path(shard_dir) / f"{key}-shard{shard:0{width}d}of{num_shards}.pt"


def report_path(shard_dir: str | os.PathLike, key: str) -> Path:
    """Where the list of unreadable images of the last failed pass is written."""
    return Path(shard_dir) / f"{key}-unreadable.json"


def shard_ranges(num_items: int, shard_size: int) -> list[tuple[int, int]]:
    """``[(start, stop)]`` positions of each shard."""
    return [(s, min(s + shard_size, num_items)) for s in range(0, num_items, shard_size)]


def shard_stamp(items: ImageItems, start: int, stop: int) -> str:
    """Digest of the sizes and mtimes of the files of positions [start, stop): a replaced image changes it."""
    import hashlib

    return hashlib.sha256("|".join(items.stamp(p) for p in range(start, stop)).encode()).hexdigest()[:16]


def load_shard(
    path: Path, key: str, shard: int, num_shards: int, items: np.ndarray, dim: int | None, stamp: str | None = None
) -> np.ndarray:
    """A shard's embeddings float32 (m, D) after checking key, shard number, item ids, file stamps, shape, finiteness."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first_line = (str(exc).strip().splitlines() or [""])[0][:200]
        raise ValueError(f"not a readable shard ({type(exc).__name__}: {first_line})") from exc
    if not isinstance(payload, dict) or payload.get("format") != SHARD_FORMAT:
        raise ValueError("not an egath_lite image shard")
    if payload.get("key") != key or payload.get("shard") != shard or payload.get("num_shards") != num_shards:
        raise ValueError(
            f"made for key {payload.get('key')!r}, shard {payload.get('shard')} of "
            f"{payload.get('num_shards')}, not {key!r}, {shard} of {num_shards}"
        )
    stored, emb = payload.get("items"), payload.get("emb")
    if not isinstance(stored, torch.Tensor) or not isinstance(emb, torch.Tensor):
        raise ValueError("the items or emb tensor is missing")  # noqa: TRY004 - a bad file, not a bad argument
    if stored.dtype != torch.int64 or not np.array_equal(stored.numpy(), items):
        raise ValueError("holds other items than this shard's (the data set or its order changed)")
    if stamp is not None and payload.get("stamp") != stamp:
        raise ValueError("an image file of this shard was replaced or touched since it was encoded")
    wrong_dim = dim is not None and emb.ndim == 2 and emb.shape[1] != dim
    if emb.dtype != torch.float32 or emb.ndim != 2 or emb.shape[0] != len(items) or wrong_dim:
        raise ValueError(
            f"embeddings are {tuple(emb.shape)} {emb.dtype}, expected ({len(items)}, {dim or 'D'}) float32"
        )
    if not torch.isfinite(emb).all():
        raise ValueError("embeddings contain NaN/Inf")
    return emb.numpy()


def _save_shard(
    path: Path, key: str, shard: int, num_shards: int, items: np.ndarray, emb: np.ndarray, stamp: str | None = None
) -> None:
    payload = {
        "format": SHARD_FORMAT,
        "key": key,
        "shard": shard,
        "num_shards": num_shards,
        "stamp": stamp,
        "items": torch.from_numpy(np.ascontiguousarray(items, dtype=np.int64)),
        "emb": torch.from_numpy(np.ascontiguousarray(emb, dtype=np.float32)),
    }
    atomic_write_bytes(path, lambda f: torch.save(payload, f))


def _embed_dim(model: torch.nn.Module) -> int | None:
    dim = getattr(getattr(model, "visual", None), "output_dim", None)
    return int(dim) if isinstance(dim, int) else None


def _model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _check_args(items: Any, key: Any, shard_size: Any, batch_size: Any) -> None:
    if not isinstance(items, ImageItems):
        raise TypeError(
            f"encode_images_sharded takes an ImageItems (egath_lite.clip.images), got {type(items).__name__}"
        )
    if items.train:
        raise ValueError("extraction needs the eval preprocessing; build the ImageItems with train=False")
    if len(items) == 0:
        raise ValueError("no images given (N = 0); check the split indices")
    if not isinstance(key, str) or not _KEY.match(key):
        raise ValueError(f"shard key must be 1-100 characters of [A-Za-z0-9_.-] (it names files), got {key!r}")
    for name, v in (("shard_size", shard_size), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")


@torch.no_grad()
def encode_images_sharded(
    model: torch.nn.Module,
    items: ImageItems,
    shard_dir: str | os.PathLike,
    key: str,
    shard_size: int = 2048,
    batch_size: int = 256,
    num_workers: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    info: dict[str, Any] | None = None,
    only: Any = None,
) -> np.ndarray | None:
    """L2-normalised image embeddings float32 (N, D) of ``items``, resumable through shard files.

    ``only(s) -> bool``: encode (and write) only those missing shards, return None (one rank of several:
    ``pipeline.distributed``); a later call without it reuses every shard written.

    ``info`` (a dict, optional) is filled with ``num_shards``, ``reused_shards``, ``encoded_shards``,
    ``encoded_items``, ``reused_items``, ``seconds``, ``items_per_second``. Raises UnreadableImagesError
    after the whole pass when any image could not be read (the good shards stay on disk).
    """
    _check_args(items, key, shard_size, batch_size)
    device = _model_device(model) if device is None else torch.device(device)
    state = _Pass(items, Path(shard_dir), key, shard_size, _embed_dim(model))
    if only is not None:
        state.todo = [s for s in state.todo if only(s)]
    batches, batch_shard = state.batches(batch_size)
    t0 = time.perf_counter()
    if batches:
        model.eval()
        num_workers = default_num_workers(items) if num_workers is None else num_workers
        loader = make_image_loader(items, batch_size, num_workers, device, batches=batches)
        bar = tqdm(
            total=sum(map(len, batches)),
            unit="img",
            disable=not progress,
            leave=False,
            desc=f"image embeddings ({len(state.done)}/{state.num_shards} shards reused)",
        )
        it = iter(loader)
        try:
            with main_threads_beside_workers(num_workers, device), ThreadChooser(model, "image", device) as threads:
                for s, batch in zip(batch_shard, it):
                    positions, x, errors = to_model_input(batch, items, device)
                    emb = None
                    if len(positions):
                        with threads.batch(len(positions)), autocast(device)[0]:
                            emb = model.encode_image(x, normalize=True).float().cpu().numpy()
                    state.add(s, positions.tolist(), emb, errors)
                    bar.update(len(positions) + len(errors))
        finally:
            bar.close()
            shutdown = getattr(it, "_shutdown_workers", None)  # now, not when a stored traceback lets go of it
            if shutdown is not None:
                shutdown()
    seconds = time.perf_counter() - t0
    stats = state.stats()
    stats.update(seconds=seconds, items_per_second=stats["encoded_items"] / seconds if stats["encoded_items"] else None)
    if info is not None:
        info.update(stats)
    if only is not None:
        return None
    return state.finish()


class _Pass:
    """One pass over the shards: which are valid on disk, the rows of those being encoded, the errors so far."""

    def __init__(self, items: ImageItems, shard_dir: Path, key: str, shard_size: int, dim: int | None):
        self.items, self.shard_dir, self.key = items, shard_dir, key
        self.ranges = shard_ranges(len(items), shard_size)
        self.num_shards = len(self.ranges)
        self.done: dict[int, np.ndarray] = {}
        for s, (start, stop) in enumerate(self.ranges):
            path = self.path(s)
            if path.is_file():
                try:
                    self.done[s] = load_shard(
                        path, key, s, self.num_shards, items.items[start:stop], dim, shard_stamp(items, start, stop)
                    )
                except ValueError as exc:
                    print(f"[shards] recomputing {path.name}: {exc}")
        self.reused = sorted(self.done)
        self.todo = [s for s in range(self.num_shards) if s not in self.done]
        self.rows: dict[int, dict[int, np.ndarray]] = {s: {} for s in self.todo}
        self.shard_errors: dict[int, list[ImageError]] = {s: [] for s in self.todo}
        self.pending: dict[int, int] = {}
        self.encoded: list[int] = []
        self.encoded_items = 0

    def path(self, s: int) -> Path:
        return shard_path(self.shard_dir, self.key, s, self.num_shards)

    def batches(self, batch_size: int) -> tuple[list[list[int]], list[int]]:
        """Batches of positions over the shards to encode, none straddling two shards, and each batch's shard."""
        batches, batch_shard = [], []
        for s in self.todo:
            start, stop = self.ranges[s]
            for b in range(start, stop, batch_size):
                batches.append(list(range(b, min(b + batch_size, stop))))
                batch_shard.append(s)
            self.pending[s] = len(range(start, stop, batch_size))
        return batches, batch_shard

    def add(self, s: int, positions: list[int], emb: np.ndarray | None, errors: list[ImageError]) -> None:
        """One batch of shard s; after its last batch the shard is written, unless one of its images failed."""
        if emb is not None:
            self.rows[s].update(zip(positions, emb))
            self.encoded_items += len(positions)
        self.shard_errors[s] += errors
        self.pending[s] -= 1
        if self.pending[s] or self.shard_errors[s]:
            return
        start, stop = self.ranges[s]
        rows = self.rows.pop(s)
        emb = np.stack([rows[p] for p in range(start, stop)])
        if not np.isfinite(emb).all():
            raise FloatingPointError(f"shard {s}: image embeddings contain NaN/Inf; check the model weights")
        _save_shard(
            self.path(s),
            self.key,
            s,
            self.num_shards,
            self.items.items[start:stop],
            emb,
            shard_stamp(self.items, start, stop),
        )
        self.done[s] = emb
        self.encoded.append(s)

    def failed(self) -> list[int]:
        return sorted(s for s, errs in self.shard_errors.items() if errs)

    def stats(self) -> dict[str, Any]:
        return {
            "num_shards": self.num_shards,
            "reused_shards": self.reused,
            "encoded_shards": self.encoded,
            "failed_shards": self.failed(),
            "encoded_items": self.encoded_items,
            "reused_items": sum(self.ranges[s][1] - self.ranges[s][0] for s in self.reused),
        }

    def finish(self) -> np.ndarray:
        """All shards' embeddings (N, D), or UnreadableImagesError with every bad image (also written to a report)."""
        report = report_path(self.shard_dir, self.key)
        errors = sorted((e for errs in self.shard_errors.values() for e in errs), key=lambda e: e.position)
        if errors:
            record = {
                "key": self.key,
                "failed_shards": self.failed(),
                "num_shards": self.num_shards,
                "unreadable": [e._asdict() for e in errors],
            }
            atomic_write_bytes(report, lambda f: f.write(json.dumps(record, indent=1).encode()))
            raise UnreadableImagesError(errors, self.failed(), self.num_shards, self.shard_dir, report)
        report.unlink(missing_ok=True)
        return np.concatenate([self.done[s] for s in range(self.num_shards)])


def cleanup_shards(shard_dir: str | os.PathLike, key: str) -> int:
    """Delete the shard files (every shard count) and the unreadable-image report of ``key``; returns how many."""
    if not isinstance(key, str) or not _KEY.match(key):
        raise ValueError(f"shard key must be 1-100 characters of [A-Za-z0-9_.-], got {key!r}")
    shard_dir = Path(shard_dir)
    if not shard_dir.is_dir():
        return 0
    pattern = re.compile(rf"^{re.escape(key)}-shard\d+of\d+\.pt$")
    removed = 0
    for path in list(shard_dir.iterdir()):
        if pattern.match(path.name) or path == report_path(shard_dir, key):
            path.unlink(missing_ok=True)
            removed += 1
    return removed
