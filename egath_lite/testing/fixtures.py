"""Small copies of the real release layouts, written to disk for tests, CI notebook runs and driver tests.

Each ``write_*`` function lays out a few hundred items exactly as the release does (folder
names, file names, file formats: JPEG images of the release's typical sizes, one-tag-per-line
tag files, 0/1 text matrices, MATLAB v5 and v7.3 files, COCO JSON) and returns what a
loader must read back (``FixtureInfo``: labels in the loader's column order, texts, counts
of the items the selection rule excludes). Labels are realistic: NUS-WIDE rows are sampled
from the shipped real TC-10 labels; MIRFlickr and MS-COCO label sets are drawn with
correlated groups (people / female / portrait, kitchen objects, ...), and every label is
given to at least ``min_label_count`` items, so a split of 60 query / 200 train items out
of ~400 has every label in training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from egath_lite.data.reference import (
    MIRFLICKR25K_LABELS,
    MSCOCO_LABELS,
    MSCOCO_LABELS_BY_ID,
    NUS_TC10_LABELS,
    load_nus_tc10_labels,
)

IMAGE_SIZES = ((500, 375), (375, 500), (640, 480), (320, 240))  # (width, height), the common Flickr / COCO sizes
NOISE_TAGS = (
    "nikon",
    "canon",
    "2008",
    "2009",
    "flickr",
    "explore",
    "geotagged",
    "d80",
    "holiday",
    "travel",
    "usa",
    "london",
    "summer",
    "bw",
    "macro",
    "hdr",
)

MIR_GROUPS = (
    ("people", "female", "male", "portrait", "baby", "indoor"),
    ("sky", "clouds", "sunset", "night"),
    ("water", "sea", "lake", "river", "sky"),
    ("animals", "dog", "bird"),
    ("plant_life", "tree", "flower"),
    ("structures", "car", "transport", "night"),
    ("food", "indoor"),
)
MIR_TAGS = {
    "animals": ("animal", "pet"),
    "baby": ("baby", "child"),
    "bird": ("bird", "birds"),
    "car": ("car", "auto"),
    "clouds": ("clouds", "cloud"),
    "dog": ("dog", "puppy"),
    "female": ("girl", "woman"),
    "flower": ("flower",),
    "food": ("food", "dinner"),
    "indoor": ("home", "room"),
    "lake": ("lake",),
    "male": ("man", "boy"),
    "night": ("night", "dark"),
    "people": ("people", "friends"),
    "plant_life": ("green", "plant"),
    "portrait": ("portrait", "face"),
    "river": ("river",),
    "sea": ("sea", "ocean", "beach"),
    "sky": ("sky", "blue"),
    "structures": ("building", "architecture"),
    "sunset": ("sunset", "sun"),
    "transport": ("train", "bus"),
    "tree": ("tree", "trees"),
    "water": ("water", "reflection"),
}
# COCO's category ids (1..90 with gaps) and supercategories, in category-id order.
COCO_CATEGORY_IDS = (
    *range(1, 12),
    *range(13, 26),
    27,
    28,
    *range(31, 45),
    *range(46, 66),
    67,
    70,
    *range(72, 83),
    *range(84, 91),
)
COCO_SUPERCATEGORIES = (
    ("person", 1),
    ("vehicle", 8),
    ("outdoor", 5),
    ("animal", 10),
    ("accessory", 5),
    ("sports", 10),
    ("kitchen", 7),
    ("food", 10),
    ("furniture", 6),
    ("electronic", 6),
    ("appliance", 5),
    ("indoor", 7),
)
NUS_CONCEPTS81 = (
    "airport",
    "animal",
    "beach",
    "bear",
    "birds",
    "boats",
    "book",
    "bridge",
    "buildings",
    "cars",
    "castle",
    "cat",
    "cityscape",
    "clouds",
    "computer",
    "coral",
    "cow",
    "dancing",
    "dog",
    "earthquake",
    "elk",
    "fire",
    "fish",
    "flags",
    "flowers",
    "food",
    "fox",
    "frost",
    "garden",
    "glacier",
    "grass",
    "harbor",
    "horses",
    "house",
    "lake",
    "leaf",
    "map",
    "military",
    "moon",
    "mountain",
    "nighttime",
    "ocean",
    "person",
    "plane",
    "plants",
    "police",
    "protest",
    "railroad",
    "rainbow",
    "reflection",
    "road",
    "rocks",
    "running",
    "sand",
    "sign",
    "sky",
    "snow",
    "soccer",
    "sports",
    "statue",
    "street",
    "sun",
    "sunset",
    "surf",
    "swimmers",
    "tattoo",
    "temple",
    "tiger",
    "tower",
    "town",
    "toy",
    "train",
    "tree",
    "valley",
    "vehicle",
    "water",
    "waterfall",
    "wedding",
    "whales",
    "window",
    "zebra",
)


@dataclass
class FixtureInfo:
    """What a loader must read back from a written fixture."""

    root: Path
    labels: np.ndarray  # uint8 (N, C) in the loader's column order and item order
    label_names: list[str]
    texts: list[str]
    num_excluded: int = 0  # items the selection rule leaves out (no label)
    extra: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- building blocks
def write_jpeg(path: Path, size: tuple[int, int], rng: np.random.Generator, quality: int = 80) -> None:
    """A real JPEG of ``size`` (w, h): a smooth random colour field (compresses to a few KB)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    small = Image.fromarray(rng.integers(0, 256, (3, 4, 3), dtype=np.uint8))
    small.resize(size, Image.BILINEAR).save(path, "JPEG", quality=quality)


def correlated_labels(
    rng: np.random.Generator,
    n: int,
    names: Sequence[str],
    groups: Sequence[Sequence[str]],
    min_label_count: int,
    mate_p: float = 0.35,
    common: dict[str, float] | None = None,
) -> np.ndarray:
    """uint8 (n, C): one primary label per item (round robin), its group mates with ``mate_p``, common labels."""
    col = {name: j for j, name in enumerate(names)}
    mates: dict[int, set[int]] = {j: set() for j in range(len(names))}
    for g in groups:
        for a in g:
            mates[col[a]].update(col[b] for b in g if b != a)
    Y = np.zeros((n, len(names)), np.uint8)
    primary = np.resize(np.arange(len(names)), n)
    rng.shuffle(primary)
    for i, c in enumerate(primary):
        Y[i, c] = 1
        for m in sorted(mates[c]):
            if rng.random() < mate_p:
                Y[i, m] = 1
    for name, p in (common or {}).items():
        Y[rng.random(n) < p, col[name]] = 1
    for j in range(len(names)):  # every label in enough items for a small split to see it in training
        short = min_label_count - int(Y[:, j].sum())
        if short > 0:
            Y[rng.choice(np.flatnonzero(Y[:, j] == 0), short, replace=False), j] = 1
    return Y


def _tags_for(rng: np.random.Generator, row: np.ndarray, names: Sequence[str], synonyms: dict[str, tuple]) -> list[str]:
    tags = []
    for j in np.flatnonzero(row):
        if rng.random() < 0.8:  # Flickr users do not tag everything they show
            tags.append(str(rng.choice(synonyms[names[j]])))
    tags += [str(t) for t in rng.choice(NOISE_TAGS, rng.integers(0, 4), replace=False)]
    return list(dict.fromkeys(tags))  # unique, order kept


def _save_mat_v73(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """A MATLAB v7.3 file (HDF5 with MATLAB's 512-byte header); arrays stored transposed, as MATLAB does."""
    import h5py

    with h5py.File(path, "w", userblock_size=512) as f:
        for name, arr in arrays.items():
            ds = f.create_dataset(
                name, data=np.ascontiguousarray(np.asarray(arr, dtype=np.float64).T), compression="gzip"
            )
            ds.attrs["MATLAB_class"] = np.bytes_("double")
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2018 HDF5 schema 1.00 ."
    with open(path, "r+b") as f:
        f.write(header.ljust(116, b" ") + b"\0" * 8 + b"\x00\x02" + b"IM" + b"\0" * (512 - 128))


# ----------------------------------------------------------------------------- MIRFlickr-25K
def _mir_items(n_items: int, seed: int, min_label_count: int):
    rng = np.random.default_rng([seed, 25])
    Y = correlated_labels(
        rng,
        n_items,
        MIRFLICKR25K_LABELS,
        MIR_GROUPS,
        min_label_count,
        common={"people": 0.3, "sky": 0.2, "structures": 0.15},
    )
    tags = [_tags_for(rng, Y[i], MIRFLICKR25K_LABELS, MIR_TAGS) for i in range(n_items)]
    return rng, Y, tags


def write_mirflickr_raw(
    root: str | Path,
    n_items: int = 400,
    seed: int = 0,
    flat_annotations: bool = False,
    num_unlabeled: int | None = None,
    min_label_count: int = 16,
) -> FixtureInfo:
    """The raw MIRFLICKR release: mirflickr/im*.jpg, mirflickr/meta/tags/tags*.txt, the 24 annotation files.

    ``flat_annotations``: the annotation files directly in root (as mirflickr25k_annotations_v080.zip
    unpacks) instead of in ``mirflickr25k_annotations_v080/``. ``num_unlabeled`` images (default
    n/20) carry no label and are excluded by the loader, as the 4,985 of the real release are.
    """
    root = Path(root)
    rng, Y, tags = _mir_items(n_items, seed, min_label_count)
    extra = max(1, n_items // 20) if num_unlabeled is None else num_unlabeled
    total = n_items + extra
    ids = np.sort(rng.choice(np.arange(1, total + 1), n_items, replace=False))  # labelled image numbers
    unlabelled = sorted(set(range(1, total + 1)) - set(ids.tolist()))
    tag_dir = root / "mirflickr" / "meta" / "tags"
    tag_dir.mkdir(parents=True, exist_ok=True)
    all_tags = {int(i): t for i, t in zip(ids, tags)}
    for i in unlabelled:
        all_tags[i] = [str(t) for t in rng.choice(NOISE_TAGS, 2, replace=False)]
    for i in range(1, total + 1):
        (tag_dir / f"tags{i}.txt").write_text("".join(f"{t}\n" for t in all_tags[i]))
        write_jpeg(root / "mirflickr" / f"im{i}.jpg", IMAGE_SIZES[i % len(IMAGE_SIZES)], rng)
    ann = root if flat_annotations else root / "mirflickr25k_annotations_v080"
    ann.mkdir(parents=True, exist_ok=True)
    for j, name in enumerate(MIRFLICKR25K_LABELS):
        members = ids[Y[:, j] == 1]
        (ann / f"{name}.txt").write_text("".join(f"{i}\n" for i in members))
        relevant = members[rng.random(len(members)) < 0.4]  # *_r1: the "relevant" subset, not used as labels
        if name in (
            "clouds",
            "female",
            "male",
            "people",
            "portrait",
            "river",
            "sea",
            "tree",
            "baby",
            "bird",
            "car",
            "dog",
            "flower",
            "night",
        ):
            (ann / f"{name}_r1.txt").write_text("".join(f"{i}\n" for i in relevant))
    (ann / "README.txt").write_text(
        "MIRFLICKR-25000 annotations v0.8 (fixture written by egath_lite.testing.fixtures)\n"
    )
    return FixtureInfo(
        root, Y, list(MIRFLICKR25K_LABELS), [" ".join(t) for t in tags], num_excluded=extra, extra={"image_ids": ids}
    )


def write_mirflickr_mat(root: str | Path, n_items: int = 400, seed: int = 0, min_label_count: int = 16) -> FixtureInfo:
    """The DCHMT-style .mat layout: index.mat (char matrix of paths), caption.mat (N x 1 cells), label.mat (category)."""
    import scipy.io as sio

    root = Path(root)
    rng, Y, tags = _mir_items(n_items, seed, min_label_count)
    root.mkdir(parents=True, exist_ok=True)
    texts = [" ".join(t) for t in tags]
    paths = [f"./flickr25k/mirflickr/im{i + 1}.jpg" for i in range(n_items)]  # the preparer's machine's paths
    sio.savemat(root / "index.mat", {"index": paths})
    captions = np.empty((n_items, 1), dtype=object)
    for i, t in enumerate(texts):
        captions[i, 0] = t
    sio.savemat(root / "caption.mat", {"caption": captions})
    sio.savemat(root / "label.mat", {"category": Y.astype(np.float64)})
    for i in range(n_items):
        write_jpeg(root / "mirflickr" / f"im{i + 1}.jpg", IMAGE_SIZES[i % len(IMAGE_SIZES)], rng)
    return FixtureInfo(root, Y, list(MIRFLICKR25K_LABELS), texts)


# ----------------------------------------------------------------------------- NUS-WIDE
def _nus_vocabulary() -> list[str]:
    words = [
        "sky",
        "blue",
        "clouds",
        "cloud",
        "people",
        "portrait",
        "girl",
        "water",
        "sea",
        "dog",
        "cat",
        "animal",
        "grass",
        "green",
        "field",
        "building",
        "architecture",
        "city",
        "window",
        "windows",
        "flowers",
        "plant",
        "tree",
        "lake",
        "reflection",
        *NOISE_TAGS,
    ]
    words = list(dict.fromkeys(words))
    return words + [f"word{j:03d}" for j in range(1000 - len(words))]  # 1,000 words like TagList1k.txt


_NUS_TAGS = {
    "sky": ("sky", "blue"),
    "clouds": ("clouds", "cloud"),
    "person": ("people", "portrait", "girl"),
    "water": ("water", "sea"),
    "animal": ("dog", "cat", "animal"),
    "grass": ("grass", "field", "green"),
    "buildings": ("building", "architecture", "city"),
    "window": ("window", "windows"),
    "plants": ("flowers", "plant", "tree"),
    "lake": ("lake", "reflection"),
}


def _nus_rows(n_items: int, seed: int, min_label_count: int) -> tuple[np.random.Generator, np.ndarray]:
    rng = np.random.default_rng([seed, 10])
    all_rows = load_nus_tc10_labels()
    Y = all_rows[rng.choice(len(all_rows), n_items, replace=False)].copy()
    for j in range(Y.shape[1]):  # top up rare labels with real rows that carry them
        short = min_label_count - int(Y[:, j].sum())
        if short > 0:
            donors = np.flatnonzero(all_rows[:, j] == 1)
            Y[rng.choice(np.flatnonzero(Y[:, j] == 0), short, replace=False)] = all_rows[rng.choice(donors, short)]
    return rng, Y


def _nus_tag_matrix(rng: np.random.Generator, Y: np.ndarray, vocab: list[str]) -> np.ndarray:
    col = {w: j for j, w in enumerate(vocab)}
    T = np.zeros((len(Y), len(vocab)), np.uint8)
    for i in range(len(Y)):
        for w in _tags_for(rng, Y[i], NUS_TC10_LABELS, _NUS_TAGS):
            T[i, col[w]] = 1
        T[i, rng.integers(len(vocab), size=2)] = 1
    return T


def _texts_of(T: np.ndarray, vocab: list[str]) -> list[str]:
    return [" ".join(vocab[j] for j in np.flatnonzero(row)) for row in T]


def write_nuswide_gcdh_mat(
    root: str | Path, n_items: int = 400, seed: int = 0, min_label_count: int = 16
) -> FixtureInfo:
    """GCDH's layout: imgList.mat (FAll cells), tagList.mat (YAll, MATLAB v7.3 = HDF5), labelList.mat, TagList1k.txt."""
    import scipy.io as sio

    root = Path(root)
    rng, Y = _nus_rows(n_items, seed, min_label_count)
    vocab = _nus_vocabulary()
    T = _nus_tag_matrix(rng, Y, vocab)
    root.mkdir(parents=True, exist_ok=True)
    names = np.empty((n_items, 1), dtype=object)
    rel = []
    for i in range(n_items):
        concept = NUS_TC10_LABELS[int(np.flatnonzero(Y[i])[0])]
        rel.append(f"{concept}/{i + 1:04d}_{int(rng.integers(10**8, 10**10))}.jpg")
        names[i, 0] = np.array([rel[-1].replace("/", "\\")])  # GCDH's names use Windows separators
        write_jpeg(root / "images" / rel[-1], IMAGE_SIZES[i % len(IMAGE_SIZES)], rng)
    sio.savemat(root / "imgList.mat", {"FAll": names})
    _save_mat_v73(root / "tagList.mat", {"YAll": T})
    sio.savemat(root / "labelList.mat", {"LAll": Y.astype(np.float64)})
    (root / "TagList1k.txt").write_text("".join(f"{w}\n" for w in vocab))
    return FixtureInfo(root, Y, list(NUS_TC10_LABELS), _texts_of(T, vocab), extra={"image_paths": rel})


def write_nuswide_official(
    root: str | Path, n_items: int = 400, seed: int = 0, num_without_tc10: int | None = None, min_label_count: int = 16
) -> FixtureInfo:
    """NUS-WIDE's release files: ImageList/Imagelist.txt, NUS_WID_Tags/AllTags1k.txt + TagList1k.txt,
    Groundtruth/AllLabels/Labels_<concept>.txt (all 81 concepts), images in Flickr/<concept>/.

    ``num_without_tc10`` images (default n/10) carry only other concepts: the TC-10 rule drops
    them. The other 71 concepts are kept rarer than the 10th TC-10 concept, as in the release.
    """
    root = Path(root)
    rng, Y10 = _nus_rows(n_items, seed, min_label_count)
    extra = max(1, n_items // 10) if num_without_tc10 is None else num_without_tc10
    total = n_items + extra
    order = rng.permutation(total)  # TC-10 items and the others interleaved in the image list
    is_tc10 = np.zeros(total, bool)
    is_tc10[order[:n_items]] = True
    others = [c for c in NUS_CONCEPTS81 if c not in NUS_TC10_LABELS]
    full = {c: np.zeros(total, np.uint8) for c in NUS_CONCEPTS81}
    tc_rows = np.flatnonzero(is_tc10)
    for j, c in enumerate(NUS_TC10_LABELS):
        full[c][tc_rows] = Y10[:, j]
    limit = int(Y10.sum(0).min()) - 1
    for c in others:
        full[c][rng.random(total) < 0.015] = 1
    for i in np.flatnonzero(~is_tc10):
        full[others[int(rng.integers(len(others)))]][i] = 1
    for c in others:  # strictly rarer than every TC-10 concept
        pos = np.flatnonzero(full[c])
        if len(pos) > limit:
            full[c][rng.choice(pos, len(pos) - limit, replace=False)] = 0
    for i in np.flatnonzero(~is_tc10):  # thinning may have emptied an item: give it its own concept back
        if not any(full[c][i] for c in others):
            full[others[i % len(others)]][i] = 1
    vocab = _nus_vocabulary()
    Yall = np.zeros((total, 10), np.uint8)
    Yall[tc_rows] = Y10
    T = _nus_tag_matrix(rng, Yall, vocab)
    lines = []
    for i in range(total):
        present = [c for c in NUS_CONCEPTS81 if full[c][i]]
        concept = present[0] if present else "sky"
        name = f"{concept}\\{i + 1:04d}_{int(rng.integers(10**8, 10**10))}.jpg"
        lines.append(f"C:\\ImageData\\Flickr\\{name}")
        write_jpeg(root / "Flickr" / name.replace("\\", "/"), IMAGE_SIZES[i % len(IMAGE_SIZES)], rng)
    (root / "ImageList").mkdir(parents=True, exist_ok=True)
    (root / "ImageList" / "Imagelist.txt").write_text("".join(f"{ln}\n" for ln in lines))
    (root / "NUS_WID_Tags").mkdir(exist_ok=True)
    (root / "NUS_WID_Tags" / "AllTags1k.txt").write_text("".join(" ".join(str(v) for v in row) + " \n" for row in T))
    (root / "NUS_WID_Tags" / "TagList1k.txt").write_text("".join(f"{w}\n" for w in vocab))
    gt = root / "Groundtruth" / "AllLabels"
    gt.mkdir(parents=True, exist_ok=True)
    for c in NUS_CONCEPTS81:
        (gt / f"Labels_{c}.txt").write_text("".join(f"{v}\n" for v in full[c]))
    return FixtureInfo(
        root,
        Y10,
        list(NUS_TC10_LABELS),
        _texts_of(T[tc_rows], vocab),
        num_excluded=extra,
        extra={"num_images": total, "image_entries": [lines[i] for i in tc_rows]},
    )


# ----------------------------------------------------------------------------- MS-COCO
def _coco_groups() -> list[list[str]]:
    groups, k = [], 0
    for _, size in COCO_SUPERCATEGORIES:
        groups.append(list(MSCOCO_LABELS_BY_ID[k : k + size]))
        k += size
    groups.append(["person", "sports ball", "frisbee", "skateboard", "surfboard", "tennis racket", "skis"])
    groups.append(["dining table", "cup", "fork", "knife", "pizza", "chair", "bowl"])
    return groups


def _coco_items(n_items: int, seed: int, min_label_count: int):
    rng = np.random.default_rng([seed, 80])
    Y = correlated_labels(
        rng,
        n_items,
        MSCOCO_LABELS_BY_ID,
        _coco_groups(),
        min_label_count,
        mate_p=0.2,
        common={"person": 0.4, "car": 0.05, "chair": 0.05},
    )
    captions = []
    draw = rng.integers  # draw(0, len(x)) picks what rng.choice(x) picks, from the same stream, without
    kinds, places = ("photo", "picture", "view"), ("near", "next to", "with")  # its array conversion
    for i in range(n_items):
        names = [MSCOCO_LABELS_BY_ID[j] for j in np.flatnonzero(Y[i])]
        k = 5 + int(rng.random() < 0.1)  # a few COCO images have 6 captions
        n = len(names)
        captions.append(
            [
                f"A {kinds[draw(0, 3)]} of a {names[draw(0, n)]} {places[draw(0, 3)]} a {names[draw(0, n)]}."
                for _ in range(k)
            ]
        )
    return rng, Y, captions


def write_mscoco_json(
    root: str | Path,
    n_items: int = 400,
    seed: int = 0,
    year: int = 2014,
    num_unlabeled: int | None = None,
    min_label_count: int = 16,
) -> FixtureInfo:
    """The official layout: annotations/{instances,captions}_{train,val}<year>.json, images in train<year>/, val<year>/.

    ``num_unlabeled`` images (default n/40) have captions but no instance: the loader leaves
    them out (the real 2014 set has 1,069 such images of 123,287). FixtureInfo.labels are in
    the JSON loader's default order (alphabetical) and item order (train by id, then val by id).
    """
    import json

    root = Path(root)
    rng, Y, captions = _coco_items(n_items, seed, min_label_count)
    extra = max(1, n_items // 40) if num_unlabeled is None else num_unlabeled
    total = n_items + extra
    image_ids = np.sort(rng.choice(np.arange(9, 600_000), total, replace=False))
    labelled = np.sort(rng.choice(total, n_items, replace=False))
    split_of = np.where(rng.random(total) < 0.67, "train", "val")
    categories = []
    k = 0
    for sup, size in COCO_SUPERCATEGORIES:
        for name in MSCOCO_LABELS_BY_ID[k : k + size]:
            categories.append({"supercategory": sup, "id": COCO_CATEGORY_IDS[len(categories)], "name": name})
        k += size
    cat_id = {c["name"]: c["id"] for c in categories}
    data = {s: {"images": [], "instances": [], "captions": []} for s in ("train", "val")}
    row_of = {int(t): r for r, t in enumerate(labelled)}
    ann_id = cap_id = 1
    for t in range(total):
        split, image_id = str(split_of[t]), int(image_ids[t])
        w, h = IMAGE_SIZES[t % len(IMAGE_SIZES)]
        file_name = f"COCO_{split}{year}_{image_id:012d}.jpg" if year == 2014 else f"{image_id:012d}.jpg"
        data[split]["images"].append(
            {
                "license": 1,
                "file_name": file_name,
                "coco_url": "",
                "height": h,
                "width": w,
                "date_captured": "2013-11-14 16:28:13",
                "flickr_url": "",
                "id": image_id,
            }
        )
        write_jpeg(root / f"{split}{year}" / file_name, (w, h), rng)
        if t in row_of:
            r = row_of[t]
            for j in np.flatnonzero(Y[r]):
                for _ in range(int(rng.integers(1, 3))):  # one draw of 4: the values of 4 scalar draws
                    x, y, bw, bh = rng.uniform((0, 0, 5, 5), (w / 2, h / 2, w / 2, h / 2)).tolist()
                    data[split]["instances"].append(
                        {
                            "segmentation": [[x, y, x + bw, y, x + bw, y + bh, x, y + bh]],
                            "area": bw * bh,
                            "iscrowd": 0,
                            "image_id": image_id,
                            "bbox": [x, y, bw, bh],
                            "category_id": cat_id[MSCOCO_LABELS_BY_ID[j]],
                            "id": ann_id,
                        }
                    )
                    ann_id += 1
            caps = captions[r]
        else:
            caps = ["A blurry photo of nothing in particular."] * 5
        for c in caps:
            data[split]["captions"].append({"image_id": image_id, "id": cap_id, "caption": c})
            cap_id += 1
    ann_dir = root / "annotations"
    ann_dir.mkdir(parents=True, exist_ok=True)
    info = {"description": "COCO fixture written by egath_lite.testing.fixtures", "version": "1.0", "year": year}
    for split, d in data.items():
        base = {"info": info, "licenses": [{"url": "", "id": 1, "name": "fixture"}], "images": d["images"]}
        (ann_dir / f"instances_{split}{year}.json").write_text(
            json.dumps({**base, "annotations": d["instances"], "categories": categories})
        )
        (ann_dir / f"captions_{split}{year}.json").write_text(json.dumps({**base, "annotations": d["captions"]}))
    # what the loader returns: train then val, each by image id; alphabetical columns
    order = sorted(range(n_items), key=lambda r: (split_of[labelled[r]] != "train", int(image_ids[labelled[r]])))
    alpha = [MSCOCO_LABELS_BY_ID.index(n) for n in MSCOCO_LABELS]
    return FixtureInfo(
        root,
        Y[order][:, alpha],
        list(MSCOCO_LABELS),
        [" ".join(captions[r]) for r in order],
        num_excluded=extra,
        extra={"year": year, "image_ids": image_ids[labelled][order]},
    )


def write_mscoco_mat(root: str | Path, n_items: int = 400, seed: int = 0, min_label_count: int = 16) -> FixtureInfo:
    """The .mat layout: index.mat (paths relative to root), caption.mat (captions joined), label.mat (category-id order)."""
    import scipy.io as sio

    root = Path(root)
    rng, Y, captions = _coco_items(n_items, seed, min_label_count)
    root.mkdir(parents=True, exist_ok=True)
    paths = [f"train2014/COCO_train2014_{i + 9:012d}.jpg" for i in range(n_items)]
    texts = [" ".join(c) for c in captions]
    sio.savemat(root / "index.mat", {"index": np.array(paths, dtype=object)})
    sio.savemat(root / "caption.mat", {"caption": np.array(texts, dtype=object)})
    sio.savemat(root / "label.mat", {"category": Y.astype(np.float64)})
    for i, p in enumerate(paths):
        write_jpeg(root / p, IMAGE_SIZES[i % len(IMAGE_SIZES)], rng)
    return FixtureInfo(root, Y, list(MSCOCO_LABELS_BY_ID), texts)


WRITERS = {
    ("mirflickr25k", "raw"): write_mirflickr_raw,
    ("mirflickr25k", "mat"): write_mirflickr_mat,
    ("nuswide_tc10", "gcdh"): write_nuswide_gcdh_mat,
    ("nuswide_tc10", "official"): write_nuswide_official,
    ("mscoco", "json"): write_mscoco_json,
    ("mscoco", "mat"): write_mscoco_mat,
}


# ----------------------------------------------------------------------------- own data (a manifest)
OWN_LABELS = ("beach", "cat", "dog", "food", "mountain", "person", "sky", "snow", "street", "tree")
OWN_GROUPS = (
    ("beach", "sky", "person"),
    ("mountain", "snow", "sky", "tree"),
    ("cat", "dog", "person"),
    ("street", "person", "food"),
)
OWN_TAGS = {
    "beach": ("beach", "sand", "sea"),
    "cat": ("cat", "kitten"),
    "dog": ("dog", "puppy"),
    "food": ("food", "dinner"),
    "mountain": ("mountain", "alps"),
    "person": ("people", "friends", "portrait"),
    "sky": ("sky", "blue"),
    "snow": ("snow", "winter"),
    "street": ("street", "city"),
    "tree": ("tree", "forest"),
}


def write_manifest(
    path: str | Path,
    n_items: int = 300,
    seed: int = 0,
    text_kind: str = "tags",
    split: bool = False,
    min_label_count: int = 12,
) -> FixtureInfo:
    """A manifest of own data at ``path`` (.csv or .jsonl) with real JPEGs in ``images/<label>/`` next to it.

    Columns image (relative to the manifest's folder), text (tags, or one caption per item for
    ``text_kind="caption"``), labels (names joined by ';'), and with ``split`` a split column
    (10% query, 60% train, the rest retrieval). FixtureInfo: labels in the loader's order (sorted
    names), texts, and ``extra["splits"]`` / ``extra["images"]`` as written.
    """
    import csv
    import json

    path = Path(path)
    rng = np.random.default_rng([seed, 42])
    Y = correlated_labels(
        rng, n_items, OWN_LABELS, OWN_GROUPS, min_label_count, mate_p=0.3, common={"person": 0.25, "sky": 0.2}
    )
    texts, images, splits = [], [], []
    for i in range(n_items):
        names = [OWN_LABELS[j] for j in np.flatnonzero(Y[i])]
        if text_kind == "caption":
            a, b = rng.choice(names), rng.choice(names)
            texts.append(
                f"A {rng.choice(['photo', 'picture', 'view'])} of the {rng.choice(OWN_TAGS[a])} "
                f"{rng.choice(['near', 'with', 'and'])} a {rng.choice(OWN_TAGS[b])}."
            )
        else:
            texts.append(" ".join(_tags_for(rng, Y[i], OWN_LABELS, OWN_TAGS)))
        images.append(f"images/{names[0]}/img_{i:05d}.jpg")
        write_jpeg(path.parent / images[-1], IMAGE_SIZES[i % len(IMAGE_SIZES)], rng)
        u = rng.random()
        splits.append("query" if u < 0.1 else "train" if u < 0.7 else "retrieval")
    rows = [
        {
            "image": im,
            "text": t,
            "labels": ";".join(OWN_LABELS[j] for j in np.flatnonzero(y)),
            **({"split": s} if split else {}),
        }
        for im, t, y, s in zip(images, texts, Y, splits)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return FixtureInfo(path.parent, Y, list(OWN_LABELS), texts, extra={"splits": splits, "images": images})
