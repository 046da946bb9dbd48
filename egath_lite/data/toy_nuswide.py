"""toy_nuswide, the embedded default: real NUS-WIDE TC-10 label rows, procedural images, Flickr-like tags.

Labels are rows drawn without replacement (seeded) from the 186,577 real TC-10 label
rows (``data/reference/nus_tc10_labels.mat``), so label frequencies and co-occurrences are
NUS-WIDE's own up to sampling error. Images are rendered by ``toy_render`` and tags drawn
by ``toy_tags``. Everything is a pure function of (size, seed, image_size,
GENERATOR_VERSION); the result is cached in one byte-deterministic bundle file per key.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from .bundle import BundleError, read_bundle, write_bundle
from .dataset import DatasetError, MultiModalDataset, SplitDefaults
from .reference import NUS_TC10_LABELS, load_nus_tc10_labels

# Bump when the output changes on purpose (it names the cache file); any source edit is also caught by
# generator_fingerprint(), recorded in the cache file.
GENERATOR_VERSION = 1
SIZES = {"tiny": 1_200, "default": 10_000}
MIN_SIZE = 20
BATCH = 256  # items rendered per vectorised batch (part of the determinism contract: do not change lightly)
SPLIT_QUERY_FRACTION, SPLIT_TRAIN_FRACTION = 0.1, 0.5  # default split: 1,000 / 5,000 of 10,000
SPLIT_SEED = 7  # GCDH's seed for NUS-WIDE TC-10, reused for its toy twin
REPO_ROOT = Path(__file__).resolve().parents[2]


def resolve_size(size: int | str) -> int:
    """'tiny' -> 1,200, 'default' -> 10,000, or an int in [20, 186,577]."""
    if isinstance(size, str):
        if size not in SIZES:
            raise DatasetError(f"unknown toy_nuswide size {size!r}; use an int or one of {sorted(SIZES)}")
        return SIZES[size]
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise DatasetError(f"toy_nuswide size must be an int or one of {sorted(SIZES)}, got {size!r}")
    if not MIN_SIZE <= size <= 186_577:
        raise DatasetError(f"toy_nuswide size must be in [{MIN_SIZE}, 186577] (the real label rows), got {size}")
    return int(size)


def default_cache_dir() -> Path:
    """``$EGATH_CACHE/toy_nuswide`` when EGATH_CACHE is set, else ``<repo>/.cache/toy_nuswide`` (git-ignored)."""
    env = os.environ.get("EGATH_CACHE")
    return (Path(env) if env else REPO_ROOT / ".cache") / "toy_nuswide"


def cache_path(cache_dir: str | os.PathLike, size: int, seed: int, image_size: int) -> Path:
    """One file per (size, seed, image_size, generator version)."""
    return Path(cache_dir) / f"toy_nuswide_n{size}_seed{seed}_px{image_size}_v{GENERATOR_VERSION}.bundle"


def generate_toy_nuswide(size: int | str = "default", seed: int = 0, image_size: int = 64,
                         progress: bool = True) -> dict[str, Any]:
    """No cache: {"images" uint8 (N,S,S,3), "labels" uint8 (N,10), "label_rows" int64 (N,), "texts", "seconds"}."""
    from tqdm.auto import tqdm

    from .toy_render import SceneRenderer
    from .toy_tags import sample_tags

    n = resolve_size(size)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DatasetError(f"toy_nuswide seed must be a non-negative int, got {seed!r}")
    renderer = SceneRenderer(image_size)  # validates image_size, compiles the kernels once
    start = time.perf_counter()
    all_labels = load_nus_tc10_labels()
    rows = np.random.default_rng([GENERATOR_VERSION, int(seed), 0]).choice(len(all_labels), n, replace=False)
    labels = all_labels[rows]
    images = np.empty((n, renderer.size, renderer.size, 3), np.uint8)
    attrs = {"sky_kind": np.zeros(n, np.int8), "animal_kind": np.zeros(n, np.int8)}
    batches = range(0, n, BATCH)
    for b, lo in enumerate(tqdm(batches, desc=f"toy_nuswide n={n}", unit="batch", disable=not progress)):
        hi = min(lo + BATCH, n)
        rng = np.random.default_rng([GENERATOR_VERSION, int(seed), 1, b])
        images[lo:hi], batch_attrs = renderer.render(labels[lo:hi], rng)
        for k in attrs:
            attrs[k][lo:hi] = batch_attrs[k]
    texts = sample_tags(labels, attrs, np.random.default_rng([GENERATOR_VERSION, int(seed), 2]))
    return {"images": images, "labels": labels, "label_rows": rows.astype(np.int64), "texts": texts,
            "seconds": time.perf_counter() - start}


def generator_fingerprint() -> str:
    """SHA-256 (16 hex) of the generator's source files: any edit to them invalidates old cache files."""
    import hashlib

    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name in ("toy_nuswide.py", "toy_render.py", "toy_raster.py", "toy_tags.py"):
        digest.update((here / name).read_bytes())
    return digest.hexdigest()[:16]


def _expected_meta(n: int, seed: int, image_size: int) -> dict[str, Any]:
    return {"dataset": "toy_nuswide", "generator_version": GENERATOR_VERSION, "generator_fingerprint":
            generator_fingerprint(), "num_items": n, "seed": int(seed), "image_size": int(image_size),
            "label_names": list(NUS_TC10_LABELS)}


def _read_cache(path: Path, meta_expected: dict[str, Any]) -> dict[str, Any]:
    """Load and validate a cache file; BundleError when it is not exactly what these parameters make."""
    arrays, meta = read_bundle(path)
    if meta != meta_expected:
        diff = {k: (meta.get(k), v) for k, v in meta_expected.items() if meta.get(k) != v}
        raise BundleError(f"{path} was made with other parameters or generator code (cached, wanted: {diff})")
    n, s = meta["num_items"], meta["image_size"]
    want = {"images": ((n, s, s, 3), np.uint8), "labels": ((n, len(NUS_TC10_LABELS)), np.uint8),
            "label_rows": ((n,), np.int64)}
    for name, (shape, dtype) in want.items():
        if name not in arrays or arrays[name].shape != shape or arrays[name].dtype != dtype:
            got = (arrays[name].shape, arrays[name].dtype) if name in arrays else "missing"
            raise BundleError(f"{path}: array {name!r} should be {shape} {np.dtype(dtype)}, got {got}")
    texts = arrays["texts_utf8"].tobytes().decode("utf-8").split("\n") if "texts_utf8" in arrays else []
    if len(texts) != n:
        raise BundleError(f"{path}: {len(texts)} texts for {n} items")
    return {"images": arrays["images"], "labels": arrays["labels"], "label_rows": arrays["label_rows"], "texts": texts}


def load_toy_nuswide(size: int | str = "default", seed: int = 0, image_size: int = 64,
                     cache_dir: str | os.PathLike | None | bool = None, progress: bool = True) -> MultiModalDataset:
    """The toy_nuswide dataset; cached under ``cache_dir`` (None: default_cache_dir(), False: no cache).

    A cache file that is unreadable, truncated, altered or made by other parameters is
    reported on stdout and regenerated (it is a pure function of the parameters).
    """
    n = resolve_size(size)
    meta = _expected_meta(n, seed, image_size)
    data, cache_hit, path = None, False, None
    if cache_dir is not False:
        path = cache_path(default_cache_dir() if cache_dir in (None, True) else cache_dir, n, seed, image_size)
        if path.is_file():
            try:
                data, cache_hit = _read_cache(path, meta), True
            except (BundleError, OSError, UnicodeDecodeError) as exc:
                print(f"[toy_nuswide] cache {path} is unusable ({exc}); regenerating it")
    seconds = 0.0
    if data is None:
        data = generate_toy_nuswide(n, seed, image_size, progress=progress)
        seconds = data["seconds"]
        if path is not None:
            if any("\n" in t for t in data["texts"]):  # guards the newline-joined storage format
                raise DatasetError("a generated tag contains a newline; this is a bug in toy_tags")
            text_bytes = np.frombuffer("\n".join(data["texts"]).encode("utf-8"), dtype=np.uint8)
            write_bundle(path, {"images": data["images"], "labels": data["labels"], "label_rows": data["label_rows"],
                                "texts_utf8": text_bytes}, meta)
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
