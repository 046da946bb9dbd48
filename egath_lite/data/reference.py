"""The real label statistics shipped under ``data/reference/`` (from GCDH's release; see data/README.md)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

# Repository layout: <repo>/egath_lite/data/reference.py -> <repo>/data/reference
REFERENCE_DIR = Path(__file__).resolve().parents[2] / "data" / "reference"

_PREFIX = {"mirflickr25k": "mir", "nuswide_tc10": "nus", "toy_nuswide": "nus", "mscoco": "coco"}

NUS_TC10_LABELS = ["sky", "clouds", "person", "water", "animal", "grass", "buildings", "window", "plants", "lake"]


def _loadmat(name: str) -> dict:
    from scipy.io import loadmat

    path = REFERENCE_DIR / name
    if not path.is_file():
        raise FileNotFoundError(
            f"reference file {path} is missing; it ships with the repository (data/reference/). "
            f"Restore it with `git checkout -- data/reference/{name}`"
        )
    return loadmat(path)


def _prefix(dataset: str) -> str:
    if dataset not in _PREFIX:
        raise ValueError(f"no reference statistics for dataset {dataset!r}; known: {sorted(_PREFIX)}")
    return _PREFIX[dataset]


def load_glove(dataset: str) -> np.ndarray:
    """GloVe vectors of the dataset's label names, float32 (C, 300), in the dataset's label order."""
    return np.asarray(_loadmat(f"{_prefix(dataset)}_glove.mat")["emb"], dtype=np.float32)


def load_released_adjacency(dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """GCDH's released co-occurrence ``adj`` (C, C) as stored (uint8: wrapped!) and counts ``num`` (C,)."""
    m = _loadmat(f"{_prefix(dataset)}_adj.mat")
    return np.asarray(m["adj"]), np.asarray(m["num"]).ravel()


def load_nus_tc10_labels() -> np.ndarray:
    """All 186,577 NUS-WIDE TC-10 multi-hot label rows, uint8 (186577, 10), order of NUS_TC10_LABELS."""
    return np.ascontiguousarray(_loadmat("nus_tc10_labels.mat")["LAll"], dtype=np.uint8)
