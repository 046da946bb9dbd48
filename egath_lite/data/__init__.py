"""Datasets: the registry, the embedded toy_nuswide, the real benchmarks, splits, tag vocabulary and bag-of-words.

>>> ds = load_dataset("toy_nuswide", size="tiny")           # doctest: +SKIP
>>> split = ds.split()                                      # GCDH-style query / train / retrieval
>>> vocab = build_vocabulary(ds.texts, split.train, 256)    # training tags only
>>> bow = bag_of_words(ds.texts, vocab)                     # float32 (N, 256), binary
>>> own = load_dataset("my_data/manifest.csv")              # doctest: +SKIP  (own data: data/manifest.py)
"""

from egath_lite.data.dataset import (
    DatasetError,
    DatasetNotFoundError,
    MultiModalDataset,
    Split,
    SplitDefaults,
    check_labels,
    make_split,
)
from egath_lite.data.manifest import is_manifest_path, load_manifest, manifest_label
from egath_lite.data.registry import (
    available_datasets,
    dataset_fingerprint,
    dataset_from_config,
    dataset_label,
    default_data_root,
    describe_datasets,
    load_dataset,
    register_dataset,
    split_from_config,
)
from egath_lite.data.toy_cache import default_cache_dir
from egath_lite.data.toy_nuswide import GENERATOR_VERSION, generate_toy_nuswide
from egath_lite.data.vocabulary import ENGLISH_STOP_WORDS, bag_of_words, build_vocabulary, tokenize

__all__ = [
    "DatasetError",
    "DatasetNotFoundError",
    "MultiModalDataset",
    "Split",
    "SplitDefaults",
    "check_labels",
    "make_split",
    "available_datasets",
    "dataset_fingerprint",
    "dataset_from_config",
    "default_data_root",
    "describe_datasets",
    "load_dataset",
    "dataset_label",
    "is_manifest_path",
    "load_manifest",
    "manifest_label",
    "register_dataset",
    "split_from_config",
    "GENERATOR_VERSION",
    "default_cache_dir",
    "generate_toy_nuswide",
    "ENGLISH_STOP_WORDS",
    "bag_of_words",
    "build_vocabulary",
    "tokenize",
]
