"""Real benchmark loaders on small fixture files written here in each release layout, and every bad input."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio
from PIL import Image

from egath_lite.data import DatasetError, DatasetNotFoundError, load_dataset
from egath_lite.data.reference import MIRFLICKR25K_LABELS, MSCOCO_LABELS, MSCOCO_LABELS_BY_ID, NUS_TC10_LABELS


def _jpg(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((6, 8, 3), value, np.uint8)).save(path)


# ----------------------------------------------------------------------------- MIRFlickr-25K, raw release
# image id -> labels (names) and tags; id 5 has no label (excluded), id 7 is only in a *_r1 file (excluded too)
MIR_ITEMS = {
    1: (["sky", "clouds"], ["sky", "blue", "nikon"]),
    2: (["people", "female"], ["portrait", "girl"]),
    3: (["dog", "animals"], ["dog"]),
    4: (["sky"], []),
    5: ([], ["nothing", "labelled"]),
    6: (["water", "sea", "sky"], ["beach", "sea", "2008"]),
    7: ([], ["r1", "only"]),
}


@pytest.fixture()
def mir_raw(tmp_path) -> Path:
    root = tmp_path / "mirflickr25k"
    ann = root / "mirflickr25k_annotations_v080"
    ann.mkdir(parents=True)
    for name in MIRFLICKR25K_LABELS:
        ids = [i for i, (labels, _) in MIR_ITEMS.items() if name in labels]
        (ann / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids))
    (ann / "sky_r1.txt").write_text("1\n")
    (ann / "dog_r1.txt").write_text("3\n7\n")
    (ann / "README.txt").write_text("MIRFLICKR annotations\n")
    for i, (_, tags) in MIR_ITEMS.items():
        tag_file = root / "mirflickr" / "meta" / "tags" / f"tags{i}.txt"
        tag_file.parent.mkdir(parents=True, exist_ok=True)
        tag_file.write_text("".join(f"{t}\n" for t in tags))
        _jpg(root / "mirflickr" / f"im{i}.jpg", 10 * i)
    return root


def test_mirflickr_raw_layout_reads_labels_tags_and_images(mir_raw):
    ds = load_dataset("mirflickr25k", root=mir_raw)
    assert ds.info["layout"] == "raw" and ds.label_names == MIRFLICKR25K_LABELS
    assert ds.info["image_ids"].tolist() == [1, 2, 3, 4, 6]  # 5 (no label) and 7 (only in dog_r1) excluded
    assert ds.texts == ["sky blue nikon", "portrait girl", "dog", "", "beach sea 2008"]
    expected = np.zeros((5, 24), np.uint8)
    for row, i in enumerate([1, 2, 3, 4, 6]):
        for name in MIR_ITEMS[i][0]:
            expected[row, MIRFLICKR25K_LABELS.index(name)] = 1
    np.testing.assert_array_equal(ds.labels, expected)
    assert ds.labels[0, MIRFLICKR25K_LABELS.index("sky")] == 1 and ds.labels[2, MIRFLICKR25K_LABELS.index("dog")] == 1
    assert np.asarray(ds.get_image(4))[0, 0].tolist() == pytest.approx([60, 60, 60], abs=2)  # im6.jpg
    assert ds.images is None and ds.summary()["items_without_tags"] == 1
    assert (ds.split_defaults.num_query, ds.split_defaults.num_train, ds.split_defaults.seed) == (2000, 10000, 6)


def test_mirflickr_raw_missing_label_file_is_named(mir_raw):
    (mir_raw / "mirflickr25k_annotations_v080" / "clouds.txt").unlink()
    with pytest.raises(DatasetError, match=r"missing: \['clouds'\]"):
        load_dataset("mirflickr25k", root=mir_raw)


def test_mirflickr_raw_partly_extracted_tags_are_named(mir_raw):
    (mir_raw / "mirflickr" / "meta" / "tags" / "tags3.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"1 of 5 tag files are missing .*tags3.txt"):
        load_dataset("mirflickr25k", root=mir_raw)


def test_missing_images_lists_folders_and_agrees_with_a_stat_of_each_candidate(tmp_path, monkeypatch):
    # the image check lists each folder once instead of a stat per file; it must answer what Path.is_file answers
    from egath_lite.data import release
    from egath_lite.data.dataset import candidate_image_paths

    root = tmp_path / "images"
    (root / "train2014").mkdir(parents=True)
    (root / "val2014").mkdir()
    for name in ("train2014/a.jpg", "train2014/b.jpg", "val2014/c.jpg", "loose.jpg"):
        (root / name).write_bytes(b"x")
    (root / "train2014" / "folder.jpg").mkdir()  # a folder with an image's name is not an image
    (root / "train2014" / "link.jpg").symlink_to(root / "val2014" / "c.jpg")
    (root / "train2014" / "broken.jpg").symlink_to(root / "gone.jpg")
    outside = tmp_path / "elsewhere.jpg"
    outside.write_bytes(b"x")
    entries = [
        "train2014/a.jpg",  # present
        "train2014/missing.jpg",
        "other/b.jpg",  # no folder "other", but b.jpg is not under the root either: missing
        "c.jpg",  # only under val2014/, and its one candidate is root/c.jpg: missing
        "val2014/c.jpg",
        "/somewhere/loose.jpg",  # absolute and absent, but root/loose.jpg exists
        str(outside),  # absolute, present
        "train2014/folder.jpg",
        "train2014/link.jpg",
        "train2014/broken.jpg",
        "loose.jpg/x.jpg",  # the parent is a file: not listable, falls back to a stat
        "no_folder_at_all/x.jpg",
    ]
    want = [i for i, e in enumerate(entries) if not any(c.is_file() for c in candidate_image_paths(e, root))]
    assert want == [1, 2, 3, 7, 9, 10, 11]
    calls = []
    real = release.os.scandir
    monkeypatch.setattr(release.os, "scandir", lambda p: calls.append(Path(p)) or real(p))
    assert release.missing_images(entries, root) == want
    assert len(calls) == len(set(calls))  # each folder listed once


def test_missing_images_raise_unless_check_images_is_off(mir_raw):
    (mir_raw / "mirflickr" / "im2.jpg").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"1 of 5 image files are missing \(first: 'im2.jpg'"):
        load_dataset("mirflickr25k", root=mir_raw)
    ds = load_dataset("mirflickr25k", root=mir_raw, check_images=False)
    with pytest.raises(DatasetNotFoundError, match="image of item 1 .*im2.jpg.* not found"):
        ds.get_image(1)


def test_missing_and_unrecognised_folders(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        load_dataset("mirflickr25k", root=tmp_path / "absent")
    (tmp_path / "wrong").mkdir()
    (tmp_path / "wrong" / "notes.txt").write_text("hello")
    with pytest.raises(
        DatasetNotFoundError,
        match=r"matches none of its layouts \(raw, mat\)\. Found there: 1 entries "
        r"\(notes.txt\).*No file of any layout is there: wrong folder\?",
    ):
        load_dataset("mirflickr25k", root=tmp_path / "wrong")
    with pytest.raises(DatasetError, match="unknown layout 'zip'"):
        load_dataset("mirflickr25k", root=tmp_path / "wrong", layout="zip")


# ----------------------------------------------------------------------------- .mat layout (MIRFlickr, MS-COCO)
def _write_mat_layout(root: Path, paths, captions, labels, label_key="category") -> None:
    root.mkdir(parents=True, exist_ok=True)
    sio.savemat(root / "index.mat", {"index": list(paths)})  # a char matrix, padded with spaces
    sio.savemat(root / "caption.mat", {"caption": [[c] for c in captions]})  # (N, 1), as DCHMT's script writes it
    sio.savemat(root / "label.mat", {label_key: np.asarray(labels, dtype=np.float64)})


@pytest.fixture()
def mir_mat(tmp_path) -> Path:
    root = tmp_path / "mir_mat"
    labels = np.zeros((3, 24))
    labels[0, 18] = labels[1, 13] = labels[2, [5, 0]] = 1  # sky; people; dog + animals
    _write_mat_layout(
        root,
        [f"./flickr25k/mirflickr/im{i}.jpg" for i in (1, 2, 3)],
        ["sky blue", "portrait girl people", "dog"],
        labels,
    )
    for i in (1, 2, 3):
        _jpg(root / "mirflickr" / f"im{i}.jpg", 20 * i)
    return root


def test_mirflickr_mat_layout(mir_mat):
    ds = load_dataset("mirflickr25k", root=mir_mat)
    assert ds.info["layout"] == "mat" and len(ds) == 3
    assert ds.texts == ["sky blue", "portrait girl people", "dog"]
    assert [ds.label_names[j] for j in np.flatnonzero(ds.labels[2])] == ["animals", "dog"]
    # the stored path is the preparer's; the file is found by name under <root>/mirflickr
    assert ds.image_path(1) == mir_mat / "mirflickr" / "im2.jpg"
    assert np.asarray(ds.get_image(2))[0, 0].tolist() == pytest.approx([60, 60, 60], abs=2)


def test_half_present_mat_layout_names_the_missing_file(mir_mat):
    (mir_mat / "caption.mat").unlink()
    with pytest.raises(
        DatasetNotFoundError,
        match=r"most resembles the mat layout .*has index.mat; has label.mat; "
        r"lacks caption.mat",
    ):
        load_dataset("mirflickr25k", root=mir_mat)
    with pytest.raises(DatasetNotFoundError, match=r"missing \['caption.mat'\]"):  # the layout named explicitly
        load_dataset("mirflickr25k", root=mir_mat, layout="mat")


def test_all_zero_label_rows_raise_or_are_dropped_explicitly(mir_mat):
    labels = np.zeros((3, 24))
    labels[0, 18] = labels[2, 5] = 1  # row 1 has no label
    sio.savemat(mir_mat / "label.mat", {"category": labels})
    with pytest.raises(DatasetError, match=r"1 of 3 label rows are all zero \(first rows: \[1\]\).*drop_unlabeled"):
        load_dataset("mirflickr25k", root=mir_mat)
    ds = load_dataset("mirflickr25k", root=mir_mat, drop_unlabeled=True)
    assert len(ds) == 2 and ds.texts == ["sky blue", "dog"] and ds.info["dropped_unlabeled"] == 1


def test_tags_and_labels_of_different_lengths_raise(mir_mat):
    sio.savemat(mir_mat / "caption.mat", {"caption": [["sky"], ["dog"]]})
    with pytest.raises(DatasetError, match=r"different lengths \(labels: 3, texts: 2, images: 3\)"):
        load_dataset("mirflickr25k", root=mir_mat)


def test_wrong_key_and_wrong_label_width_raise(mir_mat):
    sio.savemat(mir_mat / "label.mat", {"L": np.eye(3, 24)})
    with pytest.raises(DatasetError, match=r"label.mat has no variable 'category' or .*\(it has \['L'\]\)"):
        load_dataset("mirflickr25k", root=mir_mat)
    sio.savemat(mir_mat / "label.mat", {"category": np.eye(3, 10)})
    with pytest.raises(DatasetError, match="10 columns but this dataset has 24 labels"):
        load_dataset("mirflickr25k", root=mir_mat)
    (mir_mat / "index.mat").write_bytes(b"not a mat file at all")
    with pytest.raises(DatasetError, match="index.mat is not a readable .mat file"):
        load_dataset("mirflickr25k", root=mir_mat)


def test_mscoco_mat_layout_with_cell_captions_and_label_orders(tmp_path):
    root = tmp_path / "coco"
    labels = np.zeros((2, 80))
    labels[0, [0, 16]] = 1  # person, dog in category-id order
    labels[1, 2] = 1  # car
    root.mkdir()
    sio.savemat(root / "index.mat", {"index": ["train2014/COCO_1.jpg", "val2014/COCO_2.jpg"]})
    sio.savemat(root / "caption.mat", {"caption": np.array(["A man walks his dog.", "A red car."], dtype=object)})
    sio.savemat(root / "label.mat", {"label": labels})
    _jpg(root / "train2014" / "COCO_1.jpg", 5)
    _jpg(root / "val2014" / "COCO_2.jpg", 9)
    ds = load_dataset("mscoco", root=root)
    assert ds.texts == ["A man walks his dog.", "A red car."]
    assert ds.label_names == MSCOCO_LABELS_BY_ID
    assert [ds.label_names[j] for j in np.flatnonzero(ds.labels[0])] == ["person", "dog"]
    alpha = load_dataset("mscoco", root=root, label_order="alphabetical")
    assert alpha.label_names == MSCOCO_LABELS and alpha.label_names[0] == "airplane"
    with pytest.raises(DatasetError, match="unknown label_order"):
        load_dataset("mscoco", root=root, label_order="random")
    assert (ds.split_defaults.num_query, ds.split_defaults.seed) == (5000, 8)


# ----------------------------------------------------------------------------- NUS-WIDE TC-10, GCDH layout
@pytest.fixture()
def nus_gcdh(tmp_path) -> Path:
    root = tmp_path / "nus"
    root.mkdir()
    names = np.empty((3, 1), dtype=object)
    for i, n in enumerate(["actor\\0001_1.jpg", "lake/0002_2.jpg", "sky/0003_3.jpg"]):
        names[i, 0] = np.array([n])
    tags = np.array([[1, 0, 0, 1, 0], [0, 1, 1, 0, 0], [0, 0, 0, 0, 1]], dtype=np.float64)
    labels = np.zeros((3, 10))
    labels[0, 2] = labels[1, [3, 9]] = labels[2, [0, 1]] = 1  # person; water + lake; sky + clouds
    sio.savemat(root / "imgList.mat", {"FAll": names})
    sio.savemat(root / "tagList.mat", {"YAll": tags})
    sio.savemat(root / "labelList.mat", {"LAll": labels})
    (root / "TagList1k.txt").write_text("actor\nlake\nwater\nman\nsky\n")
    for i, n in enumerate(["actor/0001_1.jpg", "lake/0002_2.jpg", "sky/0003_3.jpg"]):
        _jpg(root / "images" / n, 30 * i)
    return root


def test_nuswide_gcdh_layout_turns_tag_vectors_into_words(nus_gcdh):
    ds = load_dataset("nuswide_tc10", root=nus_gcdh)
    assert ds.texts == ["actor man", "lake water", "sky"]
    assert ds.label_names == NUS_TC10_LABELS
    assert [ds.label_names[j] for j in np.flatnonzero(ds.labels[1])] == ["water", "lake"]
    assert ds.image_path(0) == nus_gcdh / "images" / "actor" / "0001_1.jpg"  # Windows separators normalised
    assert (ds.split_defaults.num_query, ds.split_defaults.num_train, ds.split_defaults.seed) == (2100, 10500, 7)
    placeholder = load_dataset("nuswide_tc10", root=nus_gcdh, tag_list="index")
    assert placeholder.texts[0] == "tag0000 tag0003"


def test_nuswide_tag_list_missing_or_of_wrong_length(nus_gcdh):
    (nus_gcdh / "TagList1k.txt").write_text("actor\nlake\n")
    with pytest.raises(DatasetError, match="names 2 tags but .*YAll has 5 columns"):
        load_dataset("nuswide_tc10", root=nus_gcdh)
    (nus_gcdh / "TagList1k.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match="TagList1k.txt is missing.*tag_list='index'"):
        load_dataset("nuswide_tc10", root=nus_gcdh)


def test_nuswide_half_present_and_mismatched_lengths(nus_gcdh):
    sio.savemat(nus_gcdh / "labelList.mat", {"LAll": np.eye(2, 10)})
    mismatch = r"different lengths \(imgList_FAll: 3, tagList_YAll: 3, labelList_LAll: 2\)"
    with pytest.raises(DatasetError, match=mismatch):
        load_dataset("nuswide_tc10", root=nus_gcdh)
    (nus_gcdh / "tagList.mat").unlink()
    with pytest.raises(
        DatasetNotFoundError,
        match=r"3 below it \(mostly in images/ \(3\)\).*most resembles the gcdh "
        r"layout .*has imgList.mat; has labelList.mat; lacks tagList.mat",
    ):
        load_dataset("nuswide_tc10", root=nus_gcdh)


def test_matlab_v73_file_without_h5py_explains_the_fix(nus_gcdh, monkeypatch):
    # GCDH ships NUS-WIDE's tagList.mat as MATLAB v7.3 (HDF5): a 512-byte header, then the HDF5 signature.
    (nus_gcdh / "tagList.mat").write_bytes(b"MATLAB 7.3 MAT-file".ljust(512, b" ") + b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    monkeypatch.setitem(sys.modules, "h5py", None)  # make `import h5py` fail whether or not it is installed
    with pytest.raises(DatasetError, match=r"MATLAB v7.3 \(HDF5\) file and reading it needs h5py: `pip install h5py`"):
        load_dataset("nuswide_tc10", root=nus_gcdh)


def test_default_root_is_data_folder_or_egath_data(monkeypatch, tmp_path, nus_gcdh):
    monkeypatch.setenv("EGATH_DATA", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "mscoco")):
        load_dataset("mscoco")
    nus_gcdh.rename(tmp_path / "nuswide_tc10")
    assert len(load_dataset("nuswide_tc10")) == 3
