"""The dataset object every stage consumes, its query/train/retrieval split, and the input checks.

One class for all sets: labels are uint8 (N, C) multi-hot, texts are tag strings (tags
joined by spaces; MS-COCO: a caption), images are either in memory (toy_nuswide,
uint8 (N, H, W, 3)) or paths opened on demand. The split follows GCDH / DCHMT:
``np.random.seed(seed); perm = np.random.permutation(N)``; query = the first
``num_query``, train = the next ``num_train``, retrieval = every item but the query.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from egath_lite.errors import EgathError


class DatasetError(EgathError, ValueError):
    """Bad or missing data: the message names the file or field, the problem and the fix."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A data folder or file that a loader needs is not there."""


# ----------------------------------------------------------------------------- images
def image_to_rgb(img: Any) -> Any:
    """A PIL image as 8-bit RGB, its values *scaled* to 0..255 where PIL's ``convert("RGB")`` would clip them.

    16-bit greyscale (``I;16*``): value / 257 (the whole 16-bit range onto 0..255). 32-bit integer (``I``):
    as is when its values fit 0..255, / 257 when they fit 0..65535 (a 16-bit image PIL opened as ``I``),
    else stretched from its minimum to its maximum. Float (``F``): × 255 when its values fit 0..1, else
    stretched from its minimum to its maximum. A float image with NaN or Inf is refused (ValueError). Every
    other mode goes through ``convert("RGB")`` (8-bit already; PIL reduces 16-bit RGB itself).
    """
    from PIL import Image

    if not (img.mode.startswith("I;16") or img.mode in ("I", "F")):
        return img.convert("RGB")
    arr = np.asarray(img)
    if arr.dtype.byteorder not in ("=", "|"):
        arr = arr.astype(arr.dtype.newbyteorder("="))
    arr = arr.astype(np.float64)
    if arr.size == 0:
        raise ValueError("the image has no pixels")
    if not np.isfinite(arr).all():
        raise ValueError(f"a {img.mode} image with NaN or Inf pixels cannot be shown as 8 bits; clean the file")
    lo, hi = float(arr.min()), float(arr.max())
    if img.mode.startswith("I;16"):
        scaled = arr / 257.0
    elif img.mode == "F" and lo >= 0.0 and hi <= 1.0:
        scaled = arr * 255.0
    elif img.mode == "I" and lo >= 0 and hi <= 255:
        scaled = arr
    elif img.mode == "I" and lo >= 0 and hi <= 65535:
        scaled = arr / 257.0
    else:  # no known range: its own minimum to maximum (a constant image is mid-grey)
        scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.full_like(arr, 127.0)
    grey = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return Image.fromarray(np.repeat(grey[..., None], 3, axis=2), "RGB")


# ----------------------------------------------------------------------------- checks
def check_labels(labels: Any, source: str, num_labels: int | None = None, allow_empty_rows: bool = False) -> np.ndarray:
    """Validate a multi-hot matrix and return it as contiguous uint8 (N, C); ``source`` names it in errors."""
    try:
        arr = np.asarray(labels)
    except Exception as exc:  # noqa: BLE001 - ragged lists and the like
        raise DatasetError(
            f"{source}: labels are not a rectangular array ({exc}); expected a (N, C) 0/1 matrix"
        ) from exc
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DatasetError(f"{source}: labels must be a non-empty 2-D (N, C) matrix, got shape {arr.shape}")
    if num_labels is not None and arr.shape[1] != num_labels:
        raise DatasetError(
            f"{source}: labels have {arr.shape[1]} columns but this dataset has {num_labels} labels; "
            f"check that the file is the right one (and not transposed: shape {arr.shape})"
        )
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise DatasetError(f"{source}: labels have dtype {arr.dtype}, expected numbers 0/1")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise DatasetError(f"{source}: labels contain NaN/Inf (first at row {bad[0]}, column {bad[1]}); fix the file")
    if not np.isin(arr, (0, 1)).all():
        bad = np.argwhere(~np.isin(arr, (0, 1)))[0]
        raise DatasetError(
            f"{source}: labels must be 0/1, found {arr[bad[0], bad[1]].item()!r} at row {bad[0]}, column {bad[1]}; "
            f"multi-hot labels, not counts or scores"
        )
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    empty = np.flatnonzero(arr.sum(axis=1) == 0)
    if len(empty) and not allow_empty_rows:
        raise DatasetError(
            f"{source}: {len(empty)} of {arr.shape[0]} label rows are all zero (first rows: {empty[:5].tolist()}); "
            f"every item needs at least one label (it has no relevant item otherwise). Remove those items, or pass "
            f"drop_unlabeled=True to the loader to drop them explicitly"
        )
    return arr


MIN_LABELS = 2  # with one label (or one every item carries) every item is relevant to every query: mAP 1.0
MIN_ITEMS = 3  # a seeded split needs one query item, one training item and one validation item


def check_enough(source: str, labels: np.ndarray, label_names: Sequence[str], split: bool = False) -> None:
    """DatasetError unless the data set has at least ``MIN_LABELS`` labels; with ``split`` (a run's data set,
    before its split), also none carried by every item and at least ``MIN_ITEMS`` items (the minimum is named)."""
    n, c = labels.shape
    if c < MIN_LABELS:
        raise DatasetError(
            f"{source}: {c} label ({', '.join(map(str, label_names))}); a retrieval benchmark needs at least "
            f"{MIN_LABELS}: with one, every item is relevant to every query and mAP is 1.0 whatever the codes. "
            f"Give the items their labels"
        )
    if not split:
        return
    everywhere = [str(label_names[j]) for j in np.flatnonzero(labels.sum(axis=0) == n)] if n > 1 else []
    if everywhere:
        raise DatasetError(
            f"{source}: every one of its {n} items carries label(s) {everywhere}: every item is relevant to every "
            f"query and mAP is 1.0 whatever the codes; at least {MIN_LABELS} labels that tell items apart are needed"
        )
    if n < MIN_ITEMS:
        raise DatasetError(
            f"{source}: {n} item(s); the split needs at least {MIN_ITEMS} (one query, one training and one "
            f"validation item)"
        )


def check_same_length(source: str, **columns: Sequence[Any] | np.ndarray | None) -> int:
    """All given per-item columns must have the same length; returns it. ``None`` columns are skipped."""
    lengths = {name: len(col) for name, col in columns.items() if col is not None}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{k}: {v}" for k, v in lengths.items())
        raise DatasetError(
            f"{source}: per-item fields have different lengths ({desc}); the files must describe the same items "
            f"in the same order (were they made by the same preparation script?)"
        )
    return next(iter(lengths.values()))


def _check_count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DatasetError(f"{name} must be a positive int, got {value!r}")
    return int(value)


# ----------------------------------------------------------------------------- split
@dataclass(frozen=True)
class Split:
    """Index arrays (int64) into a dataset: query, train, retrieval (= all but the query)."""

    query: np.ndarray
    train: np.ndarray
    retrieval: np.ndarray
    seed: int
    num_items: int

    def carve_validation(self, fraction: float, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(train, val): ``round(fraction * len(train))`` training items set aside, order kept; seed None: split's."""
        if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0.0 <= fraction < 1.0:
            raise DatasetError(f"validation fraction must be a float in [0, 1), got {fraction!r}")
        n_val = int(round(fraction * len(self.train)))
        if fraction > 0 and n_val == 0:
            n_val = 1  # a positive fraction always yields a validation set
        if n_val >= len(self.train):
            raise DatasetError(f"validation fraction {fraction} leaves no training items out of {len(self.train)}")
        rng = np.random.RandomState(self.seed if seed is None else seed)
        chosen = np.zeros(len(self.train), dtype=bool)
        chosen[rng.permutation(len(self.train))[:n_val]] = True
        return self.train[~chosen].copy(), self.train[chosen].copy()

    def sizes(self) -> dict[str, int]:
        """Number of items per part."""
        return {"query": len(self.query), "train": len(self.train), "retrieval": len(self.retrieval)}


def make_split(num_items: int, num_query: int, num_train: int, seed: int) -> Split:
    """GCDH's split: permutation of range(N) by ``np.random.seed(seed)``; query first, train next, retrieval = rest."""
    num_items, num_query, num_train = (
        _check_count(n, v) for n, v in (("num_items", num_items), ("num_query", num_query), ("num_train", num_train))
    )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DatasetError(f"split seed must be a non-negative int, got {seed!r}")
    if num_query + num_train > num_items:
        raise DatasetError(
            f"num_query ({num_query}) + num_train ({num_train}) exceeds the {num_items} items of the dataset; "
            f"ask for fewer (None picks the dataset's benchmark default)"
        )
    perm = np.random.RandomState(int(seed)).permutation(num_items).astype(np.int64)
    return Split(
        query=perm[:num_query],
        train=perm[num_query : num_query + num_train],
        retrieval=perm[num_query:],
        seed=int(seed),
        num_items=num_items,
    )


@dataclass(frozen=True)
class SplitDefaults:
    """A dataset's benchmark split: GCDH's sizes and seed for the real sets."""

    num_query: int
    num_train: int
    seed: int


# ----------------------------------------------------------------------------- dataset
@dataclass
class MultiModalDataset:
    """Image-text pairs with multi-hot labels; build through ``load_dataset`` (validated on construction)."""

    name: str
    label_names: list[str]
    labels: np.ndarray  # uint8 (N, C)
    texts: list[str]  # N tag strings (tags joined by " ")
    split_defaults: SplitDefaults
    images: np.ndarray | None = None  # uint8 (N, H, W, 3) for in-memory sets
    image_paths: list[str] | None = None  # N paths (absolute, or relative to image_root)
    image_root: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)  # provenance: layout, root, files, generator version
    fixed_split: Split | None = None  # a split the data itself fixes (a manifest's split column)

    def __post_init__(self) -> None:
        source = self.info.get("source", self.name)
        self.labels = check_labels(self.labels, f"{source} labels", num_labels=len(self.label_names))
        if len(set(self.label_names)) != len(self.label_names):
            raise DatasetError(f"{source}: label names are not unique: {self.label_names}")
        if not isinstance(self.texts, list) or not all(isinstance(t, str) for t in self.texts):
            raise DatasetError(f"{source}: texts must be a list of str (tags joined by spaces)")
        if (self.images is None) == (self.image_paths is None):
            raise DatasetError(f"{source}: give exactly one of images (in memory) or image_paths")
        if self.images is not None:
            if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] != 3:
                raise DatasetError(
                    f"{source}: images must be uint8 (N, H, W, 3), got {self.images.dtype} {self.images.shape}"
                )
        check_same_length(
            source, labels=self.labels, texts=self.texts, images=self.images, image_paths=self.image_paths
        )
        if self.fixed_split is not None and self.fixed_split.num_items != len(self.labels):
            raise DatasetError(
                f"{source}: the fixed split covers {self.fixed_split.num_items} items, the data {len(self.labels)}"
            )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_labels(self) -> int:
        """C, the number of labels."""
        return int(self.labels.shape[1])

    def get_image(self, i: int):
        """Item i's image as an RGB ``PIL.Image``; missing or unreadable files raise DatasetError."""
        from PIL import Image

        if not -len(self) <= i < len(self):
            raise IndexError(f"item {i} out of range for {self.name} with {len(self)} items")
        if self.images is not None:
            return Image.fromarray(self.images[i])
        path = self.image_path(i)
        try:
            with Image.open(path) as img:
                return image_to_rgb(img)
        except Exception as exc:  # noqa: BLE001 - PIL raises many types for a bad file
            raise DatasetError(f"{self.name}: image {path} of item {i} cannot be read ({exc}); re-extract it") from exc

    def image_path(self, i: int) -> Path:
        """Resolved path of item i's image file (raises DatasetError naming the paths tried)."""
        if self.image_paths is None:
            raise DatasetError(f"{self.name} keeps its images in memory (ds.images); it has no image files")
        entry = self.image_paths[i]
        tried = candidate_image_paths(entry, self.image_root)
        for cand in tried:
            if cand.is_file():
                return cand
        raise DatasetNotFoundError(
            f"{self.name}: image of item {i} ({entry!r}) not found; tried {[str(t) for t in tried]}. "
            f"Put the images there or pass image_dir=<folder holding them> to load_dataset"
        )

    def split(self, num_query: int | None = None, num_train: int | None = None, seed: int | None = None) -> Split:
        """Query / train / retrieval indices; a None argument takes the benchmark default (``split_defaults``).

        A data set with a ``fixed_split`` (a manifest's split column) returns it; sizes other than its own
        raise (they would silently not apply), a seed only changes which training items validation takes.
        """
        d = self.split_defaults
        if self.fixed_split is not None:
            fixed = self.fixed_split
            asked = {"num_query": (num_query, len(fixed.query)), "num_train": (num_train, len(fixed.train))}
            clash = {k: v for k, (v, own) in asked.items() if v is not None and v != own}
            if clash:
                raise DatasetError(
                    f"{self.info.get('source', self.name)}: its split column fixes the split (query "
                    f"{len(fixed.query)}, train {len(fixed.train)}, retrieval {len(fixed.retrieval)}), but {clash} "
                    f"was asked for; set num_query=None and num_train=None (driver: --set num_query=none --set "
                    f"num_train=none), or remove the split column to get a seeded split of those sizes"
                )
            return fixed if seed is None else dataclasses.replace(fixed, seed=int(seed))
        return make_split(
            len(self),
            d.num_query if num_query is None else num_query,
            d.num_train if num_train is None else num_train,
            d.seed if seed is None else seed,
        )

    def summary(self) -> dict[str, Any]:
        """Items, labels, per-label counts, labels and tags per item (what `python -m egath_lite.data` prints)."""
        tags_per_item = np.array([len(t.split()) for t in self.texts])
        counts = self.labels.sum(axis=0).astype(int)
        out = {
            "name": self.name,
            "items": len(self),
            "labels": self.num_labels,
            "label_counts": dict(zip(self.label_names, counts.tolist())),
            "mean_labels_per_item": float(self.labels.sum(axis=1).mean()),
            "mean_tags_per_item": float(tags_per_item.mean()),
            "items_without_tags": int((tags_per_item == 0).sum()),
            "split_defaults": dataclasses.asdict(self.split_defaults),
        }
        if self.images is not None:
            out["image_shape"] = list(self.images.shape[1:])
        return out

    def format_summary(self) -> str:
        """``summary()`` as a short human-readable table."""
        s = self.summary()
        width = max(len(n) for n in self.label_names)
        lines = [
            f"{s['name']}: {s['items']:,} items, {s['labels']} labels"
            + (f", images {'x'.join(map(str, s['image_shape']))}" if "image_shape" in s else ""),
            f"  mean labels per item {s['mean_labels_per_item']:.3f}, "
            f"mean tags per item {s['mean_tags_per_item']:.2f}"
            f" ({s['items_without_tags']} items without tags)",
            "  per-label counts:",
        ]
        for name, count in s["label_counts"].items():
            lines.append(f"    {name:<{width}} {count:>8,}  ({count / s['items']:.1%})")
        d = s["split_defaults"]
        lines.append(f"  benchmark split: query {d['num_query']:,}, train {d['num_train']:,}, seed {d['seed']}")
        return "\n".join(lines)


def candidate_image_paths(entry: str, root: Path | None) -> list[Path]:
    """Where an image entry may live: as given, under root, or its file name under root."""
    entry = entry.strip().replace("\\", "/")
    p = Path(entry)
    out = [p] if p.is_absolute() else []
    if root is not None:
        out.append(root / entry.lstrip("/"))
        if p.name and root / p.name not in out:
            out.append(root / p.name)
    elif not p.is_absolute():
        out.append(p)
    return out
