"""The toy_nuswide cache: the generated data set stored as one byte-deterministic bundle per key.

The bundle lives in ``<runs_root>/shared-cache/`` (shared by every run of a runs root); its key
digests (size, seed, image size), the generator's version and the digest of the generator's own
source, so an edit of the generator regenerates it. The cache is the data layer's own (atomic write,
lock file, a checksum per array, the key recorded inside): ``egath_lite.data`` knows no stages or
configs. Kept apart from the generator so that editing this caching code does not invalidate the data.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from egath_lite.data.bundle import BundleError, read_bundle, write_bundle
from egath_lite.data.dataset import DatasetError, MultiModalDataset, SplitDefaults
from egath_lite.data.reference import NUS_TC10_LABELS
from egath_lite.data.toy_nuswide import (
    GENERATOR_VERSION,
    SPLIT_QUERY_FRACTION,
    SPLIT_SEED,
    SPLIT_TRAIN_FRACTION,
    check_label_dependence,
    generate_toy_nuswide,
    generator_fingerprint,
    resolve_size,
)
from egath_lite.files import file_lock

CACHE_FORMAT = "egath_lite.toy_bundle/1"
SHARED_DIR = "shared-cache"  # under the runs root: artifacts shared by every run of it


def default_cache_dir() -> Path:
    """The runs root whose shared cache holds toy bundles: ``$EGATH_CACHE``, else ``./runs`` of the working directory."""
    env = os.environ.get("EGATH_CACHE")
    return Path(env) if env else Path.cwd() / "runs"


def cache_key(size: int, seed: int, image_size: int, label_dependence: float = 0.0) -> str:
    """16 hex digits over the parameters, the generator's version and its source digest."""
    params: dict[str, Any] = {"toy_size": int(size), "seed": int(seed), "image_size": int(image_size)}
    if label_dependence:  # level 0 keeps the parameters of the independent generator
        params["label_dependence"] = float(label_dependence)
    parts = {
        "format": CACHE_FORMAT,
        "version": GENERATOR_VERSION,
        "generator": generator_fingerprint(),
        "params": params,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def cache_path(
    cache_dir: str | os.PathLike, size: int, seed: int, image_size: int, label_dependence: float = 0.0
) -> Path:
    """The bundle of (size, seed, image_size, label_dependence, generator version) under ``<cache_dir>/shared-cache/``."""
    key = cache_key(size, seed, image_size, label_dependence)
    return Path(cache_dir).resolve() / SHARED_DIR / f"toy_nuswide-{key}.bundle"


def _problems(arrays: dict[str, np.ndarray], meta: dict[str, Any], key: str, n: int, s: int) -> list[str]:
    if meta.get("format") != CACHE_FORMAT:
        return [f"not a toy_nuswide bundle (format {meta.get('format')!r})"]
    if meta.get("key") != key:
        return [f"made by another configuration (key {meta.get('key')} != {key})"]
    want = {
        "images": ((n, s, s, 3), np.uint8),
        "labels": ((n, len(NUS_TC10_LABELS)), np.uint8),
        "label_rows": ((n,), np.int64),
        "texts_utf8": (None, np.uint8),
    }
    out = []
    for name, (shape, dtype) in want.items():
        a = arrays.get(name)
        if a is None:
            out.append(f"lacks array {name!r}")
        elif (shape is not None and a.shape != shape) or a.dtype != dtype:
            out.append(f"{name} has {a.dtype} {a.shape}, the key promises {np.dtype(dtype)} {shape or '(*,)'}")
    return out


def _cached(path: Path, key: str, n: int, image_size: int, compute: Any) -> tuple[dict[str, np.ndarray], bool, float]:
    """(arrays, cache_hit, seconds): the valid bundle at ``path``, else ``compute()`` written there (under a lock)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path, f"toy_nuswide bundle {path.name}"):
        if path.is_file():
            try:
                arrays, meta = read_bundle(path)
                problems = _problems(arrays, meta, key, n, image_size)
            except BundleError as exc:
                problems = [str(exc)]
            if not problems:
                print(f"[toy_nuswide] reusing {path}")
                return arrays, True, 0.0
            print(f"[toy_nuswide] recomputing: {path.name}: {'; '.join(problems)}")
        start = time.perf_counter()
        arrays = compute()
        # no creation time in the file: the same parameters always give the same bytes
        write_bundle(path, arrays, {"format": CACHE_FORMAT, "key": key})
        return arrays, False, time.perf_counter() - start


def load_toy_nuswide(
    size: int | str = "default",
    seed: int = 0,
    image_size: int = 64,
    cache_dir: str | os.PathLike | None | bool = None,
    progress: bool = True,
    label_dependence: float = 0.0,
) -> MultiModalDataset:
    """The toy_nuswide dataset; cached under ``cache_dir`` (None: default_cache_dir(), False: no cache).

    ``label_dependence`` in [0, 1]: how often a dependent label is drawn and tagged as its parent
    (``egath_lite.data.toy_nuswide``; 0, the default, is the independent rendering).

    A cache file that is unreadable, truncated, altered or made by other parameters is
    reported on stdout and regenerated (it is a pure function of the parameters).
    """
    n = resolve_size(size)
    level = check_label_dependence(label_dependence)

    def compute() -> dict[str, np.ndarray]:
        data = generate_toy_nuswide(n, seed, image_size, progress=progress, label_dependence=level)
        if any("\n" in t for t in data["texts"]):  # guards the newline-joined storage format
            raise DatasetError("a generated tag contains a newline; this is a bug in toy_tags")
        text_bytes = np.frombuffer("\n".join(data["texts"]).encode("utf-8"), dtype=np.uint8).copy()
        arrays = {
            "images": data["images"],
            "labels": data["labels"],
            "label_rows": data["label_rows"],
            "texts_utf8": text_bytes,
        }
        return {k: np.ascontiguousarray(v) for k, v in arrays.items()}

    if cache_dir is False:
        start = time.perf_counter()
        arrays, path, cache_hit = compute(), None, False
        seconds = time.perf_counter() - start
    else:
        root = default_cache_dir() if cache_dir in (None, True) else Path(cache_dir)
        path = cache_path(root, n, seed, image_size, level)
        arrays, cache_hit, seconds = _cached(path, cache_key(n, seed, image_size, level), n, image_size, compute)
    texts = arrays["texts_utf8"].tobytes().decode("utf-8").split("\n")
    if len(texts) != n:
        raise BundleError(f"{path}: {len(texts)} texts for {n} items; delete {path} and rerun")
    data = {"images": arrays["images"], "labels": arrays["labels"], "label_rows": arrays["label_rows"], "texts": texts}
    meta = {
        "dataset": "toy_nuswide",
        "generator_version": GENERATOR_VERSION,
        "generator_fingerprint": generator_fingerprint(),
        "num_items": n,
        "seed": int(seed),
        "image_size": int(image_size),
        "label_dependence": level,
        "label_names": list(NUS_TC10_LABELS),
    }
    q = max(1, round(SPLIT_QUERY_FRACTION * n))
    info = dict(
        meta,
        source="toy_nuswide",
        cache_path=str(path) if path else None,
        cache_hit=cache_hit,
        generate_seconds=seconds,
        label_rows=data["label_rows"],
        provenance="labels: rows of NUS-WIDE TC-10 LAll (GCDH release, data/reference/nus_tc10_labels.mat); "
        "images and tags: procedural (egath_lite.data.toy_render / toy_tags)",
    )
    return MultiModalDataset(
        name="toy_nuswide",
        label_names=list(NUS_TC10_LABELS),
        labels=data["labels"],
        texts=list(data["texts"]),
        images=data["images"],
        split_defaults=SplitDefaults(q, max(1, round(SPLIT_TRAIN_FRACTION * n)), SPLIT_SEED),
        info=info,
    )
