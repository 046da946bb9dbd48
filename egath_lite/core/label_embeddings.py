"""Label embeddings E (C × F), the label graph's node inputs: a user's own ``.npy`` file, validated.

EGATH uses the 300-d GloVe vectors of the label names (``egath_lite.data.reference.load_glove``, shipped
with the package); ``label_embedding="clip"`` takes CLIP text embeddings of a prompt per label
(``egath_lite.pipeline.graph.label_embeddings``). Rows follow the data set's label order.
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
