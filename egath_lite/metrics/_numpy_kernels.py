"""Pure-numpy kernels with the same outputs as ``_numba_kernels`` (integers exactly, floats to rounding).

A second, independent route: distances for a chunk of queries at once (XOR + popcount of
packed words), then a *stable sort* of each row of small-integer distances (numpy uses a
radix sort for uint8/uint16 keys, so it stays O(n)). Used when numba is unavailable and
to cross-check the compiled kernels in the tests.
"""

from __future__ import annotations

import numpy as np

from egath_lite.metrics.inputs import popcount

# Bytes of temporaries per (query, retrieval) pair in a chunk; keeps a chunk near 64 MB.
_CHUNK_BYTES = 64 * 2**20
_BYTES_PER_PAIR = 48


def stripes(num_query: int) -> int:
    """The numpy kernels run one chunk at a time; kept for the compiled kernels' signature."""
    return 1


def _chunk_rows(num_retrieval: int) -> int:
    return max(1, _CHUNK_BYTES // (_BYTES_PER_PAIR * max(1, num_retrieval)))


def relevance(ql, rl):
    """Shares at least one label: bool (c, n) from packed label masks (c, words) and (n, words)."""
    rel = np.zeros((ql.shape[0], rl.shape[0]), bool)
    for w in range(ql.shape[1]):
        rel |= (ql[:, None, w] & rl[None, :, w]) != 0
    return rel


def _distances_and_relevance(qc, rc, ql, rl):
    """Hamming distances uint16 (c, n) and relevance bool (c, n) for a chunk of queries."""
    dist = np.zeros((qc.shape[0], rc.shape[0]), np.uint16)
    for w in range(qc.shape[1]):
        dist += popcount(qc[:, None, w] ^ rc[None, :, w])
    return dist, relevance(ql, rl)


def ap_from_sorted_relevance(rel_sorted, cut):
    """AP of each row of a ranked relevance matrix bool (c, n) over its first ``cut`` ranks, float64 (c,)."""
    rel_sorted = rel_sorted[:, :cut]
    ranks = np.arange(1, rel_sorted.shape[1] + 1, dtype=np.float64)
    rel_so_far = np.cumsum(rel_sorted, axis=1)
    hits = rel_so_far[:, -1]
    precision_sum = np.where(rel_sorted, rel_so_far / ranks, 0.0).sum(axis=1)
    return np.divide(precision_sum, hits, out=np.zeros(len(hits)), where=hits > 0)


def _chunks(nq: int, n: int):
    step = _chunk_rows(n)
    for start in range(0, nq, step):
        yield slice(start, min(nq, start + step))


def histograms(qc, rc, ql, rl, num_bins, stripes=1):
    """Per query: items and relevant items at each Hamming distance, int64 (n_query, num_bins) twice."""
    nq, n = qc.shape[0], rc.shape[0]
    cnt = np.zeros((nq, num_bins), np.int64)
    rcnt = np.zeros((nq, num_bins), np.int64)
    for rows in _chunks(nq, n):
        dist, rel = _distances_and_relevance(qc[rows], rc, ql[rows], rl)
        c = dist.shape[0]
        flat = (dist.astype(np.int64) + num_bins * np.arange(c)[:, None]).ravel()
        cnt[rows] = np.bincount(flat, minlength=c * num_bins).reshape(c, num_bins)
        rcnt[rows] = np.bincount(flat[rel.ravel()], minlength=c * num_bins).reshape(c, num_bins)
    return cnt, rcnt


def _sorted_relevance(qc, rc, ql, rl):
    """Relevance in stable Hamming order, bool (c, n), and #relevant per query."""
    dist, rel = _distances_and_relevance(qc, rc, ql, rl)
    order = np.argsort(dist, axis=1, kind="stable")
    return np.take_along_axis(rel, order, axis=1), rel.sum(axis=1)


def stable_ap(qc, rc, ql, rl, num_bins, topk, stripes=1):
    """Per query: AP over the stable ranking cut at ``topk`` (float64) and #relevant items overall (int64)."""
    nq, n = qc.shape[0], rc.shape[0]
    ap = np.zeros(nq, np.float64)
    num_rel = np.zeros(nq, np.int64)
    cut = min(int(topk), n)
    for rows in _chunks(nq, n):
        rel_sorted, total = _sorted_relevance(qc[rows], rc, ql[rows], rl)
        ap[rows] = ap_from_sorted_relevance(rel_sorted, cut)
        num_rel[rows] = total
    return ap, num_rel


def gcdh_ap(qc, rc, ql, rl, num_bins, topk, stripes=1):
    """Per query: GCDH's AP@k, mean of i / rank_i over the first min(k, R) relevant items (float64), and R (int64)."""
    nq, n = qc.shape[0], rc.shape[0]
    ap = np.zeros(nq, np.float64)
    num_rel = np.zeros(nq, np.int64)
    ranks = np.arange(1, n + 1, dtype=np.float64)
    for rows in _chunks(nq, n):
        rel_sorted, total_rel = _sorted_relevance(qc[rows], rc, ql[rows], rl)
        rel_so_far = np.cumsum(rel_sorted, axis=1)
        total = np.minimum(int(topk), total_rel)
        counted = rel_sorted & (rel_so_far <= total[:, None])  # the first `total` relevant items, wherever they rank
        precision_sum = np.where(counted, rel_so_far / ranks, 0.0).sum(axis=1)
        ap[rows] = np.divide(precision_sum, total, out=np.zeros(len(total)), where=total > 0)
        num_rel[rows] = total_rel
    return ap, num_rel


def stable_hits(qc, rc, ql, rl, num_bins, ks, stripes=1):
    """Per query: relevant items within the first K of the stable ranking for each sorted K, int64 (n_query, len(ks))."""
    nq, n = qc.shape[0], rc.shape[0]
    hits = np.zeros((nq, len(ks)), np.int64)
    num_rel = np.zeros(nq, np.int64)
    for rows in _chunks(nq, n):
        rel_sorted, total = _sorted_relevance(qc[rows], rc, ql[rows], rl)
        rel_so_far = np.cumsum(rel_sorted, axis=1)
        hits[rows] = rel_so_far[:, np.minimum(ks, n) - 1]
        num_rel[rows] = total
    return hits, num_rel


def sweep_all(qc, rc, ql, rl, num_bins, topk, gcdh_topk, ks, stripes=1):
    """The compiled ``evaluate``'s outputs, from the separate routes: AP@topk, GCDH AP@gcdh_topk, hits, cnt, rcnt."""
    nq = qc.shape[0]
    ap = stable_ap(qc, rc, ql, rl, num_bins, topk)[0] if topk > 0 else np.zeros(nq)
    ap_gcdh = gcdh_ap(qc, rc, ql, rl, num_bins, gcdh_topk)[0] if gcdh_topk > 0 else np.zeros(nq)
    ks = np.asarray(ks, np.int64)
    hits = stable_hits(qc, rc, ql, rl, num_bins, ks)[0] if len(ks) else np.zeros((nq, 0), np.int64)
    cnt, rcnt = histograms(qc, rc, ql, rl, num_bins)
    return ap, ap_gcdh, hits, cnt, rcnt


def tie_aware_ap(cnt, rcnt):
    """Expected AP@all over uniformly random orders within each distance (McSherry & Najork 2008), float64 (n_query,)."""
    nq, num_bins = cnt.shape
    ap = np.zeros(nq, np.float64)
    items_before = np.cumsum(cnt, axis=1) - cnt
    rel_before = np.cumsum(rcnt, axis=1) - rcnt
    for i in range(nq):
        total_rel = rcnt[i].sum()
        if total_rel == 0:
            continue
        total = 0.0
        for d in np.flatnonzero(rcnt[i]):
            n_g, r_g, before = int(cnt[i, d]), int(rcnt[i, d]), int(items_before[i, d])
            inv = 1.0 / np.arange(before + 1, before + n_g + 1, dtype=np.float64)
            within = 0.0 if n_g == 1 else (r_g - 1) / (n_g - 1)
            lead_sum = (np.arange(n_g, dtype=np.float64) * inv).sum()
            total += (r_g / n_g) * ((rel_before[i, d] + 1) * inv.sum() + within * lead_sum)
        ap[i] = total / total_rel
    return ap
