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

from collections.abc import Sequence

import numpy as np


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
