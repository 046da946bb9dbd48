"""Every supported release layout, written by egath_lite.testing.fixtures, loads with the right items and labels;
every placement mistake users make gets a message naming what was found and the fix; the fingerprint sees every file."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio

from egath_lite.data import DatasetError, DatasetNotFoundError, dataset_fingerprint, dataset_from_config, load_dataset
from egath_lite.data.nuswide import image_entry, read_binary_matrix, tc10_selection
from egath_lite.data.reference import MIRFLICKR25K_LABELS, MSCOCO_LABELS, MSCOCO_LABELS_BY_ID, NUS_TC10_LABELS
from egath_lite.pipeline.config import get_config
from egath_lite.testing import fixtures as fx

N = 120  # items per fixture (small: each is written in about a second)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """One fixture per (dataset, layout), written once for the module; tests that modify one copy it first."""
    base = tmp_path_factory.mktemp("layouts")
    return {key: writer(base / f"{key[0]}_{key[1]}", N, 3) for key, writer in fx.WRITERS.items()}


def _copy(info: fx.FixtureInfo, dst: Path) -> Path:
    shutil.copytree(info.root, dst)
    return dst


# ----------------------------------------------------------------------------- each layout loads
@pytest.mark.parametrize("key", list(fx.WRITERS))
def test_every_layout_loads_items_labels_texts_and_images(written, key):
    info = written[key]
    ds = load_dataset(key[0], root=info.root)
    assert ds.info["layout"] == key[1]
    assert len(ds) == N and ds.label_names == info.label_names
    np.testing.assert_array_equal(ds.labels, info.labels)
    assert ds.texts == info.texts
    img = ds.get_image(len(ds) - 1)
    assert img.size in fx.IMAGE_SIZES  # real JPEGs of the release's sizes, found where the layout puts them
    assert load_dataset(key[0], root=info.root, layout=key[1]).labels.shape == ds.labels.shape


def test_fixtures_have_every_label_in_a_small_training_split(tmp_path):
    for name, layout in [("mirflickr25k", "raw"), ("nuswide_tc10", "gcdh"), ("mscoco", "json")]:
        info = fx.WRITERS[(name, layout)](tmp_path / name, 400, 0)
        ds = load_dataset(name, root=info.root, check_images=False)
        split = ds.split(60, 200, ds.split_defaults.seed)
        counts = ds.labels[split.train].sum(0)
        assert counts.min() >= 1, (name, [ds.label_names[j] for j in np.flatnonzero(counts == 0)])
        # correlated labels: some pair co-occurs far above independence
        Y = ds.labels.astype(float)
        lift = (Y.T @ Y / len(Y)) / np.maximum(np.outer(Y.mean(0), Y.mean(0)), 1e-12)
        np.fill_diagonal(lift, 0)
        assert lift.max() > 2.0, name


def test_mirflickr_raw_excludes_unlabelled_images_and_reads_flat_annotations(tmp_path):
    info = fx.write_mirflickr_raw(tmp_path / "mir", 60, 1, flat_annotations=True, num_unlabeled=7)
    assert (info.root / "animals.txt").is_file() and not (info.root / "mirflickr25k_annotations_v080").exists()
    ds = load_dataset("mirflickr25k", root=info.root)
    assert ds.info["layout"] == "raw" and ds.info["annotations_flat"]
    assert len(list((info.root / "mirflickr").glob("im*.jpg"))) == 67 and len(ds) == 60  # 7 without a label
    assert ds.info["image_ids"].tolist() == info.extra["image_ids"].tolist()
    np.testing.assert_array_equal(ds.labels, info.labels)
    # a hand check of one item: its labels are the files that list its number
    i = int(ds.info["image_ids"][5])
    listed = [n for n in MIRFLICKR25K_LABELS if str(i) in (info.root / f"{n}.txt").read_text().split()]
    assert [ds.label_names[j] for j in np.flatnonzero(ds.labels[5])] == listed
    assert ds.texts[5] == " ".join((info.root / "mirflickr/meta/tags" / f"tags{i}.txt").read_text().split())


# ----------------------------------------------------------------------------- selection rules
def test_nuswide_official_applies_the_tc10_rule(written):
    info = written[("nuswide_tc10", "official")]
    ds = load_dataset("nuswide_tc10", root=info.root)
    total = info.extra["num_images"]
    assert ds.info["num_images_in_release"] == total == N + N // 10
    assert ds.info["excluded_without_tc10_label"] == info.num_excluded == N // 10
    gt = info.root / "Groundtruth" / "AllLabels"
    assert len(list(gt.glob("Labels_*.txt"))) == 81
    # the rule by hand: the 10 concepts with the most positives, then the images with one of them
    counts = {p.stem[7:]: sum(int(x) for x in p.read_text().split()) for p in gt.glob("Labels_*.txt")}
    top = sorted(counts, key=lambda c: (-counts[c], c))[:10]
    assert set(top) == set(NUS_TC10_LABELS) and ds.info["concept_counts"] == {c: counts[c] for c in top}
    columns = {c: np.array((gt / f"Labels_{c}.txt").read_text().split(), int) for c in NUS_TC10_LABELS}
    keep = np.flatnonzero(np.stack(list(columns.values()), 1).any(1))
    assert len(ds) == len(keep) == N
    lines = (info.root / "ImageList" / "Imagelist.txt").read_text().splitlines()
    assert ds.image_paths == [image_entry(lines[k]) for k in keep]
    np.testing.assert_array_equal(ds.labels, np.stack([columns[c][keep] for c in NUS_TC10_LABELS], 1))
    assert ds.image_path(0).parent.parent == info.root / "Flickr"


def test_tc10_selection_by_hand_and_a_wrong_ground_truth(tmp_path):
    cols = {
        "a": np.array([1, 0, 0, 0]),
        "b": np.array([1, 1, 0, 0]),
        "c": np.array([0, 1, 0, 0]),
        "d": np.array([0, 0, 0, 1]),
    }
    top, keep = tc10_selection(cols, k=2)
    assert top == ["b", "a"] and keep.tolist() == [True, True, False, False]  # a/c/d tie at 1: by name
    assert image_entry("C:\\ImageData\\Flickr\\actor\\0001_2124494179.jpg") == "actor/0001_2124494179.jpg"
    info = fx.write_nuswide_official(tmp_path / "nus", 40, 0)
    (info.root / "Groundtruth" / "AllLabels" / "Labels_lake.txt").write_text("0\n" * 44)
    with pytest.raises(
        DatasetError,
        match=r"10 most frequent concepts .* are .*not TC-10's .*is Groundtruth/AllLabels "
        r"complete",
    ):
        load_dataset("nuswide_tc10", root=info.root)
    (info.root / "NUS_WID_Tags" / "AllTags1k.txt").write_text("0 1 2\n")
    with pytest.raises(DatasetError, match="expected only 0/1 values"):
        read_binary_matrix(info.root / "NUS_WID_Tags" / "AllTags1k.txt", None, None)


def test_mscoco_json_keeps_items_with_a_label_and_counts_the_rest(written, tmp_path):
    info = written[("mscoco", "json")]
    ds = load_dataset("mscoco", root=info.root)
    inst = {
        s: json.loads((info.root / "annotations" / f"instances_{s}2014.json").read_text()) for s in ("train", "val")
    }
    all_ids = {s: sorted(im["id"] for im in inst[s]["images"]) for s in inst}
    with_label = {s: {a["image_id"] for a in inst[s]["annotations"]} for s in inst}
    expected_ids = [i for s in ("train", "val") for i in all_ids[s] if i in with_label[s]]
    assert ds.info["image_ids"].tolist() == expected_ids and len(ds) == N
    assert ds.info["excluded_without_label"] == sum(len(v) for v in all_ids.values()) - N == info.num_excluded
    assert ds.label_names == MSCOCO_LABELS  # the reference files' (alphabetical) order
    np.testing.assert_array_equal(ds.labels, info.labels)
    # one item by hand: its label columns are the names of its instances' categories
    cat = {c["id"]: c["name"] for c in inst["train"]["categories"]}
    first = expected_ids[0]
    names = sorted({cat[a["category_id"]] for a in inst["train"]["annotations"] if a["image_id"] == first})
    assert [ds.label_names[j] for j in np.flatnonzero(ds.labels[0])] == names
    assert ds.image_paths[0] == f"train2014/COCO_train2014_{first:012d}.jpg"
    by_id = load_dataset("mscoco", root=info.root, label_order="category_id", check_images=False)
    assert by_id.label_names == MSCOCO_LABELS_BY_ID
    np.testing.assert_array_equal(by_id.labels[:, [MSCOCO_LABELS_BY_ID.index(n) for n in MSCOCO_LABELS]], ds.labels)
    info17 = fx.write_mscoco_json(tmp_path / "coco17", 30, 1, year=2017)
    ds17 = load_dataset("mscoco", root=info17.root)
    assert ds17.info["year"] == 2017 and ds17.image_paths[0].startswith(("train2017/0", "val2017/0"))
    np.testing.assert_array_equal(ds17.labels, info17.labels)
    (info17.root / "annotations" / "captions_val2017.json").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"missing \['annotations/captions_val2017.json'\]"):
        load_dataset("mscoco", root=info17.root, layout="json")


# ----------------------------------------------------------------------------- placement mistakes
def _message(name: str, root: Path, **kw) -> str:
    with pytest.raises(DatasetNotFoundError) as exc:
        load_dataset(name, root=root, **kw)
    return str(exc.value)


def test_mistake_root_is_the_image_folder(written):
    root = written[("mirflickr25k", "raw")].root
    msg = _message("mirflickr25k", root / "mirflickr")
    n_jpg = len(list((root / "mirflickr").glob("*.jpg")))
    assert f"Found there: {n_jpg + 1} entries (im1.jpg, im10.jpg, " in msg  # the jpgs and meta/
    assert f"{n_jpg} .jpg files directly in it" in msg
    assert f"the root is the image folder ({n_jpg} .jpg files directly in it): set the root to its parent {root}" in msg
    assert f"{root} holds the raw layout" in msg
    coco = written[("mscoco", "json")].root
    msg = _message("mscoco", coco / "train2014")
    assert "the root is the image folder" in msg and f"set the root to its parent {coco}" in msg
    nus = written[("nuswide_tc10", "official")].root
    msg = _message("nuswide_tc10", nus / "Flickr")
    assert "the root is the image folder (it is named Flickr/)" in msg and f"set the root to its parent {nus}" in msg


def test_mistake_annotation_files_flat_in_the_root_just_works(written, tmp_path):
    root = _copy(written[("mirflickr25k", "raw")], tmp_path / "mir")
    for f in (root / "mirflickr25k_annotations_v080").iterdir():
        f.rename(root / f.name)
    (root / "mirflickr25k_annotations_v080").rmdir()
    ds = load_dataset("mirflickr25k", root=root)
    assert len(ds) == N and ds.info["annotations_flat"]
    np.testing.assert_array_equal(ds.labels, written[("mirflickr25k", "raw")].labels)


def test_mistake_no_annotation_folder(written, tmp_path):
    root = _copy(written[("mirflickr25k", "raw")], tmp_path / "mir")
    shutil.rmtree(root / "mirflickr25k_annotations_v080")
    msg = _message("mirflickr25k", root)
    assert "Found there: 1 entries (mirflickr/)" in msg and "below it (mostly in mirflickr/" in msg
    assert "most resembles the raw layout" in msg and "has the tag files (mirflickr/meta/tags)" in msg
    assert (
        "lacks the 24 annotation files (mirflickr25k_annotations_v080/animals.txt or animals.txt): download "
        "mirflickr25k_annotations_v080.zip and extract it into the root"
    ) in msg


def test_mistake_ssah_and_dcmh_single_files(tmp_path):
    ssah = tmp_path / "ssah"
    ssah.mkdir()
    for name, key in (("lall", "LAll"), ("yall", "YAll"), ("iall", "IAll")):
        sio.savemat(ssah / f"mirflickr25k-{name}.mat", {key: np.zeros((3, 4))})
    msg = _message("mirflickr25k", ssah)
    assert ".mat files: ['mirflickr25k-iall.mat', 'mirflickr25k-lall.mat', 'mirflickr25k-yall.mat']" in msg
    assert (
        "found SSAH's preprocessed files (mirflickr25k-lall.mat, mirflickr25k-yall.mat, mirflickr25k-iall.mat)" in msg
    )
    assert "cannot be read unambiguously" in msg and "Use the raw release instead" in msg and "convert" in msg
    dcmh = tmp_path / "dcmh"
    dcmh.mkdir()
    sio.savemat(dcmh / "FLICKR-25K.mat", {"LAll": np.zeros((3, 24))})
    msg = _message("mirflickr25k", dcmh)
    assert ".mat files: ['FLICKR-25K.mat']" in msg and "found DCMH's single preprocessed file (FLICKR-25K.mat)" in msg
    assert "Use the raw release instead" in msg


def test_mistake_double_nesting(written, tmp_path):
    outer = tmp_path / "mirflickr25k"
    _copy(written[("mirflickr25k", "raw")], outer / "mirflickr25k")
    msg = _message("mirflickr25k", outer)
    assert "Found there: 1 entries (mirflickr25k/)" in msg
    assert f"double nesting: {outer / 'mirflickr25k'} holds the raw layout" in msg
    assert f"set the root to {outer / 'mirflickr25k'}" in msg
    deeper = tmp_path / "downloads"
    _copy(written[("nuswide_tc10", "gcdh")], deeper / "GCDH" / "NUS-WIDE-TC10")
    msg = _message("nuswide_tc10", deeper)
    assert f"the release is 2 folder levels down: {deeper / 'GCDH' / 'NUS-WIDE-TC10'} holds the gcdh layout" in msg


def test_mistake_wrong_folder_lists_what_is_there(tmp_path):
    (tmp_path / "wrong").mkdir()
    for k in range(15):
        (tmp_path / "wrong" / f"file{k:02d}.txt").write_text("x")
    msg = _message("mscoco", tmp_path / "wrong")
    assert "Found there: 15 entries (file00.txt, file01.txt" in msg and "and 3 more" in msg
    assert (
        "No file of any layout is there: wrong folder? The layouts need mat: index.mat, caption.mat, label.mat | "
        "json: annotations/instances_train2014.json" in msg
    )
    msg = _message("mscoco", tmp_path / "absent")
    assert f"data folder {tmp_path / 'absent'} does not exist (its parent {tmp_path} holds: wrong/)" in msg


def test_default_root_error_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.delenv("EGATH_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    msg = _message("mirflickr25k", None)
    assert f"looked for in {tmp_path / 'data' / 'mirflickr25k'}" in msg and "EGATH_DATA is not set" in msg
    assert f"working directory {tmp_path}" in msg and "--set data_root=" in msg
    monkeypatch.setenv("EGATH_DATA", str(tmp_path / "store"))
    assert f"EGATH_DATA={tmp_path / 'store'}" in _message("mirflickr25k", None)


# ----------------------------------------------------------------------------- config: layout, drop_unlabeled
def test_config_passes_layout_and_drop_unlabeled(written, tmp_path):
    root = _copy(written[("mirflickr25k", "mat")], tmp_path / "mir")
    labels = written[("mirflickr25k", "mat")].labels.astype(float)
    labels[[4, 9]] = 0
    sio.savemat(root / "label.mat", {"category": labels})
    cfg = get_config("tiny", dataset="mirflickr25k", data_root=str(root), clip_pretrained="random")
    with pytest.raises(DatasetError, match="2 of 120 label rows are all zero.*drop_unlabeled=True"):
        dataset_from_config(cfg)
    ds = dataset_from_config(cfg.replace(drop_unlabeled=True))
    assert len(ds) == N - 2 and ds.info["dropped_unlabeled"] == 2
    with pytest.raises(DatasetNotFoundError, match="no annotation files"):
        dataset_from_config(cfg.replace(layout="raw"))
    with pytest.raises(DatasetError, match=r"unknown layout 'zip'; use 'auto' or one of \['raw', 'mat'\]"):
        dataset_from_config(cfg.replace(layout="zip"))


# ----------------------------------------------------------------------------- fingerprint
def _fp(name: str, root: Path, **kw) -> str:
    return dataset_fingerprint(get_config("tiny", dataset=name, data_root=str(root), clip_pretrained="random", **kw))


def _bump_mtime(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_fingerprint_sees_label_files_in_subfolders_and_images(written, tmp_path):
    mir = _copy(written[("mirflickr25k", "raw")], tmp_path / "mir")
    base = _fp("mirflickr25k", mir)
    assert _fp("mirflickr25k", mir) == base
    (mir / "notes.md").write_text("not an input")  # a file no loader reads
    assert _fp("mirflickr25k", mir) == base
    ann = mir / "mirflickr25k_annotations_v080" / "animals.txt"
    original = ann.read_text()
    st = ann.stat()
    ann.write_text("".join(reversed(original.splitlines(keepends=True))))  # same size, other content
    os.utime(ann, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the same mtime: only the content tells
    assert _fp("mirflickr25k", mir) != base
    ann.write_text(original)
    os.utime(ann, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert _fp("mirflickr25k", mir) == base
    _bump_mtime(mir / "mirflickr" / "im3.jpg")  # an image touched: stat only, never read
    after_image = _fp("mirflickr25k", mir)
    assert after_image != base
    (mir / "mirflickr" / "meta" / "tags" / "tags3.txt").write_text("edited\n")
    assert _fp("mirflickr25k", mir) != after_image
    assert _fp("mirflickr25k", mir, drop_unlabeled=True) != _fp("mirflickr25k", mir)
    assert _fp("mirflickr25k", mir, layout="raw") != _fp("mirflickr25k", mir)  # the option is part of it

    mat = _copy(written[("mirflickr25k", "mat")], tmp_path / "mat")
    before = _fp("mirflickr25k", mat)
    labels = sio.loadmat(mat / "label.mat")["category"]
    sio.savemat(mat / "label.mat", {"category": labels[:, ::-1]})  # columns reversed: same shape and size
    assert _fp("mirflickr25k", mat) != before

    nus = _copy(written[("nuswide_tc10", "official")], tmp_path / "nus")
    before = _fp("nuswide_tc10", nus)
    sky = nus / "Groundtruth" / "AllLabels" / "Labels_sky.txt"
    values = sky.read_text().split()
    values[0] = "1" if values[0] == "0" else "0"
    sky.write_text("".join(f"{v}\n" for v in values))
    assert _fp("nuswide_tc10", nus) != before
    (nus / "Flickr" / "sky").mkdir(exist_ok=True)
    fx.write_jpeg(nus / "Flickr" / "sky" / "9999_1.jpg", (32, 32), np.random.default_rng(0))
    assert _fp("nuswide_tc10", nus) != before

    coco = _copy(written[("mscoco", "json")], tmp_path / "coco")
    before = _fp("mscoco", coco)
    cap = coco / "annotations" / "captions_val2014.json"
    cap.write_text(cap.read_text().replace("A ", "a ", 1))
    assert _fp("mscoco", coco) != before
