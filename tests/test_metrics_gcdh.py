"""GCDH's metric conventions in egath_lite.metrics: mAP@k as ``calc_map_k`` and precision@K as ``p_topK``."""

from __future__ import annotations

import numpy as np
import pytest

from egath_lite import metrics

BACKENDS = ("numba", "numpy")


# --------------------------------------------------------------------------------------
# Plain per-query loops, written from GCDH's formulas (utils.calc_map_k, utils.p_topK),
# with a stable sort so that ties go by retrieval index as ours do.
# --------------------------------------------------------------------------------------
def _ranked_relevance(q_code, q_label, r_codes, r_labels) -> np.ndarray:
    """Relevance (bool) of the retrieval items in stable Hamming order for one query."""
    q = np.where(np.asarray(q_code) > 0, 1, -1)
    r = np.where(np.asarray(r_codes) > 0, 1, -1)
    dist = (len(q) - r @ q) // 2
    relevant = (np.asarray(r_labels, dtype=np.int64) @ np.asarray(q_label, dtype=np.int64)) > 0
    return relevant[np.argsort(dist, kind="stable")]


def gcdh_map_k(qB, rB, qL, rL, k=None, empty_queries="zero"):
    """calc_map_k: per query, T = min(k, R); AP = mean of i / (position of the i-th relevant item), i = 1..T."""
    total_ap, counted = 0.0, 0
    for i in range(len(qB)):
        ranked = _ranked_relevance(qB[i], qL[i], rB, rL)
        num_relevant = int(ranked.sum())
        if num_relevant == 0:
            continue  # GCDH: `if tsum == 0: continue`, but the division below is by all queries
        total = min(len(rB) if k is None else k, num_relevant)
        positions = np.flatnonzero(ranked)[:total] + 1.0  # searched over the whole ranking, not the top k
        total_ap += float(np.mean(np.arange(1, total + 1) / positions))
        counted += 1
    return total_ap / (len(qB) if empty_queries == "zero" else counted)


def gcdh_precision_at_k(qB, rB, qL, rL, ks, empty_queries="zero"):
    """p_topK: per query and K, relevant items among the first min(K, n) / min(K, n); sum over queries / all queries."""
    sums, counted = np.zeros(len(ks)), 0
    for i in range(len(qB)):
        ranked = _ranked_relevance(qB[i], qL[i], rB, rL)
        if not ranked.any():
            continue
        counted += 1
        for b, k in enumerate(ks):
            total = min(k, len(rB))
            sums[b] += ranked[:total].sum() / total
    return sums / (len(qB) if empty_queries == "zero" else counted)


def _random_case(seed, nq=30, n=400, bits=6, num_labels=8, density=0.08):
    rng = np.random.default_rng(seed)
    qB = rng.choice([-1, 1], size=(nq, bits)).astype(np.int8)
    rB = rng.choice([-1, 1], size=(n, bits)).astype(np.int8)
    qL = (rng.random((nq, num_labels)) < density).astype(np.uint8)
    rL = (rng.random((n, num_labels)) < density).astype(np.uint8)
    return qB, rB, qL, rL


# --------------------------------------------------------------------------------------
# Hand-computed case with ties: 4 queries, 7 retrieval items, 3 bits, labels A B C D
# --------------------------------------------------------------------------------------
# retrieval  bits labels        query  bits labels
# r0         000  A             q0     000  A
# r1         001  B             q1     001  B
# r2         000  B             q2     111  D   (no retrieval item has D)
# r3         011  A             q3     110  C
# r4         111  A
# r5         001  A
# r6         110  C
HAND_R = np.array([[0, 0, 0], [0, 0, 1], [0, 0, 0], [0, 1, 1], [1, 1, 1], [0, 0, 1], [1, 1, 0]])
HAND_RL = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0]])
HAND_Q = np.array([[0, 0, 0], [0, 0, 1], [1, 1, 1], [1, 1, 0]])
HAND_QL = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]])
# q0: distances r0..r6 = 0 1 0 2 3 1 2; ties by index -> r0 r2 | r1 r5 | r3 r6 | r4
#     relevant (A) r0 r5 r3 r4 at ranks 1 4 5 7 (r5 after r1: the tie at distance 1 costs it a rank)
#     AP@all = (1/1 + 2/4 + 3/5 + 4/7) / 4 = 187/280
#     GCDH AP@3 = (1/1 + 2/4 + 3/5) / 3 = 7/10     (T = min(3, 4) = 3: r3 at rank 5 counts)
#     GCDH AP@2 = (1/1 + 2/4) / 2 = 3/4;  ours AP@3 = AP@2 = 1 (only r0 in the top 3)
# q1: distances 1 0 1 1 2 0 3 -> r1 r5 | r0 r2 r3 | r4 | r6; relevant (B) r1 r2 at ranks 1 4
#     AP@all = GCDH AP@3 = GCDH AP@2 = (1/1 + 2/4) / 2 = 3/4;  ours AP@3 = AP@2 = 1
# q2: no relevant item: skipped (ours) or 0 over all 4 queries (GCDH)
# q3: distances 2 3 2 2 1 3 0 -> r6 | r4 | r0 r2 r3 | r1 r5; relevant (C) r6 at rank 1: AP = 1 for every k
HAND_GCDH = {None: [187 / 280, 3 / 4, 1.0], 3: [7 / 10, 3 / 4, 1.0], 2: [3 / 4, 3 / 4, 1.0], 1: [1.0, 1.0, 1.0]}
HAND_OURS = {None: [187 / 280, 3 / 4, 1.0], 3: [1.0, 1.0, 1.0], 2: [1.0, 1.0, 1.0]}
# precision@K, ranked relevance q0 1001101, q1 1001000, q3 1000000:
#   P@1 = 1, 1, 1;  P@3 = 1/3 each;  P@7 = P@10 = 4/7, 2/7, 1/7
HAND_P = {1: [1.0, 1.0, 1.0], 3: [1 / 3, 1 / 3, 1 / 3], 7: [4 / 7, 2 / 7, 1 / 7], 10: [4 / 7, 2 / 7, 1 / 7]}
HAND_VALID = [True, True, False, True]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("topk", [None, 3, 2, 1])
def test_hand_computed_gcdh_average_precisions(backend, topk):
    ap, valid = metrics.average_precisions(HAND_Q, HAND_R, HAND_QL, HAND_RL, topk, definition="gcdh", backend=backend)
    np.testing.assert_array_equal(valid, HAND_VALID)
    np.testing.assert_allclose(ap[valid], HAND_GCDH[topk], rtol=0, atol=1e-15)
    assert np.isnan(ap[2])
    expected = np.array(HAND_GCDH[topk])
    assert metrics.mean_average_precision(
        HAND_Q, HAND_R, HAND_QL, HAND_RL, topk, definition="gcdh", backend=backend
    ) == pytest.approx(expected.mean(), abs=1e-15)
    # GCDH's calc_map_k divides by all four queries
    assert metrics.mean_average_precision(
        HAND_Q, HAND_R, HAND_QL, HAND_RL, topk, definition="gcdh", empty_queries="zero", backend=backend
    ) == pytest.approx(expected.sum() / 4, abs=1e-15)
    assert gcdh_map_k(HAND_Q, HAND_R, HAND_QL, HAND_RL, topk) == pytest.approx(expected.sum() / 4, abs=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("topk", [None, 3, 2])
def test_hand_computed_standard_ap_differs_from_gcdh(backend, topk):
    ap, valid = metrics.average_precisions(HAND_Q, HAND_R, HAND_QL, HAND_RL, topk, backend=backend)
    np.testing.assert_allclose(ap[valid], HAND_OURS[topk], rtol=0, atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_computed_precision_at_k_with_both_denominators(backend):
    ks = [1, 3, 7, 10]
    expected = np.array([HAND_P[k] for k in ks]).T  # (queries, ks)
    skip = metrics.precision_at_k(HAND_Q, HAND_R, HAND_QL, HAND_RL, ks, backend=backend)
    zero = metrics.precision_at_k(HAND_Q, HAND_R, HAND_QL, HAND_RL, ks, empty_queries="zero", backend=backend)
    np.testing.assert_allclose(skip, expected.mean(axis=0), rtol=0, atol=1e-15)
    np.testing.assert_allclose(zero, expected.sum(axis=0) / 4, rtol=0, atol=1e-15)
    np.testing.assert_allclose(zero, gcdh_precision_at_k(HAND_Q, HAND_R, HAND_QL, HAND_RL, ks), rtol=0, atol=1e-15)


def test_tie_aware_precision_at_k_honours_empty_queries():
    ks = [1, 3, 7]
    skip = metrics.precision_at_k(HAND_Q, HAND_R, HAND_QL, HAND_RL, ks, tie_aware=True)
    zero = metrics.precision_at_k(HAND_Q, HAND_R, HAND_QL, HAND_RL, ks, tie_aware=True, empty_queries="zero")
    np.testing.assert_allclose(zero, skip * 3 / 4, rtol=0, atol=1e-15)  # 3 of the 4 queries have a relevant item


# --------------------------------------------------------------------------------------
# Agreement with the plain loops on random codes (many ties at 6 bits)
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("topk", [None, 1, 5, 37, 400, 5_000])
def test_gcdh_map_matches_plain_loop(backend, topk):
    qB, rB, qL, rL = _random_case(topk or 0)
    for empty in ("zero", "skip"):
        ours = metrics.mean_average_precision(
            qB, rB, qL, rL, topk, definition="gcdh", empty_queries=empty, backend=backend
        )
        assert ours == pytest.approx(gcdh_map_k(qB, rB, qL, rL, topk, empty), abs=1e-9)
    _, valid = metrics.average_precisions(qB, rB, qL, rL, topk, definition="gcdh", backend=backend)
    assert valid.any() and not valid.all()  # both kinds of query occur, so the denominators differ


@pytest.mark.parametrize("backend", BACKENDS)
def test_gcdh_map_matches_plain_loop_with_long_codes_and_many_labels(backend):
    qB, rB, qL, rL = _random_case(11, nq=20, n=300, bits=100, num_labels=80, density=0.03)  # 2 words each
    for topk in (None, 10, 50):
        ours = metrics.mean_average_precision(
            qB, rB, qL, rL, topk, definition="gcdh", empty_queries="zero", backend=backend
        )
        assert ours == pytest.approx(gcdh_map_k(qB, rB, qL, rL, topk), abs=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gcdh_precision_at_k_matches_plain_loop(backend):
    qB, rB, qL, rL = _random_case(5)
    ks = [400, 1, 10, 10, 100, 1_000]  # unsorted, repeated and beyond the retrieval set on purpose
    for empty in ("zero", "skip"):
        np.testing.assert_allclose(
            metrics.precision_at_k(qB, rB, qL, rL, ks, empty_queries=empty, backend=backend),
            gcdh_precision_at_k(qB, rB, qL, rL, ks, empty),
            rtol=0,
            atol=1e-12,
        )


def test_gcdh_backends_agree_and_chunking_does_not_matter():
    qB, rB, qL, rL = _random_case(8, nq=50)
    a, va = metrics.average_precisions(qB, rB, qL, rL, 20, definition="gcdh", backend="numba")
    b, vb = metrics.average_precisions(qB, rB, qL, rL, 20, definition="gcdh", backend="numpy", chunk_size=7)
    np.testing.assert_array_equal(va, vb)
    np.testing.assert_allclose(a[va], b[vb], rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------
# Properties and limits
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_gcdh_map_at_k_beyond_every_relevant_count_is_map_at_all(backend):
    qB, rB, qL, rL = _random_case(2, density=0.05)
    all_ap, valid = metrics.average_precisions(qB, rB, qL, rL, backend=backend)
    num_rel = ((qL.astype(int) @ rL.T.astype(int)) > 0).sum(axis=1)
    k = int(num_rel.max())
    assert k < len(rB)  # so the standard AP@k is a different number
    gcdh_ap, _ = metrics.average_precisions(qB, rB, qL, rL, k, definition="gcdh", backend=backend)
    np.testing.assert_allclose(gcdh_ap[valid], all_ap[valid], rtol=0, atol=1e-12)
    standard_ap, _ = metrics.average_precisions(qB, rB, qL, rL, k, backend=backend)
    assert np.abs(standard_ap[valid] - all_ap[valid]).max() > 1e-3


@pytest.mark.parametrize("backend", BACKENDS)
def test_gcdh_ap_at_1_is_the_reciprocal_rank_of_the_first_relevant_item(backend):
    qB, rB, qL, rL = _random_case(4)
    ap, valid = metrics.average_precisions(qB, rB, qL, rL, 1, definition="gcdh", backend=backend)
    for i in np.flatnonzero(valid):
        ranked = _ranked_relevance(qB[i], qL[i], rB, rL)
        assert ap[i] == pytest.approx(1.0 / (np.argmax(ranked) + 1), abs=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_identical_codes_per_class_give_one(backend):
    # Items of a class share one code and classes have distinct codes, so every query's relevant
    # items fill the first ranks: GCDH's mAP@k is 1 for every k, and so is precision@K up to the class size.
    rng = np.random.default_rng(0)
    class_codes = np.array([[1, 1, 1, 1], [-1, -1, 1, 1], [1, -1, -1, 1]])
    classes = rng.integers(0, 3, size=90)
    codes, labels = class_codes[classes], np.eye(3)[classes]
    for topk in (None, 1, 10, 1_000):
        for empty in ("skip", "zero"):
            assert metrics.mean_average_precision(
                codes[:15], codes, labels[:15], labels, topk, definition="gcdh", empty_queries=empty, backend=backend
            ) == pytest.approx(1.0, abs=1e-15)
    smallest = int(np.bincount(classes).min())
    np.testing.assert_allclose(
        metrics.precision_at_k(
            codes[:15], codes, labels[:15], labels, [1, smallest], empty_queries="zero", backend=backend
        ),
        1.0,
        rtol=0,
        atol=1e-15,
    )


def test_one_identical_code_for_everything_ranks_by_index():
    # Every item ties at distance 0, so the ranking is the index order.
    codes = np.ones((6, 8))
    r_labels = np.array([[0], [1], [0], [1], [1], [0]])
    ap = metrics.mean_average_precision(codes[:1], codes, [[1]], r_labels, 2, definition="gcdh")
    assert ap == pytest.approx((1 / 2 + 2 / 4) / 2, abs=1e-15)  # relevant at ranks 2 and 4, T = 2


# --------------------------------------------------------------------------------------
# Bad options
# --------------------------------------------------------------------------------------
ARGS = dict(query_codes=HAND_Q, retrieval_codes=HAND_R, query_labels=HAND_QL, retrieval_labels=HAND_RL)


@pytest.mark.parametrize(
    "call,match",
    [
        (
            lambda: metrics.mean_average_precision(**ARGS, definition="dsph"),
            "definition must be one of 'standard', 'gcdh'",
        ),
        (lambda: metrics.average_precisions(**ARGS, definition=None), "definition must be one of"),
        (lambda: metrics.mean_average_precision(**ARGS, topk=2, definition="gcdh", tie_aware=True), "mAP@all only"),
        (lambda: metrics.mean_average_precision(**ARGS, topk=0, definition="gcdh"), "topk must be"),
        (
            lambda: metrics.mean_average_precision(**ARGS, empty_queries="all"),
            "empty_queries must be one of 'skip', 'zero'",
        ),
        (lambda: metrics.precision_at_k(**ARGS, ks=[1], empty_queries="drop"), "empty_queries must be one of"),
        (
            lambda: metrics.precision_at_k(
                np.ones((2, 4)), np.ones((2, 4)), [[1, 0], [1, 0]], [[0, 1], [0, 1]], [1], empty_queries="zero"
            ),
            "so precision@K is undefined",
        ),
    ],
)
def test_bad_options_raise_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_tie_aware_gcdh_map_at_all_is_the_tie_aware_map():
    a = metrics.mean_average_precision(**ARGS, definition="gcdh", tie_aware=True)
    b = metrics.mean_average_precision(**ARGS, tie_aware=True)
    assert a == b
