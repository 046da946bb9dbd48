"""HammingIndex.range_search against a plain loop, and the faiss-free (packed) backend against faiss."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from egath_lite.serve import index as index_module
from egath_lite.serve.index import HammingIndex

faiss = pytest.importorskip("faiss")  # the comparisons below need both backends


def _loop_range(qB, rB, radius):
    """Per query, plainly: ids with (count of differing bits) <= radius, ordered by (distance, id)."""
    q, r = np.asarray(qB) > 0, np.asarray(rB) > 0
    answers = []
    for row in q:
        hits = [(int((row != item).sum()), j) for j, item in enumerate(r)]
        answers.append(sorted((d, j) for d, j in hits if d <= radius))
    return answers


def _as_lists(lims, d, i):
    return [list(zip(d[a:b].tolist(), i[a:b].tolist())) for a, b in zip(lims[:-1], lims[1:])]


def _codes(rng, n, bits, clusters=4):
    """±1 codes around a few centres (so small radii find something), with exact duplicates for ties."""
    centres = rng.choice([-1, 1], size=(clusters, bits))
    flips = rng.random((n, bits)) < 0.15
    near = centres[rng.integers(0, clusters, n)]
    codes = np.where(flips, -near, near)
    dup = min(20, n // 2)
    codes[n // 2 : n // 2 + dup] = codes[:dup]  # exact duplicates: ties broken by id
    return codes.astype(np.int8)


@pytest.mark.parametrize("backend", ["faiss", "packed"])
@pytest.mark.parametrize("bits", [16, 64, 100])
def test_range_search_equals_a_plain_loop(backend, bits):
    rng = np.random.default_rng(bits)
    rB = _codes(rng, 800, bits)
    qB = np.concatenate([rB[:6], _codes(rng, 6, bits)])  # queries that are in the database, and new ones
    index = HammingIndex(bits, backend=backend).add(rB[:500]).add(rB[500:])
    nhash, _ = index_module._hash_layout(index._width)
    # radii through the multi-hash (radius // nhash <= 2) and past it (flat scan), up to everything
    for radius in sorted({0, 1, 3, 2 * nhash, 3 * nhash + 1, bits // 4, bits}):
        lims, d, i = index.range_search(qB, radius, batch_size=5)
        assert lims.dtype == np.int64 and d.dtype == np.int32 and i.dtype == np.int64
        assert _as_lists(lims, d, i) == _loop_range(qB, rB, radius), (backend, bits, radius)
    assert lims[-1] == len(qB) * len(rB)  # radius = bits answers everything


def test_hash_path_is_used_and_kept_in_step_with_add():
    rng = np.random.default_rng(3)
    rB = _codes(rng, 600, 64)
    index = HammingIndex(64).add(rB[:300])
    index.range_search(rB[:4], 2)
    assert isinstance(index._hash, faiss.IndexBinaryMultiHash)
    index.add(rB[300:])  # later codes go into the hash too
    lims, d, i = index.range_search(rB[:8], 5)
    assert _as_lists(lims, d, i) == _loop_range(rB[:8], rB, 5)


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_range_search_is_exact_for_approximate_kinds(kind):
    rng = np.random.default_rng(4)
    rB = _codes(rng, 2000, 32)
    qB = rB[:5]
    options = {"nlist": 8} if kind == "ivf" else {}
    index = HammingIndex(32, kind=kind, **options).add(rB)
    for radius in (1, 9):
        lims, d, i = index.range_search(qB, radius)
        assert _as_lists(lims, d, i) == _loop_range(qB, rB, radius)


@pytest.mark.parametrize("bits,k", [(8, 300), (16, 1000), (64, 50), (100, 7)])
def test_without_faiss_search_equals_the_faiss_backend(monkeypatch, bits, k):
    rng = np.random.default_rng(bits + k)
    rB = _codes(rng, 3000, bits)
    qB = _codes(rng, 40, bits)
    with_faiss = HammingIndex(bits).add(rB)
    assert with_faiss.backend == "faiss"
    expected = with_faiss.search(qB, k)
    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` now raises ImportError
    assert not index_module.faiss_available()
    without = HammingIndex(bits).add(rB[:1000]).add(rB[1000:])
    assert without.backend == "packed"
    got = without.search(qB, k, batch_size=7)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    assert got[0].dtype == np.int32 and got[1].dtype == np.int64
    np.testing.assert_array_equal(without.search(qB, 10**6)[1].shape, (40, 3000))  # k beyond the database


def test_without_faiss_approximate_kinds_say_what_to_do(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(ImportError, match="pip install faiss-cpu.*kind='flat'"):
        HammingIndex(64, kind="hnsw")
    assert HammingIndex(64).backend == "packed"


@pytest.mark.parametrize("radius", [-1, 2.5, True])
def test_bad_radius_is_refused(radius):
    index = HammingIndex(8).add(np.ones((3, 8)))
    with pytest.raises(ValueError, match="radius must be an integer >= 0"):
        index.range_search(np.ones((1, 8)), radius)


def test_bad_backend_is_refused():
    with pytest.raises(ValueError, match="unknown backend"):
        HammingIndex(8, backend="gpu")
