"""Data layer core: splits, label checks, vocabulary / bag-of-words, registry, cache bundles, reference names."""

from __future__ import annotations

import numpy as np
import pytest

from egath_lite import get_config
from egath_lite.data import (
    DatasetError,
    MultiModalDataset,
    SplitDefaults,
    available_datasets,
    bag_of_words,
    build_vocabulary,
    check_labels,
    dataset_from_config,
    load_dataset,
    make_split,
    split_from_config,
    tokenize,
)
from egath_lite.data.bundle import BundleError, read_bundle, write_bundle
from egath_lite.data.reference import (
    MIRFLICKR25K_LABELS,
    MSCOCO_LABELS,
    NUS_TC10_LABELS,
    load_glove,
    load_glove_for_labels,
    load_released_adjacency,
)


def _tiny_ds(n: int = 10) -> MultiModalDataset:
    labels = np.zeros((n, 3), np.uint8)
    labels[np.arange(n), np.arange(n) % 3] = 1
    return MultiModalDataset(
        name="t",
        label_names=["a", "b", "c"],
        labels=labels,
        texts=[f"tag{i % 4}" for i in range(n)],
        split_defaults=SplitDefaults(2, 5, 3),
        images=np.zeros((n, 4, 4, 3), np.uint8),
    )


# ----------------------------------------------------------------------------- split
def test_split_reproduces_gcdh_permutation_exactly():
    # GCDH: np.random.seed(seed); random_index = np.random.permutation(N); query first, train next, retrieval = rest.
    np.random.seed(7)
    reference = np.random.permutation(1000)
    split = make_split(1000, 21, 105, seed=7)
    np.testing.assert_array_equal(split.query, reference[:21])
    np.testing.assert_array_equal(split.train, reference[21:126])
    np.testing.assert_array_equal(split.retrieval, reference[21:])
    assert split.query.dtype == np.int64 and split.sizes() == {"query": 21, "train": 105, "retrieval": 979}
    assert not set(split.query) & set(split.retrieval) and set(split.train) <= set(split.retrieval)


def test_split_defaults_and_overrides():
    ds = _tiny_ds(10)
    s = ds.split()
    assert (len(s.query), len(s.train), s.seed) == (2, 5, 3)
    s2 = ds.split(num_query=3, num_train=4, seed=0)
    assert (len(s2.query), len(s2.train), len(s2.retrieval), s2.seed) == (3, 4, 7, 0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_query=6, num_train=5), "exceeds the 10 items"),
        (dict(num_query=0), "num_query must be a positive int"),
        (dict(num_train=2.5), "num_train must be a positive int"),
        (dict(seed=-1), "split seed must be a non-negative int"),
    ],
)
def test_split_bad_sizes_raise(kwargs, match):
    with pytest.raises(DatasetError, match=match):
        _tiny_ds(10).split(**kwargs)


def test_carve_validation_partitions_train_deterministically():
    split = make_split(200, 20, 100, seed=5)
    train, val = split.carve_validation(0.1)
    assert len(val) == 10 and len(train) == 90
    assert sorted(np.concatenate([train, val]).tolist()) == sorted(split.train.tolist())
    # order of the remaining training items is kept
    assert train.tolist() == [i for i in split.train.tolist() if i not in set(val.tolist())]
    again_train, again_val = split.carve_validation(0.1)
    np.testing.assert_array_equal(val, again_val)
    assert not np.array_equal(split.carve_validation(0.1, seed=99)[1], val)
    assert len(split.carve_validation(0.0)[1]) == 0
    assert len(split.carve_validation(0.001)[1]) == 1  # a positive fraction never yields an empty validation set
    with pytest.raises(DatasetError, match="fraction"):
        split.carve_validation(1.0)


def test_split_from_config_uses_num_query_train_and_val_fraction():
    ds = _tiny_ds(40)
    cfg = get_config("tiny", num_query=5, num_train=20, split_seed=2, val_fraction=0.25)
    query, train, val, retrieval = split_from_config(ds, cfg)
    assert (len(query), len(train), len(val), len(retrieval)) == (5, 15, 5, 35)
    np.random.seed(2)
    perm = np.random.permutation(40)
    np.testing.assert_array_equal(query, perm[:5])
    assert sorted(np.concatenate([train, val]).tolist()) == sorted(perm[5:25].tolist())


# ----------------------------------------------------------------------------- label checks
def test_check_labels_accepts_bool_float_and_converts_to_uint8():
    out = check_labels(np.array([[1.0, 0.0], [0.0, 1.0]]), "x")
    assert out.dtype == np.uint8 and out.tolist() == [[1, 0], [0, 1]]
    assert check_labels([[True, False]], "x").tolist() == [[1, 0]]


@pytest.mark.parametrize(
    "labels, match",
    [
        (np.array([[1, 0], [0, 0], [0, 1]]), r"1 of 3 label rows are all zero \(first rows: \[1\]\)"),
        (np.array([[1, 0], [np.nan, 1]]), "NaN"),
        (np.array([[2, 0], [0, 1]]), "must be 0/1, found 2"),
        (np.array([1, 0, 1]), "2-D"),
        (np.zeros((0, 3)), "non-empty"),
        (np.array([["a", "b"]]), "dtype"),
    ],
)
def test_check_labels_rejects_bad_matrices(labels, match):
    with pytest.raises(DatasetError, match=match):
        check_labels(labels, "fixture.mat")


def test_dataset_rejects_mismatched_lengths_and_label_counts():
    with pytest.raises(DatasetError, match=r"different lengths \(labels: 3, texts: 2"):
        MultiModalDataset(
            name="t",
            label_names=["a"],
            labels=np.ones((3, 1)),
            texts=["x", "y"],
            split_defaults=SplitDefaults(1, 1, 0),
            image_paths=["a", "b", "c"],
        )
    with pytest.raises(DatasetError, match="2 columns but this dataset has 3 labels"):
        MultiModalDataset(
            name="t",
            label_names=["a", "b", "c"],
            labels=np.ones((2, 2)),
            texts=["x", "y"],
            split_defaults=SplitDefaults(1, 1, 0),
            image_paths=["a", "b"],
        )


# ----------------------------------------------------------------------------- vocabulary
def test_tokenize_lowercases_and_strips_punctuation():
    assert tokenize("A man riding a Horse, on the beach.") == ["a", "man", "riding", "a", "horse", "on", "the", "beach"]
    assert tokenize("new_york nikon-d80 don't 2008") == ["new_york", "nikon-d80", "don't", "2008"]


def test_vocabulary_counts_training_items_only_by_document_frequency():
    texts = ["sky sky blue", "sky water", "water blue cat", "QUERYONLY query", "dog"]
    train = [0, 1, 2]
    # document frequency in the training texts: sky 2 (not 3: counted once per item), blue 2, water 2, cat 1
    assert build_vocabulary(texts, train, 10) == ["blue", "sky", "water", "cat"]  # ties alphabetical
    assert build_vocabulary(texts, train, 2) == ["blue", "sky"]
    assert build_vocabulary(texts, train, 10, min_count=2) == ["blue", "sky", "water"]
    assert build_vocabulary(texts, train, 10, stop_words={"blue"}) == ["sky", "water", "cat"]


def test_bag_of_words_is_binary_and_matches_hand_computation():
    vocab = ["blue", "sky", "water", "cat"]
    bow = bag_of_words(["sky sky blue", "dog", "Water, cat!"], vocab)
    assert bow.dtype == np.float32
    np.testing.assert_array_equal(bow, [[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1]])


def test_vocabulary_bad_input():
    with pytest.raises(DatasetError, match="vocab_size"):
        build_vocabulary(["a"], [0], 0)
    with pytest.raises(DatasetError, match="out of range"):
        build_vocabulary(["a"], [3], 5)
    with pytest.raises(DatasetError, match="no tags"):
        build_vocabulary(["", " "], [0, 1], 5)
    with pytest.raises(DatasetError, match="duplicate"):
        bag_of_words(["a"], ["a", "a"])


# ----------------------------------------------------------------------------- registry
def test_registry_lists_every_dataset_and_rejects_unknown_names():
    assert available_datasets() == ["toy_nuswide", "mirflickr25k", "nuswide_tc10", "mscoco"]
    with pytest.raises(DatasetError, match=r"unknown dataset 'mirflickr' \(did you mean 'mirflickr25k'\?\)"):
        load_dataset("mirflickr")
    with pytest.raises(DatasetError, match="unknown option"):
        load_dataset("toy_nuswide", sise=10)
    with pytest.raises(DatasetError, match="takes no root"):
        load_dataset("toy_nuswide", root="/tmp")


def test_real_dataset_from_config_never_falls_back_to_toy(tmp_path):
    cfg = get_config("tiny", dataset="mirflickr25k", data_root=str(tmp_path / "nothing"), clip_pretrained="random")
    with pytest.raises(FileNotFoundError, match="mirflickr25k: data folder .*nothing does not exist"):
        dataset_from_config(cfg)


# ----------------------------------------------------------------------------- bundle (cache file format)
def test_bundle_roundtrip_is_byte_deterministic(tmp_path):
    arrays = {"a": np.arange(12, dtype=np.int64).reshape(3, 4), "b": np.array([1.5, -2], np.float32)}
    p1 = write_bundle(tmp_path / "1.bundle", arrays, {"k": 1})
    p2 = write_bundle(tmp_path / "2.bundle", arrays, {"k": 1})
    assert p1.read_bytes() == p2.read_bytes()
    out, meta = read_bundle(p1)
    assert meta == {"k": 1}
    np.testing.assert_array_equal(out["a"], arrays["a"])
    assert out["b"].dtype == np.float32 and out["b"].tolist() == [1.5, -2.0]


def test_bundle_detects_truncation_and_tampering(tmp_path):
    path = write_bundle(tmp_path / "x.bundle", {"a": np.arange(100, dtype=np.uint8)}, {})
    raw = path.read_bytes()
    path.write_bytes(raw[:-10])
    with pytest.raises(BundleError, match="truncated"):
        read_bundle(path)
    path.write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))
    with pytest.raises(BundleError, match="checksum mismatch"):
        read_bundle(path)
    path.write_bytes(b"garbage")
    with pytest.raises(BundleError, match="bad magic"):
        read_bundle(path)


# ----------------------------------------------------------------------------- reference label names
def test_reference_label_orders_match_the_glove_files():
    nus, mir, coco = load_glove("nuswide_tc10"), load_glove("mirflickr25k"), load_glove("mscoco")
    # Shared words have identical GloVe rows across the three files: this pins each file's row order.
    for word in ("sky", "clouds", "water", "lake"):
        np.testing.assert_array_equal(nus[NUS_TC10_LABELS.index(word)], mir[MIRFLICKR25K_LABELS.index(word)])
    for word in ("bird", "car", "dog"):
        np.testing.assert_array_equal(coco[MSCOCO_LABELS.index(word)], mir[MIRFLICKR25K_LABELS.index(word)])
    np.testing.assert_array_equal(coco[MSCOCO_LABELS.index("person")], nus[NUS_TC10_LABELS.index("person")])
    reordered = load_glove_for_labels("mscoco", ["zebra", "airplane"])
    np.testing.assert_array_equal(reordered, coco[[79, 0]])
    assert MSCOCO_LABELS[0] == "airplane" and MSCOCO_LABELS[-1] == "zebra"


def test_released_nus_counts_equal_the_label_matrix_column_sums():
    from egath_lite.data.reference import load_nus_tc10_labels

    _, num = load_released_adjacency("nuswide_tc10")
    np.testing.assert_array_equal(load_nus_tc10_labels().sum(axis=0), num)


def test_released_nus_adjacency_is_the_full_cooccurrence_wrapped_modulo_256():
    from egath_lite.data.reference import load_nus_tc10_labels

    labels = load_nus_tc10_labels().astype(np.int64)
    counts = labels.T @ labels
    np.fill_diagonal(counts, 0)
    adj, _ = load_released_adjacency("nuswide_tc10")
    assert adj.dtype == np.uint8
    np.testing.assert_array_equal(adj.astype(np.int64), counts % 256)
    assert counts.max() > 255  # so the released file really did overflow


def test_dataset_fingerprint_tracks_data_parameters_and_files(tmp_path):
    from egath_lite.data import dataset_fingerprint

    base = get_config("tiny", clip_pretrained="random")  # real data sets need weights other than the tiny CLIP's
    assert dataset_fingerprint(base) == dataset_fingerprint(base.replace(bits=(8,), zeta=0.9))  # not data fields
    assert dataset_fingerprint(base) != dataset_fingerprint(base.replace(seed=1))
    assert dataset_fingerprint(base) != dataset_fingerprint(base.replace(toy_size=1_000))
    real = base.replace(dataset="mscoco", data_root=str(tmp_path))
    before = dataset_fingerprint(real)
    (tmp_path / "label.mat").write_bytes(b"x")
    assert dataset_fingerprint(real) != before
    from egath_lite.pipeline.config import ConfigError

    with pytest.raises(ConfigError, match="not a registered data set"):  # refused when the config is built
        base.replace(dataset="cifar")
