"""Own data from a manifest (.csv / .jsonl): the loader's rules and errors, the split, the captions' bag of words,
user label embeddings, the fingerprint, and the README's own-data command through the driver on real JPEGs."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import readme_command, replace_option

from egath_lite import get_config
from egath_lite.data import (
    DatasetError,
    DatasetNotFoundError,
    bag_of_words,
    build_vocabulary,
    dataset_fingerprint,
    load_dataset,
    make_split,
    manifest_label,
    split_from_config,
)
from egath_lite.data.vocabulary import ENGLISH_STOP_WORDS
from egath_lite.driver import cli as reproduce
from egath_lite.pipeline.config import RUN_NAME_PATTERN, ConfigError
from egath_lite.pipeline.graph import label_embedding_source, label_embeddings
from egath_lite.pipeline.runs import load_results
from egath_lite.testing.fixtures import OWN_LABELS, write_jpeg, write_manifest

REPO = Path(__file__).resolve().parents[1]
SIZES = ["--set", "vocab_size=64", "--set", "gat_epochs=2", "--epochs", "2", "--bits", "16"]


# ----------------------------------------------------------------------------- helpers
def _images(folder: Path, names: list[str]) -> None:
    rng = np.random.default_rng(0)
    for name in names:
        write_jpeg(folder / name, (64, 48), rng)


def _csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def small(tmp_path):
    """A folder with images/a.jpg, b.jpg, c.jpg (real JPEGs) and helpers to write manifests next to them."""
    _images(tmp_path, ["images/a.jpg", "images/b.jpg", "images/c.jpg"])
    return tmp_path


# ----------------------------------------------------------------------------- (d) loader units
def test_labels_are_the_sorted_unique_names_and_the_matrix_follows_them(small):
    path = _csv(
        small / "m.csv",
        ["image", "text", "labels"],
        [
            ["images/a.jpg", "dog grass", "zebra; apple"],
            ["images/b.jpg", "x", "Apple"],
            ["images/c.jpg", "y", "apple;apple;"],
        ],
    )
    ds = load_dataset(str(path))
    assert ds.label_names == ["Apple", "apple", "zebra"]  # Python string order: capitals first
    assert ds.labels.tolist() == [[0, 1, 1], [1, 0, 0], [0, 1, 0]]
    assert ds.texts == ["dog grass", "x", "y"]
    assert [Path(p) for p in ds.image_paths] == [small / "images" / n for n in ("a.jpg", "b.jpg", "c.jpg")]
    assert np.asarray(ds.get_image(1)).shape == (48, 64, 3)  # opened on demand from the path
    assert ds.name == manifest_label(path) and re.fullmatch(r"m-[0-9a-f]{8}", ds.name)


def test_jsonl_takes_label_lists_and_absolute_image_paths(small):
    path = _jsonl(
        small / "m.jsonl",
        [
            {"image": str(small / "images" / "a.jpg"), "text": "a", "labels": ["sky", "sea"]},
            {"image": "images/b.jpg", "text": "b", "labels": "sky"},
        ],
    )
    ds = load_dataset(str(path))
    assert ds.label_names == ["sea", "sky"] and ds.labels.tolist() == [[1, 1], [0, 1]]


def test_the_split_column_is_honoured_exactly(tmp_path):
    info = write_manifest(tmp_path / "own" / "m.jsonl", 120, seed=3, text_kind="caption", split=True)
    marks = np.array(info.extra["splits"])
    ds = load_dataset(str(tmp_path / "own" / "m.jsonl"))
    split = ds.split()
    assert split.query.tolist() == np.flatnonzero(marks == "query").tolist()
    assert split.train.tolist() == np.flatnonzero(marks == "train").tolist()
    assert split.retrieval.tolist() == np.flatnonzero(marks != "query").tolist()  # train rows are retrieval too
    cfg = get_config("tiny", dataset=str(tmp_path / "own" / "m.jsonl"), clip_pretrained="random")
    assert cfg.num_query is None and cfg.num_train is None  # a manifest's own sizes by default
    query, train, val, retrieval = split_from_config(ds, cfg)
    assert query.tolist() == split.query.tolist() and retrieval.tolist() == split.retrieval.tolist()
    assert sorted(train.tolist() + val.tolist()) == split.train.tolist() and len(val) == round(0.1 * len(split.train))
    with pytest.raises(DatasetError, match=r"its split column fixes the split \(query \d+, train \d+"):
        split_from_config(ds, cfg.replace(num_query=5))


def test_without_a_split_column_the_seeded_split_is_gcdh_s_and_deterministic(tmp_path):
    write_manifest(tmp_path / "m.csv", 50, seed=1, min_label_count=3)
    ds = load_dataset(str(tmp_path / "m.csv"))
    default = ds.split()  # 10% query, the rest train, seed 0
    ref = make_split(50, 5, 45, 0)
    assert default.query.tolist() == ref.query.tolist() and default.train.tolist() == ref.train.tolist()
    assert (
        ds.split(10, 20, 4).query.tolist()
        == ds.split(10, 20, 4).query.tolist()
        == make_split(50, 10, 20, 4).query.tolist()
    )
    assert ds.split(10, 20, 4).query.tolist() != ds.split(10, 20, 5).query.tolist()
    sized = load_dataset(str(tmp_path / "m.csv"), num_query=7, num_train=30, split_seed=2)
    assert sized.split().query.tolist() == make_split(50, 7, 30, 2).query.tolist()
    with pytest.raises(DatasetError, match=r"num_query \(40\) \+ num_train \(20\) exceeds the 50 items"):
        ds.split(40, 20, 0)


def test_captions_become_a_bag_of_the_caption_words_without_stop_words(small):
    path = _csv(
        small / "m.csv",
        ["image", "text", "labels"],
        [
            ["images/a.jpg", "A dog runs on the beach.", "dog;beach"],
            ["images/b.jpg", "The cat sleeps on a sofa", "cat"],
            ["images/c.jpg", "Two dogs and a cat.", "dog;cat"],
        ],
    )
    ds = load_dataset(str(path))
    assert ds.info["text_kind"] == "caption"  # auto: every text holds a stop word
    assert ds.texts[0] == "A dog runs on the beach."  # CLIP reads the whole caption
    vocab = build_vocabulary(ds.texts, [0, 1, 2], 100, stop_words=ds.info["bow_stop_words"])
    # document frequency: cat 2; beach, dog, dogs, runs, sleeps, sofa, two 1 (ties alphabetical); a/on/the/and out
    assert vocab == ["cat", "beach", "dog", "dogs", "runs", "sleeps", "sofa", "two"]
    hand = np.array([[0, 1, 1, 0, 1, 0, 0, 0], [1, 0, 0, 0, 0, 1, 1, 0], [1, 0, 0, 1, 0, 0, 0, 1]], np.float32)
    assert np.array_equal(bag_of_words(ds.texts, vocab), hand)
    tags = load_dataset(str(path), text_kind="tags")  # tags keep every word
    assert tags.info["bow_stop_words"] == [] and "the" in build_vocabulary(tags.texts, [0, 1, 2], 100)
    flickr = _csv(
        small / "t.csv",
        ["image", "text", "labels"],
        [
            ["images/a.jpg", "dog beach sunset", "dog"],
            ["images/b.jpg", "cat sofa", "cat"],
            ["images/c.jpg", "the beatles", "cat"],
        ],
    )
    assert load_dataset(str(flickr)).info["text_kind"] == "tags"  # 1 of 3 with a stop word: not most


def test_drop_unlabeled_leaves_items_without_labels_out(small):
    path = _csv(
        small / "m.csv",
        ["image", "text", "labels"],
        [["images/a.jpg", "a", "dog"], ["images/b.jpg", "b", " ; "], ["images/c.jpg", "c", "cat"]],
    )
    ds = load_dataset(str(path), drop_unlabeled=True)
    assert len(ds) == 2 and ds.texts == ["a", "c"] and ds.info["dropped_unlabeled"] == 1


def test_the_fingerprint_follows_the_manifest_and_its_image_files(tmp_path):
    write_manifest(tmp_path / "m.csv", 40, seed=2, min_label_count=3)
    cfg = get_config("tiny", dataset=str(tmp_path / "m.csv"), clip_pretrained="random")
    before, before_no_images = dataset_fingerprint(cfg), dataset_fingerprint(cfg, images=False)
    image = tmp_path / load_dataset(str(tmp_path / "m.csv")).image_paths[7]
    write_jpeg(image, (333, 222), np.random.default_rng(9))  # a replaced image: new size and mtime
    assert dataset_fingerprint(cfg) != before
    assert dataset_fingerprint(cfg, images=False) == before_no_images  # image shards check their own files
    after = dataset_fingerprint(cfg)
    text = (tmp_path / "m.csv").read_text()
    (tmp_path / "m.csv").write_text(text.replace("cat;", "dog;", 1))
    assert dataset_fingerprint(cfg, images=False) != before_no_images and dataset_fingerprint(cfg) != after
    assert dataset_fingerprint(cfg) != dataset_fingerprint(cfg.replace(text_kind="caption"))


def test_a_manifest_config_is_absolute_and_uses_clip_prompts_or_the_user_s_file(tmp_path, monkeypatch):
    write_manifest(tmp_path / "m.csv", 30, seed=0, min_label_count=2)
    monkeypatch.chdir(tmp_path)
    cfg = get_config("tiny", dataset="m.csv", clip_pretrained="random")
    assert cfg.dataset == str(tmp_path / "m.csv")  # absolute: notebooks run in notebooks/
    assert cfg.label_embedding == "clip" and label_embedding_source(cfg) == "clip"
    assert label_embedding_source(cfg.replace(label_embedding="glove")) == "clip"  # no GloVe file for own names
    E = np.random.default_rng(0).normal(size=(len(OWN_LABELS), 7)).astype(np.float64)
    np.save(tmp_path / "E.npy", E)
    with_file = cfg.replace(label_embedding_file="E.npy")
    assert with_file.label_embedding_file == str(tmp_path / "E.npy") and label_embedding_source(with_file) == "file"
    got = label_embeddings("file", with_file.dataset, list(OWN_LABELS), with_file)
    assert got.dtype == np.float32 and np.array_equal(got, E.astype(np.float32))
    np.save(tmp_path / "short.npy", E[:3])
    with pytest.raises(ValueError, match=r"has shape \(3, 7\); expected \(10, F\): one row per label"):
        label_embeddings("file", cfg.dataset, list(OWN_LABELS), cfg.replace(label_embedding_file="short.npy"))
    bad = E.copy()
    bad[4, 2] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(ValueError, match=r"NaN/Inf \(first at row 4, label 'mountain'\)"):
        label_embeddings("file", cfg.dataset, list(OWN_LABELS), cfg.replace(label_embedding_file="nan.npy"))
    np.save(tmp_path / "obj.npy", np.array([{"x": 1}] * 10, dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="cannot be read as a .npy array"):  # no pickles from a user's file
        label_embeddings("file", cfg.dataset, list(OWN_LABELS), cfg.replace(label_embedding_file="obj.npy"))
    with pytest.raises(ConfigError, match=r"label_embedding_file='E.txt': expected a NumPy .npy file"):
        cfg.replace(label_embedding_file="E.txt")
    with pytest.raises(ConfigError, match=r"dataset='missing.jsonl': no such file"):
        get_config("tiny", dataset="missing.jsonl")
    with pytest.raises(ConfigError, match="clip_pretrained='train' trains the offline tiny CLIP"):
        get_config("tiny", dataset="m.csv")  # the tiny preset's 'train' is refused on real data


def test_the_driver_names_a_manifest_s_run_folder_safely(tmp_path):
    write_manifest(tmp_path / "my data" / "set (v2).csv", 20, seed=0, min_label_count=2)
    cells = reproduce.cell_configs(
        "tiny",
        [str(tmp_path / "my data" / "set (v2).csv"), "toy_nuswide"],
        [0],
        ["egath"],
        tmp_path / "runs",
        {"clip_pretrained": "random"},
    )
    own = cells[0].cfg
    assert own.run_name == f"tiny-{manifest_label(own.dataset)}-s0" and RUN_NAME_PATTERN.match(own.run_name)
    assert re.fullmatch(r"tiny-set_v2-[0-9a-f]{8}-s0", own.run_name) and own.data_root is None
    assert cells[1].cfg.run_name == "tiny-toy_nuswide-s0"


# ----------------------------------------------------------------------------- (c) every bad manifest
BAD = {
    "missing image": (
        "m.csv",
        ["image", "text", "labels"],
        [["images/a.jpg", "a", "dog"], ["images/nope.jpg", "b", "dog"]],
        r"1 of 2 image files are missing or unreadable: 'images/nope.jpg' \(line 3, missing\)\. "
        r"Image paths are relative to the manifest's folder",
    ),
    "empty image file": (
        "m.csv",
        ["image", "text", "labels"],
        [["images/a.jpg", "a", "dog"], ["empty.jpg", "b", "x"]],
        r"'empty.jpg' \(line 3, empty file\)",
    ),
    "missing column": (
        "m.csv",
        ["image", "text"],
        [["images/a.jpg", "a"]],
        r"missing column\(s\) \['labels'\]; found \['image', 'text'\]",
    ),
    "unknown column": (
        "m.csv",
        ["image", "text", "labels", "caption"],
        [["images/a.jpg", "a", "dog", "x"]],
        r"unknown column\(s\) \['caption'\]; the accepted columns are \['image', 'text', 'labels', "
        r"'split'\]",
    ),
    "item without labels": (
        "m.csv",
        ["image", "text", "labels"],
        [["images/a.jpg", "a", "dog"], ["images/b.jpg", "b", ""], ["images/c.jpg", "c", ";"]],
        r"2 item\(s\) without labels \(empty labels cell, lines \[3, 4\]\).*drop_unlabeled=True",
    ),
    "duplicate image": (
        "m.csv",
        ["image", "text", "labels"],
        [["images/a.jpg", "a", "dog"], ["images/b.jpg", "b", "cat"], ["./images/a.jpg", "c", "x"]],
        r"lines 2 and 4: both rows name the image .*a\.jpg; one row per image",
    ),
    "bad split value": (
        "m.csv",
        ["image", "text", "labels", "split"],
        [["images/a.jpg", "a", "dog", "train"], ["images/b.jpg", "b", "cat", "test"]],
        r"line 3: split 'test' is not one of \['query', 'train', 'retrieval'\]",
    ),
    "split on some rows only (csv)": (
        "m.csv",
        ["image", "text", "labels", "split"],
        [["images/a.jpg", "a", "dog", "train"], ["images/b.jpg", "b", "cat", ""]],
        r"line 3: the split cell is empty.*on some rows only",
    ),
    "split on some rows only (jsonl)": (
        "m.jsonl",
        None,
        [
            {"image": "images/a.jpg", "text": "a", "labels": "dog", "split": "query"},
            {"image": "images/b.jpg", "text": "b", "labels": "cat"},
        ],
        r"the split column is on some rows only: 1 row\(s\) lack it \(lines \[2\]\)",
    ),
    "split without train rows": (
        "m.csv",
        ["image", "text", "labels", "split"],
        [["images/a.jpg", "a", "dog", "query"], ["images/b.jpg", "b", "cat", "retrieval"]],
        r"the split column marks no 'train' row",
    ),
    "empty manifest": ("m.csv", ["image", "text", "labels"], [], r"the manifest has no rows"),
    "more cells than the header": (
        "m.csv",
        ["image", "text", "labels"],
        [["images/a.jpg", "sky", "clouds", "dog"]],
        r"line 2: more cells than the header's 3 columns",
    ),
    "not json": (
        "m.jsonl",
        None,
        ['{"image": "images/a.jpg", "text": "a", "labels": "dog"}', "{oops"],
        r"line 2: not valid JSON",
    ),
    "labels not strings": (
        "m.jsonl",
        None,
        [{"image": "images/a.jpg", "text": "a", "labels": [1, 2]}],
        r"line 1: labels must be names separated by ';'",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_each_bad_manifest_gets_its_message(small, case):
    name, header, rows, message = BAD[case]
    (small / "empty.jpg").write_bytes(b"")
    if name.endswith(".csv"):
        path = _csv(small / name, header, rows)
    else:
        path = small / name
        path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    with pytest.raises(DatasetError, match=message) as err:
        load_dataset(str(path))
    assert str(path) in str(err.value)  # every message names the manifest
    if case == "missing image":
        assert isinstance(err.value, DatasetNotFoundError)


def test_many_missing_images_are_counted_and_the_first_few_listed(small):
    rows = [[f"images/gone_{i}.jpg", "t", "dog"] for i in range(8)] + [["images/a.jpg", "t", "dog"]]
    with pytest.raises(
        DatasetNotFoundError, match=r"8 of 9 image files.*'images/gone_4.jpg' \(line 6, missing\) \.\.\."
    ):
        load_dataset(str(_csv(small / "m.csv", ["image", "text", "labels"], rows)))


# ----------------------------------------------------------------------------- (a, b) the driver on own data
@pytest.fixture(scope="module")
def own_runs(tmp_path_factory):
    """The README command on a 300-JPEG tags manifest (.csv, no split) and a captions manifest (.jsonl, split)."""
    from egath_lite.clip.weights import load_clip, save_clip_checkpoint

    tmp = tmp_path_factory.mktemp("own")
    t0 = time.perf_counter()
    tags = write_manifest(tmp / "photos" / "manifest.csv", 300, seed=0)
    caps = write_manifest(tmp / "captioned" / "captions.jsonl", 160, seed=1, text_kind="caption", split=True)
    print(f"manifests with {300 + 160} JPEGs written in {time.perf_counter() - t0:.1f} s")
    model, _, _ = load_clip("egath-tiny-clip", None, "cpu", seed=0)
    ckpt = save_clip_checkpoint(model, tmp / "weights" / "clip_random_init.pt")
    argv = readme_command("own-data-command")
    os.chdir(tmp)  # the manifests given relative to the working directory, as a user types them
    try:
        argv = replace_option(argv, "--datasets", ["photos/manifest.csv", "captioned/captions.jsonl"])
        argv = replace_option(argv, "--clip-model", ["egath-tiny-clip"])
        argv = replace_option(argv, "--clip-pretrained", [str(ckpt)])
        argv = replace_option(argv, "--device", ["cpu"])
        runs = tmp / "runs"
        argv += ["--preset", "tiny", "--runs-root", str(runs), *SIZES]
        t0 = time.perf_counter()
        assert reproduce.main(argv) == 0
        print(f"driver on two manifests: {time.perf_counter() - t0:.0f} s")
    finally:
        os.chdir(REPO)
    paths = {"tags": str(tmp / "photos" / "manifest.csv"), "caps": str(tmp / "captioned" / "captions.jsonl")}
    return {"runs": runs, "ckpt": ckpt, "paths": paths, "infos": {"tags": tags, "caps": caps}}


def _cfg(own_runs, which):
    opts = {
        "device": "cpu",
        "clip_model": "egath-tiny-clip",
        "clip_pretrained": str(own_runs["ckpt"]),
        "vocab_size": 64,
        "gat_epochs": 2,
        "epochs": 2,
        "bits": [16],
    }
    datasets = [own_runs["paths"]["tags"], own_runs["paths"]["caps"]]
    cells = reproduce.cell_configs("tiny", datasets, [0], ["egath"], own_runs["runs"], opts)
    return cells[0 if which == "tags" else 1].cfg


@pytest.mark.notebooks
@pytest.mark.slow
def test_the_driver_gives_a_results_table_for_both_manifests(own_runs):
    with open(next((own_runs["runs"] / "reproduce-tiny").glob("results-*.csv"))) as f:
        rows = list(csv.DictReader(f))
    table = next((own_runs["runs"] / "reproduce-tiny").glob("results-*.md")).read_text()
    for which in ("tags", "caps"):
        label = manifest_label(own_runs["paths"][which])
        assert f"| {label} | egath |" in table and f"| {label} | lsh |" in table
        got = [r for r in rows if r["dataset"] == label and r["method"] == "egath"]
        assert len(got) == 1 and got[0]["bits"] == "16"
        for d in ("i2t_mean", "t2i_mean"):
            assert math.isfinite(float(got[0][d])) and 0.0 < float(got[0][d]) <= 1.0
        assert (own_runs["runs"] / f"tiny-{label}-s0" / "data_examples.png").is_file()


@pytest.mark.notebooks
@pytest.mark.slow
def test_the_tags_manifest_ran_every_notebook_with_its_own_labels_and_split(own_runs):
    cfg = _cfg(own_runs, "tags")
    r1 = load_results(cfg, "01_feature_extraction")
    assert r1["num_items"] == 300 and r1["weights"].startswith("file:")
    assert r1["split_sizes"]["query_idx"] == 30 and r1["split_sizes"]["retrieval_idx"] == 270  # 10% query
    r2 = load_results(cfg, "02_label_graph")
    assert r2["num_labels"] == len(OWN_LABELS) and r2["label_embedding_source"] == "clip"
    assert r2["released_file_facts"] is None and r2["num_graph_rows"] == 270
    log = (own_runs["runs"] / cfg.run_name / "driver.log").read_text()
    assert "label embeddings: CLIP text embeddings of 'a photo of a {}' for the 10 label names" in log


@pytest.mark.notebooks
@pytest.mark.slow
def test_the_captions_manifest_kept_its_split_and_left_stop_words_out_of_the_vocabulary(own_runs):
    from egath_lite.pipeline.features import FEATURES_STAGE

    cfg = _cfg(own_runs, "caps")
    marks = np.array(own_runs["infos"]["caps"].extra["splits"])
    r1 = load_results(cfg, "01_feature_extraction")
    assert r1["split_sizes"]["query_idx"] == int((marks == "query").sum())
    assert r1["split_sizes"]["retrieval_idx"] == int((marks != "query").sum())
    assert r1["split_sizes"]["train_idx"] + r1["split_sizes"]["val_idx"] == int((marks == "train").sum())
    meta = FEATURES_STAGE.load(cfg)["meta"]  # the artifact notebook 01 wrote for exactly this configuration
    assert meta["vocab"] and not set(meta["vocab"]) & ENGLISH_STOP_WORDS
    assert {"photo", "dog"} <= set(meta["vocab"])  # caption words
    r5 = load_results(cfg, "05_pr_curve_evaluation")
    assert 0.0 < r5["map"]["egath"]["16"]["i2t"] <= 1.0
