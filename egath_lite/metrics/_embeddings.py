"""mAP of continuous embeddings ranked by cosine similarity: the "no hashing" upper reference."""
from __future__ import annotations

from typing import Any

import numpy as np

from ._inputs import check_label_pairing, check_topk, label_bits, pack_bits, to_numpy
from ._numpy_kernels import ap_from_sorted_relevance, relevance

_CHUNK_BYTES = 64 * 2**20  # similarity, order and relevance temporaries of one query chunk


def _unit_rows(x: Any, name: str) -> np.ndarray:
    """Rows scaled to unit L2 norm, float32 (n, D); zero or non-finite rows raise."""
    arr = to_numpy(x, name)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (items × dims), got shape {arr.shape}")
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{name} has dtype {arr.dtype}; embeddings must be numeric")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN/Inf; fix the encoder output before evaluating")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError(f"{name} has {int((norms == 0).sum())} all-zero row(s); cosine similarity is undefined there")
    return arr / norms


def embedding_average_precisions(query_emb, retrieval_emb, query_labels, retrieval_labels, topk: int | None = None, *,
                                 progress: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-query AP@topk of cosine ranking, float64 (n_query,) with NaN where undefined, and the valid mask."""
    topk = check_topk(topk)
    q = _unit_rows(query_emb, "query_emb")
    r = _unit_rows(retrieval_emb, "retrieval_emb")
    ql = label_bits(query_labels, "query_labels")
    rl = label_bits(retrieval_labels, "retrieval_labels")
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"query_emb has dimension {q.shape[1]} but retrieval_emb has {r.shape[1]}; "
                         f"embed both sides into the same space")
    check_label_pairing(q, r, ql, rl, "embeddings")
    ql, rl = pack_bits(ql), pack_bits(rl)
    nq, n = q.shape[0], r.shape[0]
    cut = n if topk is None else min(topk, n)
    step = max(1, _CHUNK_BYTES // (32 * n))
    starts = range(0, nq, step)
    if progress is None:
        progress = nq * n > 20_000_000
    if progress:
        from ..progress import tqdm

        starts = tqdm(starts, desc="cosine mAP", unit="chunk", total=len(starts))
    ap = np.zeros(nq, np.float64)
    num_rel = np.zeros(nq, np.int64)
    for start in starts:
        rows = slice(start, min(nq, start + step))
        sim = q[rows] @ r.T  # float32 (c, n): one chunk, never the whole matrix
        order = np.argsort(-sim, axis=1, kind="stable")  # most similar first, ties by index
        rel = relevance(ql[rows], rl)
        ap[rows] = ap_from_sorted_relevance(np.take_along_axis(rel, order, axis=1), cut)
        num_rel[rows] = rel.sum(axis=1)
    valid = num_rel > 0
    return np.where(valid, ap, np.nan), valid


def map_from_embeddings(query_emb, retrieval_emb, query_labels, retrieval_labels, topk: int | None = None, *,
                        progress: bool | None = None) -> float:
    """mAP@topk of continuous embeddings ranked by cosine similarity (stable ties), queries without relevant items skipped."""
    ap, valid = embedding_average_precisions(query_emb, retrieval_emb, query_labels, retrieval_labels, topk,
                                             progress=progress)
    if not valid.any():
        raise ValueError("no query shares a label with any retrieval item, so mAP is undefined")
    return float(ap[valid].mean())
