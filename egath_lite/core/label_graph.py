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
from dataclasses import dataclass

import numpy as np
import torch


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
