"""egath_lite.metrics against a plain per-query reference, hand-computed cases and limits."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from egath_lite import metrics
from egath_lite.data.reference import load_nus_tc10_labels

BACKENDS = ("numba", "numpy")


# --------------------------------------------------------------------------------------
# Independent reference, written plainly: per query, distances by a ±1 matrix product,
# a stable sort of the row, precision at each relevant rank.
# --------------------------------------------------------------------------------------
def _pm1(codes) -> np.ndarray:
    return np.where(np.asarray(codes) > 0, 1, -1).astype(np.int64)


def _ranked_relevance(q_code, q_label, r_codes, r_labels) -> np.ndarray:
    bits = len(q_code)
    dist = (bits - r_codes @ q_code) // 2
    relevant = (r_labels.astype(np.int64) @ q_label.astype(np.int64)) > 0
    return relevant[np.argsort(dist, kind="stable")]


def reference_average_precisions(qB, rB, qL, rL, topk=None):
    """(ap with NaN for queries without relevant items, valid mask), one query at a time."""
    qB, rB, qL, rL = _pm1(qB), _pm1(rB), np.asarray(qL), np.asarray(rL)
    aps, valid = [], []
    for i in range(len(qB)):
        ranked = _ranked_relevance(qB[i], qL[i], rB, rL)
        if not ranked.any():
            aps.append(math.nan)
            valid.append(False)
            continue
        cut = len(ranked) if topk is None else min(topk, len(ranked))
        hits, precisions = 0, []
        for rank in range(1, cut + 1):
            if ranked[rank - 1]:
                hits += 1
                precisions.append(hits / rank)
        aps.append(sum(precisions) / len(precisions) if precisions else 0.0)
        valid.append(True)
    return np.array(aps), np.array(valid)


def reference_precision_at_k(qB, rB, qL, rL, ks):
    qB, rB, qL, rL = _pm1(qB), _pm1(rB), np.asarray(qL), np.asarray(rL)
    rows = []
    for i in range(len(qB)):
        ranked = _ranked_relevance(qB[i], qL[i], rB, rL)
        if ranked.any():
            rows.append([ranked[: min(k, len(ranked))].sum() / min(k, len(ranked)) for k in ks])
    return np.mean(rows, axis=0)


def _random_case(rng, nq, n, bits, num_labels, density=0.3):
    qB = rng.choice([-1, 1], size=(nq, bits)).astype(np.int8)
    rB = rng.choice([-1, 1], size=(n, bits)).astype(np.int8)
    qL = (rng.random((nq, num_labels)) < density).astype(np.uint8)
    rL = (rng.random((n, num_labels)) < density).astype(np.uint8)
    return qB, rB, qL, rL


@pytest.fixture(scope="module")
def nus_case():
    """Random 16-bit codes (many ties) with real NUS-WIDE TC-10 label rows."""
    labels = load_nus_tc10_labels()
    rng = np.random.default_rng(7)
    rows = rng.choice(len(labels), size=40 + 2500, replace=False)
    codes = rng.choice([-1, 1], size=(len(rows), 16)).astype(np.int8)
    return codes[:40], codes[40:], labels[rows[:40]], labels[rows[40:]]


# --------------------------------------------------------------------------------------
# Agreement with the reference
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bits,num_labels", [(4, 3), (16, 5), (100, 80)])
def test_ap_matches_reference_on_random_codes_with_ties(backend, bits, num_labels):
    qB, rB, qL, rL = _random_case(np.random.default_rng(bits), 30, 400, bits, num_labels, density=0.08)
    ref_ap, ref_valid = reference_average_precisions(qB, rB, qL, rL)
    ap, valid = metrics.average_precisions(qB, rB, qL, rL, backend=backend)
    np.testing.assert_array_equal(valid, ref_valid)
    assert valid.any()
    np.testing.assert_allclose(ap[valid], ref_ap[ref_valid], rtol=0, atol=1e-9)
    assert np.isnan(ap[~valid]).all()
    assert metrics.mean_average_precision(qB, rB, qL, rL, backend=backend) == pytest.approx(
        ref_ap[ref_valid].mean(), abs=1e-9
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("topk", [1, 7, 50, 399, 400, 10_000])
def test_ap_at_k_matches_reference(backend, topk):
    qB, rB, qL, rL = _random_case(np.random.default_rng(topk), 25, 400, 8, 6, density=0.15)
    ref_ap, ref_valid = reference_average_precisions(qB, rB, qL, rL, topk=topk)
    ap, valid = metrics.average_precisions(qB, rB, qL, rL, topk=topk, backend=backend)
    np.testing.assert_array_equal(valid, ref_valid)
    np.testing.assert_allclose(ap[valid], ref_ap[valid], rtol=0, atol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_matches_reference_with_real_nuswide_labels(backend, nus_case):
    qB, rB, qL, rL = nus_case
    ref_ap, ref_valid = reference_average_precisions(qB, rB, qL, rL)
    ap, valid = metrics.average_precisions(qB, rB, qL, rL, backend=backend)
    assert valid.all()  # every NUS-WIDE TC-10 row has a label, and 2,500 rows cover them all
    np.testing.assert_allclose(ap, ref_ap, rtol=0, atol=1e-9)
    ks = [1, 10, 100, 1000, 2500]
    np.testing.assert_allclose(
        metrics.precision_at_k(qB, rB, qL, rL, ks, backend=backend),
        reference_precision_at_k(qB, rB, qL, rL, ks),
        rtol=0,
        atol=1e-12,
    )
    ref_at_100, _ = reference_average_precisions(qB, rB, qL, rL, topk=100)
    assert metrics.mean_average_precision(qB, rB, qL, rL, topk=100, backend=backend) == pytest.approx(
        ref_at_100.mean(), abs=1e-9
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_precision_at_k_matches_reference(backend):
    qB, rB, qL, rL = _random_case(np.random.default_rng(3), 20, 300, 6, 4, density=0.2)
    ks = [300, 1, 5, 5, 64, 1000]  # unsorted, repeated and beyond the retrieval set on purpose
    np.testing.assert_allclose(
        metrics.precision_at_k(qB, rB, qL, rL, ks, backend=backend),
        reference_precision_at_k(qB, rB, qL, rL, ks),
        rtol=0,
        atol=1e-12,
    )


def test_histograms_count_every_pair():
    qB, rB, qL, rL = _random_case(np.random.default_rng(5), 12, 200, 10, 4)
    items, relevant = metrics.hamming_histograms(qB, rB, qL, rL)
    assert items.shape == relevant.shape == (12, 11)
    dist = (10 - _pm1(qB) @ _pm1(rB).T) // 2
    rel = (qL.astype(int) @ rL.T.astype(int)) > 0
    for d in range(11):
        np.testing.assert_array_equal(items[:, d], (dist == d).sum(axis=1))
        np.testing.assert_array_equal(relevant[:, d], ((dist == d) & rel).sum(axis=1))


# --------------------------------------------------------------------------------------
# Hand-computed case: 4 queries, 6 retrieval items, 4 bits, labels A B C D
# --------------------------------------------------------------------------------------
# retrieval bits (as 0/1)   labels        query bits  labels
# r0 0000  A                              q0 0000  A
# r1 0001  B                              q1 1111  C
# r2 0011  A B                            q2 0011  B
# r3 0111  C                              q3 0101  D  (no retrieval item has D: skipped)
# r4 1111  A
# r5 0000  C
HAND_R = np.array([[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 1], [0, 1, 1, 1], [1, 1, 1, 1], [0, 0, 0, 0]])
HAND_RL = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 1, 0]])
HAND_Q = np.array([[0, 0, 0, 0], [1, 1, 1, 1], [0, 0, 1, 1], [0, 1, 0, 1]])
HAND_QL = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])
# q0: distances r0..r5 = 0 1 2 3 4 0 -> order r0 r5 r1 r2 r3 r4; relevant r0 r2 r4 at ranks 1 4 6
#     AP = (1/1 + 2/4 + 3/6) / 3 = 2/3;  AP@3 = 1/1 (only r0 in the top 3)
# q1: distances 4 3 2 1 0 4 -> order r4 r3 r2 r1 r0 r5; relevant r3 r5 at ranks 2 6
#     AP = (1/2 + 2/6) / 2 = 5/12;  AP@3 = 1/2
# q2: distances 2 1 0 1 2 2 -> order r2 r1 r3 r0 r4 r5; relevant r2 r1 at ranks 1 2
#     AP = (1/1 + 2/2) / 2 = 1;  AP@3 = 1
HAND_AP = np.array([2 / 3, 5 / 12, 1.0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_computed_average_precisions(backend):
    ap, valid = metrics.average_precisions(HAND_Q, HAND_R, HAND_QL, HAND_RL, backend=backend)
    np.testing.assert_array_equal(valid, [True, True, True, False])
    np.testing.assert_allclose(ap[:3], HAND_AP, rtol=0, atol=1e-15)
    assert metrics.mean_average_precision(HAND_Q, HAND_R, HAND_QL, HAND_RL, backend=backend) == pytest.approx(
        25 / 36, abs=1e-15
    )
    # GCDH/DSPH divide by all 4 queries
    assert metrics.mean_average_precision(
        HAND_Q, HAND_R, HAND_QL, HAND_RL, empty_queries="zero", backend=backend
    ) == pytest.approx(25 / 48, abs=1e-15)
    assert metrics.mean_average_precision(HAND_Q, HAND_R, HAND_QL, HAND_RL, topk=3, backend=backend) == pytest.approx(
        (1 + 1 / 2 + 1) / 3, abs=1e-15
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_computed_tie_aware_ap(backend):
    # q0: tie at distance 0 between r0 (relevant) and r5: E[P] = 1/2 * 1/1 + 1/2 * 1/2 = 3/4,
    #     so AP = (3/4 + 2/4 + 3/6) / 3 = 7/12.
    # q1: tie at distance 4 between r0 and r5 (relevant), 4 items and 1 relevant ahead:
    #     E[P] = 1/2 * 2/5 + 1/2 * 2/6 = 11/30, so AP = (1/2 + 11/30) / 2 = 13/30.
    # q2: r2 alone at distance 0; r1 (relevant) ties with r3 at distance 1:
    #     E[P] = 1/2 * 2/2 + 1/2 * 2/3 = 5/6, so AP = (1 + 5/6) / 2 = 11/12.
    ap, _ = metrics.average_precisions(HAND_Q, HAND_R, HAND_QL, HAND_RL, tie_aware=True, backend=backend)
    np.testing.assert_allclose(ap[:3], [7 / 12, 13 / 30, 11 / 12], rtol=0, atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_computed_precision_at_k(backend):
    # K=1: q0 r0 yes, q1 r4 no, q2 r2 yes -> 2/3.  K=2: 1/2, 1/2, 2/2 -> 2/3.
    # K=10 is capped at the 6 items: 3/6, 2/6, 2/6 -> 7/18.
    p = metrics.precision_at_k(HAND_Q, HAND_R, HAND_QL, HAND_RL, [1, 2, 10], backend=backend)
    np.testing.assert_allclose(p, [2 / 3, 2 / 3, 7 / 18], rtol=0, atol=1e-15)
    # tie-aware K=1: q0 ties r0/r5 -> 1/2; q1 0; q2 1 -> 1/2
    p = metrics.precision_at_k(HAND_Q, HAND_R, HAND_QL, HAND_RL, [1], tie_aware=True, backend=backend)
    assert p[0] == pytest.approx(1 / 2, abs=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_computed_pr_curve(backend):
    # Items / relevant items within radius r = 0..4:
    #   q0: items 2 3 4 5 6, relevant 1 1 2 2 3 (of 3)
    #   q1: items 1 2 3 4 6, relevant 0 1 1 1 2 (of 2)
    #   q2: items 1 3 6 6 6, relevant 1 2 2 2 2 (of 2)
    precision, recall = metrics.pr_curve(HAND_Q, HAND_R, HAND_QL, HAND_RL, backend=backend)
    p = np.array(
        [[1 / 2, 1 / 3, 2 / 4, 2 / 5, 3 / 6], [0, 1 / 2, 1 / 3, 1 / 4, 2 / 6], [1, 2 / 3, 2 / 6, 2 / 6, 2 / 6]]
    )
    r = np.array([[1 / 3, 1 / 3, 2 / 3, 2 / 3, 1], [0, 1 / 2, 1 / 2, 1 / 2, 1], [1 / 2, 1, 1, 1, 1]])
    np.testing.assert_allclose(precision, p.mean(axis=0), rtol=0, atol=1e-15)
    np.testing.assert_allclose(recall, r.mean(axis=0), rtol=0, atol=1e-15)
    # GCDH: average over the queries with precision > 0 at each radius (q1 drops out at r=0).
    precision, recall = metrics.pr_curve(HAND_Q, HAND_R, HAND_QL, HAND_RL, average="gcdh", backend=backend)
    assert precision[0] == pytest.approx((1 / 2 + 1) / 2, abs=1e-15)
    assert recall[0] == pytest.approx((1 / 3 + 1 / 2) / 2, abs=1e-15)
    np.testing.assert_allclose(precision[1:], p.mean(axis=0)[1:], rtol=0, atol=1e-15)


def test_pr_curve_gcdh_mode_matches_gcdh_formula():
    """average="gcdh" against GCDH's pr_curve arithmetic written out per query."""
    qB, rB, qL, rL = _random_case(np.random.default_rng(11), 30, 250, 12, 6, density=0.05)
    q, r = _pm1(qB).astype(float), _pm1(rB).astype(float)
    bits = q.shape[1]
    P, R = np.zeros((len(q), bits + 1)), np.zeros((len(q), bits + 1))
    for i in range(len(q)):
        gnd = (qL[i] @ rL.T > 0).astype(float)
        if gnd.sum() == 0:
            continue
        hamm = 0.5 * (bits - r @ q[i])
        within = (hamm[None, :] <= np.arange(bits + 1)[:, None]).astype(float)
        total = within.sum(axis=1)
        total = total + (total == 0) * 0.1
        count = (gnd * within).sum(axis=1)
        P[i], R[i] = count / total, count / gnd.sum()
    mask = (P > 0).sum(axis=0).astype(float)
    mask = mask + (mask == 0) * 0.1
    precision, recall = metrics.pr_curve(qB, rB, qL, rL, average="gcdh")
    np.testing.assert_allclose(precision, P.sum(axis=0) / mask, rtol=0, atol=1e-12)
    np.testing.assert_allclose(recall, R.sum(axis=0) / mask, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------
# Tie-aware AP: exhaustive expectation over all tie orders
# --------------------------------------------------------------------------------------
def _expected_ap_by_enumeration(dist, relevant):
    """Mean AP over every order of the items that is sorted by distance (ties permuted)."""
    groups = [list(np.flatnonzero(dist == d)) for d in np.unique(dist)]
    aps = []
    for perms in itertools.product(*[itertools.permutations(g) for g in groups]):
        ranked = relevant[[j for p in perms for j in p]]
        hits = np.cumsum(ranked)
        aps.append((hits[ranked] / (np.flatnonzero(ranked) + 1)).mean())
    return float(np.mean(aps))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", range(4))
def test_tie_aware_ap_equals_enumerated_expectation(backend, seed):
    rng = np.random.default_rng(seed)
    qB, rB, qL, rL = _random_case(rng, 3, 8, 3, 3, density=0.4)
    rL[0] = 1  # every query has a relevant item
    ap, valid = metrics.average_precisions(qB, rB, qL, rL, tie_aware=True, backend=backend)
    for i in np.flatnonzero(valid):
        dist = (3 - _pm1(rB) @ _pm1(qB[i])) // 2
        relevant = (rL.astype(int) @ qL[i].astype(int)) > 0
        assert ap[i] == pytest.approx(_expected_ap_by_enumeration(dist, relevant), abs=1e-12)


def test_tie_aware_equals_stable_without_ties():
    # 9 retrieval codes at distances 0..8 from the query: no ties, so both rankings agree.
    rB = np.array([[1] * (8 - d) + [-1] * d for d in range(9)])
    rng = np.random.default_rng(0)
    rL = (rng.random((9, 3)) < 0.5).astype(np.uint8)
    rL[4] = 1
    qB, qL = rB[:1], np.ones((1, 3), np.uint8)
    stable = metrics.mean_average_precision(qB, rB, qL, rL)
    assert metrics.mean_average_precision(qB, rB, qL, rL, tie_aware=True) == pytest.approx(stable, abs=1e-14)


def test_tie_aware_differs_from_stable_when_ties_favour_index_order():
    # All items tie; the relevant one has index 0, so the stable order puts it first.
    qB, rB = np.ones((1, 4)), np.ones((5, 4))
    qL, rL = np.array([[1, 0]]), np.array([[1, 0], [0, 1], [0, 1], [0, 1], [0, 1]])
    assert metrics.mean_average_precision(qB, rB, qL, rL) == 1.0
    # Random position among 5: E[1/rank] = (1 + 1/2 + 1/3 + 1/4 + 1/5) / 5
    assert metrics.mean_average_precision(qB, rB, qL, rL, tie_aware=True) == pytest.approx(137 / 300, abs=1e-15)


def test_tie_aware_precision_at_k_is_expected_hits():
    # 5 tied items, 2 relevant: expected hits in the first K is K * 2/5.
    qB, rB = np.ones((1, 4)), np.ones((5, 4))
    qL, rL = np.array([[1, 0]]), np.array([[1, 0], [0, 1], [1, 0], [0, 1], [0, 1]])
    p = metrics.precision_at_k(qB, rB, qL, rL, [1, 3, 5], tie_aware=True)
    np.testing.assert_allclose(p, [2 / 5, 2 / 5, 2 / 5], rtol=0, atol=1e-15)
    np.testing.assert_allclose(metrics.precision_at_k(qB, rB, qL, rL, [1, 3, 5]), [1, 2 / 3, 2 / 5], atol=1e-15)


# --------------------------------------------------------------------------------------
# Limits and properties
# --------------------------------------------------------------------------------------
def test_identical_codes_and_labels_give_map_one():
    rng = np.random.default_rng(1)
    class_codes = rng.choice([-1, 1], size=(5, 32))
    while len({tuple(c) for c in class_codes}) < 5:
        class_codes = rng.choice([-1, 1], size=(5, 32))
    classes = rng.integers(0, 5, size=200)
    codes, labels = class_codes[classes], np.eye(5, dtype=np.uint8)[classes]
    assert metrics.mean_average_precision(codes[:50], codes, labels[:50], labels) == 1.0
    assert metrics.mean_average_precision(codes[:50], codes, labels[:50], labels, tie_aware=True) == pytest.approx(1.0)
    everything_same = np.ones((20, 16))
    assert metrics.mean_average_precision(everything_same, everything_same, np.ones((20, 2)), np.ones((20, 2))) == 1.0


def test_precision_at_k_of_a_perfect_ranking_is_one():
    # Retrieval items share the query's code exactly when they share its label.
    qB = np.array([[1, 1, 1, 1, 1, 1, 1, 1]])
    rB = np.array([[1] * 8] * 30 + [[-1] * 8] * 70)
    rL = np.array([[1, 0]] * 30 + [[0, 1]] * 70)
    np.testing.assert_array_equal(metrics.precision_at_k(qB, rB, [[1, 0]], rL, [1, 10, 30]), [1.0, 1.0, 1.0])
    assert metrics.precision_at_k(qB, rB, [[1, 0]], rL, [60])[0] == pytest.approx(30 / 60)


@pytest.mark.parametrize("average", ["valid", "gcdh"])
def test_pr_recall_rises_to_one(average, nus_case):
    qB, rB, qL, rL = nus_case
    precision, recall = metrics.pr_curve(qB, rB, qL, rL, average=average)
    assert precision.shape == recall.shape == (17,)
    if average == "valid":  # GCDH's changing denominator can make its recall dip
        assert (np.diff(recall) >= 0).all()
    assert recall[-1] == pytest.approx(1.0)
    assert 0 < np.nanmin(precision) and np.nanmax(precision) <= 1


def test_codes_in_01_bool_and_torch_give_the_same_numbers():
    qB, rB, qL, rL = _random_case(np.random.default_rng(2), 15, 120, 12, 4)
    expected = metrics.mean_average_precision(qB, rB, qL, rL)
    as01 = metrics.mean_average_precision((qB > 0).astype(np.uint8), (rB > 0).astype(np.float32), qL, rL)
    as_bool = metrics.mean_average_precision(qB > 0, rB > 0, qL.astype(bool), rL.astype(bool))
    as_torch = metrics.mean_average_precision(
        torch.from_numpy(qB).float(), torch.from_numpy(rB), torch.from_numpy(qL), torch.from_numpy(rL).float()
    )
    assert as01 == as_bool == as_torch == expected


@pytest.mark.parametrize("backend", BACKENDS)
def test_chunking_does_not_change_results(backend):
    qB, rB, qL, rL = _random_case(np.random.default_rng(4), 37, 150, 8, 4)
    full, _ = metrics.average_precisions(qB, rB, qL, rL, backend=backend)
    chunked, _ = metrics.average_precisions(qB, rB, qL, rL, backend=backend, chunk_size=5, progress=True)
    np.testing.assert_array_equal(full, chunked)


def test_backends_agree_exactly_on_counts_and_to_rounding_on_ap():
    qB, rB, qL, rL = _random_case(np.random.default_rng(6), 40, 3000, 24, 10, density=0.1)
    hist_a = metrics.hamming_histograms(qB, rB, qL, rL, backend="numba")
    hist_b = metrics.hamming_histograms(qB, rB, qL, rL, backend="numpy")
    np.testing.assert_array_equal(hist_a[0], hist_b[0])
    np.testing.assert_array_equal(hist_a[1], hist_b[1])
    ks = [1, 10, 100, 1000, 5000]
    np.testing.assert_array_equal(
        metrics.precision_at_k(qB, rB, qL, rL, ks, backend="numba"),
        metrics.precision_at_k(qB, rB, qL, rL, ks, backend="numpy"),
    )
    for kwargs in ({}, {"topk": 100}, {"tie_aware": True}):
        a, _ = metrics.average_precisions(qB, rB, qL, rL, backend="numba", **kwargs)
        b, _ = metrics.average_precisions(qB, rB, qL, rL, backend="numpy", **kwargs)
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=0)


def test_evaluate_retrieval_reports_consistent_numbers():
    qB, rB, qL, rL = _random_case(np.random.default_rng(8), 30, 200, 16, 8, density=0.06)
    report = metrics.evaluate_retrieval(qB, rB, qL, rL, ks=[10, 50])
    ap, valid = metrics.average_precisions(qB, rB, qL, rL)
    assert report["map"] == pytest.approx(np.nanmean(ap), abs=1e-15)
    assert report["num_skipped_queries"] == int((~valid).sum()) > 0
    assert report["map_all_queries_denominator"] == pytest.approx(np.nansum(ap) / 30, abs=1e-15)
    assert report["map_tie_aware"] == pytest.approx(metrics.mean_average_precision(qB, rB, qL, rL, tie_aware=True))
    np.testing.assert_allclose(report["precision_at_k"], metrics.precision_at_k(qB, rB, qL, rL, [10, 50]))
    assert report["pr_recall"] == pytest.approx(list(metrics.pr_curve(qB, rB, qL, rL)[1]))


def test_importing_metrics_compiles_nothing():
    code = "import sys, egath_lite.metrics; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------------------
# Continuous embeddings (cosine ranking)
# --------------------------------------------------------------------------------------
def test_map_from_embeddings_matches_reference_with_exact_ties():
    # One-hot retrieval rows: the cosine with item j is exactly q[k_j] / |q|, so items with
    # the same axis tie exactly and the reference can rank by q[k_j] then by index.
    rng = np.random.default_rng(0)
    axes = rng.integers(0, 6, size=120)
    r_emb = np.eye(6, dtype=np.float32)[axes]
    q_emb = rng.normal(size=(15, 6)).astype(np.float32)
    qL = (rng.random((15, 4)) < 0.4).astype(np.uint8)
    rL = (rng.random((120, 4)) < 0.4).astype(np.uint8)
    for topk in (None, 20):
        expected = []
        for i in range(15):
            relevant = (rL.astype(int) @ qL[i].astype(int)) > 0
            if not relevant.any():
                continue
            order = sorted(range(120), key=lambda j: (-float(q_emb[i, axes[j]]), j))
            ranked = relevant[order][: topk or 120]
            hits = np.cumsum(ranked)
            expected.append((hits[ranked] / (np.flatnonzero(ranked) + 1)).mean() if ranked.any() else 0.0)
        assert metrics.map_from_embeddings(q_emb, r_emb, qL, rL, topk=topk) == pytest.approx(
            np.mean(expected), abs=1e-12
        )


def test_map_from_embeddings_of_identical_embeddings_per_class_is_one():
    rng = np.random.default_rng(3)
    protos = rng.normal(size=(4, 16))
    classes = rng.integers(0, 4, size=80)
    emb, labels = protos[classes], np.eye(4)[classes]
    assert metrics.map_from_embeddings(emb[:20], emb, labels[:20], labels) == pytest.approx(1.0, abs=1e-12)


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------
GOOD = dict(qB=np.ones((3, 8)), rB=-np.ones((5, 8)), qL=np.ones((3, 2)), rL=np.ones((5, 2)))


@pytest.mark.parametrize(
    "change,match",
    [
        (dict(qB=np.full((3, 8), 0.5)), r"values such as \[0.5\]"),
        (dict(rB=np.array([[-1, 0, 1, 1, 1, 1, 1, 1]] * 5)), "mixes -1, 0 and"),
        (dict(qB=np.full((3, 8), np.nan)), "NaN"),
        (dict(rB=np.ones((5, 16))), "8 bits but retrieval_codes have 16"),
        (dict(rL=np.ones((5, 3))), "2 columns but retrieval_labels have 3"),
        (dict(qL=np.ones((4, 2))), "3 query codes but 4 query label rows"),
        (dict(qL=np.full((3, 2), 2)), "multi-hot"),
        (dict(rL=np.full((5, 2), np.inf)), "NaN/Inf"),
        (dict(qB=np.ones((0, 8)), qL=np.ones((0, 2))), "empty"),
        (dict(rB=np.ones(8)), "must be 2-D"),
        (dict(qB=np.array([["a"] * 8] * 3)), "dtype"),
    ],
)
def test_bad_input_raises_a_clear_error(change, match):
    args = {**GOOD, **change}
    with pytest.raises(ValueError, match=match):
        metrics.mean_average_precision(args["qB"], args["rB"], args["qL"], args["rL"])


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: metrics.mean_average_precision(**_good_args(), topk=0), "topk must be"),
        (lambda: metrics.mean_average_precision(**_good_args(), topk=2, tie_aware=True), "mAP@all only"),
        (lambda: metrics.mean_average_precision(**_good_args(), backend="cuda"), "unknown backend"),
        (lambda: metrics.mean_average_precision(**_good_args(), empty_queries="drop"), "empty_queries"),
        (lambda: metrics.precision_at_k(**_good_args(), ks=[0, 5]), "positive integers"),
        (lambda: metrics.precision_at_k(**_good_args(), ks=[]), "non-empty"),
        (lambda: metrics.pr_curve(**_good_args(), average="mean"), "average must be"),
        (
            lambda: metrics.mean_average_precision(
                np.ones((2, 4)), np.ones((2, 4)), [[1, 0], [1, 0]], [[0, 1], [0, 1]]
            ),
            "no query shares a label",
        ),
        (
            lambda: metrics.map_from_embeddings(np.zeros((2, 3)), np.ones((4, 3)), np.ones((2, 1)), np.ones((4, 1))),
            "all-zero row",
        ),
        (
            lambda: metrics.map_from_embeddings(np.ones((2, 3)), np.ones((4, 5)), np.ones((2, 1)), np.ones((4, 1))),
            "dimension 3 but retrieval_emb has 5",
        ),
    ],
)
def test_bad_arguments_raise_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def _good_args():
    return dict(
        query_codes=GOOD["qB"], retrieval_codes=GOOD["rB"], query_labels=GOOD["qL"], retrieval_labels=GOOD["rL"]
    )


# --------------------------------------------------------------------------------------
# Figures of the evaluation stage (egath_lite.plots.retrieval)
# --------------------------------------------------------------------------------------
def test_plots_draw_the_numbers_they_are_given():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from egath_lite.plots import retrieval as rplots

    items, relevant = metrics.hamming_histograms(HAND_Q, HAND_R, HAND_QL, HAND_RL)
    fig = rplots.plot_distance_histograms({"hand": (items, relevant)})
    bars = fig.axes[0].patches
    rel_total = relevant.sum(axis=0)
    np.testing.assert_array_equal(rel_total, [2, 2, 1, 0, 2])  # relevant pairs per distance (see HAND_* above)
    np.testing.assert_allclose([b.get_height() for b in bars[:5]], rel_total / rel_total.sum())
    table = {"egath": {16: {"i2t": 0.5, "t2i": 0.25}, 32: {"i2t": 0.75, "t2i": 0.5}}}
    fig = rplots.plot_map_bars(table)
    assert [b.get_height() for b in fig.axes[0].patches] == [0.5, 0.75]
    assert [b.get_height() for b in fig.axes[1].patches] == [0.25, 0.5]
    precision, recall = np.array([np.nan, 0.5, 0.4]), np.array([0.0, 0.5, 1.0])
    fig = rplots.plot_pr_curves({"panel": {"m": (precision, recall)}})
    x, y = fig.axes[0].lines[0].get_data()
    np.testing.assert_array_equal(x, [0.5, 1.0])  # the radius with no answer is left out
    np.testing.assert_array_equal(y, [0.5, 0.4])
    fig = rplots.plot_precision_at_k({"a": {"m": ([10, 20], [0.9, 0.8])}, "b": {"m": ([10, 20], [0.7, 0.6])}})
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 2
    image = np.zeros((8, 8, 3))
    fig = rplots.plot_retrieval_gallery(
        image,
        "sky",
        [("a b", True, 1), ("c", False, 2)],
        "sky text",
        "sky",
        [(image, True, 0), (image, False, 3), (image, False, 3)],
    )
    assert len(fig.axes) == 3 + 3  # query image, text list, text query box, three retrieved images
    with pytest.raises(ValueError, match="at least one"):
        rplots.plot_retrieval_gallery(image, "sky", [], "t", "sky", [(image, True, 0)])
    plt.close("all")


def test_embedding_inputs_must_pair_with_their_labels():
    """Continuous embeddings go through the same pairing checks as codes."""
    from egath_lite.metrics import map_from_embeddings

    rng = np.random.default_rng(0)
    qX, rX = rng.standard_normal((4, 8)), rng.standard_normal((6, 8))
    qL, rL = np.eye(4, 3, dtype=np.uint8) + (np.arange(4)[:, None] == 3), np.ones((6, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="5 retrieval embeddings but 6 retrieval label rows"):
        map_from_embeddings(qX, rX[:5], qL, rL)
    with pytest.raises(ValueError, match="query_labels have 3 columns but retrieval_labels have 2"):
        map_from_embeddings(qX, rX, qL, rL[:, :2])
    assert map_from_embeddings(qX, rX, qL, rL) == pytest.approx(1.0)  # every item is relevant to every query
