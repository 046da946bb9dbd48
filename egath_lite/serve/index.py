"""Top-K and radius Hamming search over millions of binary codes: exact (flat) or approximate (IVF, HNSW, faiss).

``HammingIndex(num_bits, kind)`` wraps one faiss binary index over packed codes when faiss is installed, and
works without it for the exact kind (``backend="packed"``, chosen automatically when faiss is missing): the
project's own XOR + popcount over the packed bytes, chunked, with the same tie rule and the same results.

- ``"flat"``: ``faiss.IndexBinaryFlat``, exact brute force (XOR + POPCNT over every code). The reference.
- ``"ivf"``: ``faiss.IndexBinaryIVF``, k-means cells (``nlist``) trained on the codes of the first ``add``;
  a query scans the ``nprobe`` nearest cells. ``nprobe == nlist`` scans everything and finds the exact
  distances; smaller ``nprobe`` trades recall for speed.
- ``"hnsw"``: ``faiss.IndexBinaryHNSW``, a neighbour graph (``hnsw_neighbors`` = M links per node); a query
  walks it with a beam of ``ef_search``. No training, slow to build, fast to query.

Tie rule, the same as ``egath_lite.metrics``: results are ordered by Hamming distance, then by database id
(the order of ``add``). For the flat index this holds for the whole answer, including which of several
items tied at the K-th distance get in: faiss keeps its result heaps ordered by (distance, id) and scans the
database in id order, so among equal distances the smaller ids win (pinned by tests/test_index.py against a
stable sort). IVF and HNSW are approximate: they may miss true neighbours, and even when they find every
distance (``nprobe == nlist``, a large ``ef_search``) the items tied at the K-th distance that get in depend
on their scan order, not on the id; the tie rule then orders what they found. Measure them with
``tie_aware_recall`` (tests/test_serving.py, benchmarks/bench_serving.py).

``range_search(queries, radius)`` returns every item within Hamming distance ``radius`` (inclusive, the answer
of the PR curve at that radius), ordered by (distance, id), for every kind. Its fast path with faiss is a
``faiss.IndexBinaryMultiHash`` (built on the first radius query): the code is split into ``nhash`` disjoint
fields of ``b`` bits, and an item within distance r differs from the query in at most ``r // nhash`` bits of
at least one field (pigeonhole), so enumerating the buckets within ``r // nhash`` flips of each field finds
all of them, exactly. That enumeration grows as C(b, r // nhash), so from ``r // nhash > 2`` on the flat scan
(faiss's, or the packed kernel without faiss) is faster and is used instead.

Codes are ``{-1,+1}`` or ``{0,1}`` (numpy or torch), packed by ``egath_lite.metrics.pack_codes`` (the one
bit order, docs/serving.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from egath_lite.metrics.inputs import pack_codes, popcount, to_numpy

KINDS = ("flat", "ivf", "hnsw")
BACKENDS = ("auto", "faiss", "packed")
_PAIRS_PER_CHUNK = 4_000_000  # query × item distances held at once by the packed backend (8 bytes each at most)
_MAX_HASH_FLIPS = 2  # beyond this many flips per hash field the flat scan beats the multi-hash enumeration
_MIN_POINTS_PER_CELL = 39  # faiss's k-means warns below 39 training points per centroid


def faiss_available() -> bool:
    """Whether ``import faiss`` works here."""
    try:
        _faiss()
    except ImportError:
        return False
    return True


def _faiss():
    try:
        import faiss
    except ImportError as exc:  # optional dependency
        raise ImportError(
            f"egath_lite.serve.index needs faiss ({exc}); `pip install faiss-cpu` (or `pip install egath_lite[faiss]`)"
        ) from exc
    return faiss


def pack_for_faiss(codes: Any, num_bits: int, name: str = "codes") -> np.ndarray:
    """Codes (n, num_bits) in {-1,+1} or {0,1} -> uint8 (n, ceil(num_bits / 8)), zero-padded to whole bytes."""
    packed = pack_codes(codes, name, pad=True)
    bits = to_numpy(codes, name).shape[1]
    if bits != num_bits:
        raise ValueError(f"{name} have {bits} bits but the index holds {num_bits}-bit codes")
    return packed


def _padded_bits(num_bits: int) -> int:
    return 8 * ((num_bits + 7) // 8)  # faiss binary indexes need a multiple of 8 bits


def _positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def default_nlist(num_codes: int, train_size: int = 256 * 1024) -> int:
    """IVF cells for ``num_codes`` codes: about 4·sqrt(n) (faiss's guideline), with >= 39 training codes per cell."""
    trained_on = min(num_codes, train_size)
    return int(max(1, min(round(4 * np.sqrt(num_codes)), trained_on // _MIN_POINTS_PER_CELL)))


class HammingIndex:
    """A faiss binary index (flat, ivf or hnsw) with the stable (distance, id) tie rule; ``add`` codes, then ``search``."""

    def __init__(
        self,
        num_bits: int,
        kind: str = "flat",
        hnsw_neighbors: int = 32,
        ef_search: int = 128,
        ef_construction: int = 64,
        nlist: int | None = None,
        nprobe: int = 16,
        train_size: int = 256 * 1024,
        backend: str = "auto",
    ) -> None:
        if isinstance(num_bits, bool) or not isinstance(num_bits, (int, np.integer)) or num_bits < 1:
            raise ValueError(f"num_bits must be a positive integer, got {num_bits!r}")
        if kind not in KINDS:
            raise ValueError(f"unknown index kind {kind!r}; choose one of {KINDS}")
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
        if backend == "auto":
            backend = "faiss" if faiss_available() else "packed"
        if backend == "packed" and kind != "flat":
            raise ImportError(
                f"kind={kind!r} is a faiss index and faiss is not installed (or backend='packed' was asked for); "
                f"`pip install faiss-cpu`, or use kind='flat' (exact, works without faiss)"
            )
        self.backend = backend
        self.num_bits = int(num_bits)
        self.kind = kind
        self._width = _padded_bits(self.num_bits)
        self._index = None  # the IVF index is made at the first add, when the codes to train on are known
        self._packed: list[np.ndarray] = []  # uint8 (n, width / 8): the packed backend's codes (faiss: read back)
        self._hash = None  # faiss multi-hash for range_search, built on the first radius query
        self._size = 0
        if backend == "packed":
            return
        faiss = _faiss()
        if kind == "flat":
            self._index = faiss.IndexBinaryFlat(self._width)
        elif kind == "hnsw":
            if hnsw_neighbors < 2 or ef_search < 1 or ef_construction < 1:
                raise ValueError("hnsw_neighbors must be >= 2 and ef_search, ef_construction >= 1")
            self._index = faiss.IndexBinaryHNSW(self._width, int(hnsw_neighbors))
            self._index.hnsw.efConstruction = int(ef_construction)
            self._index.hnsw.efSearch = int(ef_search)
        else:
            self._nlist = None if nlist is None else _positive_int(nlist, "nlist")
            self._nprobe = _positive_int(nprobe, "nprobe")
            self._train_size = _positive_int(train_size, "train_size")

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"HammingIndex(num_bits={self.num_bits}, kind={self.kind!r}, backend={self.backend!r}, size={len(self)})"

    @property
    def nprobe(self) -> int:
        """IVF cells scanned per query (``nlist`` scans all: exact distances)."""
        self._require("ivf", "nprobe")
        return self._nprobe

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self._require("ivf", "nprobe")
        self._nprobe = _positive_int(value, "nprobe")
        if self._index is not None:
            self._index.nprobe = min(self._nprobe, self._index.nlist)

    @property
    def nlist(self) -> int | None:
        """IVF cells (None until the first add picks ``default_nlist``)."""
        self._require("ivf", "nlist")
        return self._nlist if self._index is None else int(self._index.nlist)

    @property
    def ef_search(self) -> int:
        """HNSW beam width per query."""
        self._require("hnsw", "ef_search")
        return int(self._index.hnsw.efSearch)

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        self._require("hnsw", "ef_search")
        self._index.hnsw.efSearch = _positive_int(value, "ef_search")

    def _require(self, kind: str, what: str) -> None:
        if self.kind != kind:
            raise AttributeError(f"{what} belongs to kind={kind!r} indexes; this one is kind={self.kind!r}")

    def _make_ivf(self, codes: np.ndarray) -> None:
        """Train the IVF cells on (a seeded sample of up to ``train_size`` of) the first codes added (n, num_bits)."""
        faiss = _faiss()
        sample = pack_for_faiss(codes[_training_rows(len(codes), self._train_size)], self.num_bits)
        nlist = self._nlist or default_nlist(len(codes), self._train_size)
        if nlist > len(sample):
            raise ValueError(
                f"nlist={nlist} IVF cells need at least {nlist} codes to train on in the first add "
                f"(got {len(sample)}); lower nlist or add more codes at once"
            )
        quantizer = faiss.IndexBinaryFlat(self._width)
        index = faiss.IndexBinaryIVF(quantizer, self._width, nlist)
        index.train(sample)
        index.nprobe = min(self._nprobe, nlist)
        self._quantizer = quantizer  # the IVF index does not own its quantizer: keep it alive with the index
        self._index = index

    def add(self, codes: Any, batch_size: int = 1_000_000) -> HammingIndex:
        """Append codes (n, num_bits); ids continue from ``len(self)``. Packs in batches to bound memory.

        An IVF index trains its cells on the codes of its first ``add`` (a sample of ``train_size``).
        """
        arr = to_numpy(codes, "codes")
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise ValueError(f"codes must be a non-empty 2-D array (items × bits), got shape {arr.shape}")
        if self.backend == "faiss" and self._index is None:
            self._make_ivf(arr)
        for start in range(0, len(arr), batch_size):
            packed = pack_for_faiss(arr[start : start + batch_size], self.num_bits)
            if self.backend == "faiss":
                self._index.add(packed)
                if self._hash is not None:
                    self._hash.add(packed)
            else:
                self._packed.append(packed)
            self._size += len(packed)
        return self

    def _database(self) -> np.ndarray:
        """All packed codes added so far, uint8 (n, width / 8), as one array (faiss: read back from the index)."""
        if self.backend == "faiss":
            if len(self._packed) != 1 or len(self._packed[0]) != len(self):  # read back once per size
                if self.kind == "ivf":
                    self._index.make_direct_map()  # IVF reads codes back by id only through a direct map
                self._packed = [self._index.reconstruct_n(0, len(self))]
        elif len(self._packed) > 1:
            self._packed = [np.concatenate(self._packed)]
        return self._packed[0]

    def _query_batches(self, query_codes: Any, batch_size: int, progress: bool | None, desc: str):
        """Packed query batches (start, uint8 (b, width / 8)) after checking the index and the queries."""
        if len(self) == 0:
            raise ValueError("the index is empty; add() retrieval codes before searching")
        arr = to_numpy(query_codes, "query_codes")
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise ValueError(f"query_codes must be a non-empty 2-D array (queries × bits), got shape {arr.shape}")
        starts = range(0, len(arr), batch_size)
        if progress is None:
            progress = len(arr) * len(self) > 500_000_000
        if progress:
            from egath_lite.progress import tqdm

            starts = tqdm(starts, desc=desc, unit="batch", total=len(starts))
        for start in starts:
            yield start, pack_for_faiss(arr[start : start + batch_size], self.num_bits, "query_codes")

    def search(
        self, query_codes: Any, k: int, batch_size: int = 4096, progress: bool | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest codes per query: distances int32 (n_query, k') and ids int64 (n_query, k'), k' = min(k, len)."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        k = min(int(k), len(self))
        distances, ids = [], []
        for _, packed in self._query_batches(query_codes, batch_size, progress, "Hamming search"):
            if self.backend == "faiss":
                d, i = self._index.search(packed, k)
            else:
                d, i = _packed_top_k(packed, self._database(), k)
            distances.append(d)
            ids.append(i)
        d, i = np.concatenate(distances).astype(np.int32), np.concatenate(ids).astype(np.int64)
        if (i < 0).any():  # IVF/HNSW can return fewer than k results when nprobe / ef_search is small
            knob = {
                "hnsw": f"raise ef_search (now {self.ef_search if self.kind == 'hnsw' else ''})",
                "ivf": f"raise nprobe (now {self._nprobe if self.kind == 'ivf' else ''})",
            }.get(self.kind, "")
            raise RuntimeError(f"faiss returned fewer than k={k} results; {knob}")
        order = np.lexsort((i, d), axis=-1)  # (distance, id) within each row
        return np.take_along_axis(d, order, axis=1), np.take_along_axis(i, order, axis=1)

    def range_search(
        self, query_codes: Any, radius: int, batch_size: int = 4096, progress: bool | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every item within Hamming distance ``radius`` (inclusive) of each query, ordered by (distance, id).

        Returns ``lims`` int64 (n_query + 1,), ``distances`` int32 and ``ids`` int64 (lims[-1],): query q's answer
        is ``ids[lims[q]:lims[q + 1]]`` (faiss's layout). Exact for every kind: with faiss through a multi-hash
        while ``radius // nhash <= 2`` (see the module docstring), else a flat scan of the packed codes.
        """
        if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
            raise ValueError(f"radius must be an integer >= 0 (a Hamming distance), got {radius!r}")
        radius = int(radius)
        counts, distances, ids = [], [], []
        for _, packed in self._query_batches(query_codes, batch_size, progress, "Hamming range search"):
            lims, d, i = self._range_batch(packed, radius)
            counts.append(np.diff(lims))
            distances.append(d)
            ids.append(i)
        lims = np.concatenate([[0], np.cumsum(np.concatenate(counts))]).astype(np.int64)
        d, i = np.concatenate(distances).astype(np.int32), np.concatenate(ids).astype(np.int64)
        # (distance, id) within each query: query number as the leading key keeps the answers in place
        query = np.repeat(np.arange(len(lims) - 1), np.diff(lims))
        order = np.lexsort((i, d, query))
        return lims, d[order], i[order]

    def _range_batch(self, packed: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lims, distances, ids) of one batch of packed queries, in any order within a query."""
        if self.backend == "packed":
            return _packed_range(packed, self._database(), radius)
        faiss = _faiss()
        nhash, bits_per_hash = _hash_layout(self._width)
        if radius // nhash <= _MAX_HASH_FLIPS:
            if self._hash is None:
                self._hash = faiss.IndexBinaryMultiHash(self._width, nhash, bits_per_hash)
                self._hash.add(self._database())
            self._hash.nflip = radius // nhash  # pigeonhole: exact (module docstring)
            index = self._hash
        elif self.kind == "flat":
            index = self._index
        else:
            return _packed_range(packed, self._database(), radius)
        lims, d, i = index.range_search(packed, radius + 1)  # faiss keeps distances < its radius
        return lims, d, i


def _hash_layout(width: int) -> tuple[int, int]:
    """(nhash, bits per hash field) of the multi-hash for ``width``-bit codes: disjoint fields of <= 16 bits."""
    nhash = max(1, min(8, width // 16))
    return nhash, min(16, width // nhash)


def _distances(queries: np.ndarray, database: np.ndarray) -> np.ndarray:
    """Hamming distances int32 (b, n) between packed uint8 rows (b, w) and (n, w)."""
    out = np.zeros((queries.shape[0], database.shape[0]), np.int32)
    for w in range(queries.shape[1]):
        out += popcount(queries[:, None, w] ^ database[None, :, w])
    return out


def _row_chunks(num_query: int, n: int):
    step = max(1, _PAIRS_PER_CHUNK // max(1, n))
    for start in range(0, num_query, step):
        yield slice(start, min(num_query, start + step))


def _packed_top_k(queries: np.ndarray, database: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest rows of ``database`` per query by (distance, id): distances int32 and ids int64 (b, k)."""
    n = database.shape[0]
    out_d = np.empty((queries.shape[0], k), np.int32)
    out_i = np.empty((queries.shape[0], k), np.int64)
    ids = np.arange(n, dtype=np.int64)
    for rows in _row_chunks(queries.shape[0], n):
        key = _distances(queries[rows], database).astype(np.int64) * n + ids  # distance first, then id
        if k < n:
            key = np.take_along_axis(key, np.argpartition(key, k - 1, axis=1)[:, :k], axis=1)
        key.sort(axis=1)
        out_d[rows], out_i[rows] = key // n, key % n
    return out_d, out_i


def _packed_range(queries: np.ndarray, database: np.ndarray, radius: int):
    """(lims, distances, ids) of the rows of ``database`` within ``radius`` of each packed query."""
    counts, distances, ids = [], [], []
    for rows in _row_chunks(queries.shape[0], database.shape[0]):
        dist = _distances(queries[rows], database)
        q, i = np.nonzero(dist <= radius)  # row-major: grouped by query, ids ascending
        counts.append(np.bincount(q, minlength=dist.shape[0]))
        distances.append(dist[q, i])
        ids.append(i)
    lims = np.concatenate([[0], np.cumsum(np.concatenate(counts))]).astype(np.int64)
    return lims, np.concatenate(distances), np.concatenate(ids).astype(np.int64)


def _training_rows(n: int, size: int) -> np.ndarray:
    """Sorted sample of ``min(n, size)`` row indices (seeded), for training IVF cells on a large first add."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, size, replace=False))


def tie_aware_recall(distances: Any, exact_distances: Any) -> np.ndarray:
    """Recall@k per query, float64 (n_query,), from true distances (n_query, k) found and exact (n_query, k).

    Any item tied at the exact K-th distance is an equally right answer, so a found item counts when its
    distance is below the exact K-th, and found items at the K-th count up to the exact number there. That
    equals the multiset intersection of the two distance lists over k. The distances must be the true
    distances of the found items (faiss computes them exactly; tests/test_serving.py checks it).
    """
    found, exact = np.asarray(distances), np.asarray(exact_distances)
    if found.shape != exact.shape or found.ndim != 2:
        raise ValueError(f"distances {found.shape} and exact_distances {exact.shape} must be the same (n_query, k)")
    kth = exact[:, -1:]
    below = (found < kth).sum(axis=1)
    at_kth = np.minimum((found == kth).sum(axis=1), (exact == kth).sum(axis=1))
    return (below + at_kth) / exact.shape[1]


def hamming_top_k(
    query_codes: Any, retrieval_codes: Any, k: int, kind: str = "flat", **index_options: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Build an index on ``retrieval_codes`` and return the k nearest (distances int32, ids int64) per query."""
    rb = to_numpy(retrieval_codes, "retrieval_codes")
    if rb.ndim != 2:
        raise ValueError(f"retrieval_codes must be 2-D (items × bits), got shape {rb.shape}")
    index = HammingIndex(rb.shape[1], kind=kind, **index_options).add(rb)
    return index.search(query_codes, k)
