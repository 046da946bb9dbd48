"""Compiled (numba) kernels: per-query Hamming histograms and stable ranks without sorting, in one sweep.

Imported lazily by ``egath_lite.metrics`` on first use, so importing the package compiles
nothing; ``cache=True`` keeps the machine code on disk after the first call.

The stable rank of retrieval item ``j`` at Hamming distance ``d`` (ties broken by index) is

    rank_j = 1 + #items closer than d + #items at d with index < j,

and its rank among the relevant items is the same count over relevant items only. One
sweep per query computes both without sorting:

1. **Distances and relevance** of every item into two small buffers (XOR + POPCNT of the
   packed code words; OR of the ANDs of the packed label words, tested once). Loops with a
   fixed word count (1 or 2 words, the generic loop otherwise) compile to straight-line,
   vectorised code, so 80 labels (2 words) cost what 64 do.
2. **Counting**: the retrieval set is cut into ``SEGMENTS`` contiguous segments swept side
   by side, each with its own counters per distance. A counter holds "items seen at d" in
   its low 24 bits and "relevant items seen at d" above them, so one load/add/store updates
   both, and the four segments' counters form four independent dependency chains (a single
   histogram stalls on store-to-load forwarding whenever consecutive items share a
   distance). Every item writes a record ``counter << 16 | d`` at its segment's slot ``h``
   and only relevant items advance ``h`` (no data-dependent branch: relevance is near
   50/50 and a branch on it mispredicts half the time).
3. **Ranks**: after the sweep, per-distance offsets (items and relevant items closer, plus
   those at the same distance in earlier segments) turn each record into its rank and
   relevant rank with no running state, and precision = relevant rank × 1/rank (a table of
   reciprocals instead of a division per item). mAP, AP@k, GCDH's AP@k, the hits in the
   first K and the per-distance histograms (PR curve, tie-aware mAP) all come from this one
   sweep (``evaluate``).

Nothing is sorted and no query × retrieval matrix exists. Segments hold at most ``2**23 - 1``
items (the counter's fields); larger retrieval sets use more segments, four at a time.

**Query-blocked sweep** (``evaluate_blocked``; used whenever the retrieval set has at most
``BLOCKED_MAX_N`` = 2**24 - 1 items and the codes at most 8,191 bits, i.e. always in practice): the same idea,
but the four independent chains are four *queries* instead of four segments, and the retrieval set is read in
chunks of ``CHUNK`` items, each chunk once for the four queries:

1. ``_keys4``: one vectorised pass over the chunk's packed words computes, for each of the four queries, the
   key ``4 d | relevant << 15`` (uint16) of every item: the counter's slot (the four queries' counters
   interleaved) and the relevance bit. Eight items at a time, with explicit 8-lane vectors (``_keys8``), so
   that CPUs with AVX-512 run it in 512-bit registers (LLVM's loop vectoriser stops at 256 bits there).
2. ``_sweep4``: a scalar pass over the keys, the four queries unrolled, two items per query at a time. Each
   counter starts at ``d << 48`` and holds ``items << 24 | relevant`` below, so that the counter *is* the
   record (distance, items and relevant items seen at d) and one add of ``1 << 24 | relevant`` updates it.
   The two items' records are stored back to back: two stores to one cache line in a row retire in one
   cycle, and the stores (one counter and one record per item and query) are what bounds this loop.
3. The records are turned into ranks per query as above, with one table ``shift[d]`` (rank and relevant
   rank of the first item at d, minus ``d << 48``) added to each record, and precision is a vectorised
   division (relevant rank / rank): at NUS-WIDE size the segmented sweep's table of reciprocals (1.5 MB, read at
   random ranks) misses the caches that the sweep has just filled with codes and records.

Reading each chunk once for four queries keeps the codes and labels in L1/L2 (swept per query,
the 184,477 NUS-WIDE items' codes and labels, 3 MB, stream from L3 for every query).
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

SEGMENTS = 4  # segments swept side by side (independent counter chains)
_FIELD = 24  # bits of "items seen" in a counter; "relevant items seen" sits above
_LOW = (1 << _FIELD) - 1
_SEGMENT_MAX = (1 << 23) - 1  # relevant-items field (<< 24) and the record's << 16 stay inside int64


def stripes(num_query: int) -> int:
    """How many interleaved stripes of queries to spread over the threads (a few per thread balances load).

    One thread sweeps one stripe: each stripe allocates its own record buffer (6 MB at NUS-WIDE size), and
    touching fresh pages for stripes that run one after the other only costs page faults.
    """
    threads = numba.get_num_threads()
    return max(1, min(num_query, 1 if threads == 1 else 4 * threads))


@intrinsic
def _popcount64(typingctx, x):
    """LLVM ctpop on a uint64: one POPCNT instruction on x86-64 (vectorised VPOPCNTQ where the CPU has it)."""
    if not isinstance(x, types.Integer):
        return None
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return sig, codegen


def segment_layout(n: int) -> tuple[int, int]:
    """(number of segments, a multiple of SEGMENTS; items per segment) for ``n`` retrieval items."""
    groups = max(1, -(-n // (SEGMENTS * _SEGMENT_MAX)))
    nseg = SEGMENTS * groups
    return nseg, max(1, -(-n // nseg))


_segment_layout = njit(cache=True, nogil=True)(segment_layout)


@njit(cache=True, nogil=True, inline="always")
def _item(q_code, qw, rc, q_label, lw_, rl, j, cw, lw):
    """Hamming distance and relevance (0/1) of item j, uint64 both (unsigned: no wrap-around when used as an index).

    ``rc``/``rl`` item-major (n, words): ``_item_t`` on their transposed views (no copy). ``cw``/``lw``: tuples as
    long as the code/label words when that is 1…4 (a compile-time constant: the query's words ``qw``/``lw_`` stay in
    registers and the word loop unrolls), else empty (a loop over the words).
    """
    return _item_t(q_code, qw, rc.T, q_label, lw_, rl.T, j, cw, lw)


def word_tokens(code_words: int, label_words: int) -> tuple[tuple, tuple]:
    """The ``cw``/``lw`` arguments of the kernels: one entry per word for 1…4 words, empty beyond."""
    return ((0,) * code_words if code_words <= 4 else ()), ((0,) * label_words if label_words <= 4 else ())


@njit(cache=True, nogil=True, inline="always")
def _first_words(x):
    """The first four words of a packed row as a tuple (repeating the last one when it has fewer)."""
    last = x.shape[0] - 1
    return (x[0], x[min(1, last)], x[min(2, last)], x[min(3, last)])


@njit(cache=True, nogil=True)
def _four(q_code, qw, rc, q_label, lw_, rl, c0, c1, c2, c3, found, start, m, common, f, stride, cw, lw):
    """Sweep items start + i + s·m (i < common) of four segments s = 0…3 side by side; return their record counts."""
    # Unsigned indices: numba adds a negative-index wrap-around to every signed index, which halves the speed here.
    m = np.uint64(m)
    m2, m3 = m + m, m + m + m
    h0 = np.uint64(f)
    h1 = h0 + np.uint64(stride)
    h2 = h1 + np.uint64(stride)
    h3 = h2 + np.uint64(stride)
    for j in range(np.uint64(start), np.uint64(start + common)):
        d, r = _item(q_code, qw, rc, q_label, lw_, rl, j, cw, lw)
        c = c0[d]
        c0[d] = c + 1 + (np.int64(r) << _FIELD)
        found[h0] = (c << 16) | np.int64(d)
        h0 += r
        d, r = _item(q_code, qw, rc, q_label, lw_, rl, j + m, cw, lw)
        c = c1[d]
        c1[d] = c + 1 + (np.int64(r) << _FIELD)
        found[h1] = (c << 16) | np.int64(d)
        h1 += r
        d, r = _item(q_code, qw, rc, q_label, lw_, rl, j + m2, cw, lw)
        c = c2[d]
        c2[d] = c + 1 + (np.int64(r) << _FIELD)
        found[h2] = (c << 16) | np.int64(d)
        h2 += r
        d, r = _item(q_code, qw, rc, q_label, lw_, rl, j + m3, cw, lw)
        c = c3[d]
        c3[d] = c + 1 + (np.int64(r) << _FIELD)
        found[h3] = (c << 16) | np.int64(d)
        h3 += r
    return np.int64(h0) - f, np.int64(h1) - f - stride, np.int64(h2) - f - 2 * stride, np.int64(h3) - f - 3 * stride


@njit(cache=True, nogil=True)
def _sweep(q_code, rc, q_label, rl, counters, found, cw, lw):
    """Count per segment and distance, write the relevant items' records; return each segment's record count.

    ``counters`` int64 (nseg, num_bins) ends with items | relevant << 24 per (segment, d); segment ``s``'s
    records are ``found[s * (seg_len + 1) : ... + h[s]]``, in index order.
    """
    n = rc.shape[0]
    nseg, seg_len = _segment_layout(n)
    stride = seg_len + 1
    counters[:] = 0
    h = np.zeros(nseg, np.int64)
    qw = _first_words(q_code)
    lw_ = _first_words(q_label)
    for g in range(0, nseg, SEGMENTS):
        start = g * seg_len
        # the last segments may be short or empty: sweep all four while all have items, then the rest one by one
        common = max(0, min(seg_len, n - start - 3 * seg_len))
        h[g], h[g + 1], h[g + 2], h[g + 3] = _four(
            q_code,
            qw,
            rc,
            q_label,
            lw_,
            rl,
            counters[g],
            counters[g + 1],
            counters[g + 2],
            counters[g + 3],
            found,
            start,
            seg_len,
            common,
            g * stride,
            stride,
            cw,
            lw,
        )
        for s in range(g, g + SEGMENTS):
            cs = counters[s]
            hs = s * stride + h[s]
            for j in range(s * seg_len + common, min(n, (s + 1) * seg_len)):
                d, r = _item(q_code, qw, rc, q_label, lw_, rl, j, cw, lw)
                c = cs[d]
                cs[d] = c + 1 + (np.int64(r) << _FIELD)
                found[hs] = (c << 16) | np.int64(d)
                hs += np.int64(r)
            h[s] = hs - s * stride
    return h


@njit(cache=True, nogil=True)
def _offsets(counters, cnt, rcnt, base, rbase):
    """Histograms cnt/rcnt (num_bins,) and per (segment, d) the rank and relevant rank of its first item; returns #relevant."""
    nseg, num_bins = counters.shape
    cnt[:] = 0
    rcnt[:] = 0
    for s in range(nseg):
        for d in range(num_bins):
            c = counters[s, d]
            cnt[d] += c & _LOW
            rcnt[d] += c >> _FIELD
    items_before = 1
    rel_before = 1
    for d in range(num_bins):
        a, r = items_before, rel_before
        for s in range(nseg):
            c = counters[s, d]
            base[s, d] = a
            rbase[s, d] = r
            a += c & _LOW
            r += c >> _FIELD
        items_before += cnt[d]
        rel_before += rcnt[d]
    return rel_before - 1


# The passes over the records: unsigned indices (no wrap-around code) and a reassociated float sum (fastmath), so
# LLVM vectorises them; the sum's order changes the result by rounding only (~1e-16 relative).
@njit(cache=True, nogil=True, fastmath=True)
def _ap_sum(found, h, stride, base, rbase, inv, cut, n):
    """Sum of precision at every relevant item ranked within ``cut`` and their number (AP@cut = sum / number)."""
    total = 0.0
    hits = 0
    for s in range(h.shape[0]):
        bs, rs = base[s], rbase[s]
        f = np.uint64(s * stride)
        if cut >= n:  # AP@all: every relevant item counts
            for t in range(f, f + np.uint64(h[s])):
                x = found[t]
                d = np.uint64(x & 0xFFFF)
                c = x >> 16
                total += (rs[d] + (c >> _FIELD)) * inv[np.uint64(bs[d] + (c & _LOW))]
            hits += h[s]
            continue
        for t in range(f, f + np.uint64(h[s])):
            x = found[t]
            d = np.uint64(x & 0xFFFF)
            c = x >> 16
            rank = bs[d] + (c & _LOW)
            if rank <= cut:
                total += (rs[d] + (c >> _FIELD)) * inv[np.uint64(rank)]
                hits += 1
    return total, hits


@njit(cache=True, nogil=True, fastmath=True)
def _gcdh_sum(found, h, stride, base, rbase, inv, total_rel):
    """Sum of precision at the ranks of the first ``total_rel`` relevant items of the ranking, wherever they rank."""
    total = 0.0
    for s in range(h.shape[0]):
        bs, rs = base[s], rbase[s]
        f = np.uint64(s * stride)
        for t in range(f, f + np.uint64(h[s])):
            x = found[t]
            d = np.uint64(x & 0xFFFF)
            c = x >> 16
            rel_rank = rs[d] + (c >> _FIELD)
            if rel_rank <= total_rel:
                total += rel_rank * inv[np.uint64(bs[d] + (c & _LOW))]
    return total


@njit(cache=True, nogil=True)
def _cumulate(per_bucket, out):
    """out[b] = per_bucket[0] + … + per_bucket[b]: relevant items within the first ks[b] ranks, from the counts between consecutive ks."""
    running = 0
    for b in range(out.shape[0]):
        running += per_bucket[b]
        out[b] = running


@njit(cache=True, nogil=True)
def _hits_at(found, h, stride, base, ks, per_bucket, out):
    """out[b] = relevant items within the first ks[b] ranks (``ks`` sorted ascending)."""
    nk = ks.shape[0]
    kmax = ks[nk - 1]
    per_bucket[:] = 0
    for s in range(h.shape[0]):
        bs = base[s]
        f = s * stride
        for t in range(f, f + h[s]):
            x = found[t]
            rank = bs[x & 0xFFFF] + ((x >> 16) & _LOW)
            if rank <= kmax:  # rarely true (K << n): well predicted
                per_bucket[np.searchsorted(ks, rank)] += 1
    _cumulate(per_bucket, out)


@njit(cache=True, nogil=True)
def _reciprocals(n):
    """inv[r] = 1 / r for r = 1 … n (inv[0] = 0)."""
    inv = np.zeros(n + 1, np.float64)
    for r in range(1, n + 1):
        inv[r] = 1.0 / r
    return inv


@njit(cache=True, nogil=True)
def _buffers(n, num_bins):
    nseg, seg_len = _segment_layout(n)
    counters = np.empty((nseg, num_bins), np.int64)
    found = np.empty(nseg * (seg_len + 1), np.int64)  # +1 per segment: the branch-free sweep writes one slot past
    base = np.empty((nseg, num_bins), np.int64)
    rbase = np.empty((nseg, num_bins), np.int64)
    return counters, found, base, rbase, seg_len + 1


@njit(cache=True, parallel=True)
def evaluate(qc, rc, ql, rl, num_bins, topk, gcdh_topk, ks, stripes, cw, lw):
    """Everything of one sweep per query.

    Returns AP@topk (float64 (n_query,); ``topk`` >= n gives AP@all), GCDH's AP@gcdh_topk (float64;
    ``gcdh_topk`` <= 0 skips it), hits in the first K for the sorted ``ks`` (int64 (n_query, len(ks)); an
    empty ``ks`` skips them) and the histograms cnt, rcnt (int64 (n_query, num_bins) each).
    """
    nq = qc.shape[0]
    n = rc.shape[0]
    nk = ks.shape[0]
    ap = np.zeros(nq, np.float64)
    ap_gcdh = np.zeros(nq, np.float64)
    hits = np.zeros((nq, nk), np.int64)
    cnt = np.zeros((nq, num_bins), np.int64)
    rcnt = np.zeros((nq, num_bins), np.int64)
    inv = _reciprocals(n)
    for s in prange(stripes):  # a stripe = queries s, s + stripes, ...; a few stripes per thread balance load
        counters, found, base, rbase, stride = _buffers(n, num_bins)
        per_bucket = np.empty(max(nk, 1), np.int64)
        for i in range(s, nq, stripes):
            h = _sweep(qc[i], rc, ql[i], rl, counters, found, cw, lw)
            r = _offsets(counters, cnt[i], rcnt[i], base, rbase)
            if r == 0:
                continue
            if topk > 0:
                total, k_hits = _ap_sum(found, h, stride, base, rbase, inv, topk, n)
                if k_hits > 0:
                    ap[i] = total / k_hits
            if gcdh_topk > 0:
                t = min(gcdh_topk, r)
                ap_gcdh[i] = _gcdh_sum(found, h, stride, base, rbase, inv, t) / t
            if nk > 0:
                _hits_at(found, h, stride, base, ks, per_bucket, hits[i])
    return ap, ap_gcdh, hits, cnt, rcnt


@njit(cache=True, parallel=True)
def _histograms(qc, rc, ql, rl, num_bins, stripes, cw, lw):
    """Per query: items and relevant items at each Hamming distance, int64 (n_query, num_bins) twice."""
    nq = qc.shape[0]
    n = rc.shape[0]
    cnt = np.zeros((nq, num_bins), np.int64)
    rcnt = np.zeros((nq, num_bins), np.int64)
    for s in prange(stripes):
        counters, found, base, rbase, stride = _buffers(n, num_bins)
        for i in range(s, nq, stripes):
            _sweep(qc[i], rc, ql[i], rl, counters, found, cw, lw)
            _offsets(counters, cnt[i], rcnt[i], base, rbase)
    return cnt, rcnt


# --------------------------------------------------------------------------------------
# The query-blocked sweep (retrieval sets below BLOCKED_MAX_N items): four queries side by side.
# --------------------------------------------------------------------------------------
QUERY_BLOCK = 4  # queries swept side by side: four independent counter chains, one read of each chunk
CHUNK = 2048  # retrieval items per chunk: its codes, labels and keys stay in L1/L2 for the four queries
_D_SHIFT = 48  # a counter (and a record) holds its distance in bits 48..62
BLOCKED_MAX_N = (1 << _FIELD) - 1  # ranks and relevant ranks stay inside their 24-bit fields
_REL_SHIFT = 15  # a key is 4 d | relevant << 15 (uint16): 4 d < 2**15 for any code length the package takes
_SLOT_MASK = (1 << _REL_SHIFT) - 1
BLOCKED_MAX_BINS = 1 << (_REL_SHIFT - 2)  # distances 0 .. 8191: 4 d + 3 < 2**15


@njit(cache=True, nogil=True, inline="always")
def _item_t(q_code, qw, rct, q_label, lw_, rlt, j, cw, lw):
    """Hamming distance and relevance (0/1) of item j from word-major retrieval words ``rct``/``rlt`` (words, n).

    Word w of consecutive items is contiguous in the C-contiguous arrays the blocked sweep builds, so its key pass
    loads it directly (item-major rows of 2+ words would need strided loads); ``_item`` passes transposed views.
    """
    if len(cw) == 0:
        d = np.uint64(0)
        for w in range(rct.shape[0]):
            d += _popcount64(q_code[w] ^ rct[w, j])
    else:
        d = _popcount64(qw[0] ^ rct[0, j])
        for w in range(1, len(cw)):
            d += _popcount64(qw[w] ^ rct[w, j])
    if len(lw) == 0:
        acc = np.uint64(0)
        for w in range(rlt.shape[0]):
            acc |= q_label[w] & rlt[w, j]
    else:
        acc = lw_[0] & rlt[0, j]
        for w in range(1, len(lw)):
            acc |= lw_[w] & rlt[w, j]
    return d, np.uint64(acc != np.uint64(0))


@intrinsic
def _keys8(typingctx, rct, rlt, j, qw4, lw4, keys, t, cw, lw):
    """The four queries' keys of items ``j .. j+7``: ``keys[b * CHUNK + t + s] = 4 d | relevant << 15`` (uint16).

    Written with explicit 8-lane vectors: LLVM lowers each to one 512-bit register where the CPU has AVX-512
    (its loop vectoriser stops at 256 bits on most such CPUs) and splits them elsewhere. Only for 1 to 4 code
    and label words (``cw``/``lw`` non-empty); ``rct``/``rlt`` word-major (see ``_item_t``).
    """
    ncw, nlw = len(cw), len(lw)
    if ncw == 0 or nlw == 0 or rct.layout != "C" or rlt.layout != "C":
        return None
    sig = types.void(rct, rlt, j, qw4, lw4, keys, t, cw, lw)

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        lanes = ir.VectorType(i64, 8)
        codes_arr = context.make_array(signature.args[0])(context, builder, args[0])
        labels_arr = context.make_array(signature.args[1])(context, builder, args[1])
        keys_arr = context.make_array(signature.args[5])(context, builder, args[5])
        undef = ir.Constant(lanes, ir.Undefined)
        zeros32 = ir.Constant(ir.VectorType(ir.IntType(32), 8), [0] * 8)
        ctpop = cgutils.get_or_insert_function(builder.module, ir.FunctionType(lanes, [lanes]), "llvm.ctpop.v8i64")

        def load(arr, w):  # word w of items j .. j+7: arr[w, j : j + 8]
            off = builder.add(builder.mul(ir.Constant(i64, w), builder.extract_value(arr.shape, 1)), args[2])
            return builder.load(builder.bitcast(builder.gep(arr.data, [off]), lanes.as_pointer()), align=8)

        def splat(x):
            one = builder.insert_element(undef, x, ir.Constant(ir.IntType(32), 0))
            return builder.shuffle_vector(one, undef, zeros32)

        def const(v):
            return ir.Constant(lanes, [v] * 8)

        codes = [load(codes_arr, w) for w in range(ncw)]
        labels = [load(labels_arr, w) for w in range(nlw)]
        for b in range(QUERY_BLOCK):
            qw = builder.extract_value(args[3], b)
            lw_ = builder.extract_value(args[4], b)
            d = None
            for w in range(ncw):
                x = builder.call(ctpop, [builder.xor(codes[w], splat(builder.extract_value(qw, w)))])
                d = x if d is None else builder.add(d, x)
            shared = None
            for w in range(nlw):
                x = builder.and_(labels[w], splat(builder.extract_value(lw_, w)))
                shared = x if shared is None else builder.or_(shared, x)
            relevant = builder.zext(builder.icmp_unsigned("!=", shared, const(0)), lanes)
            key = builder.or_(builder.shl(d, const(2)), builder.shl(relevant, const(_REL_SHIFT)))
            off = builder.add(ir.Constant(i64, b * CHUNK), args[6])
            ptr = builder.bitcast(builder.gep(keys_arr.data, [off]), ir.VectorType(ir.IntType(16), 8).as_pointer())
            builder.store(builder.trunc(key, ir.VectorType(ir.IntType(16), 8)), ptr, align=2)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def _keys4(qc, qw, rc, ql, lw_, rl, start, stop, keys, cw, lw):
    """keys[b * CHUNK + t] = 4 d | relevant << 15 (uint16) of query b and item start + t < stop.

    One pass (XOR, POPCNT, AND of the packed words) computes the four queries' keys per read of an item: eight
    items at a time through ``_keys8`` for 1 to 4 words, the rest one at a time. ``qc``/``ql``: the four
    queries' rows.
    """
    m = np.uint64(stop - start)
    t = np.uint64(0)
    if len(cw) > 0 and len(lw) > 0:
        m8 = m & ~np.uint64(7)
        while t < m8:
            _keys8(rc, rl, np.uint64(start) + t, qw, lw_, keys, t, cw, lw)
            t += np.uint64(8)
    while t < m:
        j = np.uint64(start) + t
        for b in range(QUERY_BLOCK):
            d, r = _item_t(qc[b], qw[b], rc, ql[b], lw_[b], rl, j, cw, lw)
            keys[np.uint64(b * CHUNK) + t] = np.uint16((d << np.uint64(2)) | (r << np.uint64(_REL_SHIFT)))
        t += np.uint64(1)


@njit(cache=True, nogil=True)
def _start4(qc, ql, rows, ctr):
    """Counters to ``d << 48``; the four queries' code and label rows and their first words (see ``_item``)."""
    for d in range(ctr.shape[0] // QUERY_BLOCK):
        for b in range(QUERY_BLOCK):
            ctr[QUERY_BLOCK * d + b] = np.int64(d) << _D_SHIFT
    qc4 = (qc[rows[0]], qc[rows[1]], qc[rows[2]], qc[rows[3]])
    ql4 = (ql[rows[0]], ql[rows[1]], ql[rows[2]], ql[rows[3]])
    qw4 = (_first_words(qc4[0]), _first_words(qc4[1]), _first_words(qc4[2]), _first_words(qc4[3]))
    lw4 = (_first_words(ql4[0]), _first_words(ql4[1]), _first_words(ql4[2]), _first_words(ql4[3]))
    return qc4, qw4, ql4, lw4


@njit(cache=True, nogil=True, inline="always")
def _update(keys, ctr, b, k, item):
    """Query b's counter update for its key ``k``: returns (the counter before the item, relevant 0/1)."""
    key = np.uint64(keys[k])
    i = (key & np.uint64(_SLOT_MASK)) + np.uint64(b)
    r = key >> np.uint64(_REL_SHIFT)
    c = ctr[i]
    ctr[i] = c + item + np.int64(r)
    return c, r


@njit(cache=True, nogil=True)
def _count4(qc, rc, ql, rl, rows, ctr, keys, cw, lw):
    """``_sweep4`` without the records: only the four queries' final counters (the histograms)."""
    n = rc.shape[1]  # word-major (words, n)
    qc4, qw4, ql4, lw4 = _start4(qc, ql, rows, ctr)
    item = np.int64(1 << _FIELD)
    chunk = np.uint64(CHUNK)
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        _keys4(qc4, qw4, rc, ql4, lw4, rl, start, stop, keys, cw, lw)
        for t in range(np.uint64(stop - start)):
            _update(keys, ctr, 0, t, item)
            _update(keys, ctr, 1, chunk + t, item)
            _update(keys, ctr, 2, chunk + chunk + t, item)
            _update(keys, ctr, 3, chunk + chunk + chunk + t, item)


@njit(cache=True, nogil=True, inline="always")
def _two(keys, ctr, found, h, b, t, item):
    """Query b's counter updates for items t and t + 1, then their two records, stored back to back.

    Two stores to one cache line in a row retire together; interleaved with the counter stores (other lines)
    each would take its own cycle. Returns the query's new slot ``h``.
    """
    k = np.uint64(b * CHUNK) + t
    c_a, r_a = _update(keys, ctr, b, k, item)
    c_b, r_b = _update(keys, ctr, b, k + np.uint64(1), item)
    found[h] = c_a
    h += r_a
    found[h] = c_b
    return h + r_b


@njit(cache=True, nogil=True, inline="always")
def _one(keys, ctr, found, h, b, t, item):
    """``_two`` for the single item t (the odd end of the retrieval set)."""
    c, r = _update(keys, ctr, b, np.uint64(b * CHUNK) + t, item)
    found[h] = c
    return h + r


@njit(cache=True, nogil=True)
def _sweep4(qc, rc, ql, rl, rows, ctr, found, stride, keys, cw, lw):
    """Sweep four queries ``rows`` side by side over the retrieval set in chunks; return their record counts.

    ``ctr`` int64 (4 num_bins,), interleaved: query b's counter of distance d at 4 d + b, ends with
    ``d << 48 | items << 24 | relevant``. Every item writes the counter of its distance as it was before the
    item (the distance, and the items and relevant items at that distance earlier in index order) at slot
    ``h`` of its query's part of ``found`` (query b's starts at b · stride) and only relevant items advance
    ``h``: the records of the relevant items, in index order, with no branch. Two items per query at a time
    (``_two``). ``rc``/``rl`` are word-major (words, n), see ``_item_t``.
    """
    n = rc.shape[1]  # word-major (words, n)
    qc4, qw4, ql4, lw4 = _start4(qc, ql, rows, ctr)
    h0 = np.uint64(0)
    h1 = np.uint64(stride)
    h2 = h1 + np.uint64(stride)
    h3 = h2 + np.uint64(stride)
    item = np.int64(1 << _FIELD)
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        _keys4(qc4, qw4, rc, ql4, lw4, rl, start, stop, keys, cw, lw)
        m = np.uint64(stop - start)
        t = np.uint64(0)
        while t + np.uint64(1) < m:
            h0 = _two(keys, ctr, found, h0, 0, t, item)
            h1 = _two(keys, ctr, found, h1, 1, t, item)
            h2 = _two(keys, ctr, found, h2, 2, t, item)
            h3 = _two(keys, ctr, found, h3, 3, t, item)
            t += np.uint64(2)
        if t < m:  # CHUNK is even: only the last chunk can end on one item
            h0 = _one(keys, ctr, found, h0, 0, t, item)
            h1 = _one(keys, ctr, found, h1, 1, t, item)
            h2 = _one(keys, ctr, found, h2, 2, t, item)
            h3 = _one(keys, ctr, found, h3, 3, t, item)
    s = np.uint64(stride)
    return np.int64(h0), np.int64(h1 - s), np.int64(h2 - s - s), np.int64(h3 - s - s - s)


@njit(cache=True, nogil=True)
def _bases(ctr, b, cnt, rcnt, shift):
    """Histograms cnt/rcnt from query b's final counters (interleaved, see ``_sweep4``); ``shift[d]`` turns a record at d into rank << 24 | relevant rank.

    Returns the query's number of relevant items.
    """
    items_before = 1
    rel_before = 1
    for d in range(cnt.shape[0]):
        c = ctr[QUERY_BLOCK * d + b]
        cnt[d] = (c >> _FIELD) & _LOW
        rcnt[d] = c & _LOW
        shift[d] = (items_before << _FIELD) + rel_before - (np.int64(d) << _D_SHIFT)
        items_before += cnt[d]
        rel_before += rcnt[d]
    return rel_before - 1


@njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def _ap_records(found, h, shift, cut):
    """Sum of precision over the relevant records ranked within ``cut``, and their number (AP@cut = sum / number).

    Divides (relevant rank / rank, ranks >= 1) rather than reading a table of reciprocals: the loop vectorises to
    VDIVPD (``error_model="numpy"`` drops numba's zero-division check, which kept it scalar), and a 1.5 MB table
    read at random ranks missed the caches once the sweep had streamed the codes and records through them
    (0.2 ns per pair at NUS-WIDE size).
    """
    total = 0.0
    if cut >= BLOCKED_MAX_N:  # AP@all: every record counts
        for t in range(np.uint64(h)):
            x = found[t]
            y = x + shift[np.uint64(x >> _D_SHIFT)]
            total += np.float64(y & _LOW) / np.float64(y >> _FIELD)
        return total, h
    hits = 0
    for t in range(np.uint64(h)):
        x = found[t]
        y = x + shift[np.uint64(x >> _D_SHIFT)]
        rank = y >> _FIELD
        if rank <= cut:
            total += np.float64(y & _LOW) / np.float64(rank)
            hits += 1
    return total, hits


@njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def _gcdh_records(found, h, shift, total_rel):
    """Sum of precision at the ranks of the first ``total_rel`` relevant items of the ranking, wherever they rank."""
    total = 0.0
    for t in range(np.uint64(h)):
        x = found[t]
        y = x + shift[np.uint64(x >> _D_SHIFT)]
        rel_rank = y & _LOW
        if rel_rank <= total_rel:
            total += np.float64(rel_rank) / np.float64(y >> _FIELD)
    return total


@njit(cache=True, nogil=True)
def _hits_records(found, h, shift, cnt, ks, per_bucket, out):
    """out[b] = relevant items within the first ks[b] ranks (``ks`` sorted ascending).

    Only distances whose first item ranks within ``max(ks)`` can hold such a record: the records of the others,
    the vast majority, are passed over with one comparison of the record itself (its distance sits on top).
    """
    nk = ks.shape[0]
    kmax = ks[nk - 1]
    per_bucket[:] = 0
    d_lim = 0  # records at d >= d_lim rank after kmax
    items_before = 0
    while d_lim < cnt.shape[0] and items_before < kmax:
        items_before += cnt[d_lim]
        d_lim += 1
    limit = np.int64(d_lim) << _D_SHIFT
    for t in range(h):
        x = found[t]
        if x < limit:  # rarely true (K << n): well predicted
            rank = (x + shift[x >> _D_SHIFT]) >> _FIELD
            if rank <= kmax:
                per_bucket[np.searchsorted(ks, rank)] += 1
    _cumulate(per_bucket, out)


@njit(cache=True, parallel=True)
def evaluate_blocked(qc, rc, ql, rl, num_bins, topk, gcdh_topk, ks, stripes, want_records, cw, lw):
    """``evaluate`` for fewer than BLOCKED_MAX_N retrieval items, four queries per sweep (same outputs).

    ``want_records`` False: histograms only (``_count4``: no records).
    """
    nq = qc.shape[0]
    n = rc.shape[0]
    nk = ks.shape[0]
    ap = np.zeros(nq, np.float64)
    ap_gcdh = np.zeros(nq, np.float64)
    hits = np.zeros((nq, nk), np.int64)
    cnt = np.zeros((nq, num_bins), np.int64)
    rcnt = np.zeros((nq, num_bins), np.int64)
    cut = min(topk, BLOCKED_MAX_N) if topk < n else BLOCKED_MAX_N
    rct = np.ascontiguousarray(rc.T)  # word-major for the key pass (see _item_t)
    rlt = np.ascontiguousarray(rl.T)
    blocks = (nq + QUERY_BLOCK - 1) // QUERY_BLOCK
    stripes = max(1, min(stripes, blocks))  # each stripe holds its own buffers: no empty ones
    for s in prange(stripes):  # a stripe = blocks s, s + stripes, ...
        ctr = np.empty(QUERY_BLOCK * num_bins, np.int64)
        found = np.empty(QUERY_BLOCK * (n + 1) if want_records else 0, np.int64)  # +1: one slot past (branch-free)
        keys = np.empty(QUERY_BLOCK * CHUNK, np.uint16)
        shift = np.empty(num_bins, np.int64)
        rows = np.empty(QUERY_BLOCK, np.int64)
        per_bucket = np.empty(max(nk, 1), np.int64)
        for blk in range(s, blocks, stripes):
            for b in range(QUERY_BLOCK):  # the last block repeats its last query
                rows[b] = min(blk * QUERY_BLOCK + b, nq - 1)
            if want_records:
                hs = _sweep4(qc, rct, ql, rlt, rows, ctr, found, n + 1, keys, cw, lw)
            else:
                _count4(qc, rct, ql, rlt, rows, ctr, keys, cw, lw)
                hs = (0, 0, 0, 0)
            for b in range(QUERY_BLOCK):
                i = blk * QUERY_BLOCK + b
                if i >= nq:
                    break
                r = _bases(ctr, b, cnt[i], rcnt[i], shift)
                rec = found[b * (n + 1) : b * (n + 1) + hs[b]]
                if r == 0 or not want_records:
                    continue
                h = hs[b]
                if topk > 0:
                    total, k_hits = _ap_records(rec, h, shift, cut)
                    if k_hits > 0:
                        ap[i] = total / k_hits
                if gcdh_topk > 0:
                    t = min(gcdh_topk, r)
                    ap_gcdh[i] = _gcdh_records(rec, h, shift, t) / t
                if nk > 0:
                    _hits_records(rec, h, shift, cnt[i], ks, per_bucket, hits[i])
    return ap, ap_gcdh, hits, cnt, rcnt


def _tokens(qc, ql):
    return word_tokens(qc.shape[1], ql.shape[1])


def blocked(num_retrieval: int, num_bins: int) -> bool:
    """Whether the query-blocked sweep ranks this many retrieval items at codes of ``num_bins - 1`` bits (else the segmented one does).

    Its keys hold 4 d in 15 bits: codes of up to ``BLOCKED_MAX_BINS - 1`` = 8,191 bits.
    """
    return num_retrieval <= BLOCKED_MAX_N and num_bins <= BLOCKED_MAX_BINS


def histograms(qc, rc, ql, rl, num_bins, stripes):
    """Per query: items and relevant items at each Hamming distance, int64 (n_query, num_bins) twice."""
    if blocked(rc.shape[0], num_bins):
        out = evaluate_blocked(
            qc, rc, ql, rl, num_bins, np.int64(0), np.int64(0), _NO_KS, stripes, False, *_tokens(qc, ql)
        )
        return out[3], out[4]
    return _histograms(qc, rc, ql, rl, num_bins, stripes, *_tokens(qc, ql))


def sweep_all(qc, rc, ql, rl, num_bins, topk, gcdh_topk, ks, stripes):
    """``evaluate`` (or ``evaluate_blocked`` where it applies) with the word-count arguments filled in (see there)."""
    ks = np.ascontiguousarray(ks, np.int64)
    args = (qc, rc, ql, rl, num_bins, np.int64(topk), np.int64(gcdh_topk), ks, stripes)
    if blocked(rc.shape[0], num_bins):
        return evaluate_blocked(*args, True, *_tokens(qc, ql))
    return evaluate(*args, *_tokens(qc, ql))


def stable_ap(qc, rc, ql, rl, num_bins, topk, stripes):
    """Per query: AP over the stable ranking cut at ``topk`` (float64) and #relevant items overall (int64)."""
    ap, _, _, _, rcnt = sweep_all(qc, rc, ql, rl, num_bins, topk, 0, _NO_KS, stripes)
    return ap, rcnt.sum(axis=1)


def gcdh_ap(qc, rc, ql, rl, num_bins, topk, stripes):
    """Per query: GCDH's AP@k, mean of i / rank_i over the first min(k, R) relevant items (float64), and R (int64)."""
    _, ap, _, _, rcnt = sweep_all(qc, rc, ql, rl, num_bins, 0, topk, _NO_KS, stripes)
    return ap, rcnt.sum(axis=1)


def stable_hits(qc, rc, ql, rl, num_bins, ks, stripes):
    """Per query: relevant items within the first K of the stable ranking for each K of the sorted ``ks``, int64 (n_query, len(ks))."""
    _, _, hits, _, rcnt = sweep_all(qc, rc, ql, rl, num_bins, 0, 0, ks, stripes)
    return hits, rcnt.sum(axis=1)


_NO_KS = np.zeros(0, np.int64)


@njit(cache=True, nogil=True, fastmath=True)
def _tie_group(items_before, rel_before, n_g, r_g, inv):
    """Expected sum of precision-at-rank over one tie group's relevant items (McSherry & Najork 2008).

    ``inv[k] = 1 / k``: the same correctly rounded reciprocals as dividing here, read in order (the loop
    vectorises; fastmath only reorders the two sums, a rounding-level change).
    """
    # Position N+i holds a relevant item with probability r/n; given that, the expected
    # number of relevant items ahead of it inside the group is (i-1)(r-1)/(n-1).
    inv_sum = 0.0  # sum_i 1 / (N + i)
    lead_sum = 0.0  # sum_i (i - 1) / (N + i)
    for i in range(1, n_g + 1):
        x = inv[np.uint64(items_before + i)]
        inv_sum += x
        lead_sum += (i - 1) * x
    within = 0.0 if n_g == 1 else (r_g - 1) / (n_g - 1)
    return (r_g / n_g) * ((rel_before + 1) * inv_sum + within * lead_sum)


@njit(cache=True, parallel=True)
def tie_aware_ap(cnt, rcnt):
    """Expected AP@all over uniformly random orders within each distance, float64 (n_query,), from the histograms."""
    nq = cnt.shape[0]
    num_bins = cnt.shape[1]
    ap = np.zeros(nq, np.float64)
    inv = _reciprocals(cnt[0].sum() if nq > 0 else 0)
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
                total += _tie_group(items_before, rel_before, n_g, r_g, inv)
            items_before += n_g
            rel_before += r_g
        ap[i] = total / total_rel
    return ap
