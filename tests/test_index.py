"""egath_lite.serve.index (faiss Hamming search) against a plain stable sort, and its tie rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from egath_lite import metrics
from egath_lite.serve.index import HammingIndex, hamming_top_k


def _reference_top_k(qB, rB, k):
    """Stable sort of plain Hamming distances (count of differing bits), one query at a time."""
    q, r = np.asarray(qB) > 0, np.asarray(rB) > 0
    out_d, out_i = [], []
    for row in q:
        dist = (row[None, :] != r).sum(axis=1)
        order = np.argsort(dist, kind="stable")[:k]
        out_d.append(dist[order])
        out_i.append(order)
    return np.array(out_d), np.array(out_i)


@pytest.mark.parametrize(
    "bits,n,k", [(8, 3000, 100), (8, 3000, 377), (16, 20_000, 1000), (12, 500, 499), (100, 2000, 50)]
)
def test_flat_search_equals_stable_sort_with_ties(bits, n, k):
    rng = np.random.default_rng(bits + k)
    rB = rng.choice([-1, 1], size=(n, bits))
    qB = rng.choice([-1, 1], size=(25, bits))
    d, i = HammingIndex(bits).add(rB).search(qB, k)
    ref_d, ref_i = _reference_top_k(qB, rB, k)
    np.testing.assert_array_equal(d, ref_d)
    np.testing.assert_array_equal(i, ref_i)  # the same items, tie groups cut by index
    assert d.dtype == np.int32 and i.dtype == np.int64


def test_k_beyond_the_database_returns_everything_in_stable_order():
    rng = np.random.default_rng(0)
    rB = rng.integers(0, 2, size=(40, 4))
    qB = rng.integers(0, 2, size=(3, 4))
    d, i = hamming_top_k(qB, rB, k=1000)
    ref_d, ref_i = _reference_top_k(qB, rB, 40)
    assert d.shape == (3, 40)
    np.testing.assert_array_equal(i, ref_i)
    np.testing.assert_array_equal(d, ref_d)


def test_incremental_add_continues_ids_and_accepts_every_code_format():
    rng = np.random.default_rng(1)
    rB = rng.choice([-1, 1], size=(600, 32)).astype(np.int8)
    qB = rng.choice([-1, 1], size=(10, 32))
    index = HammingIndex(32)
    index.add(rB[:200]).add(torch.from_numpy((rB[200:400] > 0).astype(np.float32))).add(rB[400:] > 0)
    assert len(index) == 600
    d, i = index.search(torch.from_numpy(qB), 64)
    ref_d, ref_i = _reference_top_k(qB, rB, 64)
    np.testing.assert_array_equal(i, ref_i)
    np.testing.assert_array_equal(d, ref_d)


def test_a_million_codes():
    # A 32-bit database of 10^6 codes; distances checked by XOR + popcount on uint32 words.
    rng = np.random.default_rng(2)
    words = rng.integers(0, 2**32, size=1_000_000, dtype=np.uint64).astype(np.uint32)
    rB = ((words[:, None] >> np.arange(32, dtype=np.uint32)) & 1).astype(np.uint8)
    index = HammingIndex(32).add(rB, batch_size=300_000)
    q_words = words[[5, 123_456, 999_999]]
    d, i = index.search(rB[[5, 123_456, 999_999]], 10)
    np.testing.assert_array_equal(i[:, 0], [5, 123_456, 999_999])  # each finds itself first
    assert (d[:, 0] == 0).all()
    xor = q_words[:, None] ^ words[i]
    popcount = np.array([[bin(int(x)).count("1") for x in row] for row in xor])
    np.testing.assert_array_equal(d, popcount)
    full = np.array([bin(int(x)).count("1") for x in (words ^ q_words[0])])
    assert d[0, -1] == np.sort(full)[9]  # the 10th smallest distance over all 10^6


def test_precision_at_k_from_the_index_equals_metrics():
    """The index and the metrics share the stable tie rule, so their top-K agree."""
    rng = np.random.default_rng(3)
    rB, qB = rng.choice([-1, 1], size=(2000, 8)), rng.choice([-1, 1], size=(30, 8))
    rL, qL = (rng.random((2000, 5)) < 0.3), (rng.random((30, 5)) < 0.3)
    qL[:, 0] = True
    rL[:10, 0] = True
    _, ids = hamming_top_k(qB, rB, 150)
    relevant = (qL[:, None, :] & rL[ids]).any(axis=2)
    np.testing.assert_allclose(
        relevant.mean(axis=1).mean(), metrics.precision_at_k(qB, rB, qL, rL, [150])[0], rtol=0, atol=1e-15
    )


def test_hnsw_finds_most_true_neighbours_and_keeps_the_tie_order():
    rng = np.random.default_rng(4)
    centers = rng.choice([-1, 1], size=(20, 64))
    noise = rng.random((5000, 64)) < 0.1
    rB = np.where(noise, -1, 1) * centers[rng.integers(0, 20, size=5000)]
    qB = rB[rng.choice(5000, size=40, replace=False)]
    k = 20
    d, i = HammingIndex(64, kind="hnsw", hnsw_neighbors=16, ef_search=128).add(rB).search(qB, k)
    ref_d, ref_i = _reference_top_k(qB, rB, k)
    true_d = (np.asarray(qB)[:, None, :] != rB[i]).sum(axis=2)
    np.testing.assert_array_equal(d, true_d)  # reported distances are the real ones
    assert (np.diff(d, axis=1) >= 0).all()
    ties = np.diff(d, axis=1) == 0
    assert (np.diff(i, axis=1)[ties] > 0).all()  # equal distances: increasing id
    # approximate: at least 90% of the k-th distances are reached, and recall of ids is high
    assert (d[:, -1] <= ref_d[:, -1]).mean() >= 0.9
    recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(i, ref_i)])
    assert recall >= 0.8


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: HammingIndex(0), ValueError, "num_bits must be"),
        (lambda: HammingIndex(16, kind="lsh"), ValueError, "unknown index kind"),
        (lambda: HammingIndex(16).search(np.ones((1, 16)), 5), ValueError, "index is empty"),
        (lambda: HammingIndex(16).add(np.ones((4, 16))).search(np.ones((1, 16)), 0), ValueError, "k must be"),
        (lambda: HammingIndex(16).add(np.ones((4, 8))), ValueError, "have 8 bits but the index holds 16"),
        (lambda: HammingIndex(16).add(np.full((4, 16), 0.5)), ValueError, "values such as"),
        (lambda: HammingIndex(16).add(np.ones((4, 16))).search(np.full((1, 16), np.nan), 2), ValueError, "NaN"),
        (lambda: HammingIndex(16).add(np.ones(16)), ValueError, "2-D"),
    ],
)
def test_bad_input_raises_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()
