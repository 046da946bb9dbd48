"""The one-sweep kernels of egath_lite.metrics: labels and codes of any word count, one sweep == separate calls, ties."""

from __future__ import annotations

import numpy as np
import pytest

from egath_lite import metrics

pytest.importorskip("numba")
from egath_lite.metrics import _numba_kernels  # noqa: E402


# --------------------------------------------------------------------------------------
# A plain reference, one query at a time: distances as counts of differing bits, relevance
# as "some label column is 1 on both sides", a stable sort, precision at each relevant rank.
# --------------------------------------------------------------------------------------
def _ranked(qb, ql, rB, rL):
    dist = (qb[None, :] != rB).sum(axis=1)
    relevant = (ql[None, :] & rL).any(axis=1)
    order = np.argsort(dist, kind="stable")
    return relevant[order], dist


def reference(qB, rB, qL, rL, ks, topk=None):
    """Per query AP@topk (NaN without relevant items), GCDH AP@topk, hits in the first K, histograms."""
    qB, rB, qL, rL = qB > 0, rB > 0, qL > 0, rL > 0
    bits, n = qB.shape[1], len(rB)
    out = {"ap": [], "gcdh": [], "hits": [], "cnt": [], "rcnt": []}
    for qb, ql in zip(qB, qL):
        ranked, dist = _ranked(qb, ql, rB, rL)
        rel_d = dist[(ql[None, :] & rL).any(axis=1)]
        out["cnt"].append(np.bincount(dist, minlength=bits + 1))
        out["rcnt"].append(np.bincount(rel_d, minlength=bits + 1))
        out["hits"].append([int(ranked[: min(k, n)].sum()) for k in ks])
        ranks = np.flatnonzero(ranked) + 1  # ranks of the relevant items, in order
        if len(ranks) == 0:
            out["ap"].append(np.nan)
            out["gcdh"].append(np.nan)
            continue
        cut = n if topk is None else topk
        inside = ranks[ranks <= cut]
        out["ap"].append(float(np.mean(np.arange(1, len(inside) + 1) / inside)) if len(inside) else 0.0)
        t = min(cut, len(ranks))
        out["gcdh"].append(float(np.mean(np.arange(1, t + 1) / ranks[:t])))
    return {key: np.array(value) for key, value in out.items()}


def _case(seed, nq, n, bits, num_labels, density):
    rng = np.random.default_rng(seed)
    qB = rng.choice([-1, 1], size=(nq, bits)).astype(np.int8)
    rB = rng.choice([-1, 1], size=(n, bits)).astype(np.int8)
    qL = (rng.random((nq, num_labels)) < density).astype(np.uint8)
    rL = (rng.random((n, num_labels)) < density).astype(np.uint8)
    # labels only in the last word reach the second/third word's code path
    qL[::3, : num_labels // 2] = 0
    return qB, rB, qL, rL


def _check_all(qB, rB, qL, rL, ks=(1, 7, 50, 10_000), topk=None):
    ref = reference(qB, rB, qL, rL, ks, topk)
    valid = ~np.isnan(ref["ap"])
    ap, ok = metrics.average_precisions(qB, rB, qL, rL, topk, backend="numba")
    np.testing.assert_array_equal(ok, valid)
    np.testing.assert_allclose(ap[valid], ref["ap"][valid], rtol=0, atol=1e-12)
    gcdh, _ = metrics.average_precisions(qB, rB, qL, rL, topk, definition="gcdh", backend="numba")
    np.testing.assert_allclose(gcdh[valid], ref["gcdh"][valid], rtol=0, atol=1e-12)
    cnt, rcnt = metrics.hamming_histograms(qB, rB, qL, rL, backend="numba")
    np.testing.assert_array_equal(cnt, ref["cnt"])
    np.testing.assert_array_equal(rcnt, ref["rcnt"])
    p_at_k = metrics.precision_at_k(qB, rB, qL, rL, ks, backend="numba")
    cut = np.minimum(ks, len(rB))
    np.testing.assert_allclose(p_at_k, (ref["hits"][valid] / cut).mean(axis=0), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "num_labels",
    [10, 24, 80, 130, pytest.param(300, marks=pytest.mark.slow)],  # slow: one more compile
)
def test_any_label_count_matches_the_plain_reference(num_labels):
    # 1, 2, 3 (unrolled) and 5 (the loop) label words (each word count compiles once); sparse labels so relevance depends on every word
    _check_all(*_case(num_labels, 12, 700, 16, num_labels, 2.0 / num_labels))


@pytest.mark.parametrize(
    "bits", [7, 65, pytest.param(200, marks=pytest.mark.slow), pytest.param(320, marks=pytest.mark.slow)]
)
def test_any_code_length_matches_the_plain_reference(bits):
    # 1, 2, 4 (unrolled) and 5 (the loop) code words, with 80 labels (2 words)
    _check_all(*_case(bits, 10, 500, bits, 80, 0.03))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 9, 1001])
def test_every_segment_split_of_the_retrieval_set(n):
    # 3-bit codes: long tie groups that straddle the four segments swept side by side
    _check_all(*_case(n, 9, n, 3, 5, 0.4), ks=(1, 2, 3, 600))


@pytest.mark.parametrize("topk", [1, 5, 100])
def test_ap_at_k_with_multi_word_labels(topk):
    _check_all(*_case(topk, 10, 400, 8, 80, 0.04), topk=topk)


def test_segment_layout_keeps_every_segment_within_its_counter_field():
    limit = _numba_kernels._SEGMENT_MAX
    for n in (1, 4, 5, 184_477, 4 * limit, 4 * limit + 1, 13 * limit + 5):
        nseg, seg_len = _numba_kernels.segment_layout(n)
        assert nseg % _numba_kernels.SEGMENTS == 0 and seg_len <= limit and nseg * seg_len >= n
        assert nseg == 4 or (nseg - 4) * seg_len < n  # no wholly empty group of four segments


@pytest.mark.parametrize("num_labels", [10, 80])
def test_evaluate_retrieval_equals_the_separate_functions(num_labels):
    qB, rB, qL, rL = _case(5, 40, 1500, 12, num_labels, 1.5 / num_labels)
    qL[:3] = 0  # queries without a relevant item are skipped and counted
    ks = [1000, 10, 2000, 50, 10]  # unsorted, repeated, beyond n
    report = metrics.evaluate_retrieval(qB, rB, qL, rL, ks=ks)
    assert report["num_skipped_queries"] >= 3
    assert abs(report["map"] - metrics.mean_average_precision(qB, rB, qL, rL)) <= 1e-12
    tie = metrics.mean_average_precision(qB, rB, qL, rL, tie_aware=True)
    assert abs(report["map_tie_aware"] - tie) <= 1e-12
    zero = metrics.mean_average_precision(qB, rB, qL, rL, empty_queries="zero")
    assert abs(report["map_all_queries_denominator"] - zero) <= 1e-12
    precision, recall = metrics.pr_curve(qB, rB, qL, rL)
    got_p = np.array([np.nan if p is None else p for p in report["pr_precision"]])
    np.testing.assert_allclose(got_p, precision, rtol=0, atol=1e-12)
    np.testing.assert_allclose(report["pr_recall"], recall, rtol=0, atol=1e-12)
    np.testing.assert_allclose(report["precision_at_k"], metrics.precision_at_k(qB, rB, qL, rL, ks), atol=1e-12)
    assert report["ks"] == ks
    # and the numpy route, which computes each number separately, agrees
    other = metrics.evaluate_retrieval(qB, rB, qL, rL, ks=ks, backend="numpy")
    for key in ("map", "map_tie_aware", "map_all_queries_denominator"):
        assert abs(report[key] - other[key]) <= 1e-12
    np.testing.assert_allclose(report["precision_at_k"], other["precision_at_k"], atol=1e-12)


def test_ties_are_broken_by_index_across_segments():
    # every item at the same distance: the stable ranking is the index order, wherever the segments cut it
    n = 21
    rB = np.ones((n, 8), np.int8)
    qB = np.ones((1, 8), np.int8)
    rL = np.zeros((n, 80), np.uint8)
    relevant = [0, 6, 11, 17, 20]
    rL[relevant, 70] = 1  # the label sits in the second label word
    qL = np.zeros((1, 80), np.uint8)
    qL[0, 70] = 1
    ranks = np.array(relevant) + 1
    expected = np.mean(np.arange(1, 6) / ranks)  # hand: (1/1 + 2/7 + 3/12 + 4/18 + 5/21) / 5
    assert expected == pytest.approx((1 + 2 / 7 + 3 / 12 + 4 / 18 + 5 / 21) / 5, abs=1e-15)
    assert metrics.mean_average_precision(qB, rB, qL, rL, backend="numba") == pytest.approx(expected, abs=1e-15)
    hits = metrics.precision_at_k(qB, rB, qL, rL, [1, 7, 12, 21], backend="numba")
    np.testing.assert_allclose(hits, [1 / 1, 2 / 7, 3 / 12, 5 / 21], atol=1e-15)


# --------------------------------------------------------------------------------------
# The query-blocked sweep (four queries side by side, chunks of the retrieval set) against
# the segmented one it replaces below 2**24 items, the plain reference and hand values.
# --------------------------------------------------------------------------------------
def _both_kernels(qB, rB, qL, rL, topk, gcdh_topk, ks):
    packed = metrics.inputs.prepare_inputs(qB, rB, qL, rL)
    args = (packed.query_codes, packed.retrieval_codes, packed.query_labels, packed.retrieval_labels)
    num_bins = packed.num_bits + 1
    cw, lw = _numba_kernels.word_tokens(args[0].shape[1], args[2].shape[1])
    common = (num_bins, np.int64(topk), np.int64(gcdh_topk), np.asarray(ks, np.int64), 3)
    blocked = _numba_kernels.evaluate_blocked(*args, *common, True, cw, lw)
    segmented = _numba_kernels.evaluate(*args, *common, cw, lw)
    return blocked, segmented


@pytest.mark.parametrize("num_query", [1, 2, 3, 5, 6])
def test_blocked_sweep_equals_the_segmented_sweep(num_query):
    # query counts that leave the last block of four short; n crosses two chunk boundaries; 2 code and 2 label words
    n = 2 * _numba_kernels.CHUNK + 3
    qB, rB, qL, rL = _case(num_query, num_query, n, 65, 80, 0.03)
    for topk, gcdh_topk in ((n, 0), (37, 37)):
        blocked, segmented = _both_kernels(qB, rB, qL, rL, topk, gcdh_topk, [1, 10, 3000, n])
        for name, got, want in zip(("ap", "gcdh", "hits", "cnt", "rcnt"), blocked, segmented):
            if name in ("ap", "gcdh"):
                np.testing.assert_allclose(got, want, rtol=0, atol=1e-12, err_msg=name)
            else:
                np.testing.assert_array_equal(got, want, err_msg=name)
        assert blocked[3].sum() == num_query * n and (blocked[0] > 0).any()  # every item counted, some AP non-zero
    ref = reference(qB, rB, qL, rL, [1, 10, 3000, n], topk=37)
    valid = ~np.isnan(ref["ap"])
    np.testing.assert_allclose(blocked[0][valid], ref["ap"][valid], rtol=0, atol=1e-12)  # AP@37
    np.testing.assert_allclose(blocked[1][valid], ref["gcdh"][valid], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(blocked[2], ref["hits"])


@pytest.mark.parametrize("num_labels", [24, 130])
def test_buckets_all_relevant_none_relevant_and_mixed_by_hand(num_labels):
    # distances [2, 0, 1, 0, 2, 1, 2], relevant [1, 1, 0, 1, 0, 0, 1]: d = 0 holds items 1, 3 (ranks 1, 2, both
    # relevant), d = 1 items 2, 5 (ranks 3, 4, neither), d = 2 items 0, 4, 6 (ranks 5, 6, 7; 0 and 6 relevant)
    dist = [2, 0, 1, 0, 2, 1, 2]
    relevant = [1, 1, 0, 1, 0, 0, 1]
    rB = -np.ones((7, 4), np.int8)
    for j, d in enumerate(dist):
        rB[j, :d] = 1
    qB = -np.ones((1, 4), np.int8)
    label = num_labels - 1  # in the last label word (the third for 130 labels)
    rL = np.zeros((7, num_labels), np.uint8)
    rL[np.flatnonzero(relevant), label] = 1
    rL[:, 0] = np.array(relevant) == 0  # the others carry a label the query does not have
    qL = np.zeros((1, num_labels), np.uint8)
    qL[0, label] = 1
    expected = (1 / 1 + 2 / 2 + 3 / 5 + 4 / 7) / 4
    assert metrics.mean_average_precision(qB, rB, qL, rL) == pytest.approx(expected, abs=1e-15)
    np.testing.assert_allclose(metrics.precision_at_k(qB, rB, qL, rL, [1, 2, 4, 6]), [1, 1, 2 / 4, 3 / 6], atol=1e-15)
    cnt, rcnt = metrics.hamming_histograms(qB, rB, qL, rL)
    np.testing.assert_array_equal(cnt[0], [2, 2, 3, 0, 0])
    np.testing.assert_array_equal(rcnt[0], [2, 0, 2, 0, 0])
    # AP@5: relevant items at ranks 1, 2, 5 are inside; GCDH's AP@2 = (1/1 + 2/2) / 2
    assert metrics.mean_average_precision(qB, rB, qL, rL, topk=5) == pytest.approx((1 + 1 + 3 / 5) / 3, abs=1e-15)
    assert metrics.mean_average_precision(qB, rB, qL, rL, topk=2, definition="gcdh") == pytest.approx(1.0, abs=1e-15)


@pytest.mark.parametrize("code_words, label_words", [(1, 1), (2, 2), (4, 3), (5, 1), (1, 6)])
def test_eight_lane_keys_equal_keys_computed_item_by_item(code_words, label_words):
    # _keys4 writes 4 d | relevant << 15 per query and item: eight items at a time with explicit 8-lane
    # vectors for 1-4 words (_keys8), one at a time for the 3-item tail and for 5+ words; numpy recomputes them
    rng = np.random.default_rng(code_words * 10 + label_words)
    n, start, stop = 40, 5, 40  # 35 items: four steps of eight, then three one at a time
    rct = rng.integers(0, 2**63, size=(code_words, n), dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    rlt = np.where(
        rng.random((label_words, n)) < 0.3,
        np.uint64(1) << rng.integers(0, 64, size=(label_words, n)).astype(np.uint64),
        np.uint64(0),
    )
    qc = rng.integers(0, 2**63, size=(4, code_words), dtype=np.uint64)
    ql = np.where(rng.random((4, label_words)) < 0.8, ~np.uint64(0) >> np.uint64(1), np.uint64(0)).astype(np.uint64)
    ql[2] = 0  # a query with no label: no item is relevant
    cw, lw = _numba_kernels.word_tokens(code_words, label_words)
    ctr = np.empty(4 * (64 * code_words + 1), np.int64)
    qc4, qw4, ql4, lw4 = _numba_kernels._start4(qc, ql, np.arange(4), ctr)
    keys = np.zeros(4 * _numba_kernels.CHUNK, np.uint16)
    _numba_kernels._keys4(qc4, qw4, rct, ql4, lw4, rlt, start, stop, keys, cw, lw)
    for b in range(4):
        d = np.bitwise_count(rct[:, start:stop] ^ qc[b][:, None]).sum(axis=0).astype(np.int64)
        relevant = (rlt[:, start:stop] & ql[b][:, None]).any(axis=0)
        want = (4 * d) | (relevant.astype(np.int64) << 15)
        got = keys[b * _numba_kernels.CHUNK : b * _numba_kernels.CHUNK + stop - start]
        np.testing.assert_array_equal(got, want, err_msg=f"query {b}")
    assert not (keys[2 * _numba_kernels.CHUNK : 2 * _numba_kernels.CHUNK + 35] >> 15).any()
    assert (keys[:35] >> 15).any() and not (keys[:35] >> 15).all()  # both kinds of item for query 0


def test_codes_beyond_8191_bits_take_the_segmented_sweep():
    # the blocked sweep's uint16 keys hold 4 d for d <= 8191; longer codes (up to MAX_BITS) go to the segmented one
    assert _numba_kernels.blocked(100, 8192) and not _numba_kernels.blocked(100, 8193)
    qB, rB, qL, rL = _case(8200, 3, 20, 8200, 5, 0.4)
    rB[:4] = qB[0]  # distance 0, and ties at it
    _check_all(qB, rB, qL, rL, ks=(1, 3, 20))


def test_large_retrieval_sets_take_the_segmented_sweep(monkeypatch):
    # above BLOCKED_MAX_N items the segmented sweep ranks them; lower the limit to exercise that route here
    qB, rB, qL, rL = _case(3, 6, 300, 65, 80, 0.03)  # the word counts of the test above: the same compiled kernels
    monkeypatch.setattr(_numba_kernels, "BLOCKED_MAX_N", 100)
    assert not _numba_kernels.blocked(300, 66) and _numba_kernels.blocked(100, 66)  # 65-bit codes
    _check_all(qB, rB, qL, rL, ks=(1, 7, 50, 300))


@pytest.mark.parametrize("width", [1, 7, 10, 64, 65, 80, 130])
def test_pack_bits_matches_packing_row_by_row(width):
    rng = np.random.default_rng(width)
    bits = rng.random((9, width)) < 0.5
    for x in (bits, np.asfortranarray(bits), bits[::2]):  # contiguous, column-major, strided rows
        want = np.zeros((len(x), (width + 63) // 64), np.uint64)
        for i, row in enumerate(x):
            for j in np.flatnonzero(row):
                want[i, j // 64] |= np.uint64(1) << np.uint64(j % 64)
        np.testing.assert_array_equal(metrics.inputs.pack_bits(x), want)
