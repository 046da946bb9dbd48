"""The real label statistics shipped as package data in ``egath_lite/data/reference_files/`` (GCDH's release).

The files are read through ``importlib.resources``, so they are found wherever the package
is installed (a checkout, an editable install, a wheel in site-packages). Provenance and
the facts checked on them: ``reference_files/README.md``.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

REFERENCE_PACKAGE = "egath_lite.data"
REFERENCE_FOLDER = "reference_files"
REFERENCE_FILES = (
    "mir_glove.mat",
    "nus_glove.mat",
    "coco_glove.mat",
    "mir_adj.mat",
    "nus_adj.mat",
    "coco_adj.mat",
    "nus_tc10_labels.mat",
    "reported_mAP_DCHMT_table1.csv",
)

_PREFIX = {"mirflickr25k": "mir", "nuswide_tc10": "nus", "toy_nuswide": "nus", "mscoco": "coco"}

NUS_TC10_LABELS = ["sky", "clouds", "person", "water", "animal", "grass", "buildings", "window", "plants", "lake"]


def reference_file(name: str):
    """The shipped reference file ``name`` as an ``importlib.resources`` Traversable (open with ``.open("rb")``)."""
    if name not in REFERENCE_FILES:
        raise ValueError(f"unknown reference file {name!r}; shipped: {list(REFERENCE_FILES)}")
    res = resources.files(REFERENCE_PACKAGE).joinpath(REFERENCE_FOLDER, name)
    if not res.is_file():
        raise FileNotFoundError(
            f"reference file {name} is missing from the installed package ({res}); it ships as package data of "
            f"egath_lite ({REFERENCE_FOLDER}/). Reinstall the package (pip install --force-reinstall egath_lite), or in "
            f"a checkout restore it with `git checkout -- egath_lite/data/{REFERENCE_FOLDER}/{name}`"
        )
    return res


def _loadmat(name: str) -> dict:
    from scipy.io import loadmat

    with reference_file(name).open("rb") as f:  # a file object: works for zipped installs too
        return loadmat(f)


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
    "animals",
    "baby",
    "bird",
    "car",
    "clouds",
    "dog",
    "female",
    "flower",
    "food",
    "indoor",
    "lake",
    "male",
    "night",
    "people",
    "plant_life",
    "portrait",
    "river",
    "sea",
    "sky",
    "structures",
    "sunset",
    "transport",
    "tree",
    "water",
]
# MS-COCO's 80 categories in the order of their category ids (1..90 with gaps), as most .mat releases store them.
MSCOCO_LABELS_BY_ID = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
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
