"""MIRFlickr-25K (24 labels): the raw release (annotation folder or annotation files flat in the root) or the .mat layout.

Raw release: ``mirflickr/im*.jpg``, ``mirflickr/meta/tags/tags*.txt`` (or ``meta/tags/``),
the 24 label files of ``mirflickr25k_annotations_v080.zip`` either in their folder or flat
in the root (that zip unpacks flat). ``*_r1`` files and items without any label are
excluded, as in DCMH / DCHMT / GCDH: 20,015 items. SSAH's and DCMH's preprocessed single
files are recognised and explained (they cannot be read unambiguously: no tag words, no
label names).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from egath_lite.data.dataset import DatasetError, DatasetNotFoundError, MultiModalDataset
from egath_lite.data.layouts import HOW_TO, Layout, Requirement, file_mistake, image_folder_mistake, resolve_layout
from egath_lite.data.matfiles import read_lines
from egath_lite.data.reference import MIRFLICKR25K_LABELS
from egath_lite.data.release import MAT_LAYOUT, MAT_REQUIREMENTS, existing, finish_dataset, read_mat_triple

MIR_ANNOTATIONS = "mirflickr25k_annotations_v080"
TAG_DIRS = ("mirflickr/meta/tags", "meta/tags")
CONVERT = (
    "Use the raw release instead (mirflickr25k.zip + mirflickr25k_annotations_v080.zip from "
    "https://press.liacs.nl/mirflickr/, the same 20,015 items), or convert the file to the .mat layout "
    "(index.mat / caption.mat / label.mat, data/README.md 'Converting a preprocessed file')"
)


def _annotation_dir(root: Path) -> Path | None:
    for d in (root / MIR_ANNOTATIONS, root):
        if (d / "animals.txt").is_file():
            return d
    return None


def _raw_inputs(root: Path) -> tuple[list[Path], list[Path]]:
    ann = _annotation_dir(root)
    files = sorted(p for p in ann.glob("*.txt")) if ann is not None else []
    trees = existing([root / "mirflickr"]) or existing([root / "meta"])
    if root / "mirflickr" in trees and (root / "meta").is_dir():
        trees.append(root / "meta")
    return files, trees


def _mat_inputs(root: Path) -> tuple[list[Path], list[Path]]:
    return existing([root / n for n in MAT_LAYOUT]), existing([root / "mirflickr"])


LAYOUTS = (
    Layout(
        "raw",
        "the MIRFLICKR release: mirflickr/ + the annotation files",
        (
            Requirement(
                "the 24 annotation files",
                (f"{MIR_ANNOTATIONS}/animals.txt", "animals.txt"),
                f"download {MIR_ANNOTATIONS}.zip and extract it into the root (its own folder or flat both work)",
            ),
            Requirement("the tag files", TAG_DIRS, "extract mirflickr25k.zip into the root (it makes mirflickr/)"),
        ),
        _raw_inputs,
    ),
    Layout("mat", "index.mat / caption.mat / label.mat", MAT_REQUIREMENTS, _mat_inputs),
)
MISTAKES = (
    image_folder_mistake(("mirflickr",), f"the annotation files ({MIR_ANNOTATIONS}/ or animals.txt ... flat)"),
    file_mistake(
        ("mirflickr25k-lall.mat", "mirflickr25k-yall.mat", "mirflickr25k-iall.mat"),
        "found SSAH's preprocessed files ({found}): images as 224x224 pixel arrays, tags as 1,386-d 0/1 "
        "vectors without the tag words, labels without column names, so they cannot be read unambiguously. " + CONVERT,
    ),
    file_mistake(
        ("FLICKR-25K.mat",),
        "found DCMH's single preprocessed file ({found}): images as pixel arrays, tags as 1,386-d 0/1 "
        "vectors without the tag words (YAll), labels without column names (LAll), so it cannot be read "
        "unambiguously. " + CONVERT,
    ),
    file_mistake(
        ("imgList.mat", "labelList.mat"),
        "found GCDH-style files ({found}): GCDH's MIRFlickr tagList.mat holds 0/1 tag vectors without "
        "the tag words. " + CONVERT,
    ),
)


def load_mirflickr25k(
    root: str | Path,
    layout: str = "auto",
    image_dir: str | Path | None = None,
    drop_unlabeled: bool = False,
    check_images: bool = True,
) -> MultiModalDataset:
    """MIRFlickr-25K (24 labels, alphabetical); layout "raw", "mat" or "auto" (the first that matches)."""
    root = Path(root)
    lay = resolve_layout("mirflickr25k", root, LAYOUTS, layout, MISTAKES)
    if lay.name == "raw":
        return _mirflickr_raw(root, image_dir, check_images)
    img_root = Path(image_dir) if image_dir else (root / "mirflickr" if (root / "mirflickr").is_dir() else root)
    paths, texts, labels, files = read_mat_triple("mirflickr25k", root)
    return finish_dataset(
        "mirflickr25k",
        "mat",
        root,
        MIRFLICKR25K_LABELS,
        labels,
        texts,
        paths,
        img_root,
        drop_unlabeled,
        check_images,
        files,
    )


def _mirflickr_raw(root: Path, image_dir: str | Path | None, check_images: bool) -> MultiModalDataset:
    ann_dir = _annotation_dir(root)
    if ann_dir is None:
        raise DatasetNotFoundError(
            f"mirflickr25k (raw layout): no annotation files in {root / MIR_ANNOTATIONS} or flat in {root}; "
            f"download {MIR_ANNOTATIONS}.zip and extract it into {root}. {HOW_TO}"
        )
    skip = {"readme"}
    found = {p.stem for p in ann_dir.glob("*.txt") if not p.stem.endswith("_r1") and p.stem.lower() not in skip}
    if ann_dir == root:  # flat: other .txt files may sit beside the label files; only the 24 names matter
        found &= set(MIRFLICKR25K_LABELS)
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
            raise DatasetError(
                f"{path}: every line must be an image number ({exc}); re-extract the annotations"
            ) from exc
    ids = np.array(sorted(set().union(*members.values())), dtype=np.int64)  # items without labels are excluded
    if len(ids) == 0:
        raise DatasetError(f"mirflickr25k (raw layout): the annotation files in {ann_dir} are empty")
    pos = {int(x): i for i, x in enumerate(ids)}
    labels = np.zeros((len(ids), len(MIRFLICKR25K_LABELS)), np.uint8)
    for c, name in enumerate(MIRFLICKR25K_LABELS):
        labels[[pos[x] for x in members[name]], c] = 1
    tag_dir = next((root / d for d in TAG_DIRS if (root / d).is_dir()), None)
    if tag_dir is None:
        raise DatasetNotFoundError(
            f"mirflickr25k (raw layout): tag folder not found (looked for {[str(root / d) for d in TAG_DIRS]}); "
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
    img_root = Path(image_dir) if image_dir else (root / "mirflickr" if (root / "mirflickr").is_dir() else root)
    return finish_dataset(
        "mirflickr25k",
        "raw",
        root,
        MIRFLICKR25K_LABELS,
        labels,
        texts,
        [f"im{x}.jpg" for x in ids],
        img_root,
        False,
        check_images,
        [ann_dir, tag_dir],
        {"image_ids": ids, "annotations_flat": ann_dir == root},
    )
