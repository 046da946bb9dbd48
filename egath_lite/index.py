"""Top-K Hamming search over millions of binary codes through faiss.

``HammingIndex(num_bits)`` wraps ``faiss.IndexBinaryFlat`` (exact, brute force over packed
codes with POPCNT) or ``faiss.IndexBinaryHNSW`` (approximate graph search, for databases
where even a packed scan is too slow per query).

Tie rule, the same as ``egath_lite.metrics``: results are ordered by Hamming distance,
then by database id (the order of ``add``). For the flat index this holds for the whole
answer, including which of several items tied at the K-th distance get in: faiss keeps
its result heaps ordered by (distance, id) and scans the database in id order, so among
equal distances the smaller ids win (pinned by tests/test_index.py against a stable
sort). The HNSW index is approximate: it may miss true neighbours, and the tie rule then
orders what it found.

Codes are ``{-1,+1}`` or ``{0,1}`` (numpy or torch), validated like the metrics' inputs.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .metrics._inputs import code_bits, to_numpy

KINDS = ("flat", "hnsw")


def _faiss():
    try:
        import faiss
    except ImportError as exc:  # optional dependency
        raise ImportError(f"egath_lite.index needs faiss ({exc}); `pip install faiss-cpu` "
                          f"(or `pip install egath_lite[faiss]`)") from exc
    return faiss


def pack_for_faiss(codes: Any, num_bits: int, name: str = "codes") -> np.ndarray:
    """Codes (n, num_bits) in {-1,+1} or {0,1} -> uint8 (n, ceil(num_bits / 8) rounded up to faiss's width)."""
    bits = code_bits(codes, name)
    if bits.shape[1] != num_bits:
        raise ValueError(f"{name} have {bits.shape[1]} bits but the index holds {num_bits}-bit codes")
    width = _padded_bits(num_bits)
    if width != num_bits:  # zero padding adds nothing to any distance
        bits = np.concatenate([bits, np.zeros((len(bits), width - num_bits), bool)], axis=1)
    return np.packbits(bits, axis=1)


def _padded_bits(num_bits: int) -> int:
    return 8 * ((num_bits + 7) // 8)  # faiss binary indexes need a multiple of 8 bits


class HammingIndex:
    """A faiss binary index with the stable (distance, id) tie rule; ``add`` codes, then ``search``."""

    def __init__(self, num_bits: int, kind: str = "flat", hnsw_neighbors: int = 32, ef_search: int = 128,
                 ef_construction: int = 64) -> None:
        if isinstance(num_bits, bool) or not isinstance(num_bits, (int, np.integer)) or num_bits < 1:
            raise ValueError(f"num_bits must be a positive integer, got {num_bits!r}")
        if kind not in KINDS:
            raise ValueError(f"unknown index kind {kind!r}; choose one of {KINDS}")
        faiss = _faiss()
        self.num_bits = int(num_bits)
        self.kind = kind
        width = _padded_bits(self.num_bits)
        if kind == "flat":
            self._index = faiss.IndexBinaryFlat(width)
        else:
            if hnsw_neighbors < 2 or ef_search < 1 or ef_construction < 1:
                raise ValueError("hnsw_neighbors must be >= 2 and ef_search, ef_construction >= 1")
            self._index = faiss.IndexBinaryHNSW(width, int(hnsw_neighbors))
            self._index.hnsw.efConstruction = int(ef_construction)
            self._index.hnsw.efSearch = int(ef_search)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def __repr__(self) -> str:
        return f"HammingIndex(num_bits={self.num_bits}, kind={self.kind!r}, size={len(self)})"

    def add(self, codes: Any, batch_size: int = 1_000_000) -> "HammingIndex":
        """Append codes (n, num_bits); ids continue from ``len(self)``. Packs in batches to bound memory."""
        arr = to_numpy(codes, "codes")
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise ValueError(f"codes must be a non-empty 2-D array (items × bits), got shape {arr.shape}")
        for start in range(0, len(arr), batch_size):
            self._index.add(pack_for_faiss(arr[start:start + batch_size], self.num_bits))
        return self

    def search(self, query_codes: Any, k: int, batch_size: int = 4096,
               progress: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest codes per query: distances int32 (n_query, k') and ids int64 (n_query, k'), k' = min(k, len)."""
        if len(self) == 0:
            raise ValueError("the index is empty; add() retrieval codes before searching")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        k = min(int(k), len(self))
        arr = to_numpy(query_codes, "query_codes")
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise ValueError(f"query_codes must be a non-empty 2-D array (queries × bits), got shape {arr.shape}")
        starts = range(0, len(arr), batch_size)
        if progress is None:
            progress = len(arr) * len(self) > 500_000_000
        if progress:
            from .progress import tqdm

            starts = tqdm(starts, desc="Hamming search", unit="batch", total=len(starts))
        distances, ids = [], []
        for start in starts:
            packed = pack_for_faiss(arr[start:start + batch_size], self.num_bits, "query_codes")
            d, i = self._index.search(packed, k)
            distances.append(d)
            ids.append(i)
        d, i = np.concatenate(distances).astype(np.int32), np.concatenate(ids).astype(np.int64)
        if (i < 0).any():  # HNSW can return fewer than k results when ef_search is small
            raise RuntimeError(f"faiss returned fewer than k={k} results; raise ef_search (now "
                               f"{self._index.hnsw.efSearch if self.kind == 'hnsw' else 'n/a'})")
        order = np.lexsort((i, d), axis=-1)  # (distance, id) within each row
        return np.take_along_axis(d, order, axis=1), np.take_along_axis(i, order, axis=1)


def hamming_top_k(query_codes: Any, retrieval_codes: Any, k: int, kind: str = "flat",
                  **index_options: Any) -> tuple[np.ndarray, np.ndarray]:
    """Build an index on ``retrieval_codes`` and return the k nearest (distances int32, ids int64) per query."""
    rb = to_numpy(retrieval_codes, "retrieval_codes")
    if rb.ndim != 2:
        raise ValueError(f"retrieval_codes must be 2-D (items × bits), got shape {rb.shape}")
    index = HammingIndex(rb.shape[1], kind=kind, **index_options).add(rb)
    return index.search(query_codes, k)
