"""Cross-modal retrieval metrics on binary codes: mAP, PR by Hamming radius, precision@K.

Conventions (the same for every function here):

- **Codes** are ``{-1,+1}`` or ``{0,1}`` (numpy, torch or lists; any numeric dtype or bool),
  one row per item. **Labels** are multi-hot 0/1. A query and a retrieval item are
  *relevant* when they share at least one label.
- **Ranking** is by Hamming distance, ties broken by retrieval index (a stable sort), so
  every number is deterministic. ``tie_aware=True`` instead gives the expected value over
  uniformly random orders inside each tie (McSherry & Najork, ECIR 2008); with short codes
  many items tie, and the two can differ.
- **AP@k** of a query (``definition="standard"``) = mean of precision@rank over the relevant
  items ranked within the first ``k`` (``topk=None``: all). A query with relevant items, none
  of them in the top ``k``, scores 0.
- ``definition="gcdh"``: GCDH's and DSPH's ``calc_map_k``, a different quantity. With R the
  query's relevant items and T = min(k, R), AP = (1/T) Σ_{i=1..T} i / rank_i, where rank_i is
  the rank of the i-th relevant item in the *whole* ranking (it may lie beyond k). For
  ``topk=None`` (k = n) both definitions are AP@all. For k < n GCDH's never rewards a query
  whose relevant items are few for not filling the top k, and counts relevant items the
  top k does not contain.
- **Queries without any relevant item** in the retrieval set have an undefined AP: they are
  *skipped and counted* (``average_precisions`` returns the mask). GCDH's and DSPH's
  ``calc_map_k`` skip them in the sum but still divide by *all* queries, which lowers the
  mean by the fraction skipped; ``empty_queries="zero"`` reproduces that. So
  ``mean_average_precision(..., topk=k, definition="gcdh", empty_queries="zero")`` is GCDH's
  ``calc_map_k(qB, rB, qL, rL, k)``, except that ties are broken by index (their
  ``torch.sort`` is not stable) and sums are float64 (theirs float32).
- **PR curve** (radius r = 0 … bits): a query's answer is every item within distance r.
  ``average="valid"`` (ours): recall averaged over queries with at least one relevant
  item (so it never falls as r grows); precision averaged over those of them whose answer
  is non-empty (NaN where no answer is). ``average="gcdh"``: GCDH's ``pr_curve``, which
  averages both over the queries whose precision at r is > 0.
- **precision@K**: relevant items among the first ``min(K, n_retrieval)``, divided by that
  number, averaged over queries with at least one relevant item (``empty_queries="skip"``).
  GCDH's ``p_topK`` skips the queries without a relevant item in the sum and divides by all
  queries (they count 0): ``empty_queries="zero"`` (its sort is unstable; ours is not).

Speed: codes and labels are packed into 64-bit words (any number of words; 1 to 4 words
run unrolled, so 80 labels cost what 64 do); a compiled kernel (numba, compiled on first
use and cached on disk) computes each item's rank from per-distance counters instead of
sorting, in one sweep that also yields the histograms and the hits in the first K (see
``_numba_kernels``). The sweep takes four queries at a time, reading each chunk of the
retrieval set once for all four (so codes and labels stay in cache), in parallel over
blocks of queries; the PR curve alone skips the per-item records.
``backend="numpy"`` is an independent pure-numpy route (stable sorts of small-integer
distances) with identical integers and floats equal to rounding (~1e-15).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from egath_lite.metrics.inputs import PackedInputs, check_ks, check_topk, pack_codes, prepare_inputs

__all__ = [
    "average_precisions",
    "mean_average_precision",
    "pr_curve",
    "precision_at_k",
    "hamming_histograms",
    "evaluate_retrieval",
    "embedding_average_precisions",
    "map_from_embeddings",
    "pack_codes",
    "BACKENDS",
    "DEFINITIONS",
    "EMPTY_QUERIES",
]

BACKENDS = ("auto", "numba", "numpy")
DEFINITIONS = ("standard", "gcdh")  # AP@k over the top k ranks | GCDH's calc_map_k (first min(k, R) relevant items)
EMPTY_QUERIES = ("skip", "zero")  # mean over queries with a relevant item | over all queries, the others as 0
MAX_BITS = 32_767  # distances live in 15 bits of a uint16 buffer next to the relevance bit
_PROGRESS_PAIRS = 50_000_000  # show a progress bar when queries × items exceed this
_CHUNK_PAIRS = 1 << 29  # queries × items per kernel call by default (the NUS-WIDE queries: one call)


def _backend(name: str):
    """The kernel module for ``name``: numba (compiled on first call) or numpy."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {BACKENDS}")
    if name in ("auto", "numba"):
        try:
            from egath_lite.metrics import _numba_kernels
        except ImportError as exc:
            if name == "numba":
                raise ImportError(
                    f"backend='numba' needs numba ({exc}); `pip install numba` or pass backend='numpy'"
                ) from exc
        else:
            return _numba_kernels
    from egath_lite.metrics import _numpy_kernels

    return _numpy_kernels


def _prepare(query_codes, retrieval_codes, query_labels, retrieval_labels) -> PackedInputs:
    packed = prepare_inputs(query_codes, retrieval_codes, query_labels, retrieval_labels)
    if packed.num_bits > MAX_BITS:
        raise ValueError(f"codes have {packed.num_bits} bits; at most {MAX_BITS} are supported")
    if packed.num_retrieval >= 2**47:  # the kernels pack (position in distance group) << 16 | d into an int64
        raise ValueError(
            f"{packed.num_retrieval} retrieval items are more than the kernels can rank (2**47); "
            f"use egath_lite.serve.index.HammingIndex for top-K search at that scale"
        )
    return packed


def _chunked(
    kernels, name: str, packed: PackedInputs, *extra: Any, chunk_size: int | None, progress: bool | None
) -> tuple[np.ndarray, ...]:
    """Run ``kernels.<name>(qc, rc, ql, rl, num_bins, *extra, stripes)`` over chunks of queries; concatenate outputs."""
    kernel = getattr(kernels, name)
    desc = {
        "histograms": "Hamming histograms",
        "stable_ap": "mAP",
        "gcdh_ap": "mAP (GCDH)",
        "stable_hits": "precision@K",
        "sweep_all": "retrieval metrics",
    }[name]
    nq, n = packed.num_query, packed.num_retrieval
    if chunk_size is None:  # about half a second of one thread per call; fewer calls, fewer fixed costs
        chunk_size = max(512, _CHUNK_PAIRS // max(n, 1))
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}")
    if progress is None:
        progress = nq * n > _PROGRESS_PAIRS
    starts = range(0, nq, chunk_size)
    if progress:
        from egath_lite.progress import tqdm

        starts = tqdm(starts, desc=desc, unit="chunk", total=len(starts))
    parts = []
    for start in starts:
        rows = slice(start, min(nq, start + chunk_size))
        parts.append(
            kernel(
                packed.query_codes[rows],
                packed.retrieval_codes,
                packed.query_labels[rows],
                packed.retrieval_labels,
                packed.num_bits + 1,
                *extra,
                kernels.stripes(rows.stop - rows.start),
            )
        )
    return tuple(np.concatenate(outs) for outs in zip(*parts))


def hamming_histograms(
    query_codes,
    retrieval_codes,
    query_labels,
    retrieval_labels,
    *,
    backend: str = "auto",
    chunk_size: int | None = None,
    progress: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Items and relevant items at each Hamming distance 0…bits per query: int64 (n_query, bits+1) twice."""
    packed = _prepare(query_codes, retrieval_codes, query_labels, retrieval_labels)
    kernels = _backend(backend)
    return _chunked(kernels, "histograms", packed, chunk_size=chunk_size, progress=progress)


def _check_choice(name: str, value: Any, choices: tuple[str, ...], hint: str) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))} ({hint}), got {value!r}")


def average_precisions(
    query_codes,
    retrieval_codes,
    query_labels,
    retrieval_labels,
    topk: int | None = None,
    *,
    definition: str = "standard",
    tie_aware: bool = False,
    backend: str = "auto",
    chunk_size: int | None = None,
    progress: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-query AP@topk, float64 (n_query,) with NaN where undefined, and the valid mask bool (n_query,).

    A query is valid when at least one retrieval item shares a label with it. ``definition``:
    ``"standard"`` or GCDH's ``"gcdh"`` (see the module docstring).
    """
    topk = check_topk(topk)
    _check_choice("definition", definition, DEFINITIONS, "'standard': AP over the top k; 'gcdh': GCDH's calc_map_k")
    packed = _prepare(query_codes, retrieval_codes, query_labels, retrieval_labels)
    kernels = _backend(backend)
    cut = packed.num_retrieval if topk is None else topk
    if tie_aware:
        if cut < packed.num_retrieval:
            raise ValueError(
                "tie_aware=True is implemented for mAP@all only (topk=None): the expected AP@k "
                "normalised by the random number of hits in the top k has no closed form here"
            )
        # k >= n: both definitions are AP@all
        cnt, rcnt = _chunked(kernels, "histograms", packed, chunk_size=chunk_size, progress=progress)
        ap, num_rel = kernels.tie_aware_ap(cnt, rcnt), rcnt.sum(axis=1)
    else:
        kernel = "stable_ap" if definition == "standard" else "gcdh_ap"
        ap, num_rel = _chunked(kernels, kernel, packed, np.int64(cut), chunk_size=chunk_size, progress=progress)
    valid = num_rel > 0
    ap = np.where(valid, ap, np.nan)
    return ap, valid


def _check_empty_queries(empty_queries: str) -> None:
    _check_choice(
        "empty_queries", empty_queries, EMPTY_QUERIES, "'skip' (ours) or 'zero' (GCDH/DSPH: divide by all queries)"
    )


def _mean_over_queries(values: np.ndarray, valid: np.ndarray, empty_queries: str, what: str = "mAP") -> np.ndarray:
    """Mean over the valid queries (``skip``) or sum over them / all queries (``zero``) of values (n_query, ...)."""
    if not valid.any():
        raise ValueError(
            f"no query shares a label with any retrieval item, so {what} is undefined; "
            "check that the label matrices are aligned with the codes"
        )
    if empty_queries == "skip":
        return values[valid].mean(axis=0)
    return values[valid].sum(axis=0) / len(values)


def mean_average_precision(
    query_codes,
    retrieval_codes,
    query_labels,
    retrieval_labels,
    topk: int | None = None,
    *,
    definition: str = "standard",
    tie_aware: bool = False,
    empty_queries: str = "skip",
    backend: str = "auto",
    chunk_size: int | None = None,
    progress: bool | None = None,
) -> float:
    """mAP@topk (``None``: mAP@all) of Hamming ranking; see the module docstring for the conventions.

    ``definition="gcdh", empty_queries="zero"`` is GCDH's ``calc_map_k`` with a stable sort.
    """
    _check_empty_queries(empty_queries)
    ap, valid = average_precisions(
        query_codes,
        retrieval_codes,
        query_labels,
        retrieval_labels,
        topk,
        definition=definition,
        tie_aware=tie_aware,
        backend=backend,
        chunk_size=chunk_size,
        progress=progress,
    )
    return float(_mean_over_queries(ap, valid, empty_queries))


def _pr_from_histograms(cnt: np.ndarray, rcnt: np.ndarray, average: str) -> tuple[np.ndarray, np.ndarray]:
    """PR curve over radius 0…bits from per-distance histograms (n_query, bits+1)."""
    if average not in ("valid", "gcdh"):
        raise ValueError(f"average must be 'valid' (ours) or 'gcdh', got {average!r}")
    answered = np.cumsum(cnt, axis=1).astype(np.float64)  # items within radius r
    hits = np.cumsum(rcnt, axis=1).astype(np.float64)  # relevant items within radius r
    num_rel = rcnt.sum(axis=1)
    valid = num_rel > 0
    if not valid.any():
        raise ValueError("no query shares a label with any retrieval item, so the PR curve is undefined")
    if average == "gcdh":
        # GCDH utils.pr_curve: an empty answer counts 0/0.1; P and R are averaged over the
        # queries with P > 0 at that radius (0.1 guards an empty mask).
        p = np.where(valid[:, None], hits / np.where(answered == 0, 0.1, answered), 0.0)
        r = np.where(valid[:, None], hits / np.maximum(num_rel, 1)[:, None], 0.0)
        mask = (p > 0).sum(axis=0).astype(np.float64)
        mask[mask == 0] = 0.1
        return p.sum(axis=0) / mask, r.sum(axis=0) / mask
    hits, answered, num_rel = hits[valid], answered[valid], num_rel[valid]
    recall = (hits / num_rel[:, None]).mean(axis=0)
    non_empty = answered > 0
    p_sum = np.where(non_empty, hits / np.maximum(answered, 1), 0.0).sum(axis=0)
    n_answered = non_empty.sum(axis=0)
    precision = np.divide(p_sum, n_answered, out=np.full(len(p_sum), np.nan), where=n_answered > 0)
    return precision, recall


def pr_curve(
    query_codes,
    retrieval_codes,
    query_labels,
    retrieval_labels,
    *,
    average: str = "valid",
    backend: str = "auto",
    chunk_size: int | None = None,
    progress: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall of the answer "all items within Hamming radius r", float64 (bits+1,) each, index = r."""
    cnt, rcnt = hamming_histograms(
        query_codes,
        retrieval_codes,
        query_labels,
        retrieval_labels,
        backend=backend,
        chunk_size=chunk_size,
        progress=progress,
    )
    return _pr_from_histograms(cnt, rcnt, average)


def _expected_hits(cnt: np.ndarray, rcnt: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """Expected relevant items in the first K (K <= n) over random orders within ties, float64 (n_query, len(ks))."""
    items_through = np.cumsum(cnt, axis=1)
    rel_through = np.cumsum(rcnt, axis=1)
    out = np.zeros((cnt.shape[0], len(ks)), np.float64)
    rows = np.arange(cnt.shape[0])
    for b, k in enumerate(ks):
        g = (items_through < k).sum(axis=1)  # the distance group holding rank k
        before = items_through[rows, g] - cnt[rows, g]
        rel_before = rel_through[rows, g] - rcnt[rows, g]
        out[:, b] = rel_before + (k - before) * rcnt[rows, g] / cnt[rows, g]
    return out


def _precision_at_k(
    packed: PackedInputs, ks: np.ndarray, tie_aware: bool, kernels, chunk_size, progress, empty_queries: str = "skip"
) -> np.ndarray:
    cut = np.minimum(ks, packed.num_retrieval)
    if tie_aware:
        cnt, rcnt = _chunked(kernels, "histograms", packed, chunk_size=chunk_size, progress=progress)
        hits, num_rel = _expected_hits(cnt, rcnt, cut), rcnt.sum(axis=1)
    else:
        unique = np.unique(cut)
        hits_u, num_rel = _chunked(kernels, "stable_hits", packed, unique, chunk_size=chunk_size, progress=progress)
        hits = hits_u[:, np.searchsorted(unique, cut)]
    return _mean_over_queries(hits / cut, num_rel > 0, empty_queries, "precision@K")


def precision_at_k(
    query_codes,
    retrieval_codes,
    query_labels,
    retrieval_labels,
    ks,
    *,
    tie_aware: bool = False,
    empty_queries: str = "skip",
    backend: str = "auto",
    chunk_size: int | None = None,
    progress: bool | None = None,
) -> np.ndarray:
    """Mean precision of the first K items of the Hamming ranking for each K in ``ks``, float64 (len(ks),).

    ``empty_queries="zero"`` divides by all queries, as GCDH's ``p_topK`` (whose sort is unstable).
    """
    ks = check_ks(ks)
    _check_empty_queries(empty_queries)
    packed = _prepare(query_codes, retrieval_codes, query_labels, retrieval_labels)
    return _precision_at_k(packed, ks, tie_aware, _backend(backend), chunk_size, progress, empty_queries)


def evaluate_retrieval(
    query_codes,
    retrieval_codes,
    query_labels,
    retrieval_labels,
    ks=(50, 100, 500, 1000),
    *,
    backend: str = "auto",
    progress: bool | None = None,
) -> dict[str, Any]:
    """Every number of one retrieval direction as a JSON-able dict (mAP, tie-aware mAP, counts, PR, precision@K).

    One sweep over the packed codes per query computes them all; each equals its separate function
    (``mean_average_precision``, ``pr_curve``, ``precision_at_k``) to rounding.
    """
    ks = check_ks(ks)
    packed = _prepare(query_codes, retrieval_codes, query_labels, retrieval_labels)
    kernels = _backend(backend)
    n = packed.num_retrieval
    cut = np.minimum(ks, n)
    unique = np.unique(cut)
    # One sweep per query gives the stable APs, the hits in the first K and the per-distance histograms.
    ap, _, hits_u, cnt, rcnt = _chunked(kernels, "sweep_all", packed, n, 0, unique, chunk_size=None, progress=progress)
    valid = rcnt.sum(axis=1) > 0
    if not valid.any():
        raise ValueError("no query shares a label with any retrieval item; check the label matrices")
    ap_tie = kernels.tie_aware_ap(cnt, rcnt)
    precision, recall = _pr_from_histograms(cnt, rcnt, "valid")
    p_at_k = _mean_over_queries(hits_u[:, np.searchsorted(unique, cut)] / cut, valid, "skip", "precision@K")
    return {
        "map": float(ap[valid].mean()),
        "map_tie_aware": float(ap_tie[valid].mean()),
        "map_all_queries_denominator": float(ap[valid].sum() / len(ap)),
        "num_queries": int(len(ap)),
        "num_skipped_queries": int((~valid).sum()),
        "num_retrieval": int(packed.num_retrieval),
        "num_bits": int(packed.num_bits),
        "pr_precision": [None if np.isnan(p) else float(p) for p in precision],  # None: no answer at r
        "pr_recall": recall.tolist(),
        "ks": ks.tolist(),
        "precision_at_k": p_at_k.tolist(),
    }


from egath_lite.metrics._embeddings import embedding_average_precisions, map_from_embeddings  # noqa: E402
