"""toy_nuswide, the embedded default: real NUS-WIDE TC-10 label rows, procedural images, Flickr-like tags.

Labels are rows drawn without replacement (seeded) from the 186,577 real TC-10 label
rows (``data/reference/nus_tc10_labels.mat``), so label frequencies and co-occurrences are
NUS-WIDE's own up to sampling error. Images are rendered by ``toy_render`` and tags drawn
by ``toy_tags``. Everything is a pure function of (size, seed, image_size,
GENERATOR_VERSION); ``toy_cache`` caches the result in one byte-deterministic bundle per key.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from egath_lite.data.dataset import DatasetError
from egath_lite.data.reference import load_nus_tc10_labels

# Bump when the output changes on purpose (it names the cache file); any source edit is also caught by
# generator_fingerprint(), recorded in the cache file.
GENERATOR_VERSION = 1
SIZES = {"tiny": 1_200, "default": 10_000}
MIN_SIZE = 20
BATCH = 256  # items rendered per vectorised batch (part of the determinism contract: do not change lightly)
SPLIT_QUERY_FRACTION, SPLIT_TRAIN_FRACTION = 0.1, 0.5  # default split: 1,000 / 5,000 of 10,000
SPLIT_SEED = 7  # GCDH's seed for NUS-WIDE TC-10, reused for its toy twin


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


def generate_toy_nuswide(
    size: int | str = "default", seed: int = 0, image_size: int = 64, progress: bool = True
) -> dict[str, Any]:
    """No cache: {"images" uint8 (N,S,S,3), "labels" uint8 (N,10), "label_rows" int64 (N,), "texts", "seconds"}."""
    from egath_lite.data.toy_render import SceneRenderer
    from egath_lite.data.toy_tags import sample_tags
    from egath_lite.progress import tqdm

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
    return {
        "images": images,
        "labels": labels,
        "label_rows": rows.astype(np.int64),
        "texts": texts,
        "seconds": time.perf_counter() - start,
    }


def generator_fingerprint() -> str:
    """SHA-256 (16 hex) of the generator's source files: any edit to them invalidates old cache files."""
    import hashlib

    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name in ("toy_nuswide.py", "toy_render.py", "toy_raster.py", "toy_tags.py"):
        digest.update((here / name).read_bytes())
    return digest.hexdigest()[:16]
