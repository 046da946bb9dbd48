"""Loaders of the real benchmarks, each in the release layout(s) the literature uses.

- ``mirflickr25k``: the raw release (``mirflickr/im*.jpg``, ``mirflickr/meta/tags/tags*.txt``,
  ``mirflickr25k_annotations_v080/*.txt``; ``*_r1`` files and items without any label are
  excluded, as in DCMH/DCHMT: 20,015 items) or the DCHMT-style ``.mat`` layout
  (``index.mat`` / ``caption.mat`` / ``label.mat``).
- ``nuswide_tc10``: GCDH's ``imgList.mat`` (FAll) / ``tagList.mat`` (YAll, 1,000-d tag
  vectors) / ``labelList.mat`` (LAll), plus NUS-WIDE's ``TagList1k.txt`` to name the tags.
- ``mscoco``: the ``.mat`` layout (``index.mat`` / ``caption.mat`` / ``label.mat``, 80 labels).

Nothing here falls back to other data: a missing or half-present folder is an error that
names what is missing and where to get it (``data/README.md``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .dataset import (DatasetError, DatasetNotFoundError, MultiModalDataset, SplitDefaults, candidate_image_paths,
                      check_labels, check_same_length)
from .matfiles import load_mat, mat_field, mat_matrix, mat_strings, read_lines, require_files
from .reference import MIRFLICKR25K_LABELS, MSCOCO_LABELS, MSCOCO_LABELS_BY_ID, NUS_TC10_LABELS

# GCDH's benchmark splits (shared/reference/README.md): sizes and numpy seeds.
SPLITS = {
    "mirflickr25k": SplitDefaults(num_query=2_000, num_train=10_000, seed=6),
    "nuswide_tc10": SplitDefaults(num_query=2_100, num_train=10_500, seed=7),
    "mscoco": SplitDefaults(num_query=5_000, num_train=10_000, seed=8),
}
HOW_TO = "See data/README.md for where to download it and how to lay the files out."
MIR_ANNOTATIONS = "mirflickr25k_annotations_v080"
MAT_LAYOUT = ("index.mat", "caption.mat", "label.mat")
GCDH_LAYOUT = ("imgList.mat", "tagList.mat", "labelList.mat")


def _finish(name: str, layout: str, root: Path, label_names: Sequence[str], labels: Any, texts: list[str],
            image_paths: list[str], image_root: Path, drop_unlabeled: bool, check_images: bool,
            files: Sequence[Path], extra: dict[str, Any] | None = None) -> MultiModalDataset:
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
    ds = MultiModalDataset(
        name=name, label_names=list(label_names), labels=labels, texts=texts, split_defaults=SPLITS[name],
        image_paths=image_paths, image_root=image_root,
        info={"source": source, "layout": layout, "root": str(root), "files": [str(f) for f in files],
              "dropped_unlabeled": dropped, **(extra or {})},
    )
    if check_images:
        missing = [i for i in range(len(ds)) if not any(c.is_file() for c in _candidates(ds, i))]
        if missing:
            raise DatasetNotFoundError(
                f"{source}: {len(missing)} of {len(ds)} image files are missing (first: {ds.image_paths[missing[0]]!r} "
                f"under {image_root}). Put the images there, pass image_dir=<their folder>, or pass check_images=False "
                f"to load labels and texts only. {HOW_TO}"
            )
    return ds


def _candidates(ds: MultiModalDataset, i: int) -> list[Path]:
    return candidate_image_paths(ds.image_paths[i], ds.image_root)


def _mat_layout(name: str, root: Path) -> tuple[list[str], list[str], np.ndarray, list[Path]]:
    """index.mat / caption.mat / label.mat -> (image entries, texts, labels, files)."""
    files = require_files(root, MAT_LAYOUT, name, ".mat", HOW_TO)
    index_path, caption_path, label_path = files
    paths = mat_strings(mat_field(load_mat(index_path), ["index"], index_path), index_path, "index")
    texts = mat_strings(mat_field(load_mat(caption_path), ["caption", "tags"], caption_path), caption_path, "caption")
    labels = mat_matrix(mat_field(load_mat(label_path), ["category", "label", "labels", "LAll"], label_path),
                        label_path, "category")
    return paths, texts, labels, files


# ----------------------------------------------------------------------------- MIRFlickr-25K
def load_mirflickr25k(root: str | Path, layout: str = "auto", image_dir: str | Path | None = None,
                      drop_unlabeled: bool = False, check_images: bool = True) -> MultiModalDataset:
    """MIRFlickr-25K (24 labels, alphabetical); layout "raw", "mat" or "auto" (raw when annotations exist)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(f"mirflickr25k: data folder {root} does not exist. {HOW_TO}")
    if layout == "auto":
        if (root / MIR_ANNOTATIONS).is_dir():
            layout = "raw"
        elif any((root / f).exists() for f in MAT_LAYOUT):
            layout = "mat"
        else:
            raise DatasetNotFoundError(
                f"mirflickr25k: {root} holds neither the raw release ({MIR_ANNOTATIONS}/, mirflickr/) nor the .mat "
                f"layout ({', '.join(MAT_LAYOUT)}). {HOW_TO}"
            )
    if layout == "raw":
        return _mirflickr_raw(root, image_dir, check_images)
    if layout == "mat":
        img_root = Path(image_dir) if image_dir else (root / "mirflickr" if (root / "mirflickr").is_dir() else root)
        paths, texts, labels, files = _mat_layout("mirflickr25k", root)
        return _finish("mirflickr25k", "mat", root, MIRFLICKR25K_LABELS, labels, texts, paths, img_root,
                       drop_unlabeled, check_images, files)
    raise DatasetError(f"mirflickr25k: unknown layout {layout!r}; use 'raw', 'mat' or 'auto'")


def _mirflickr_raw(root: Path, image_dir: str | Path | None, check_images: bool) -> MultiModalDataset:
    ann_dir = root / MIR_ANNOTATIONS
    if not ann_dir.is_dir():
        raise DatasetNotFoundError(f"mirflickr25k (raw layout): annotation folder {ann_dir} is missing. {HOW_TO}")
    found = {p.stem for p in ann_dir.glob("*.txt") if not p.stem.endswith("_r1") and p.stem.lower() != "readme"}
    missing, unexpected = sorted(set(MIRFLICKR25K_LABELS) - found), sorted(found - set(MIRFLICKR25K_LABELS))
    if missing or unexpected:
        raise DatasetError(
            f"mirflickr25k (raw layout): {ann_dir} should hold the 24 label files {MIRFLICKR25K_LABELS} (+ *_r1.txt, "
            f"README.txt); missing: {missing}, unexpected: {unexpected}. Re-extract {MIR_ANNOTATIONS}.zip. {HOW_TO}"
        )
    members: dict[str, set[int]] = {}
    for name in MIRFLICKR25K_LABELS:
        path = ann_dir / f"{name}.txt"
        try:
            members[name] = {int(x) for x in read_lines(path)}
        except ValueError as exc:
            raise DatasetError(f"{path}: every line must be an image number ({exc}); re-extract the annotations") \
                from exc
    ids = np.array(sorted(set().union(*members.values())), dtype=np.int64)  # items without labels are excluded
    if len(ids) == 0:
        raise DatasetError(f"mirflickr25k (raw layout): the annotation files in {ann_dir} are empty")
    pos = {int(x): i for i, x in enumerate(ids)}
    labels = np.zeros((len(ids), len(MIRFLICKR25K_LABELS)), np.uint8)
    for c, name in enumerate(MIRFLICKR25K_LABELS):
        labels[[pos[x] for x in members[name]], c] = 1
    tag_dirs = [root / "mirflickr" / "meta" / "tags", root / "meta" / "tags"]
    tag_dir = next((d for d in tag_dirs if d.is_dir()), None)
    if tag_dir is None:
        raise DatasetNotFoundError(
            f"mirflickr25k (raw layout): tag folder not found (looked for {[str(d) for d in tag_dirs]}); "
            f"extract mirflickr25k.zip into {root}. {HOW_TO}"
        )
    tag_files = [tag_dir / f"tags{x}.txt" for x in ids]
    absent = [p.name for p in tag_files if not p.is_file()]
    if absent:
        raise DatasetNotFoundError(
            f"mirflickr25k (raw layout): {len(absent)} of {len(ids)} tag files are missing in {tag_dir} "
            f"(first: {absent[:3]}); the folder is only partly extracted. {HOW_TO}"
        )
    texts = [" ".join(read_lines(p)) for p in tag_files]
    img_root = Path(image_dir) if image_dir else root / "mirflickr"
    return _finish("mirflickr25k", "raw", root, MIRFLICKR25K_LABELS, labels, texts, [f"im{x}.jpg" for x in ids],
                   img_root, False, check_images, [ann_dir, tag_dir], {"image_ids": ids})


# ----------------------------------------------------------------------------- NUS-WIDE TC-10
def load_nuswide_tc10(root: str | Path, tag_list: str | Path | None = None, image_dir: str | Path | None = None,
                      drop_unlabeled: bool = False, check_images: bool = True) -> MultiModalDataset:
    """NUS-WIDE TC-10, GCDH layout; ``tag_list``: tag names file (default root/TagList1k.txt; "index": tag0000...)."""
    root = Path(root)
    img_file, tag_file, label_file = require_files(root, GCDH_LAYOUT, "nuswide_tc10", "GCDH", HOW_TO)
    names = mat_strings(mat_field(load_mat(img_file), ["FAll", "imgs", "index"], img_file), img_file, "FAll")
    tags = mat_matrix(mat_field(load_mat(tag_file), ["YAll", "tags"], tag_file), tag_file, "YAll")
    labels = mat_matrix(mat_field(load_mat(label_file), ["LAll", "labels"], label_file), label_file, "LAll")
    check_same_length(f"nuswide_tc10 (GCDH layout, {root})", imgList_FAll=names, tagList_YAll=tags,
                      labelList_LAll=labels)
    if tag_list == "index":
        vocab = [f"tag{j:04d}" for j in range(tags.shape[1])]
    else:
        tag_path = Path(tag_list) if tag_list else root / "TagList1k.txt"
        if not tag_path.is_file():
            raise DatasetNotFoundError(
                f"nuswide_tc10: {tag_path} is missing; tagList.mat holds only 0/1 tag vectors, the tag words come from "
                f"NUS-WIDE's TagList1k.txt (NUS_WID_Tags.zip). Put it there, pass tag_list=<path>, or pass "
                f"tag_list='index' to name the tags tag0000...tag{tags.shape[1] - 1:04d}. {HOW_TO}"
            )
        vocab = read_lines(tag_path)
        if len(vocab) != tags.shape[1]:
            raise DatasetError(
                f"nuswide_tc10: {tag_path} names {len(vocab)} tags but {tag_file} YAll has {tags.shape[1]} columns; "
                f"use the tag list that made tagList.mat (NUS-WIDE TagList1k.txt for GCDH's 1,000-d vectors)"
            )
    if not np.isfinite(tags).all():
        raise DatasetError(f"{tag_file}: YAll contains NaN/Inf; re-create the file")
    rows, cols = np.nonzero(tags)
    per_item: list[list[str]] = [[] for _ in range(tags.shape[0])]
    for r, c in zip(rows.tolist(), cols.tolist()):
        per_item[r].append(vocab[c])
    texts = [" ".join(t) for t in per_item]
    img_root = Path(image_dir) if image_dir else (root / "images" if (root / "images").is_dir() else root)
    return _finish("nuswide_tc10", "GCDH", root, NUS_TC10_LABELS, labels, texts, names, img_root, drop_unlabeled,
                   check_images, [img_file, tag_file, label_file], {"tag_vocabulary_size": int(tags.shape[1])})


# ----------------------------------------------------------------------------- MS-COCO
def load_mscoco(root: str | Path, label_order: str = "category_id", image_dir: str | Path | None = None,
                drop_unlabeled: bool = False, check_images: bool = True) -> MultiModalDataset:
    """MS-COCO (80 labels), .mat layout; ``label_order``: label.mat's columns, "category_id" or "alphabetical"."""
    orders = {"category_id": MSCOCO_LABELS_BY_ID, "alphabetical": MSCOCO_LABELS}
    if label_order not in orders:
        raise DatasetError(f"mscoco: unknown label_order {label_order!r}; use one of {sorted(orders)}")
    root = Path(root)
    img_root = Path(image_dir) if image_dir else root
    paths, texts, labels, files = _mat_layout("mscoco", root)
    return _finish("mscoco", ".mat", root, orders[label_order], labels, texts, paths, img_root, drop_unlabeled,
                   check_images, files, {"label_order": label_order})
