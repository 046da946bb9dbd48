"""Compiled (numba) kernels: per-query Hamming histograms and stable ranks without sorting.

Imported lazily by ``egath_lite.metrics`` on first use, so importing the package compiles
nothing; ``cache=True`` keeps the machine code on disk after the first call.

One sweep over the retrieval set per query (queries in parallel): each item's Hamming
distance ``d`` (XOR + POPCNT on packed words) and relevance (AND of label bitmasks). The
stable rank of item ``j`` (ties broken by index) is

    rank_j = #items closer than d_j + #items at d_j with index < j + 1,

and the second term is just the running count of distance ``d_j`` at the moment the sweep
reaches ``j``. So the sweep counts items and relevant items per distance and, for each
relevant item only, records (its position inside its distance group, d). After the sweep
the per-distance counts give "#items closer than d", and a short pass over the relevant
items turns the records into ranks and precisions. Nothing is sorted, the retrieval set is
read once, and no query × retrieval matrix exists. The sweep has no data-dependent branch
(relevance is ~50/50 and a branch on it mispredicts half the time): every item writes a
record at slot ``h`` and only relevant items advance ``h``.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic


def stripes(num_query: int) -> int:
    """How many interleaved stripes of queries to spread over the threads (a few per thread balances load)."""
    return max(1, min(num_query, 4 * numba.get_num_threads()))


@intrinsic
def _popcount64(typingctx, x):
    """LLVM ctpop on a uint64: one POPCNT instruction on x86-64."""
    if not isinstance(x, types.Integer):
        return None
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return sig, codegen


@njit(cache=True, nogil=True)
def _distance_and_relevance(q_code, rc, q_label, rl, j):
    """Hamming distance and relevance (0/1) of retrieval item j to the query, on packed words."""
    d = np.uint64(0)
    for w in range(rc.shape[1]):
        d += _popcount64(q_code[w] ^ rc[j, w])
    rel = 0
    for w in range(rl.shape[1]):
        if (q_label[w] & rl[j, w]) != 0:
            rel = 1
    return np.int64(d), rel


@njit(cache=True, nogil=True)
def _count(q_code, rc, q_label, rl, cnt, rcnt):
    """cnt[d], rcnt[d] = items and relevant items at distance d from the query (arrays zeroed here)."""
    cnt[:] = 0
    rcnt[:] = 0
    if rc.shape[1] == 1 and rl.shape[1] == 1:
        # The common case (<= 64 bits, <= 64 labels): no inner loops, so LLVM keeps it tight.
        qw, lw = q_code[0], q_label[0]
        for j in range(rc.shape[0]):
            d = np.int64(_popcount64(qw ^ rc[j, 0]))
            cnt[d] += 1
            rcnt[d] += np.int64((lw & rl[j, 0]) != 0)
        return
    for j in range(rc.shape[0]):
        d, rel = _distance_and_relevance(q_code, rc, q_label, rl, j)
        cnt[d] += 1
        rcnt[d] += rel


@njit(cache=True, nogil=True)
def _sweep(q_code, rc, q_label, rl, cnt, rcnt, found):
    """Count per distance and record each relevant item as (position in its distance group) << 16 | d; return how many."""
    cnt[:] = 0
    rcnt[:] = 0
    h = 0
    if rc.shape[1] == 1 and rl.shape[1] == 1:
        qw, lw = q_code[0], q_label[0]
        for j in range(rc.shape[0]):
            d = np.int64(_popcount64(qw ^ rc[j, 0]))
            rel = np.int64((lw & rl[j, 0]) != 0)
            position = cnt[d]  # items at distance d with a smaller index
            cnt[d] = position + 1
            rcnt[d] += rel
            found[h] = (position << 16) | d
            h += rel  # branch-free: only a relevant item keeps its record
        return h
    for j in range(rc.shape[0]):
        d, rel = _distance_and_relevance(q_code, rc, q_label, rl, j)
        position = cnt[d]
        cnt[d] = position + 1
        rcnt[d] += rel
        found[h] = (position << 16) | d
        h += rel
    return h


@njit(cache=True, nogil=True)
def _rank_offsets(cnt, rcnt, first_rank, rel_counter):
    """first_rank[d] = 1 + #items closer than d; rel_counter[d] = #relevant items closer than d; returns #relevant."""
    items_before = 0
    rel_before = 0
    for d in range(cnt.shape[0]):
        first_rank[d] = items_before + 1
        rel_counter[d] = rel_before
        items_before += cnt[d]
        rel_before += rcnt[d]
    return rel_before


@njit(cache=True, nogil=True)
def _precision_sum(found, h, first_rank, rel_counter, cut):
    """Sum of precision at the rank of every recorded relevant item ranked within ``cut``, and their number."""
    total = 0.0
    hits = 0
    for t in range(h):  # records are in index order, so within a distance they are in rank order
        x = found[t]
        d = x & 0xFFFF
        rank = first_rank[d] + (x >> 16)
        if rank > cut:
            continue
        rel_rank = rel_counter[d] + 1  # relevant items ranked at or before this one
        rel_counter[d] = rel_rank
        total += rel_rank / rank
        hits += 1
    return total, hits


@njit(cache=True, parallel=True)
def histograms(qc, rc, ql, rl, num_bins, stripes):
    """Per query: items and relevant items at each Hamming distance, int64 (n_query, num_bins) twice."""
    nq = qc.shape[0]
    cnt = np.zeros((nq, num_bins), np.int64)
    rcnt = np.zeros((nq, num_bins), np.int64)
    for s in prange(stripes):  # a stripe = queries s, s + stripes, ...; a few stripes per thread balance load
        for i in range(s, nq, stripes):
            _count(qc[i], rc, ql[i], rl, cnt[i], rcnt[i])
    return cnt, rcnt


@njit(cache=True, parallel=True)
def stable_ap(qc, rc, ql, rl, num_bins, topk, stripes):
    """Per query: AP over the stable ranking cut at ``topk`` (float64) and #relevant items overall (int64)."""
    nq = qc.shape[0]
    n = rc.shape[0]
    ap = np.zeros(nq, np.float64)
    num_rel = np.zeros(nq, np.int64)
    for s in prange(stripes):
        cnt = np.empty(num_bins, np.int64)  # per-thread buffers, allocated once per stripe
        rcnt = np.empty(num_bins, np.int64)
        first_rank = np.empty(num_bins, np.int64)
        rel_counter = np.empty(num_bins, np.int64)
        found = np.empty(n + 1, np.int64)  # +1: the branch-free sweep writes one slot past the last record
        for i in range(s, nq, stripes):
            h = _sweep(qc[i], rc, ql[i], rl, cnt, rcnt, found)
            num_rel[i] = _rank_offsets(cnt, rcnt, first_rank, rel_counter)
            total, hits = _precision_sum(found, h, first_rank, rel_counter, topk)
            if hits > 0:
                ap[i] = total / hits
    return ap, num_rel


@njit(cache=True, nogil=True)
def _first_relevant_precision_sum(found, h, first_rank, rel_counter, total):
    """Sum of precision at the ranks of the first ``total`` relevant items of the ranking, wherever they rank."""
    s = 0.0
    for t in range(h):
        x = found[t]
        d = x & 0xFFFF
        rel_rank = rel_counter[d] + 1  # this item is the rel_rank-th relevant item of the ranking
        rel_counter[d] = rel_rank
        if rel_rank <= total:
            s += rel_rank / (first_rank[d] + (x >> 16))
    return s


@njit(cache=True, parallel=True)
def gcdh_ap(qc, rc, ql, rl, num_bins, topk, stripes):
    """Per query: GCDH's AP@k, mean of i / rank_i over the first min(k, R) relevant items (float64), and R (int64)."""
    nq = qc.shape[0]
    n = rc.shape[0]
    ap = np.zeros(nq, np.float64)
    num_rel = np.zeros(nq, np.int64)
    for s in prange(stripes):
        cnt = np.empty(num_bins, np.int64)
        rcnt = np.empty(num_bins, np.int64)
        first_rank = np.empty(num_bins, np.int64)
        rel_counter = np.empty(num_bins, np.int64)
        found = np.empty(n + 1, np.int64)
        for i in range(s, nq, stripes):
            h = _sweep(qc[i], rc, ql[i], rl, cnt, rcnt, found)
            r = _rank_offsets(cnt, rcnt, first_rank, rel_counter)
            num_rel[i] = r
            total = min(topk, r)
            if total > 0:
                ap[i] = _first_relevant_precision_sum(found, h, first_rank, rel_counter, total) / total
    return ap, num_rel


@njit(cache=True, parallel=True)
def stable_hits(qc, rc, ql, rl, num_bins, ks, stripes):
    """Per query: relevant items within the first K of the stable ranking for each K of the sorted ``ks``, int64 (n_query, len(ks))."""
    nq = qc.shape[0]
    n = rc.shape[0]
    nk = ks.shape[0]
    kmax = ks[nk - 1]
    hits = np.zeros((nq, nk), np.int64)
    num_rel = np.zeros(nq, np.int64)
    for s in prange(stripes):
        cnt = np.empty(num_bins, np.int64)
        rcnt = np.empty(num_bins, np.int64)
        first_rank = np.empty(num_bins, np.int64)
        rel_counter = np.empty(num_bins, np.int64)
        found = np.empty(n + 1, np.int64)
        per_bucket = np.empty(nk, np.int64)
        for i in range(s, nq, stripes):
            h = _sweep(qc[i], rc, ql[i], rl, cnt, rcnt, found)
            num_rel[i] = _rank_offsets(cnt, rcnt, first_rank, rel_counter)
            per_bucket[:] = 0
            for t in range(h):  # a hit at rank r counts for every K >= r
                x = found[t]
                rank = first_rank[x & 0xFFFF] + (x >> 16)
                if rank <= kmax:
                    per_bucket[np.searchsorted(ks, rank)] += 1
            running = 0
            for b in range(nk):
                running += per_bucket[b]
                hits[i, b] = running
    return hits, num_rel


@njit(cache=True, nogil=True)
def _tie_group(items_before, rel_before, n_g, r_g):
    """Expected sum of precision-at-rank over one tie group's relevant items (McSherry & Najork 2008)."""
    # Position N+i holds a relevant item with probability r/n; given that, the expected
    # number of relevant items ahead of it inside the group is (i-1)(r-1)/(n-1).
    inv_sum = 0.0  # sum_i 1 / (N + i)
    lead_sum = 0.0  # sum_i (i - 1) / (N + i)
    for i in range(1, n_g + 1):
        inv = 1.0 / (items_before + i)
        inv_sum += inv
        lead_sum += (i - 1) * inv
    within = 0.0 if n_g == 1 else (r_g - 1) / (n_g - 1)
    return (r_g / n_g) * ((rel_before + 1) * inv_sum + within * lead_sum)


@njit(cache=True, parallel=True)
def tie_aware_ap(cnt, rcnt):
    """Expected AP@all over uniformly random orders within each distance, float64 (n_query,), from the histograms."""
    nq = cnt.shape[0]
    num_bins = cnt.shape[1]
    ap = np.zeros(nq, np.float64)
    for i in prange(nq):
        total_rel = rcnt[i].sum()
        if total_rel == 0:
            continue
        items_before = np.int64(0)
        rel_before = np.int64(0)
        total = 0.0
        for d in range(num_bins):
            n_g = cnt[i, d]
            r_g = rcnt[i, d]
            if r_g > 0:
                total += _tie_group(items_before, rel_before, n_g, r_g)
            items_before += n_g
            rel_before += r_g
        ap[i] = total / total_rel
    return ap
