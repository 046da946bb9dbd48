"""Cosine-ranking mAP of continuous embeddings (egath_lite.metrics.map_from_embeddings) against a plain loop."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from egath_lite import metrics
from egath_lite.metrics import _embeddings
from egath_lite.metrics.inputs import pack_bits

BACKENDS = ("numba", "numpy")


# --------------------------------------------------------------------------------------
# Plain reference: per query, a stable argsort of the negated scores, precision at each
# relevant rank within the cut.
# --------------------------------------------------------------------------------------
def plain_average_precisions(scores, qL, rL, topk=None):
    """(AP with NaN where no item is relevant, valid mask) from a score matrix (nq, n), one query at a time."""
    aps, valid = [], []
    for i in range(scores.shape[0]):
        relevant = (np.asarray(rL, dtype=np.int64) @ np.asarray(qL[i], dtype=np.int64)) > 0
        if not relevant.any():
            aps.append(np.nan)
            valid.append(False)
            continue
        ranked = relevant[np.argsort(-scores[i], kind="stable")]  # ties by retrieval index
        cut = len(ranked) if topk is None else min(topk, len(ranked))
        hits, precisions = 0, []
        for rank in range(1, cut + 1):
            if ranked[rank - 1]:
                hits += 1
                precisions.append(hits / rank)
        aps.append(sum(precisions) / len(precisions) if precisions else 0.0)
        valid.append(True)
    return np.array(aps), np.array(valid)


def unit(x):
    """Rows scaled to unit norm in float32, exactly as the metric does."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def dyadic_embeddings(rng, n, dim=12, nonzeros=4):
    """Rows with four entries ±1 (norm 2): after scaling every entry is ±0.5 and every cosine
    is a multiple of 1/4, exact in float32 whatever the summation order, so most scores tie exactly."""
    x = np.zeros((n, dim), np.float32)
    for row in x:
        row[rng.choice(dim, size=nonzeros, replace=False)] = rng.choice([-1.0, 1.0], size=nonzeros)
    return x


def labels(rng, n, num_labels=5, density=0.25):
    return (rng.random((n, num_labels)) < density).astype(np.uint8)


# --------------------------------------------------------------------------------------
# Hand-computed case
# --------------------------------------------------------------------------------------
def test_hand_computed_cosine_ap_with_ties():
    # query e0; retrieval cosines 0, 1, 0, 1/2, 1, -1 (r0, r2 orthogonal; r1, r4 parallel)
    q = np.array([[1.0, 0.0]])
    r = np.array([[0.0, 1.0], [2.0, 0.0], [0.0, -3.0], [1.0, np.sqrt(3.0)], [5.0, 0.0], [-1.0, 0.0]])
    rel = np.array([[1], [0], [1], [1], [1], [0]])
    # order: r1 r4 (cos 1, by index) | r3 (1/2) | r0 r2 (cos 0, by index) | r5
    # relevant r4 r3 r0 r2 at ranks 2 3 4 5: AP = (1/2 + 2/3 + 3/4 + 4/5) / 4
    for backend in BACKENDS:
        ap, valid = metrics.embedding_average_precisions(q, r, [[1]], rel, backend=backend)
        assert valid.all()
        assert ap[0] == pytest.approx((1 / 2 + 2 / 3 + 3 / 4 + 4 / 5) / 4, abs=1e-7)  # sqrt(3) rounds in float32
        assert metrics.map_from_embeddings(q, r, [[1]], rel, topk=3, backend=backend) == pytest.approx(
            (1 / 2 + 2 / 3) / 2, abs=1e-7
        )


# --------------------------------------------------------------------------------------
# Against the plain loop
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("topk", [None, 1, 7, 150, 10_000])
def test_exact_ties_match_the_plain_loop(backend, topk):
    rng = np.random.default_rng(topk or 0)
    q, r = dyadic_embeddings(rng, 25), dyadic_embeddings(rng, 300)
    qL, rL = labels(rng, 25), labels(rng, 300)
    scores = unit(q) @ unit(r).T
    assert len(np.unique(scores)) < 20  # hundreds of exact ties per query
    ref_ap, ref_valid = plain_average_precisions(scores, qL, rL, topk)
    for chunk_size in (None, 1, 4):  # exact scores: the chunking cannot change them
        ap, valid = metrics.embedding_average_precisions(q, r, qL, rL, topk, backend=backend, chunk_size=chunk_size)
        np.testing.assert_array_equal(valid, ref_valid)
        assert valid.any() and not valid.all()
        np.testing.assert_allclose(ap[valid], ref_ap[valid], rtol=0, atol=1e-12)
        assert np.isnan(ap[~valid]).all()
    assert metrics.map_from_embeddings(q, r, qL, rL, topk, backend=backend) == pytest.approx(
        ref_ap[ref_valid].mean(), abs=1e-12
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_random_float_embeddings_match_the_plain_loop_and_the_earlier_code(backend):
    rng = np.random.default_rng(1)
    q, r = rng.normal(size=(30, 64)).astype(np.float32), rng.normal(size=(700, 64)).astype(np.float32)
    r[100:110] = r[5]  # duplicated items: exact ties on top of continuous scores
    qL, rL = labels(rng, 30), labels(rng, 700)
    # The same product as the metric computes: one chunk, one BLAS thread (the last bit of a
    # float32 BLAS sum depends on the thread split, and near-ties then swap).
    with threadpool_limits(limits=1, user_api="blas"):
        scores = unit(q) @ unit(r).T
        old_ap, old_valid = _embeddings._embedding_average_precisions_reference(q, r, qL, rL)
        ap, valid = metrics.embedding_average_precisions(q, r, qL, rL, backend=backend)
    ref_ap, ref_valid = plain_average_precisions(scores, qL, rL)
    np.testing.assert_array_equal(valid, ref_valid)
    np.testing.assert_allclose(ap[valid], ref_ap[valid], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(valid, old_valid)
    np.testing.assert_allclose(ap[valid], old_ap[valid], rtol=0, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_scores_with_signed_zeros_piles_and_outliers_rank_as_the_plain_loop(backend):
    # Score matrices the bucket sort must get right: -0.0 tying +0.0, all scores equal (one
    # bucket), scores piled in a range of a few ulps next to a far outlier (so nearly all land in
    # one bucket and the insertion pass gives way to a full sort), and a wide spread.
    rng = np.random.default_rng(2)
    n = 400
    pile = np.float32(0.5) + rng.integers(0, 64, size=n).astype(np.float32) * np.float32(2**-24)
    pile[17] = -1.0
    zeros = np.where(rng.random(n) < 0.5, np.float32(-0.0), np.float32(0.0)).astype(np.float32)
    zeros[::7] = np.float32(0.25)
    rows = [
        zeros,
        np.full(n, 0.3, np.float32),
        pile,
        rng.normal(size=n).astype(np.float32),
        -np.abs(rng.normal(size=n)).astype(np.float32),
    ]
    scores = np.stack(rows).astype(np.float32)
    assert np.signbit(scores[0]).any() and (scores[0] == 0).sum() > 100
    qL = np.ones((len(rows), 1), np.uint8)
    rL = (rng.random((n, 1)) < 0.4).astype(np.uint8)
    kernel, _, _ = _embeddings._score_kernel(backend)
    for topk in (None, 10):
        ref_ap, _ = plain_average_precisions(scores, qL, rL, topk)
        ap, num_rel = kernel(scores, pack_bits(qL.astype(bool)), pack_bits(rL.astype(bool)), topk or n)
        np.testing.assert_array_equal(num_rel, rL.sum())
        np.testing.assert_allclose(ap, ref_ap, rtol=0, atol=1e-12)


def test_signed_zeros_tie_so_the_index_decides():
    # -0.0 at index 0 and +0.0 at index 1: a tie, so index 0 ranks first whichever sign it has.
    scores = np.array([[-0.0, 0.0, -1.0], [0.0, -0.0, -1.0]], np.float32)
    rel = pack_bits(np.array([[True], [False], [False]]))
    for backend in BACKENDS:
        kernel, _, _ = _embeddings._score_kernel(backend)
        ap, _ = kernel(scores, pack_bits(np.ones((2, 1), bool)), rel, 3)
        np.testing.assert_array_equal(ap, [1.0, 1.0])


def test_backends_agree_on_a_larger_case():
    rng = np.random.default_rng(3)
    q, r = rng.normal(size=(40, 32)), rng.normal(size=(3_000, 32))
    qL, rL = labels(rng, 40, 10, 0.2), labels(rng, 3_000, 10, 0.2)
    a, va = metrics.embedding_average_precisions(q, r, qL, rL, backend="numba")
    b, vb = metrics.embedding_average_precisions(q, r, qL, rL, backend="numpy", chunk_size=40)
    np.testing.assert_array_equal(va, vb)
    np.testing.assert_allclose(a[va], b[vb], rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------
# Limits and bad input
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_one_vector_per_class_gives_map_one(backend):
    rng = np.random.default_rng(4)
    protos = rng.normal(size=(4, 16))
    classes = rng.integers(0, 4, size=80)
    emb, y = protos[classes], np.eye(4)[classes]
    for topk in (None, 1, 5):
        assert metrics.map_from_embeddings(emb[:20], emb, y[:20], y, topk, backend=backend) == pytest.approx(
            1.0, abs=1e-12
        )


@pytest.mark.parametrize(
    "call,match",
    [
        (
            lambda: metrics.map_from_embeddings(
                np.ones((2, 3)), np.ones((4, 3)), np.ones((2, 1)), np.ones((4, 1)), backend="cuda"
            ),
            "unknown backend 'cuda'",
        ),
        (
            lambda: metrics.map_from_embeddings(
                np.ones((2, 3)), np.ones((4, 3)), np.ones((2, 1)), np.ones((4, 1)), chunk_size=0
            ),
            "chunk_size must be a positive integer",
        ),
        (
            lambda: metrics.map_from_embeddings(
                np.ones((2, 3)), np.ones((4, 3)), np.ones((2, 1)), np.ones((4, 1)), topk=0
            ),
            "topk must be",
        ),
        (
            lambda: metrics.map_from_embeddings(
                np.full((2, 3), np.nan), np.ones((4, 3)), np.ones((2, 1)), np.ones((4, 1))
            ),
            "NaN/Inf",
        ),
        (
            lambda: metrics.map_from_embeddings(np.ones((2, 3)), np.ones((4, 3)), np.ones((2, 1)), np.zeros((4, 1))),
            "no query shares a label",
        ),
    ],
)
def test_bad_arguments_raise_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
