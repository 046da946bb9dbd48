"""The released co-occurrence files (``*_adj.mat`` of GCDH, reused by EGATH) examined offline.

GCDH's released counts include the query labels and, stored as uint8, wrapped around at 256.
``released_file_facts`` tells what a shipped file shows on its own; ``released_counts_explained``
recomputes the counts from the real labels (all rows, training rows) and compares (notebook 02).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from egath_lite.core.label_graph import adjacency, conditional_probabilities, cooccurrence, edges_vs_zeta
from egath_lite.data import make_split
from egath_lite.data.reference import (
    load_nus_tc10_labels,
    load_released_adjacency,
    reference_label_names,
)
from egath_lite.pipeline.graph import REFERENCE_DATASETS

# GCDH's NUS-WIDE TC-10 split (np.random.seed(7); permutation; 2,100 query, then 10,500 train): make_split(n, **GCDH_NUS_SPLIT).
GCDH_NUS_SPLIT = dict(num_query=2_100, num_train=10_500, seed=7)


# --------------------------------------------------------------------------- the released files
def _benchmark_num_train(dataset: str) -> int:
    from egath_lite.data.release import SPLITS

    return SPLITS["nuswide_tc10" if dataset == "toy_nuswide" else dataset].num_train


def released_file_facts(dataset: str, zeta: float = 0.4) -> dict[str, Any]:
    """What the shipped ``*_adj.mat`` of a set shows on its own, offline: storage type, overflow risk, which items.

    - ``dtype_max``: the largest count the stored dtype holds (255 for uint8: larger counts wrapped).
    - ``pairs_that_may_have_wrapped``: label pairs i < j with min(N_i, N_j) > dtype_max (a count up to
      min(N_i, N_j) is possible, so the stored value may be the true one mod 256).
    - ``counts_exceed_training_split``: some N_i exceeds the benchmark's training split (GCDH's num_train):
      the file cannot have been counted on the training items only, so it includes query / retrieval labels.
    - ``edges_released``: off-diagonal edges of 1[adj / num ≥ ζ], the graph a user of the file gets.
    """
    released, num = load_released_adjacency(dataset)
    names = reference_label_names(dataset)
    counts, n = released.astype(np.int64), num.astype(np.int64)
    dtype_max = int(np.iinfo(released.dtype).max) if released.dtype.kind in "iu" else None
    iu = np.triu_indices(len(n), k=1)
    possible = np.minimum(n[:, None], n[None, :])[iu]
    num_train = _benchmark_num_train(dataset)
    D = conditional_probabilities(np.where(np.eye(len(n), dtype=bool), n[:, None], counts), n)
    top = int(np.argmax(n))
    return {
        "dataset": dataset,
        "label_names": list(names),
        "released": released,
        "num": num,
        "released_dtype": str(released.dtype),
        "dtype_max": dtype_max,
        "pairs": int(len(possible)),
        "pairs_that_may_have_wrapped": int((possible > dtype_max).sum())
        if dtype_max is not None and dtype_max < 2**31
        else 0,
        "max_released_count": int(counts[iu].max()),
        "max_label_count": int(n.max()),
        "most_frequent_label": names[top],
        "sum_label_counts": int(n.sum()),
        "benchmark_num_train": num_train,
        "counts_exceed_training_split": bool(n.max() > num_train),
        "max_released_cond_prob": float(D[~np.eye(len(n), dtype=bool)].max()),
        "zeta": float(zeta),
        "edges_released": int(edges_vs_zeta(D, [zeta])[0]),
        "cond_prob_released": D,
    }


@dataclass
class ReleasedCountsReport:
    """A released ``*_adj.mat`` compared with counts recomputed from the set's real labels (all rows, train rows)."""

    dataset: str
    label_names: list[str]  # the reference files' row order
    released: np.ndarray  # (C, C) as stored (uint8 for NUS-WIDE and MIRFlickr: wrapped)
    released_num: np.ndarray  # (C,) as stored
    counts_all: np.ndarray  # int64 (C, C), all rows (query included)
    counts_train: np.ndarray  # int64 (C, C), the training rows only
    cond_prob_all: np.ndarray  # float64 (C, C)
    cond_prob_train: np.ndarray
    cond_prob_released: np.ndarray  # released adj / released num
    num_items: int
    num_train: int
    zeta: float
    summary: dict[str, Any] = field(default_factory=dict)


def released_counts_explained(
    zeta: float = 0.4,
    dataset: str = "nuswide_tc10",
    labels: np.ndarray | None = None,
    label_names: Sequence[str] | None = None,
    train_rows: np.ndarray | None = None,
    seed: int | None = None,
    num_query: int | None = None,
    num_train: int | None = None,
) -> ReleasedCountsReport:
    """Compare the set's released ``*_adj.mat`` with counts of its real labels (N, C): all rows and training rows.

    NUS-WIDE (and toy_nuswide) need no labels: the shipped 186,577 TC-10 rows are used, with
    GCDH's split; the result shows nus_adj.mat = all-row counts mod 256, offline, in < 1 s.
    MIRFlickr and MS-COCO need the loaded real data set: ``labels=ds.labels,
    label_names=ds.label_names`` (columns are matched to the file's rows by name) and
    ``train_rows`` (default: the benchmark split, GCDH's sizes and seed, or the given ones).
    """
    if dataset not in REFERENCE_DATASETS:
        raise ValueError(f"no released co-occurrence file for {dataset!r}; shipped for {list(REFERENCE_DATASETS)}")
    names = reference_label_names(dataset)
    if labels is None:
        if dataset not in ("nuswide_tc10", "toy_nuswide"):
            raise ValueError(
                f"comparing the released file of {dataset!r} needs that set's real labels: pass labels=ds.labels, "
                f"label_names=ds.label_names of the loaded data set (only NUS-WIDE's labels ship with the package); "
                f"released_file_facts({dataset!r}) shows what the file alone reveals"
            )
        Y_all = load_nus_tc10_labels()
    else:
        Y_all = np.asarray(labels)
        given = list(label_names) if label_names is not None else None
        if given is None or sorted(given) != sorted(names):
            raise ValueError(f"label_names {given} must name the {len(names)} labels of {dataset!r} ({names[:5]}…)")
        Y_all = Y_all[:, [given.index(n) for n in names]]  # to the file's row order
    released, released_num = load_released_adjacency(dataset)
    from egath_lite.data.release import SPLITS

    if train_rows is None:
        d = SPLITS["nuswide_tc10" if dataset == "toy_nuswide" else dataset]
        train_rows = make_split(
            len(Y_all), num_query or d.num_query, num_train or d.num_train, d.seed if seed is None else seed
        ).train  # GCDH's split, as the data stage makes it
    train = np.asarray(train_rows, dtype=np.int64)
    counts_all, n_all = cooccurrence(Y_all)
    counts_train, n_train = cooccurrence(Y_all[train])
    off = ~np.eye(len(n_all), dtype=bool)
    wrapped = counts_all % 256
    rel = released.astype(np.int64)
    D_all = conditional_probabilities(counts_all, n_all)
    D_train = conditional_probabilities(counts_train, n_train)
    D_released = conditional_probabilities(
        np.where(off, rel, released_num.astype(np.int64)[:, None]), released_num.astype(np.int64)
    )
    A_all, A_train, A_rel = (adjacency(D, zeta, self_loops=False) > 0 for D in (D_all, D_train, D_released))
    summary = {
        "released_dtype": str(released.dtype),
        "released_equals_all_rows_mod_256": bool(np.array_equal(rel[off], wrapped[off])),
        "released_equals_all_rows": bool(np.array_equal(rel[off], counts_all[off])),
        "released_equals_train_rows": bool(np.array_equal(rel[off], counts_train[off])),
        "released_num_equals_all_label_counts": bool(np.array_equal(released_num.astype(np.int64), n_all)),
        "released_num_equals_train_label_counts": bool(np.array_equal(released_num.astype(np.int64), n_train)),
        "num_wrapped_entries": int((counts_all[off] >= 256).sum()) if released.dtype == np.uint8 else 0,
        "max_true_count": int(counts_all[off].max()),
        "max_released_count": int(rel[off].max()),
        "max_abs_cond_prob_all_vs_train": float(np.abs(D_all - D_train)[off].max()),
        "max_abs_cond_prob_released_vs_all": float(np.abs(D_released - D_all)[off].max()),
        "edges_all_rows": int(A_all.sum()),
        "edges_train_rows": int(A_train.sum()),
        "edges_released": int(A_rel.sum()),
        "edges_differing_released_vs_train": int((A_rel != A_train).sum()),
        "edges_differing_all_vs_train": int((A_all != A_train).sum()),
    }
    return ReleasedCountsReport(
        dataset=dataset,
        label_names=list(names),
        released=released,
        released_num=released_num,
        counts_all=counts_all,
        counts_train=counts_train,
        cond_prob_all=D_all,
        cond_prob_train=D_train,
        cond_prob_released=D_released,
        num_items=len(Y_all),
        num_train=len(train),
        zeta=float(zeta),
        summary=summary,
    )
