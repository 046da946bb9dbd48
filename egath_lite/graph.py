"""The label graph: training-label co-occurrence → conditional probabilities → adjacency → PyG edges.

EGATH (§3.2) builds its graph the way ML-GCN (Chen et al., CVPR 2019, arXiv 1904.03582,
§3.3) and GCDH do. For a multi-hot training label matrix ``Y`` (n × C):

    C_ij = Σ_k Y_ki Y_kj          items carrying both label i and label j (C_ii = N_i)
    N_i  = Σ_k Y_ki               items carrying label i
    D_ij = C_ij / N_i             = P(label j | label i); row i is conditioned on label i
    A_ij = 1[D_ij ≥ ζ]            off the diagonal; the diagonal holds the self-loops

``N_i`` is the number of training items carrying label i. That is what the ``num`` field of
GCDH's released ``*_adj.mat`` files holds (checked in the tests) and what ML-GCN's code
divides by. The paper's wording (N_i = Σ_j C_ij) would instead count an item with k labels
k times, and then D would not be a probability.

Message direction: row i of ``A`` lists the labels that node i *listens to*. A GCN layer
computes ``H' = A H``, so node i receives from node j when ``A_ij > 0``. In PyG's convention
(``flow="source_to_target"``: ``edge_index[0]`` sends, ``edge_index[1]`` receives),
``A_ij > 0`` is therefore the edge ``(source j → target i)``. For example, "lake" listens
to "water", because P(water | lake) is high; "water" does not listen to "lake".

Only training labels may enter the graph. The query labels are the test set: GCDH's
released counts include them (and, stored as uint8, wrapped around at 256). See
``released_file_facts`` (any set, offline) and ``released_counts_explained`` (against labels).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .config import DATA_FIELDS, Config, is_manifest_path
from .data import make_split
from .data.reference import (
    MIRFLICKR25K_LABELS,
    load_glove,
    load_nus_tc10_labels,
    load_released_adjacency,
    reference_label_names,
)
from .stages import Stage, shape_problems

# Row order of the shipped reference files (*_glove.mat, *_adj.mat): egath_lite/data/reference_files/README.md.
MIR_LABELS = MIRFLICKR25K_LABELS
REFERENCE_DATASETS = ("toy_nuswide", "nuswide_tc10", "mirflickr25k", "mscoco")

LABEL_EMBEDDINGS = ("glove", "clip")

# GCDH's NUS-WIDE TC-10 split (np.random.seed(7); permutation; 2,100 query, then 10,500 train): make_split(n, **GCDH_NUS_SPLIT).
GCDH_NUS_SPLIT = dict(num_query=2_100, num_train=10_500, seed=7)


# --------------------------------------------------------------------------- statistics
def _check_labels(Y: np.ndarray) -> np.ndarray:
    """Validate a multi-hot label matrix (n, C) and return it as int64."""
    Y = np.asarray(Y)
    if Y.ndim != 2:
        raise ValueError(f"labels must be a 2-D multi-hot matrix (items × labels), got shape {Y.shape}")
    if Y.shape[0] == 0 or Y.shape[1] == 0:
        raise ValueError(f"labels matrix is empty (shape {Y.shape}); the training split holds no items or no labels")
    if Y.dtype.kind == "f" and not np.isfinite(Y).all():
        raise ValueError("labels contain NaN or Inf; a label matrix must be multi-hot 0/1")
    if not np.isin(Y, (0, 1)).all():
        bad = np.unique(Y[~np.isin(Y, (0, 1))])[:5]
        raise ValueError(f"labels must be multi-hot 0/1, found values {bad.tolist()}; binarise them first (Y > 0)")
    Y = Y.astype(np.int64)
    empty = np.flatnonzero(Y.sum(1) == 0)
    if empty.size:
        raise ValueError(
            f"{empty.size} label row(s) are empty (e.g. row {int(empty[0])}); the benchmarks keep only "
            f"labelled items, so drop those rows before building the graph"
        )
    return Y


def cooccurrence(Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Co-occurrence counts C = YᵀY, int64 (C, C), and label counts N = diag(C), int64 (C,), of Y (n, C)."""
    Y = _check_labels(Y)
    counts = Y.T @ Y  # int64: never wraps, unlike the uint8 released files
    return counts, np.diag(counts).copy()


def conditional_probabilities(counts: np.ndarray, label_counts: np.ndarray) -> np.ndarray:
    """D_ij = C_ij / N_i = P(j | i), float64 (C, C); a label with N_i = 0 gets an all-zero row (no evidence, no edge)."""
    counts = np.asarray(counts)
    label_counts = np.asarray(label_counts).ravel()
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"co-occurrence counts must be square (C, C), got shape {counts.shape}")
    if label_counts.shape != (counts.shape[0],):
        raise ValueError(f"label counts must have shape ({counts.shape[0]},), got {label_counts.shape}")
    counts = counts.astype(np.float64)
    label_counts = label_counts.astype(np.float64)
    if not (np.isfinite(counts).all() and np.isfinite(label_counts).all()):
        raise ValueError("counts contain NaN or Inf")
    if (counts < 0).any() or (label_counts < 0).any():
        raise ValueError("counts must be non-negative")
    off_diagonal = counts.copy()
    np.fill_diagonal(off_diagonal, 0)
    if (off_diagonal > label_counts[:, None]).any():
        i, j = np.argwhere(off_diagonal > label_counts[:, None])[0]
        raise ValueError(
            f"inconsistent counts: C[{i},{j}] = {off_diagonal[i, j]:.0f} items carry labels {i} and {j}, "
            f"but only N[{i}] = {label_counts[i]:.0f} carry label {i}; pass the counts of one label matrix"
        )
    # Divide only where N_i > 0: a label absent from training has no conditional distribution.
    D = np.zeros_like(counts)
    present = label_counts > 0
    D[present] = counts[present] / label_counts[present, None]
    return D


def _check_square(M: np.ndarray, name: str) -> np.ndarray:
    M = np.asarray(M, dtype=np.float64)
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise ValueError(f"{name} must be a square (C, C) matrix, got shape {M.shape}")
    if not np.isfinite(M).all():
        raise ValueError(f"{name} contains NaN or Inf")
    return M


def adjacency(D: np.ndarray, zeta: float, self_loops: bool = True) -> np.ndarray:
    """A_ij = 1[D_ij ≥ ζ] off the diagonal (ζ inclusive), diagonal 1 with self-loops else 0; float32 (C, C)."""
    D = _check_square(D, "conditional probabilities D")
    if not 0.0 < float(zeta) <= 1.0:
        raise ValueError(f"zeta must lie in (0, 1] (a threshold on a probability), got {zeta}")
    A = (D >= zeta).astype(np.float32)
    np.fill_diagonal(A, 1.0 if self_loops else 0.0)
    return A


def reweight_adjacency(A: np.ndarray, p: float = 0.2) -> np.ndarray:
    """ML-GCN re-weighting of a binary adjacency A (C, C): float32 (C, C), rows sum to 1.

    ML-GCN eq. (8): A'_ij = p · A_ij / Σ_{k≠i} A_ik for i ≠ j and A'_ii = 1 − p, so a node
    keeps weight 1 − p for itself however many neighbours it has (against over-smoothing).
    A node without neighbours keeps weight 1 for itself (the formula's 1 − p would shrink
    its features). ML-GCN's released code differs in details (p = 0.25, column sums,
    identity added with weight 1); we follow the paper's equation.
    """
    A = _check_square(A, "adjacency A")
    if not np.isin(A, (0.0, 1.0)).all():
        raise ValueError("reweight_adjacency expects a binary adjacency (the output of adjacency())")
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"re-weighting p must lie in [0, 1], got {p}")
    neighbours = A.copy()
    np.fill_diagonal(neighbours, 0.0)
    degree = neighbours.sum(1)
    out = np.zeros_like(A)
    has = degree > 0
    out[has] = p * neighbours[has] / degree[has, None]
    np.fill_diagonal(out, np.where(has, 1.0 - p, 1.0))
    return out.astype(np.float32)


def to_edge_index(A: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """PyG edges of A (C, C): edge_index int64 (2, E) with A_ij > 0 ↦ (source j, target i), edge_weight float32 (E,).

    Edges are ordered by target, then source; self-loops (A_ii > 0) are included.
    """
    A = _check_square(A, "adjacency A")
    target, source = np.nonzero(A)
    edge_index = torch.from_numpy(np.stack([source, target]).astype(np.int64))
    edge_weight = torch.from_numpy(A[target, source].astype(np.float32))
    return edge_index, edge_weight


def edges_vs_zeta(D: np.ndarray, zetas: Sequence[float]) -> np.ndarray:
    """Directed off-diagonal edge counts of 1[D ≥ ζ] for each ζ: int64 (len(zetas),)."""
    D = _check_square(D, "conditional probabilities D")
    off = ~np.eye(D.shape[0], dtype=bool)
    return np.array([int(((D >= z) & off).sum()) for z in zetas], dtype=np.int64)


def edge_counts(labels: np.ndarray, zetas: Sequence[float]) -> np.ndarray:
    """Directed edges between distinct labels of the graph of ``labels`` (n, C) at each ζ: int64 (len(zetas),).

    The count of pairs i ≠ j with D_ij = C_ij / N_i ≥ ζ, out of C(C − 1); e.g. GCDH's NUS-WIDE
    TC-10 training split has 83 of 90 at ζ = 0.01 and 14 at 0.3.
    """
    zetas = np.asarray(zetas, dtype=np.float64).ravel()
    if zetas.size == 0 or not np.isfinite(zetas).all() or (zetas <= 0).any() or (zetas > 1).any():
        raise ValueError(f"zetas must be a non-empty list of thresholds in (0, 1], got {zetas.tolist()}")
    return edges_vs_zeta(conditional_probabilities(*cooccurrence(labels)), zetas)


@dataclass
class LabelGraph:
    """The label graph of one training label matrix; arrays are numpy, edges are torch (PyG)."""

    label_names: list[str]
    counts: np.ndarray  # int64 (C, C), diagonal = label_counts
    label_counts: np.ndarray  # int64 (C,)
    cond_prob: np.ndarray  # float64 (C, C), D_ij = P(j | i)
    adjacency: np.ndarray  # float32 (C, C), after ζ, self-loops and optional re-weighting
    edge_index: torch.Tensor  # int64 (2, E), source → target
    edge_weight: torch.Tensor  # float32 (E,)
    zeta: float
    self_loops: bool
    reweight: bool
    reweight_p: float
    num_items: int

    @property
    def num_labels(self) -> int:
        """Number of label nodes C."""
        return len(self.label_names)

    @property
    def num_edges(self) -> int:
        """Directed edges between distinct labels (self-loops not counted)."""
        return int((self.edge_index[0] != self.edge_index[1]).sum())

    @property
    def num_mutual_pairs(self) -> int:
        """Label pairs connected in both directions."""
        A = self.adjacency > 0
        np.fill_diagonal(A, False)
        return int((A & A.T).sum() // 2)

    @property
    def isolated_labels(self) -> list[str]:
        """Labels with no edge to or from another label."""
        A = self.adjacency > 0
        np.fill_diagonal(A, False)
        return [n for i, n in enumerate(self.label_names) if not (A[i].any() or A[:, i].any())]

    def edge_list(self) -> list[tuple[str, str]]:
        """(source, target) label-name pairs of the off-diagonal edges, in edge_index order."""
        src, dst = self.edge_index.tolist()
        return [(self.label_names[s], self.label_names[t]) for s, t in zip(src, dst) if s != t]


def build_label_graph(
    Y_train: np.ndarray,
    zeta: float,
    label_names: Sequence[str] | None = None,
    self_loops: bool = True,
    reweight: bool = False,
    reweight_p: float = 0.2,
) -> LabelGraph:
    """The label graph of training labels Y_train (n, C) at threshold ζ; see the module docstring."""
    counts, label_counts = cooccurrence(Y_train)
    num_labels = counts.shape[0]
    names = list(label_names) if label_names is not None else [f"label{i}" for i in range(num_labels)]
    if len(names) != num_labels:
        raise ValueError(f"{len(names)} label names for a label matrix with {num_labels} columns")
    absent = [names[i] for i in np.flatnonzero(label_counts == 0)]
    if absent:
        warnings.warn(
            f"label(s) {absent} never occur in the training labels: their nodes get no edges "
            f"(only a self-loop); use a larger training split for a meaningful graph",
            stacklevel=2,
        )
    D = conditional_probabilities(counts, label_counts)
    A = adjacency(D, zeta, self_loops=self_loops)
    if reweight:
        A = reweight_adjacency(A, reweight_p)
    edge_index, edge_weight = to_edge_index(A)
    return LabelGraph(
        label_names=names,
        counts=counts,
        label_counts=label_counts,
        cond_prob=D,
        adjacency=A,
        edge_index=edge_index,
        edge_weight=edge_weight,
        zeta=float(zeta),
        self_loops=bool(self_loops),
        reweight=bool(reweight),
        reweight_p=float(reweight_p),
        num_items=int(np.asarray(Y_train).shape[0]),
    )


# --------------------------------------------------------------------------- label embeddings
def glove_embeddings(dataset: str, label_names: Sequence[str]) -> np.ndarray:
    """GloVe rows of the dataset's label names, float32 (C, 300), reordered to ``label_names``."""
    if dataset not in REFERENCE_DATASETS:
        raise ValueError(
            f"no GloVe vectors for dataset {dataset!r} (shipped for {list(REFERENCE_DATASETS)}); "
            f"use label_embedding='clip'"
        )
    emb = load_glove(dataset)
    file_order = reference_label_names(dataset)
    if len(file_order) != emb.shape[0] or sorted(file_order) != sorted(label_names):
        raise ValueError(
            f"label names {list(label_names)} do not match the {emb.shape[0]} GloVe rows of {dataset!r} "
            f"({file_order[:5]}…); check the dataset's label_names or use label_embedding='clip'"
        )
    row = {name: k for k, name in enumerate(file_order)}
    return np.ascontiguousarray(emb[[row[name] for name in label_names]], dtype=np.float32)


def label_embedding_source(cfg: Config) -> str:
    """Where the node inputs of cfg come from: 'file' (label_embedding_file), 'glove' or 'clip'.

    A manifest (own data) has no shipped GloVe vectors: with label_embedding='glove' it takes CLIP
    prompts of its label names (``label_embeddings`` prints a line saying so).
    """
    if cfg.label_embedding_file is not None:
        return "file"
    if cfg.label_embedding == "glove" and is_manifest_path(cfg.dataset):
        return "clip"
    return cfg.label_embedding


def load_label_embedding_file(path: str, label_names: Sequence[str]) -> np.ndarray:
    """A user's label embeddings, float32 (C, F), from a .npy file (no pickles); shape and values validated."""
    try:
        E = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"label_embedding_file {path} cannot be read as a .npy array ({exc}); save it with "
            f"np.save(path, E) for E of shape (C, F)"
        ) from exc
    C = len(label_names)
    if E.ndim != 2 or E.shape[0] != C or E.shape[1] == 0:
        raise ValueError(
            f"label_embedding_file {path} has shape {E.shape}; expected ({C}, F): one row per label, "
            f"in the data set's label order {list(label_names)[:5]}{'…' if C > 5 else ''}"
        )
    if not np.issubdtype(E.dtype, np.number) or np.iscomplexobj(E):
        raise ValueError(f"label_embedding_file {path} holds {E.dtype}, expected real numbers")
    E = E.astype(np.float32)
    if not np.isfinite(E).all():
        bad = np.argwhere(~np.isfinite(E))[0]
        raise ValueError(
            f"label_embedding_file {path} contains NaN/Inf (first at row {bad[0]}, label "
            f"{list(label_names)[bad[0]]!r}); fix the file"
        )
    return np.ascontiguousarray(E)


def label_embeddings(kind: str, dataset: str, label_names: Sequence[str], cfg: Config | None = None) -> np.ndarray:
    """Node inputs E (C, F) float32: GloVe (the paper's choice, F = 300), CLIP text embeddings of prompts, or
    'file': cfg.label_embedding_file. Pass ``label_embedding_source(cfg)`` as ``kind`` to follow the config."""
    if kind == "glove" and is_manifest_path(dataset):
        kind = "clip"  # own data: no GloVe file ships for its names
    if kind == "clip" and is_manifest_path(dataset):
        print(
            f"label embeddings: CLIP text embeddings of {cfg.label_prompt if cfg else 'a photo of a {}'!r} for the "
            f"{len(label_names)} label names of the manifest (no GloVe vectors ship for own data; "
            f"label_embedding_file=<.npy of shape ({len(label_names)}, F)> uses your own)"
        )
    if kind == "file":
        if cfg is None or cfg.label_embedding_file is None:
            raise ValueError("label embedding 'file' needs cfg with label_embedding_file set")
        E = load_label_embedding_file(cfg.label_embedding_file, label_names)
    elif kind == "glove":
        E = glove_embeddings(dataset, label_names)
    elif kind == "clip":
        if cfg is None:
            raise ValueError("label_embedding='clip' needs cfg (the CLIP model to encode the prompts with)")
        from .features import encode_label_prompts

        E = encode_label_prompts(cfg, list(label_names), template=cfg.label_prompt)
        E = E.detach().cpu().numpy() if isinstance(E, torch.Tensor) else np.asarray(E)
        E = E.astype(np.float32)
    else:
        raise ValueError(f"unknown label embedding {kind!r}; choose one of {LABEL_EMBEDDINGS + ('file',)}")
    if E.ndim != 2 or E.shape[0] != len(label_names):
        raise ValueError(f"{kind} label embeddings have shape {E.shape}, expected ({len(label_names)}, F)")
    if not np.isfinite(E).all():
        raise ValueError(f"{kind} label embeddings contain NaN or Inf")
    return E


# --------------------------------------------------------------------------- which rows
def graph_training_rows(query: np.ndarray, train: np.ndarray, val: np.ndarray | None = None) -> np.ndarray:
    """Rows whose labels build the graph: train ∪ val (the paper's training set), sorted int64; never a query row.

    The validation rows are carved out of the paper's training split for early stopping;
    they are training items, so their labels count. Query labels never do.
    """
    rows = np.asarray(train, dtype=np.int64)
    if val is not None:
        rows = np.concatenate([rows, np.asarray(val, dtype=np.int64)])
    rows = np.unique(rows)
    leaked = np.intersect1d(rows, np.asarray(query, dtype=np.int64))
    if leaked.size:
        raise ValueError(
            f"{leaked.size} query row(s) are also training rows (e.g. {int(leaked[0])}); the split is broken: "
            f"query labels must never reach the label graph"
        )
    if rows.size == 0:
        raise ValueError("the training split is empty; set num_train > 0")
    return rows


# --------------------------------------------------------------------------- the released files
def _benchmark_num_train(dataset: str) -> int:
    from .data.release import SPLITS

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
    from .data.release import SPLITS

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


# --------------------------------------------------------------------------- the stage
GRAPH_TENSORS = ("counts", "label_counts", "cond_prob", "adjacency", "edge_index", "edge_weight", "label_emb")
# What fixes the training labels (train ∪ validation rows: val_fraction does not change them) ...
_GRAPH_DATA_FIELDS = tuple(f for f in DATA_FIELDS if f != "val_fraction")
# ... and what fixes the graph and its node inputs.
_GRAPH_FIELDS = ("zeta", "self_loops", "reweight", "reweight_p", "label_embedding", "label_embedding_file")
_CLIP_FIELDS = ("clip_model", "label_prompt")


def graph_key_fields(cfg: Config) -> tuple[str, ...]:
    """Config fields the graph artifact depends on (CLIP fields only when the label embeddings come from CLIP)."""
    return _GRAPH_DATA_FIELDS + _GRAPH_FIELDS + (_CLIP_FIELDS if label_embedding_source(cfg) == "clip" else ())


def _graph_inputs(cfg: Config) -> dict[str, Any]:
    """data set fingerprint (+ weights for CLIP label embeddings, + digest of label_embedding_file)"""
    from .data import dataset_fingerprint
    from .data.fingerprint import file_digest

    out = {"data": dataset_fingerprint(cfg)}
    source = label_embedding_source(cfg)
    if source == "clip":
        from .clip_weights import weights_fingerprint

        out["weights"] = weights_fingerprint(cfg)
    elif source == "file":
        from pathlib import Path

        path = Path(cfg.label_embedding_file)
        out["label_embedding_file"] = file_digest(path) if path.is_file() else "missing"
    return out


def _graph_upstream(cfg: Config) -> tuple:
    if label_embedding_source(cfg) == "clip" and cfg.clip_pretrained == "train":
        from .tiny_clip import TINY_CLIP_STAGE

        return (TINY_CLIP_STAGE,)
    return ()


def _graph_expect(cfg: Config, params: dict[str, Any], payload: dict[str, Any]) -> list[str]:
    t = payload["tensors"]
    c = len(payload["meta"].get("label_names", []))
    e = t["edge_index"].shape[1] if t["edge_index"].dim() == 2 else -1
    problems = shape_problems(
        t,
        {
            "counts": ((c, c), torch.int64),
            "label_counts": ((c,), torch.int64),
            "cond_prob": ((c, c), torch.float32),
            "adjacency": ((c, c), torch.float32),
            "edge_index": ((2, e), torch.int64),
            "edge_weight": ((e,), torch.float32),
            "label_emb": ((c, None), torch.float32),
        },
    )
    if not problems and e and (t["edge_index"].min() < 0 or t["edge_index"].max() >= c):
        problems.append(f"edge_index names nodes outside the {c} labels")
    return problems


GRAPH_STAGE = Stage(
    "graph",
    fields=graph_key_fields,
    version="2",
    upstream=_graph_upstream,
    extra=_graph_inputs,
    tensors=GRAPH_TENSORS,
    expect=_graph_expect,
    description="label co-occurrence, conditional probabilities, adjacency at zeta, label embeddings",
)


def graph_from_labels(
    labels: np.ndarray,
    label_names: Sequence[str],
    query: np.ndarray,
    train: np.ndarray,
    val: np.ndarray | None,
    cfg: Config,
) -> LabelGraph:
    """The label graph of cfg from the dataset's labels (N, C) and its split; query rows never enter."""
    rows = graph_training_rows(query, train, val)
    return build_label_graph(
        np.asarray(labels)[rows], cfg.zeta, label_names, cfg.self_loops, cfg.reweight, cfg.reweight_p
    )


def _compute_graph(cfg: Config) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from . import data as data_mod  # imported here: the data stage is the heavier import

    if cfg.label_embedding not in LABEL_EMBEDDINGS:
        raise ValueError(f"unknown label_embedding {cfg.label_embedding!r}; choose one of {LABEL_EMBEDDINGS}")
    ds = data_mod.dataset_from_config(cfg)
    query, train, val, _retrieval = data_mod.split_from_config(ds, cfg)
    graph = graph_from_labels(ds.labels, ds.label_names, query, train, val, cfg)
    E = label_embeddings(label_embedding_source(cfg), cfg.dataset, graph.label_names, cfg)
    tensors = {
        "counts": torch.from_numpy(graph.counts),
        "label_counts": torch.from_numpy(graph.label_counts),
        "cond_prob": torch.from_numpy(graph.cond_prob.astype(np.float32)),
        "adjacency": torch.from_numpy(graph.adjacency),
        "edge_index": graph.edge_index,
        "edge_weight": graph.edge_weight,
        "label_emb": torch.from_numpy(np.asarray(E, dtype=np.float32)),
    }
    meta = {
        "label_names": graph.label_names,
        "zeta": graph.zeta,
        "label_embedding": cfg.label_embedding,
        "label_embedding_source": label_embedding_source(cfg),
        "self_loops": graph.self_loops,
        "reweight": graph.reweight,
        "reweight_p": graph.reweight_p,
        "num_train_items": graph.num_items,
        "num_edges": graph.num_edges,
        "message_passing": "edge_index[0] = source j, edge_index[1] = target i for A[i, j] > 0 (node i receives from j)",
    }
    return tensors, meta


def ensure_graph(cfg: Config, force: bool = False) -> dict[str, Any]:
    """The graph artifact of ``cfg``: reused when valid, else built from the dataset's training labels.

    Rows: the split's whole training part, train ∪ validation (the paper's training set; the
    validation items are training items set aside for early stopping), never a query row. So
    ``val_fraction`` does not change the graph and is not part of its key. Tensors: counts
    (C, C) int64, label_counts (C,) int64, cond_prob (C, C) float32, adjacency (C, C) float32,
    edge_index (2, E) int64 (source → target), edge_weight (E,) float32, label_emb (C, F) float32.
    """
    return GRAPH_STAGE.run(cfg, lambda: _compute_graph(cfg), force=force)


def graph_from_payload(payload: dict[str, Any]) -> LabelGraph:
    """Rebuild a LabelGraph from a graph artifact payload (for plots and later stages)."""
    t, meta = payload["tensors"], payload["meta"]
    return LabelGraph(
        label_names=list(meta["label_names"]),
        counts=t["counts"].numpy(),
        label_counts=t["label_counts"].numpy(),
        cond_prob=t["cond_prob"].double().numpy(),
        adjacency=t["adjacency"].numpy(),
        edge_index=t["edge_index"],
        edge_weight=t["edge_weight"],
        zeta=float(meta["zeta"]),
        self_loops=bool(meta["self_loops"]),
        reweight=bool(meta["reweight"]),
        reweight_p=float(meta["reweight_p"]),
        num_items=int(meta["num_train_items"]),
    )
