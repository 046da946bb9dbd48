"""The toy_nuswide stage: the generated data set cached as one byte-deterministic bundle per key.

The bundle lives in ``<runs_root>/shared-cache/`` (shared by every run of a runs root); its key
covers (size, seed, image size, generator version) and the generator's source digest, so an edit
of the generator regenerates it. Kept apart from the generator so that editing this caching code
does not invalidate the data.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..stages import Stage, shape_problems, shared_folder
from .bundle import BundleError, read_bundle, write_bundle
from .dataset import DatasetError, MultiModalDataset, SplitDefaults
from .reference import NUS_TC10_LABELS
from .toy_nuswide import (GENERATOR_VERSION, SPLIT_QUERY_FRACTION, SPLIT_SEED, SPLIT_TRAIN_FRACTION,
                          generate_toy_nuswide, generator_fingerprint, resolve_size)


def default_cache_dir() -> Path:
    """The runs root whose shared cache holds toy bundles: ``$EGATH_CACHE``, else ``./runs`` of the working directory."""
    env = os.environ.get("EGATH_CACHE")
    return Path(env) if env else Path.cwd() / "runs"


def _toy_config(cache_dir: str | os.PathLike, size: int, seed: int, image_size: int):
    from ..config import Config

    return Config.from_dict({"toy_size": size, "seed": seed, "image_size": image_size, "runs_root": str(cache_dir)})


def cache_path(cache_dir: str | os.PathLike, size: int, seed: int, image_size: int) -> Path:
    """The bundle of (size, seed, image_size, generator version) under ``<cache_dir>/shared-cache/``."""
    return TOY_STAGE.path(_toy_config(cache_dir, size, seed, image_size))


def _write_bundle(path: Path, payload: dict[str, Any]) -> None:
    # no creation time in the file: the same parameters always give the same bytes
    arrays = {k: v.numpy() for k, v in payload["tensors"].items()}
    write_bundle(path, arrays, {k: v for k, v in payload.items() if k not in ("tensors", "created", "compute_seconds")})


def _read_bundle(path: Path) -> dict[str, Any]:
    import torch

    arrays, meta = read_bundle(path)
    return {**meta, "created": None, "tensors": {k: torch.from_numpy(np.array(v)) for k, v in arrays.items()}}


def _expect(cfg: Any, params: dict[str, Any], payload: dict[str, Any]) -> list[str]:
    import torch

    n, s = cfg.toy_size, cfg.image_size
    return shape_problems(payload["tensors"], {
        "images": ((n, s, s, 3), torch.uint8), "labels": ((n, len(NUS_TC10_LABELS)), torch.uint8),
        "label_rows": ((n,), torch.int64), "texts_utf8": ((None,), torch.uint8)})


def _generator(cfg: Any) -> str:
    """the generator's source digest"""
    return generator_fingerprint()


TOY_STAGE = Stage(
    "toy_nuswide", fields=("toy_size", "seed", "image_size"), version=str(GENERATOR_VERSION), extra=_generator,
    codec=(_write_bundle, _read_bundle), suffix=".bundle", location=shared_folder, expect=_expect,
    description="the embedded toy data set (images, labels, tags), shared by every run of a runs root",
)


def load_toy_nuswide(size: int | str = "default", seed: int = 0, image_size: int = 64,
                     cache_dir: str | os.PathLike | None | bool = None, progress: bool = True) -> MultiModalDataset:
    """The toy_nuswide dataset; cached under ``cache_dir`` (None: default_cache_dir(), False: no cache).

    A cache file that is unreadable, truncated, altered or made by other parameters is
    reported on stdout and regenerated (it is a pure function of the parameters).
    """
    import torch

    n = resolve_size(size)

    def compute() -> tuple[dict[str, Any], dict[str, Any]]:
        data = generate_toy_nuswide(n, seed, image_size, progress=progress)
        if any("\n" in t for t in data["texts"]):  # guards the newline-joined storage format
            raise DatasetError("a generated tag contains a newline; this is a bug in toy_tags")
        text_bytes = np.frombuffer("\n".join(data["texts"]).encode("utf-8"), dtype=np.uint8).copy()
        tensors = {"images": data["images"], "labels": data["labels"], "label_rows": data["label_rows"],
                   "texts_utf8": text_bytes}
        return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in tensors.items()}, {}

    if cache_dir is False:
        start = time.perf_counter()
        tensors, _ = compute()
        path, cache_hit, seconds = None, False, time.perf_counter() - start
    else:
        root = default_cache_dir() if cache_dir in (None, True) else Path(cache_dir)
        payload = TOY_STAGE.run(_toy_config(root, n, seed, image_size), compute)
        tensors, path, cache_hit = payload["tensors"], payload["path"], payload["cache_hit"]
        seconds = 0.0 if cache_hit else payload["compute_seconds"]
    texts = tensors["texts_utf8"].numpy().tobytes().decode("utf-8").split("\n")
    if len(texts) != n:
        raise BundleError(f"{path}: {len(texts)} texts for {n} items; delete {path} and rerun")
    data = {"images": tensors["images"].numpy(), "labels": tensors["labels"].numpy(),
            "label_rows": tensors["label_rows"].numpy(), "texts": texts}
    meta = {"dataset": "toy_nuswide", "generator_version": GENERATOR_VERSION, "generator_fingerprint":
            generator_fingerprint(), "num_items": n, "seed": int(seed), "image_size": int(image_size),
            "label_names": list(NUS_TC10_LABELS)}
    q = max(1, round(SPLIT_QUERY_FRACTION * n))
    info = dict(meta, source="toy_nuswide", cache_path=str(path) if path else None, cache_hit=cache_hit,
                generate_seconds=seconds, label_rows=data["label_rows"],
                provenance="labels: rows of NUS-WIDE TC-10 LAll (GCDH release, data/reference/nus_tc10_labels.mat); "
                           "images and tags: procedural (egath_lite.data.toy_render / toy_tags)")
    return MultiModalDataset(
        name="toy_nuswide", label_names=list(NUS_TC10_LABELS), labels=data["labels"], texts=list(data["texts"]),
        images=data["images"], split_defaults=SplitDefaults(q, max(1, round(SPLIT_TRAIN_FRACTION * n)), SPLIT_SEED),
        info=info,
    )

