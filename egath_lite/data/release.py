"""What the three benchmark loaders share: benchmark splits, the .mat triple, and the checks every loader ends with."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from egath_lite.data.dataset import (
    DatasetNotFoundError,
    MultiModalDataset,
    SplitDefaults,
    candidate_image_paths,
    check_enough,
    check_labels,
    check_same_length,
)
from egath_lite.data.layouts import HOW_TO, Requirement
from egath_lite.data.matfiles import load_mat, mat_field, mat_matrix, mat_strings, require_files

# GCDH's benchmark splits (egath_lite/data/reference_files/README.md): sizes and numpy seeds.
SPLITS = {
    "mirflickr25k": SplitDefaults(num_query=2_000, num_train=10_000, seed=6),
    "nuswide_tc10": SplitDefaults(num_query=2_100, num_train=10_500, seed=7),
    "mscoco": SplitDefaults(num_query=5_000, num_train=10_000, seed=8),
}
MAT_LAYOUT = ("index.mat", "caption.mat", "label.mat")
MAT_REQUIREMENTS = tuple(Requirement(name, (name,)) for name in MAT_LAYOUT)


def finish_dataset(
    name: str,
    layout: str,
    root: Path,
    label_names: Sequence[str],
    labels: Any,
    texts: list[str],
    image_paths: list[str],
    image_root: Path,
    drop_unlabeled: bool,
    check_images: bool,
    files: Sequence[Path],
    extra: dict[str, Any] | None = None,
) -> MultiModalDataset:
    """Shared tail of every loader: length and label checks, optional dropping of unlabeled items, image check."""
    source = f"{name} ({layout} layout, {root})"
    check_same_length(source, labels=labels, texts=texts, images=image_paths)
    labels = check_labels(labels, f"{source} labels", num_labels=len(label_names), allow_empty_rows=drop_unlabeled)
    dropped = 0
    if drop_unlabeled:
        keep = labels.sum(axis=1) > 0
        dropped = int((~keep).sum())
        labels = labels[keep]
        texts = [t for t, k in zip(texts, keep) if k]
        image_paths = [p for p, k in zip(image_paths, keep) if k]
    check_enough(source, labels, label_names)
    ds = MultiModalDataset(
        name=name,
        label_names=list(label_names),
        labels=labels,
        texts=texts,
        split_defaults=SPLITS[name],
        image_paths=image_paths,
        image_root=image_root,
        info={
            "source": source,
            "layout": layout,
            "root": str(root),
            "files": [str(f) for f in files],
            "dropped_unlabeled": dropped,
            **(extra or {}),
        },
    )
    if check_images:
        missing = missing_images(ds.image_paths, ds.image_root)
        if missing:
            raise DatasetNotFoundError(
                f"{source}: {len(missing)} of {len(ds)} image files are missing (first: {ds.image_paths[missing[0]]!r} "
                f"under {image_root}). Put the images there, pass image_dir=<their folder>, or pass check_images=False "
                f"to load labels and texts only. {HOW_TO}"
            )
    return ds


def missing_images(image_paths: Sequence[str], image_root: Path | None) -> list[int]:
    """Indices of the entries with no file at any of their candidate paths (``candidate_image_paths``).

    Each folder the candidates point into is listed once (``os.scandir``; a listing tells files from folders
    without a stat of each file), instead of a stat per candidate: MS-COCO's 122,218 images are two listings. A
    folder that cannot be listed falls back to a stat of each candidate in it, so the answer is
    ``Path.is_file``'s.
    """
    listings: dict[Path, set[str] | None] = {}

    def listing(folder: Path) -> set[str] | None:
        if folder not in listings:
            try:
                with os.scandir(folder) as entries:
                    listings[folder] = {e.name for e in entries if e.is_file()}
            except FileNotFoundError:
                listings[folder] = set()
            except OSError:  # not a folder, not readable: ask the file system about each candidate
                listings[folder] = None
        return listings[folder]

    def exists(path: Path) -> bool:
        names = listing(path.parent)
        return path.is_file() if names is None else path.name in names

    return [
        i for i, entry in enumerate(image_paths) if not any(exists(c) for c in candidate_image_paths(entry, image_root))
    ]


def read_mat_triple(name: str, root: Path) -> tuple[list[str], list[str], np.ndarray, list[Path]]:
    """index.mat / caption.mat / label.mat -> (image entries, texts, labels, files)."""
    files = require_files(root, MAT_LAYOUT, name, ".mat", HOW_TO)
    index_path, caption_path, label_path = files
    paths = mat_strings(mat_field(load_mat(index_path), ["index"], index_path), index_path, "index")
    texts = mat_strings(mat_field(load_mat(caption_path), ["caption", "tags"], caption_path), caption_path, "caption")
    labels = mat_matrix(
        mat_field(load_mat(label_path), ["category", "label", "labels", "LAll"], label_path), label_path, "category"
    )
    return paths, texts, labels, files


def existing(paths: Sequence[Path]) -> list[Path]:
    """The paths that exist (for the fingerprint's input lists)."""
    return [p for p in paths if p.exists()]
