"""Tag vocabulary (top-V tags of the training split only) and binary bag-of-words vectors.

Building the vocabulary from the training items only keeps the query set unseen, as in
DCMH/GCDH (MIRFlickr-25K's classic 1,386-d BoW keeps tags frequent in the data).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from egath_lite.data.dataset import DatasetError

_TOKEN = re.compile(r"[^\W_][\w'\-]*", re.UNICODE)  # a word: letters/digits, inner _ ' - allowed

# Function words that carry no label information (used for captions, e.g. MS-COCO).
ENGLISH_STOP_WORDS = frozenset(
    "a an the of in on at to and or is are was were be been it its this that these those with for from by as "
    "there their they he she his her him them we you i my our your some while into onto over under near next "
    "up down out off very".split()
)


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens of a tag string or caption, in order (duplicates kept)."""
    return _TOKEN.findall(text.lower())


def build_vocabulary(
    texts: Sequence[str],
    train_idx: Iterable[int] | np.ndarray,
    vocab_size: int,
    min_count: int = 1,
    stop_words: Iterable[str] = (),
) -> list[str]:
    """The ``vocab_size`` tags with the highest document frequency among ``texts[train_idx]`` (ties: alphabetical)."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)) or vocab_size < 1:
        raise DatasetError(f"vocab_size must be a positive int, got {vocab_size!r}")
    train_idx = np.asarray(train_idx, dtype=np.int64).ravel()
    if len(train_idx) == 0:
        raise DatasetError("build_vocabulary needs the training indices; got none")
    if train_idx.min() < 0 or train_idx.max() >= len(texts):
        raise DatasetError(f"training index out of range for {len(texts)} texts (max {train_idx.max()})")
    stop = frozenset(stop_words)
    df: Counter[str] = Counter()
    for i in train_idx:
        df.update(set(tokenize(texts[i])) - stop)
    ranked = sorted((t for t, c in df.items() if c >= min_count), key=lambda t: (-df[t], t))
    if not ranked:
        raise DatasetError("the training texts contain no tags: cannot build a vocabulary (are the texts empty?)")
    return ranked[:vocab_size]


def bag_of_words(texts: Sequence[str], vocab: Sequence[str]) -> np.ndarray:
    """Binary bag-of-words float32 (N, V): entry (i, j) = 1 when tag vocab[j] occurs in texts[i]."""
    index = {t: j for j, t in enumerate(vocab)}
    if len(index) != len(vocab):
        raise DatasetError("vocabulary has duplicate entries; build it with build_vocabulary")
    bow = np.zeros((len(texts), len(vocab)), dtype=np.float32)
    rows, cols = [], []
    for i, text in enumerate(texts):
        for tok in tokenize(text):
            j = index.get(tok)
            if j is not None:
                rows.append(i)
                cols.append(j)
    bow[rows, cols] = 1.0
    return bow
