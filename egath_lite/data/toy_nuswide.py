"""toy_nuswide, the embedded default: real NUS-WIDE TC-10 label rows, procedural images, Flickr-like tags.

Labels are rows drawn without replacement (seeded) from the 186,577 real TC-10 label
rows (``data/reference/nus_tc10_labels.mat``), so label frequencies and co-occurrences are
NUS-WIDE's own up to sampling error. Images are rendered by ``toy_render`` and tags drawn
by ``toy_tags``. Everything is a pure function of (size, seed, image_size, label_dependence,
GENERATOR_VERSION); ``toy_cache`` caches the result in one byte-deterministic bundle per key.

**label_dependence** (0 by default: every label is drawn and tagged on its own, given the label rows,
so given an item's image or tags its labels are independent and co-occurrence adds nothing a classifier
could use). At level p, each *dependent* label's evidence is, for a fraction p of the items that carry
it, replaced by its parent's: the item is drawn and tagged as if it had the parent instead (a lake drawn
as water, clouds drawn as sky), while its label row stays the real NUS-WIDE row. The dependent labels
are chosen on one principle, from the real TC-10 rows, not tuned: a label is dependent when at least
80% of the items that carry it also carry one other label, its parent (``DEPENDENT_LABELS``:
P(water | lake) = 0.844, P(sky | clouds) = 0.838; the next, P(clouds | sky), is 0.611). Such a label
can then only be told from its parent through the label statistics, which is where the paper expects
a label graph to help. The label rows, and so every label statistic, are unchanged at every level.
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
# label -> its parent: the labels of which >= DEPENDENCE_THRESHOLD of the real TC-10 rows carry one other label
DEPENDENT_LABELS = {"lake": "water", "clouds": "sky"}
DEPENDENCE_THRESHOLD = 0.8


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


def check_label_dependence(value: Any) -> float:
    """``label_dependence`` as a float in [0, 1], or DatasetError naming the range."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) or not 0 <= value <= 1:
        raise DatasetError(f"label_dependence must be a number in [0, 1] (0: independent rendering), got {value!r}")
    return float(value)


def shared_evidence(labels: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """What is drawn and tagged (N, 10) uint8: ``labels`` with, for a fraction ``level`` of the items carrying a
    dependent label, that label's evidence replaced by its parent's (``DEPENDENT_LABELS``)."""
    from egath_lite.data.reference import NUS_TC10_LABELS

    evidence = np.array(labels, dtype=np.uint8, copy=True)
    col = {name: i for i, name in enumerate(NUS_TC10_LABELS)}
    for child, parent in DEPENDENT_LABELS.items():  # one uniform draw per item and dependent label
        hide = (labels[:, col[child]] > 0) & (rng.random(len(labels)) < level)
        evidence[hide, col[child]] = 0
        evidence[hide, col[parent]] = 1
    return evidence


def generate_toy_nuswide(
    size: int | str = "default",
    seed: int = 0,
    image_size: int = 64,
    progress: bool = True,
    label_dependence: float = 0.0,
) -> dict[str, Any]:
    """No cache: {"images" uint8 (N,S,S,3), "labels" uint8 (N,10), "label_rows" int64 (N,), "texts", "seconds"}.

    ``label_dependence`` (module docstring): 0 is the independent rendering, byte for byte the data of
    generator version 1 (the draws of the dependence use their own random stream).
    """
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
    level = check_label_dependence(label_dependence)
    drawn = (
        labels
        if level == 0
        else shared_evidence(labels, level, np.random.default_rng([GENERATOR_VERSION, int(seed), 3]))
    )
    images = np.empty((n, renderer.size, renderer.size, 3), np.uint8)
    attrs = {"sky_kind": np.zeros(n, np.int8), "animal_kind": np.zeros(n, np.int8)}
    batches = range(0, n, BATCH)
    for b, lo in enumerate(tqdm(batches, desc=f"toy_nuswide n={n}", unit="batch", disable=not progress)):
        hi = min(lo + BATCH, n)
        rng = np.random.default_rng([GENERATOR_VERSION, int(seed), 1, b])
        images[lo:hi], batch_attrs = renderer.render(drawn[lo:hi], rng)
        for k in attrs:
            attrs[k][lo:hi] = batch_attrs[k]
    texts = sample_tags(drawn, attrs, np.random.default_rng([GENERATOR_VERSION, int(seed), 2]))
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
