"""NUS-WIDE TC-10 (10 labels): GCDH's .mat layout, or the official release files with the TC-10 selection rule.

TC-10 selection (official layout): the 10 concepts of ``Groundtruth/AllLabels/Labels_*.txt``
with the most positive images over all 269,648 images, and the images carrying at least one
of them (data/README.md states the rule and its source). On the real release these are
sky, clouds, person, water, animal, grass, buildings, window, plants, lake, in that order
of frequency, the column order of GCDH's ``labelList.mat``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from egath_lite.data.dataset import DatasetError, DatasetNotFoundError, MultiModalDataset
from egath_lite.data.layouts import HOW_TO, Layout, Requirement, image_folder_mistake, resolve_layout
from egath_lite.data.matfiles import (
    load_mat,
    load_mat_binary,
    mat_field,
    mat_matrix,
    mat_strings,
    read_lines,
    require_files,
)
from egath_lite.data.reference import NUS_TC10_LABELS
from egath_lite.data.release import existing, finish_dataset

GCDH_LAYOUT = ("imgList.mat", "tagList.mat", "labelList.mat")
NUM_CONCEPTS = 10
OFFICIAL = {
    "image list": ("ImageList/Imagelist.txt", "Imagelist.txt"),
    "1k tag matrix": ("NUS_WID_Tags/AllTags1k.txt", "AllTags1k.txt"),
    "tag words": ("NUS_WID_Tags/TagList1k.txt", "TagList1k.txt"),
    "concept ground truth": ("Groundtruth/AllLabels/Labels_*.txt", "AllLabels/Labels_*.txt"),
}
IMAGE_DIRS = ("Flickr", "images")


def _official(root: Path, what: str) -> Path | None:
    for pattern in OFFICIAL[what]:
        if "*" in pattern:
            folder = root / Path(pattern).parent
            if any(folder.glob(Path(pattern).name)):
                return folder
        elif (root / pattern).is_file():
            return root / pattern
    return None


def _image_root(root: Path, image_dir: str | Path | None) -> Path:
    if image_dir:
        return Path(image_dir)
    return next((root / d for d in IMAGE_DIRS if (root / d).is_dir()), root)


def _gcdh_inputs(root: Path) -> tuple[list[Path], list[Path]]:
    return existing([root / n for n in GCDH_LAYOUT] + [root / "TagList1k.txt"]), [_image_root(root, None)]


def _official_inputs(root: Path) -> tuple[list[Path], list[Path]]:
    files = [p for w in ("image list", "1k tag matrix", "tag words") if (p := _official(root, w)) is not None]
    gt = _official(root, "concept ground truth")
    files += sorted(gt.glob("Labels_*.txt")) if gt is not None else []
    return files, existing([root / d for d in IMAGE_DIRS])


LAYOUTS = (
    Layout(
        "gcdh",
        "GCDH's imgList.mat / tagList.mat / labelList.mat",
        tuple(
            Requirement(n, (n,), "get it from GCDH's data/NUS-WIDE-TC10/ (its README links the large files)")
            for n in GCDH_LAYOUT
        ),
        _gcdh_inputs,
    ),
    Layout(
        "official",
        "NUS-WIDE's ImageList/, NUS_WID_Tags/, Groundtruth/AllLabels/",
        tuple(
            Requirement(what, pats, "extract the NUS-WIDE release zip that holds it into the root")
            for what, pats in OFFICIAL.items()
        ),
        _official_inputs,
    ),
)
MISTAKES = (image_folder_mistake(IMAGE_DIRS, "GCDH's .mat files or ImageList/, NUS_WID_Tags/ and Groundtruth/"),)


def load_nuswide_tc10(
    root: str | Path,
    layout: str = "auto",
    tag_list: str | Path | None = None,
    image_dir: str | Path | None = None,
    drop_unlabeled: bool = False,
    check_images: bool = True,
) -> MultiModalDataset:
    """NUS-WIDE TC-10; layout "gcdh", "official" or "auto"; ``tag_list``: tag words file (GCDH; "index": tag0000...)."""
    root = Path(root)
    lay = resolve_layout("nuswide_tc10", root, LAYOUTS, layout, MISTAKES)
    if lay.name == "official":
        return _nuswide_official(root, tag_list, image_dir, drop_unlabeled, check_images)
    return _nuswide_gcdh(root, tag_list, image_dir, drop_unlabeled, check_images)


def _tag_words(tag_path: Path, num_tags: int, tag_source: str) -> list[str]:
    vocab = read_lines(tag_path)
    if len(vocab) != num_tags:
        raise DatasetError(
            f"nuswide_tc10: {tag_path} names {len(vocab)} tags but {tag_source} has {num_tags} columns; "
            f"use the tag list that made it (NUS-WIDE TagList1k.txt for the 1,000-d vectors)"
        )
    return vocab


def _texts(tags: np.ndarray, vocab: list[str], chunk: int = 16_384) -> list[str]:
    """Each row's tag words in column order, joined by spaces (rows taken in chunks: no (nnz,) int64 pair of the
    whole matrix)."""
    out: list[str] = []
    for lo in range(0, tags.shape[0], chunk):
        block = tags[lo : lo + chunk]
        rows, cols = np.nonzero(block)
        per_item: list[list[str]] = [[] for _ in range(block.shape[0])]
        for r, c in zip(rows.tolist(), cols.tolist()):
            per_item[r].append(vocab[c])
        out += [" ".join(t) for t in per_item]
    return out


def _nuswide_gcdh(root: Path, tag_list, image_dir, drop_unlabeled: bool, check_images: bool) -> MultiModalDataset:
    img_file, tag_file, label_file = require_files(root, GCDH_LAYOUT, "nuswide_tc10", "GCDH", HOW_TO)
    names = mat_strings(mat_field(load_mat(img_file), ["FAll", "imgs", "index"], img_file), img_file, "FAll")
    tags = load_mat_binary(tag_file, ["YAll", "tags"])  # uint8, read in slabs: never the float64 matrix
    labels = mat_matrix(mat_field(load_mat(label_file), ["LAll", "labels"], label_file), label_file, "LAll")
    from egath_lite.data.dataset import check_same_length

    check_same_length(
        f"nuswide_tc10 (GCDH layout, {root})", imgList_FAll=names, tagList_YAll=tags, labelList_LAll=labels
    )
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
        vocab = _tag_words(tag_path, tags.shape[1], f"{tag_file} YAll")
    return finish_dataset(
        "nuswide_tc10",
        "gcdh",
        root,
        NUS_TC10_LABELS,
        labels,
        _texts(tags, vocab),
        names,
        _image_root(root, image_dir),
        drop_unlabeled,
        check_images,
        [img_file, tag_file, label_file],
        {"tag_vocabulary_size": int(tags.shape[1])},
    )


# ----------------------------------------------------------------------------- official release
def read_binary_matrix(path: Path, num_rows: int | None, num_cols: int | None) -> np.ndarray:
    """A text file of 0/1 values (one row per line, separated by blanks) as uint8 (rows, cols), read in chunks."""
    blocks, rows, cols = [], 0, num_cols
    with open(path, "rb") as f:
        while True:
            lines = f.readlines(1 << 25)  # ~32 MB at a time: AllTags1k.txt is ~540 MB
            if not lines:
                break
            lines = [ln for ln in lines if ln.strip()]
            buf = np.frombuffer(b"".join(lines), dtype=np.uint8)
            if ((buf >= ord("2")) & (buf <= ord("9"))).any() or (buf == ord("-")).any() or (buf == ord(".")).any():
                raise DatasetError(f"{path}: expected only 0/1 values, found other numbers; is it the right file?")
            digits = buf[(buf == ord("0")) | (buf == ord("1"))] - ord("0")
            if cols is None:
                cols = len(lines[0].split())
            if digits.size != len(lines) * cols:
                raise DatasetError(
                    f"{path}: rows {rows}..{rows + len(lines)} do not all have {cols} values; "
                    f"the file is truncated or not a 0/1 matrix"
                )
            blocks.append(digits.reshape(len(lines), cols).astype(np.uint8))
            rows += len(lines)
    if num_rows is not None and rows != num_rows:
        raise DatasetError(
            f"{path} has {rows} rows but the image list has {num_rows}; the files must come from "
            f"the same NUS-WIDE release (269,648 images)"
        )
    return np.concatenate(blocks) if blocks else np.zeros((0, cols or 0), np.uint8)


def tc10_selection(concept_columns: dict[str, np.ndarray], k: int = NUM_CONCEPTS) -> tuple[list[str], np.ndarray]:
    """(the k concepts with the most positives, ties by name; rows with at least one of them, bool (N,))."""
    counts = {c: int(v.sum()) for c, v in concept_columns.items()}
    top = sorted(counts, key=lambda c: (-counts[c], c))[:k]
    keep = np.zeros(len(next(iter(concept_columns.values()))), bool)
    for c in top:
        keep |= concept_columns[c].astype(bool)
    return top, keep


def image_entry(line: str) -> str:
    """An Imagelist.txt line (``C:\\ImageData\\Flickr\\actor\\0001_2124494179.jpg``) -> ``actor/0001_2124494179.jpg``."""
    entry = line.strip().replace("\\", "/")
    if "Flickr/" in entry:
        entry = entry.rsplit("Flickr/", 1)[1]
    return "/".join(entry.split("/")[-2:])


def _nuswide_official(root: Path, tag_list, image_dir, drop_unlabeled: bool, check_images: bool) -> MultiModalDataset:
    paths = {w: _official(root, w) for w in OFFICIAL}
    absent = [w for w, p in paths.items() if p is None]
    if absent:
        raise DatasetNotFoundError(
            f"nuswide_tc10 (official layout): missing the {', '.join(absent)} in {root} (looked for "
            f"{[OFFICIAL[w] for w in absent]}). {HOW_TO}"
        )
    entries = [image_entry(ln) for ln in read_lines(paths["image list"])]
    n = len(entries)
    concept_files = sorted(paths["concept ground truth"].glob("Labels_*.txt"))
    columns = {p.stem[len("Labels_") :]: read_binary_matrix(p, n, 1)[:, 0] for p in concept_files}
    top, keep = tc10_selection(columns)
    if set(top) != set(NUS_TC10_LABELS):
        raise DatasetError(
            f"nuswide_tc10 (official layout): the {NUM_CONCEPTS} most frequent concepts of the {len(columns)} files in "
            f"{paths['concept ground truth']} are {top}, not TC-10's {NUS_TC10_LABELS}; is Groundtruth/AllLabels "
            f"complete (81 Labels_*.txt files of the full release)?"
        )
    labels = np.stack([columns[c] for c in NUS_TC10_LABELS], axis=1)[keep]
    tag_matrix = read_binary_matrix(paths["1k tag matrix"], n, None)[keep]
    tag_path = Path(tag_list) if tag_list not in (None, "index") else paths["tag words"]
    vocab = (
        [f"tag{j:04d}" for j in range(tag_matrix.shape[1])]
        if tag_list == "index"
        else _tag_words(tag_path, tag_matrix.shape[1], str(paths["1k tag matrix"]))
    )
    kept_entries = [e for e, k in zip(entries, keep) if k]
    files = [paths["image list"], paths["1k tag matrix"], tag_path, *concept_files]
    return finish_dataset(
        "nuswide_tc10",
        "official",
        root,
        NUS_TC10_LABELS,
        labels,
        _texts(tag_matrix, vocab),
        kept_entries,
        _image_root(root, image_dir),
        drop_unlabeled,
        check_images,
        files,
        {
            "tag_vocabulary_size": int(tag_matrix.shape[1]),
            "num_images_in_release": n,
            "excluded_without_tc10_label": int((~keep).sum()),
            "concept_counts": {c: int(columns[c].sum()) for c in top},
            "selection": f"the {NUM_CONCEPTS} most frequent of {len(columns)} concepts; items with >= 1 of them",
        },
    )
