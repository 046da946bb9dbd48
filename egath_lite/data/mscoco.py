"""MS-COCO (80 labels): the .mat layout, or the official 2014 / 2017 JSON annotations (captions + instances) with images.

JSON selection (the literature's, e.g. DCMH / DCHMT / GCDH): every image of the year's train
and val sets that carries at least one of the 80 categories (2014: 123,287 images, 122,218
with a label); the excluded images are counted in ``ds.info["excluded_without_label"]``.
Text = the image's captions joined by spaces, in caption-id order. Items: train images by
id, then val images by id.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from egath_lite.data.dataset import DatasetError, DatasetNotFoundError, MultiModalDataset
from egath_lite.data.layouts import HOW_TO, Layout, Requirement, image_folder_mistake, resolve_layout
from egath_lite.data.reference import MSCOCO_LABELS, MSCOCO_LABELS_BY_ID
from egath_lite.data.release import MAT_LAYOUT, MAT_REQUIREMENTS, existing, finish_dataset, read_mat_triple

YEARS = (2014, 2017)
SPLIT_NAMES = ("train", "val")
LABEL_ORDERS = {"category_id": MSCOCO_LABELS_BY_ID, "alphabetical": MSCOCO_LABELS}


def _json_path(root: Path, kind: str, split: str, year: int) -> Path | None:
    for folder in (root / "annotations", root):
        if (folder / f"{kind}_{split}{year}.json").is_file():
            return folder / f"{kind}_{split}{year}.json"
    return None


def _year(root: Path) -> int | None:
    return next((y for y in YEARS if _json_path(root, "instances", "train", y) is not None), None)


def _json_files(root: Path, year: int) -> list[Path]:
    return [
        p
        for kind in ("instances", "captions")
        for s in SPLIT_NAMES
        if (p := _json_path(root, kind, s, year)) is not None
    ]


def _json_inputs(root: Path) -> tuple[list[Path], list[Path]]:
    year = _year(root)
    if year is None:
        return [], []
    return _json_files(root, year), existing([root / f"{s}{year}" for s in SPLIT_NAMES])


def _mat_inputs(root: Path) -> tuple[list[Path], list[Path]]:
    return existing([root / n for n in MAT_LAYOUT]), existing([root / f"{s}{y}" for y in YEARS for s in SPLIT_NAMES])


_JSON_NAMES = tuple(f"{folder}instances_train{y}.json" for y in YEARS for folder in ("annotations/", ""))
LAYOUTS = (
    Layout("mat", "index.mat / caption.mat / label.mat", MAT_REQUIREMENTS, _mat_inputs),
    Layout(
        "json",
        "the official annotations/instances_*.json + captions_*.json (2014 or 2017)",
        (
            Requirement(
                "the instances annotations",
                _JSON_NAMES,
                "extract annotations_trainval2014.zip (or 2017) into the root: it makes annotations/",
            ),
            Requirement(
                "the captions annotations",
                tuple(n.replace("instances", "captions") for n in _JSON_NAMES),
                "extract annotations_trainval2014.zip (or 2017) into the root: it makes annotations/",
            ),
        ),
        _json_inputs,
    ),
)
MISTAKES = (
    image_folder_mistake(
        tuple(f"{s}{y}" for y in YEARS for s in SPLIT_NAMES),
        "annotations/ and the other image folder (train2014/ + val2014/, or 2017)",
    ),
)


def load_mscoco(
    root: str | Path,
    layout: str = "auto",
    label_order: str | None = None,
    year: int | str = "auto",
    image_dir: str | Path | None = None,
    drop_unlabeled: bool = False,
    check_images: bool = True,
) -> MultiModalDataset:
    """MS-COCO (80 labels); layout "mat", "json" or "auto"; ``label_order`` "category_id" / "alphabetical".

    ``label_order``: for the .mat layout the column order of label.mat (default "category_id",
    as most preparation scripts write it); for the JSON layout the order to produce (default
    "alphabetical", the row order of the reference files ``coco_glove.mat`` / ``coco_adj.mat``).
    """
    if label_order is not None and label_order not in LABEL_ORDERS:
        raise DatasetError(f"mscoco: unknown label_order {label_order!r}; use one of {sorted(LABEL_ORDERS)}")
    root = Path(root)
    lay = resolve_layout("mscoco", root, LAYOUTS, layout, MISTAKES)
    if lay.name == "json":
        return _mscoco_json(root, label_order or "alphabetical", year, image_dir, drop_unlabeled, check_images)
    order = label_order or "category_id"
    paths, texts, labels, files = read_mat_triple("mscoco", root)
    return finish_dataset(
        "mscoco",
        "mat",
        root,
        LABEL_ORDERS[order],
        labels,
        texts,
        paths,
        Path(image_dir) if image_dir else root,
        drop_unlabeled,
        check_images,
        files,
        {"label_order": order},
    )


def _read_json(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path} is not valid JSON ({exc}); re-download or re-extract the annotations") from exc
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise DatasetError(f"{path} has no 'annotations' list; is it a COCO annotation file?")
    return data


def _field(path: Path, entry, name: str, kind: type):
    """``entry[name]`` as ``kind``, or DatasetError naming the file, the entry and the field."""
    try:
        return kind(entry[name])
    except (KeyError, TypeError, ValueError):
        what = entry.get("id", "?") if isinstance(entry, dict) else repr(entry)[:60]
        raise DatasetError(
            f"{path}: entry {what} has no valid {name!r} ({kind.__name__}); fix or re-download the annotations"
        ) from None


def _unique_images(path: Path, images, split: str, seen: dict[int, str]) -> list[dict]:
    """The 'images' entries sorted by id; DatasetError naming the ids listed twice (in this file or both splits)."""
    repeated: dict[int, list[str]] = {}
    for im in images:
        i = _field(path, im, "id", int)
        where = f"{split}: {im.get('file_name', '?')}"
        if i in seen:
            repeated.setdefault(i, [seen[i]]).append(where)
        else:
            seen[i] = where
    if repeated:
        listed = "; ".join(f"id {i}: {', '.join(w)}" for i, w in sorted(repeated.items())[:5])
        raise DatasetError(
            f"{path}: {len(repeated)} image id(s) listed more than once ({listed}{'; ...' if len(repeated) > 5 else ''}); "
            f"an id names one image: its labels and captions would go to the wrong item. Remove the duplicate "
            f"entries or re-download the annotations"
        )
    return sorted(images, key=lambda im: int(im["id"]))


def _mscoco_json(
    root: Path, label_order: str, year, image_dir, drop_unlabeled: bool, check_images: bool
) -> MultiModalDataset:
    if year == "auto":
        year = _year(root)
    if year not in YEARS:
        raise DatasetError(f"mscoco: year must be 'auto' or one of {YEARS}, got {year!r}")
    need = [(kind, s) for s in SPLIT_NAMES for kind in ("instances", "captions")]
    absent = [f"annotations/{k}_{s}{year}.json" for k, s in need if _json_path(root, k, s, year) is None]
    if absent:
        raise DatasetNotFoundError(
            f"mscoco (json layout, {year}): missing {absent} in {root}; the benchmark uses the train and val "
            f"images of one year (extract annotations_trainval{year}.zip into the root). {HOW_TO}"
        )
    names = LABEL_ORDERS[label_order]
    column = {n: j for j, n in enumerate(names)}
    labels, texts, paths, ids, splits = [], [], [], [], []
    excluded = no_caption = 0
    files = []
    seen: dict[int, str] = {}  # image id -> "<split>: <file_name>" of its first entry
    for split in SPLIT_NAMES:
        inst_path, cap_path = _json_path(root, "instances", split, year), _json_path(root, "captions", split, year)
        files += [inst_path, cap_path]
        inst, caps = _read_json(inst_path), _read_json(cap_path)
        try:
            cat_name = {int(c["id"]): c["name"] for c in inst.get("categories", [])}
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"{inst_path}: a category without an integer 'id' and a 'name' ({exc!r})") from None
        if sorted(cat_name.values()) != sorted(MSCOCO_LABELS):
            raise DatasetError(
                f"{inst_path}: its categories are not COCO's 80 ({len(cat_name)} found: "
                f"{sorted(cat_name.values())[:5]}...); is it an instances_*.json file?"
            )
        images = _unique_images(inst_path, inst.get("images", []), split, seen)
        per_image: dict[int, set[int]] = {int(im["id"]): set() for im in images}
        for a in inst["annotations"]:
            cat = _field(inst_path, a, "category_id", int)
            if cat not in cat_name:
                raise DatasetError(
                    f"{inst_path}: annotation {a.get('id', '?')} (image {a.get('image_id', '?')}) has category_id "
                    f"{cat}, which is not one of its 'categories' ({sorted(cat_name)[:5]}...); fix or re-download "
                    f"the annotations"
                )
            per_image.setdefault(_field(inst_path, a, "image_id", int), set()).add(column[cat_name[cat]])
        captions: dict[int, list[tuple[int, str]]] = {}
        for a in caps["annotations"]:
            text = a.get("caption") if isinstance(a, dict) else None
            if not isinstance(text, str):
                raise DatasetError(
                    f"{cap_path}: caption annotation {a.get('id', '?') if isinstance(a, dict) else a!r} "
                    f"(image {a.get('image_id', '?') if isinstance(a, dict) else '?'}) has no 'caption' text; "
                    f"is it a captions_*.json file? Fix or re-download the annotations"
                )
            captions.setdefault(_field(cap_path, a, "image_id", int), []).append((int(a.get("id", 0)), text.strip()))
        for im in images:
            i = int(im["id"])
            if not per_image[i]:
                excluded += 1  # the literature keeps only images with at least one of the 80 labels
                continue
            row = np.zeros(len(names), np.uint8)
            row[sorted(per_image[i])] = 1
            caption = " ".join(c for _, c in sorted(captions.get(i, [])))
            no_caption += caption == ""
            labels.append(row), texts.append(caption), ids.append(i), splits.append(split)
            paths.append(f"{split}{year}/{_field(inst_path, im, 'file_name', str)}")
    if not labels:
        raise DatasetError(f"mscoco (json layout): no image with a label in {files}")
    return finish_dataset(
        "mscoco",
        "json",
        root,
        names,
        np.stack(labels),
        texts,
        paths,
        Path(image_dir) if image_dir else root,
        drop_unlabeled,
        check_images,
        files,
        {
            "label_order": label_order,
            "year": year,
            "image_ids": np.array(ids, np.int64),
            "image_split": splits,
            "excluded_without_label": excluded,
            "items_without_caption": int(no_caption),
            "selection": "train + val images with >= 1 of the 80 categories",
        },
    )
