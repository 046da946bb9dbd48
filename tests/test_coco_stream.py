"""MS-COCO's JSON annotations read as a stream (issue 22): the same data set as json.load of each file,
item for item; chunk boundaries anywhere; invalid files refused in one line; memory bounded by the chunk."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from egath_lite.data import mscoco
from egath_lite.data.dataset import DatasetError
from egath_lite.data.reference import MSCOCO_LABELS
from egath_lite.testing.fixtures import write_mscoco_json


def _reference(root: Path, year: int = 2014) -> dict:
    """The loader before streaming (json.load of every file), written out plainly: the specification."""
    column = {n: j for j, n in enumerate(MSCOCO_LABELS)}
    out = {"labels": [], "texts": [], "paths": [], "ids": [], "splits": [], "excluded": 0, "no_caption": 0}
    for split in ("train", "val"):
        inst = json.loads((root / "annotations" / f"instances_{split}{year}.json").read_bytes())
        caps = json.loads((root / "annotations" / f"captions_{split}{year}.json").read_bytes())
        cat_name = {c["id"]: c["name"] for c in inst["categories"]}
        per_image = {im["id"]: set() for im in inst["images"]}
        for a in inst["annotations"]:
            per_image.setdefault(a["image_id"], set()).add(column[cat_name[a["category_id"]]])
        captions: dict[int, list] = {}
        for a in caps["annotations"]:
            captions.setdefault(a["image_id"], []).append((a.get("id", 0), a["caption"].strip()))
        for im in sorted(inst["images"], key=lambda im: im["id"]):
            if not per_image[im["id"]]:
                out["excluded"] += 1
                continue
            row = np.zeros(80, np.uint8)
            row[sorted(per_image[im["id"]])] = 1
            text = " ".join(c for _, c in sorted(captions.get(im["id"], [])))
            out["no_caption"] += text == ""
            out["labels"].append(row)
            out["texts"].append(text)
            out["paths"].append(f"{split}{year}/{im['file_name']}")
            out["ids"].append(im["id"])
            out["splits"].append(split)
    return out


def _edit(path: Path, change, **dump) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data, **dump), encoding="utf-8")


def test_streamed_loader_equals_json_load_item_for_item(tmp_path, monkeypatch):
    info = write_mscoco_json(tmp_path / "coco", 160, seed=5, num_unlabeled=7)
    ann = info.root / "annotations"
    # the corners a stream must keep: captions of one image with equal ids (ordered by text, as sorted()
    # did), non-ASCII text cut anywhere by a chunk, an annotation of an image that is not listed (left out),
    # an image without captions, pretty-printed and compact files, categories after the annotations
    # (the real files' order), and captions without an id (0)
    first_val = min(im["id"] for im in json.loads((ann / "instances_val2014.json").read_text())["images"])

    def captions(d):
        tied = d["annotations"][0]
        d["annotations"] += [
            {"image_id": tied["image_id"], "id": tied["id"], "caption": "  zz a tie, sorted by its text "},
            {"image_id": tied["image_id"], "id": tied["id"], "caption": "aa a tie — naïve café 東京 🚲"},
            {"image_id": d["annotations"][1]["image_id"], "caption": 'no id: "quoted" \\ back\nslash'},
        ]

    def instances(d):
        d["annotations"].append({"id": 10**9, "image_id": 7, "category_id": 1, "segmentation": [[1.5e3, -2e-3]]})
        d["categories"] = d.pop("categories")  # keep them last: after the annotations

    _edit(ann / "captions_train2014.json", captions, ensure_ascii=False)
    _edit(ann / "instances_train2014.json", instances, indent=1)
    _edit(
        ann / "captions_val2014.json",
        lambda d: d.update(annotations=[a for a in d["annotations"] if a["image_id"] != first_val]),
        separators=(",", ":"),
    )
    expected = _reference(info.root)
    assert expected["no_caption"] >= 1 and expected["excluded"] == 7  # the corners are in the data
    assert any("naïve café 東京 🚲" in t for t in expected["texts"])
    for chunk in (1 << 20, 37):  # one read per file, and chunk boundaries everywhere
        monkeypatch.setattr(mscoco, "_CHUNK", chunk)
        ds = mscoco.load_mscoco(info.root, check_images=False)
        np.testing.assert_array_equal(ds.labels, np.stack(expected["labels"]))
        assert ds.texts == expected["texts"]
        assert ds.image_paths == expected["paths"]
        assert ds.info["image_ids"].tolist() == expected["ids"]
        assert ds.info["image_split"] == expected["splits"]
        assert ds.info["excluded_without_label"] == 7
        assert ds.info["items_without_caption"] == expected["no_caption"]
    tie = next(t for t in ds.texts if "a tie" in t)
    assert tie.index("aa a tie") < tie.index("zz a tie, sorted by its text")  # stripped, in (id, text) order


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 64])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
def test_stream_decodes_what_json_loads_decodes(tmp_path, chunk, encoding):
    doc = {
        "info": {"year": 2014, "nested": [[1, 2], {"a": None}]},
        "images": [{"id": 123456789, "file_name": "a é.jpg"}, {"id": -7, "x": 1.25e-7}, 3, "s", [], {}],
        "empty": [],
        "annotations": [{"id": i, "v": 10**i, "t": "ü" * i} for i in range(12)],
        "last": "東京",
    }
    path = tmp_path / "doc.json"
    path.write_bytes(json.dumps(doc, indent=2 if chunk % 2 else None, ensure_ascii=False).encode(encoding))
    got: dict[str, list] = {"images": [], "annotations": []}
    top = mscoco._stream_json(path, {k: got[k].append for k in got}, chunk=chunk)
    assert got["images"] == doc["images"] and got["annotations"] == doc["annotations"]
    assert top == {"info": doc["info"], "images": range(6), "empty": range(0), "annotations": range(12), "last": "東京"}


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"annotations": [{"id": 1}, {"id": 2}', r"not valid JSON \(Expecting one of ',\]' at character 37\)"),
        ('{"annotations": [{"id": 1},]}', r"not valid JSON \(Expecting value"),
        ('{"annotations": []} {}', r"not valid JSON \(Extra data at character 20\)"),
        ('{"annotations": [], "annotations": []}', r"the key 'annotations' appears twice"),
        ('{"images": []}', r"has no 'annotations' list; is it a COCO annotation file\?"),
        ('{"annotations": {"id": 1}}', r"has no 'annotations' list"),
        ("[1, 2]", r"not valid JSON \(Expecting one of '\{'"),
        ("", r"not valid JSON"),
    ],
)
def test_invalid_files_are_refused_in_one_line_naming_the_file(tmp_path, text, message):
    path = tmp_path / "captions_train2014.json"
    path.write_text(text)
    for chunk in (4, 1 << 20):
        with pytest.raises(DatasetError, match=message) as exc:
            mscoco._stream_json(path, {}, chunk=chunk)
        assert str(path) in str(exc.value) and "\n" not in str(exc.value)
    path.write_bytes(b'{"annotations": ["\xff\xfe"]}')  # not UTF-8
    with pytest.raises(DatasetError, match="not valid JSON"):
        mscoco._stream_json(path, {}, chunk=8)


def test_memory_is_the_entry_not_the_file(tmp_path):
    """A 3.2 MB instances file whose entries carry long polygons: the stream's peak allocation is a few
    chunks, the ints it keeps and one entry (bounded by the chunk, not the file); json.load holds every
    polygon at once."""
    rng = np.random.default_rng(0)
    poly = [round(float(x), 2) for x in rng.uniform(0, 640, 200)]
    path = tmp_path / "instances_train2014.json"
    annotations = [
        {"id": i, "image_id": i % 97, "category_id": 1 + i % 80, "segmentation": [poly]} for i in range(2000)
    ]
    path.write_text(json.dumps({"images": [], "annotations": annotations}))
    size = path.stat().st_size
    assert size > 3e6
    del annotations
    kept: list[int] = []
    chunk = 1 << 16
    tracemalloc.start()
    try:
        mscoco._stream_json(path, {"annotations": lambda a: kept.append(a["image_id"])}, chunk=chunk)
        _, streamed = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        json.loads(path.read_bytes())
        _, whole = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(kept) == 2000 and kept[:3] == [0, 1, 2]
    assert streamed < 8 * chunk < size / 6 and whole > 2 * size  # measured: 0.3 MB, 3.2 MB of file, 17 MB


def _tiny_coco(root: Path, annotations=None, captions=None) -> Path:
    from egath_lite.data.reference import MSCOCO_LABELS_BY_ID

    (root / "annotations").mkdir(parents=True)
    categories = [{"id": i + 1, "name": n} for i, n in enumerate(MSCOCO_LABELS_BY_ID)]
    images = [{"id": i, "file_name": f"{i}.jpg"} for i in (1, 2)]
    annotations = annotations or [{"id": 10 + i, "image_id": i, "category_id": i} for i in (1, 2)]
    captions = captions or [{"id": 20 + i, "image_id": i, "caption": f"a photo {i}"} for i in (1, 2)]
    for split in ("train", "val"):
        inst = {"images": images, "annotations": annotations, "categories": categories} if split == "train" else {}
        (root / "annotations" / f"instances_{split}2014.json").write_text(
            json.dumps({"images": [], "annotations": [], "categories": categories, **inst})
        )
        caps = {"annotations": captions if split == "train" else []}
        (root / "annotations" / f"captions_{split}2014.json").write_text(json.dumps(caps))
    return root


@pytest.mark.parametrize(
    "annotations, captions, message",
    [
        (None, None, None),  # the control: loads
        ([{"id": 5, "category_id": 1}], None, r"instances_train2014\.json: entry 5 has no valid 'image_id' \(int\)"),
        ([{"id": 5, "image_id": 1, "category_id": "x"}], None, r"entry 5 has no valid 'category_id'"),
        ([{"id": 5, "image_id": 2**70, "category_id": 1}], None, r"instances_train2014\.json: entry .* beyond 64 bits"),
        ([[1, 2]], None, r"entry \[1, 2\] has no valid 'category_id'"),
        (None, [{"id": "a", "image_id": 1, "caption": "x"}], r"caption annotation 'a' \(image 1\) has no integer 'id'"),
        (
            None,
            [{"id": 3, "image_id": None, "caption": "x"}],
            r"captions_train2014\.json: entry 3 has no valid 'image_id'",
        ),
        (None, [{"id": 3, "image_id": 1, "caption": 7}], r"caption annotation 3 \(image 1\) has no 'caption' text"),
        (None, ["just text"], r"caption annotation 'just text' \(image \?\) has no 'caption' text"),
    ],
)
def test_bad_entries_are_named_in_one_line(tmp_path, annotations, captions, message):
    root = _tiny_coco(tmp_path / "coco", annotations, captions)
    if message is None:
        ds = mscoco.load_mscoco(root, check_images=False)
        assert ds.texts == ["a photo 1", "a photo 2"] and ds.image_paths == ["train2014/1.jpg", "train2014/2.jpg"]
        return
    with pytest.raises(DatasetError, match=message) as exc:
        mscoco.load_mscoco(root, check_images=False)
    assert "\n" not in str(exc.value)
