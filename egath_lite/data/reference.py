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


# --- added by the data layer: label names of the real benchmarks, and GloVe rows by name ---
# MIRFlickr-25K: the 24 annotation files (without *_r1), alphabetical = the row order of mir_glove.mat.
MIRFLICKR25K_LABELS = [
    "animals", "baby", "bird", "car", "clouds", "dog", "female", "flower", "food", "indoor", "lake", "male",
    "night", "people", "plant_life", "portrait", "river", "sea", "sky", "structures", "sunset", "transport",
    "tree", "water",
]
# MS-COCO's 80 categories in the order of their category ids (1..90 with gaps), as most .mat releases store them.
MSCOCO_LABELS_BY_ID = [
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
]
# coco_glove.mat rows are in alphabetical order of the names (checked in tests: its bird/car/dog rows equal
# mir_glove's, its person row equals nus_glove's).
MSCOCO_LABELS = sorted(MSCOCO_LABELS_BY_ID)


def reference_label_names(dataset: str) -> list[str]:
    """Label names in the row order of the dataset's reference files (``*_glove.mat``, ``*_adj.mat``)."""
    prefix = _prefix(dataset)
    return list({"mir": MIRFLICKR25K_LABELS, "nus": NUS_TC10_LABELS, "coco": MSCOCO_LABELS}[prefix])


def load_glove_for_labels(dataset: str, label_names: list[str]) -> np.ndarray:
    """GloVe rows float32 (C, 300) in the order of ``label_names`` (e.g. a loaded dataset's, which may differ)."""
    order = reference_label_names(dataset)
    missing = [n for n in label_names if n not in order]
    if missing:
        raise ValueError(f"no GloVe vector for label(s) {missing} of {dataset!r}; known: {order}")
    return load_glove(dataset)[[order.index(n) for n in label_names]]
