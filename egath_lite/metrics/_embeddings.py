"""mAP of continuous embeddings ranked by cosine similarity: the "no hashing" upper reference.

Scores are float32 cosines from a chunked matrix product (one chunk of queries at a time,
never the whole query × retrieval matrix). The ranking is by score, ties by retrieval index
(the stable ``argsort(-score)``), and exact float32 ties are ties (+0.0 and -0.0 included).

Two routes give the same AP from the same scores: ``numba`` (a bucket sort per query, see
``_cosine_numba``) and ``numpy`` (one integer sort per row of the chunk: an exact key from the
float32 bits and the index). The numba route runs ``numba.get_num_threads()`` worker threads,
each taking whole chunks (its matrix product with a one-thread BLAS, then its ranking): on a
shared machine this wastes no CPU on idle BLAS or numba threads spinning between the two phases. ``_embedding_average_precisions_reference`` is the earlier
argsort-per-chunk code, kept for the tests and ``benchmarks/bench_cosine_map.py``.

The scores themselves are BLAS sums: their last bit can depend on how many query rows a
chunk holds and on how many threads BLAS splits the product over, so routes that differ in
either may order two scores 1 ulp apart differently (AP moves by ~1e-7). The numba route's
chunks depend on n only and its BLAS runs on one thread, so its numbers do not depend on the
machine's thread count. Same chunks, same BLAS threads: same scores, same AP to rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from egath_lite.metrics._numpy_kernels import ap_from_sorted_relevance, relevance
from egath_lite.metrics.inputs import check_label_pairing, check_topk, label_bits, pack_bits, to_numpy

_CHUNK_BYTES = 64 * 2**20  # similarity, order and relevance temporaries of one query chunk (reference)
_SCORE_CHUNK_BYTES = 128 * 2**20  # float32 scores of one query chunk per worker (numba route); BLAS needs rows
_NUMPY_BYTES_PER_PAIR = 48  # float32 score, int64 key and its temporaries, relevance, cumulative sums per (query, item)
_INDEX_BITS = 31
BACKENDS = ("auto", "numba", "numpy")


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


def _prepare_embeddings(query_emb, retrieval_emb, query_labels, retrieval_labels):
    """Unit rows float32 (nq, D), (n, D) and packed label masks uint64, after the checks."""
    q = _unit_rows(query_emb, "query_emb")
    r = _unit_rows(retrieval_emb, "retrieval_emb")
    ql = label_bits(query_labels, "query_labels")
    rl = label_bits(retrieval_labels, "retrieval_labels")
    if q.shape[1] != r.shape[1]:
        raise ValueError(
            f"query_emb has dimension {q.shape[1]} but retrieval_emb has {r.shape[1]}; "
            f"embed both sides into the same space"
        )
    check_label_pairing(q, r, ql, rl, "embeddings")
    if r.shape[0] >= 2**_INDEX_BITS:
        raise ValueError(f"{r.shape[0]} retrieval items are more than the cosine ranking supports (2**31)")
    return q, r, pack_bits(ql), pack_bits(rl)


def _descending_keys(scores: np.ndarray) -> np.ndarray:
    """int64 (c, n) keys whose ascending order is descending score, ties by index: float32 bits then index."""
    bits = scores.view(np.uint32).astype(np.int64)
    bits[bits == 0x80000000] = 0  # -0.0 ties +0.0, as float comparison has it
    key = np.where(bits >= 0x80000000, bits, 0x7FFFFFFF - bits)
    return (key << _INDEX_BITS) | np.arange(scores.shape[1], dtype=np.int64)


def _numpy_score_ap(scores: np.ndarray, ql: np.ndarray, rl: np.ndarray, cut: int) -> tuple[np.ndarray, np.ndarray]:
    """AP over the first ``cut`` ranks of each row of scores float32 (c, n), and #relevant, by one integer sort per row."""
    keys = _descending_keys(scores)
    keys.sort(axis=1)
    rel = relevance(ql, rl)
    ranked = np.take_along_axis(rel, keys & ((1 << _INDEX_BITS) - 1), axis=1)
    return ap_from_sorted_relevance(ranked, cut), rel.sum(axis=1)


def _score_kernel(backend: str):
    """``(scores, ql, rl, cut) -> (ap, num_rel)`` for one chunk, the rows per chunk for n items, and the workers."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    if backend in ("auto", "numba"):
        try:
            import numba

            from egath_lite.metrics import _cosine_numba
        except ImportError as exc:
            if backend == "numba":
                raise ImportError(
                    f"backend='numba' needs numba ({exc}); `pip install numba` or pass backend='numpy'"
                ) from exc
        else:

            def run(scores, ql, rl, cut):
                return _cosine_numba.score_ap(
                    scores, scores.view(np.uint32), scores.min(axis=1), scores.max(axis=1), ql, rl, np.int64(cut)
                )

            return run, lambda n: max(1, _SCORE_CHUNK_BYTES // (4 * n)), numba.get_num_threads()
    return _numpy_score_ap, lambda n: max(1, _CHUNK_BYTES // (_NUMPY_BYTES_PER_PAIR * n)), 1


def _chunk_results(kernel, q, r, ql, rl, cut: int, step: int, workers: int):
    """Yield (rows, ap, num_rel) per chunk of ``step`` queries; chunks run on ``workers`` threads, BLAS on one each."""

    def work(start):
        rows = slice(start, min(q.shape[0], start + step))
        return (rows, *kernel(q[rows] @ r.T, ql[rows], rl, cut))  # float32 (c, n): one chunk only

    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    # The kernel releases the GIL and so does BLAS; a multi-threaded BLAS inside each worker would
    # only oversubscribe the cores. One BLAS thread also with one worker: OpenBLAS's last bit depends
    # on its thread count, and the scores should not. map() keeps at most `workers` chunks alive.
    starts = range(0, q.shape[0], step)
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(max(1, min(workers, len(starts)))) as pool:
        yield from pool.map(work, starts)


def embedding_average_precisions(
    query_emb,
    retrieval_emb,
    query_labels,
    retrieval_labels,
    topk: int | None = None,
    *,
    backend: str = "auto",
    chunk_size: int | None = None,
    progress: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-query AP@topk of cosine ranking, float64 (n_query,) with NaN where undefined, and the valid mask."""
    topk = check_topk(topk)
    kernel, default_rows, workers = _score_kernel(backend)
    q, r, ql, rl = _prepare_embeddings(query_emb, retrieval_emb, query_labels, retrieval_labels)
    nq, n = q.shape[0], r.shape[0]
    cut = n if topk is None else min(topk, n)
    # the chunking depends on n only (not on the thread count), so the BLAS scores, and the APs, do not either
    step = default_rows(n) if chunk_size is None else chunk_size
    if step < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}")
    results = _chunk_results(kernel, q, r, ql, rl, cut, step, workers)
    if progress is None:
        progress = nq * n > 50_000_000
    if progress:
        from tqdm.auto import tqdm

        results = tqdm(results, desc="cosine mAP", unit="chunk", total=-(-nq // step))
    ap = np.zeros(nq, np.float64)
    num_rel = np.zeros(nq, np.int64)
    for rows, chunk_ap, chunk_rel in results:
        ap[rows], num_rel[rows] = chunk_ap, chunk_rel
    valid = num_rel > 0
    return np.where(valid, ap, np.nan), valid


def map_from_embeddings(
    query_emb,
    retrieval_emb,
    query_labels,
    retrieval_labels,
    topk: int | None = None,
    *,
    backend: str = "auto",
    chunk_size: int | None = None,
    progress: bool | None = None,
) -> float:
    """mAP@topk of continuous embeddings ranked by cosine similarity (stable ties), queries without relevant items skipped."""
    ap, valid = embedding_average_precisions(
        query_emb,
        retrieval_emb,
        query_labels,
        retrieval_labels,
        topk,
        backend=backend,
        chunk_size=chunk_size,
        progress=progress,
    )
    if not valid.any():
        raise ValueError("no query shares a label with any retrieval item, so mAP is undefined")
    return float(ap[valid].mean())


# --------------------------------------------------------------------------------------
# The earlier implementation (a stable argsort of each chunk's scores), kept as the reference.
# --------------------------------------------------------------------------------------
def _embedding_average_precisions_reference(
    query_emb,
    retrieval_emb,
    query_labels,
    retrieval_labels,
    topk: int | None = None,
    *,
    chunk_size: int | None = None,
    progress: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The earlier ``embedding_average_precisions``: per chunk, ``argsort(-scores, kind="stable")``; same outputs."""
    topk = check_topk(topk)
    q, r, ql, rl = _prepare_embeddings(query_emb, retrieval_emb, query_labels, retrieval_labels)
    nq, n = q.shape[0], r.shape[0]
    cut = n if topk is None else min(topk, n)
    step = max(1, _CHUNK_BYTES // (32 * n)) if chunk_size is None else chunk_size
    starts = range(0, nq, step)
    if progress is None:
        progress = nq * n > 20_000_000
    if progress:
        from egath_lite.progress import tqdm

        starts = tqdm(starts, desc="cosine mAP (reference)", unit="chunk", total=len(starts))
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
