"""Hash codes into Milvus, a vector database that scales past one machine: export, then Hamming top-K search.

One code path for every Milvus: ``milvus_client("codes.db")`` opens Milvus Lite (embedded in this Python
process, a local file, used by the tests), ``milvus_client("http://host:19530", token=...)`` a Milvus
server or cluster. ``export_codes`` writes codes (+ item ids, optionally labels) into a collection whose
vector field is a ``BINARY_VECTOR`` searched with the ``HAMMING`` metric; ``search_codes`` returns
``(distances, ids)`` like ``egath_lite.serve.index.HammingIndex.search``.

Codes are packed by ``egath_lite.metrics.pack_codes`` (the one bit order, docs/serving.md), so Milvus,
faiss and the metrics give the same distance for the same two codes. Milvus does not promise an order
among equal distances: ``search_codes`` sorts what comes back by (distance, id), but which of several
items tied at the K-th distance get in is Milvus's choice (tests/test_serving.py compares those by
distance).

``vector="float"`` stores the codes as ±1 ``FLOAT_VECTOR`` searched by inner product instead, for a Milvus
without binary vectors (Milvus Lite >= 3.0 rejects ``BINARY_VECTOR``; docs/serving.md quotes the error):
for ±1 codes ⟨a, b⟩ = bits − 2·Hamming(a, b), an exact integer in float32, so distances stay exact.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from egath_lite.metrics.inputs import code_bits, label_bits, pack_codes, to_numpy

VECTOR_FIELD = "code"
ID_FIELD = "id"
LABEL_FIELD = "labels"
VECTOR_TYPES = ("binary", "float")
MAX_TOP_K = 16_384  # Milvus's limit on a search's limit (topk) and on queries per request
_SERVER_SCHEMES = ("http://", "https://", "tcp://", "grpc://", "unix:")


def _pymilvus():
    try:
        import pymilvus
    except ImportError as exc:  # optional dependency
        raise ImportError(
            f"egath_lite.serve.milvus_export needs pymilvus ({exc}); install the serving extra: "
            f"`pip install -e '.[serve]'` (pymilvus + milvus-lite, see constraints.txt)"
        ) from exc
    return pymilvus


def milvus_client(uri: str, token: str | None = None) -> Any:
    """A ``pymilvus.MilvusClient``: a local ``*.db`` path opens Milvus Lite, ``http://host:19530`` a server/cluster."""
    pymilvus = _pymilvus()
    if not isinstance(uri, str) or not uri:
        raise ValueError(
            f"uri must be a Milvus Lite file path ending in .db or a server URI such as "
            f"http://localhost:19530, got {uri!r}"
        )
    if not uri.startswith(_SERVER_SCHEMES) and not uri.endswith(".db"):
        raise ValueError(
            f"uri {uri!r} is neither a Milvus Lite file (a path ending in .db) nor a server URI "
            f"({', '.join(_SERVER_SCHEMES)}...); e.g. 'runs/codes.db' or 'http://localhost:19530'"
        )
    with warnings.catch_warnings():
        # milvus-lite 2.5 (the last release with binary vectors) imports setuptools' deprecated pkg_resources
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        return pymilvus.MilvusClient(uri=uri, token=token or "")


def _check_ids(ids: Any, n: int) -> np.ndarray:
    """Item ids int64 (n,), unique; ``None`` -> 0 … n-1 (the row order, as in HammingIndex)."""
    if ids is None:
        return np.arange(n, dtype=np.int64)
    arr = to_numpy(ids, "ids")
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(f"ids must be 1-D with one id per code ({n}), got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"ids must be integers (Milvus INT64 primary key), got dtype {arr.dtype}")
    if len(np.unique(arr)) != n:
        raise ValueError("ids hold duplicates; a Milvus primary key must be unique per item")
    return arr.astype(np.int64)


def export_codes(
    client: Any,
    collection: str,
    codes: Any,
    ids: Any = None,
    labels: Any = None,
    *,
    vector: str = "binary",
    index_type: str | None = None,
    index_params: dict | None = None,
    overwrite: bool = False,
    batch_size: int = 10_000,
) -> int:
    """Write codes (n, bits) with item ids (n,) and optional multi-hot labels (n, L) to a new collection; returns n.

    ``vector="binary"``: BINARY_VECTOR(dim=bits), HAMMING, index ``BIN_FLAT`` (exact) unless ``index_type``
    says otherwise (a server also has ``BIN_IVF_FLAT`` with ``index_params={"nlist": ...}``).
    ``vector="float"``: ±1 FLOAT_VECTOR, inner product, index ``FLAT``. Labels are stored as the list of
    label indices per item (ARRAY of INT64), so a search can filter with ``array_contains(labels, 3)``.
    """
    pymilvus = _pymilvus()
    DataType = pymilvus.DataType
    if vector not in VECTOR_TYPES:
        raise ValueError(f"unknown vector type {vector!r}; choose one of {VECTOR_TYPES}")
    bits = code_bits(codes, "codes")
    num_bits = bits.shape[1]
    if vector == "binary" and num_bits % 8:
        raise ValueError(
            f"codes have {num_bits} bits; a Milvus BINARY_VECTOR needs a multiple of 8 (whole bytes): "
            f"train 8k-bit codes, or export with vector='float'"
        )
    packed = pack_codes(bits, "codes") if vector == "binary" else None
    item_ids = _check_ids(ids, len(bits))
    label_lists = None
    if labels is not None:
        multi_hot = label_bits(labels, "labels")
        if len(multi_hot) != len(bits):
            raise ValueError(f"{len(bits)} codes but {len(multi_hot)} label rows; they must pair up")
        label_lists = [np.flatnonzero(row).tolist() for row in multi_hot]
    if client.has_collection(collection):
        if not overwrite:
            raise ValueError(
                f"Milvus collection {collection!r} exists; pass overwrite=True to replace it, or choose another name"
            )
        client.drop_collection(collection)

    schema = client.create_schema(auto_id=False, description=f"egath_lite {num_bits}-bit hash codes")
    schema.add_field(ID_FIELD, DataType.INT64, is_primary=True)
    if vector == "binary":
        schema.add_field(VECTOR_FIELD, DataType.BINARY_VECTOR, dim=num_bits)
        metric, default_index = "HAMMING", "BIN_FLAT"
    else:
        schema.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=num_bits)
        metric, default_index = "IP", "FLAT"
    if label_lists is not None:
        schema.add_field(
            LABEL_FIELD, DataType.ARRAY, element_type=DataType.INT64, max_capacity=max(1, multi_hot.shape[1])
        )
    params = client.prepare_index_params()
    params.add_index(
        field_name=VECTOR_FIELD, index_type=index_type or default_index, metric_type=metric, params=index_params or {}
    )
    # Strong consistency: a search right after the export sees every code
    try:
        client.create_collection(collection, schema=schema, index_params=params, consistency_level="Strong")
    except Exception as exc:  # pymilvus.MilvusException; Milvus Lite 3.x says "... type BinaryVector which ..."
        if vector == "binary" and "BinaryVector" in str(exc):
            raise RuntimeError(
                f"this Milvus cannot hold binary vectors ({exc}). Milvus Lite >= 3.0 has none: "
                f"`pip install 'milvus-lite<3'`, use a Milvus server, or export_codes(..., "
                f"vector='float')"
            ) from exc
        raise

    signs = np.where(bits, 1.0, -1.0).astype(np.float32) if vector == "float" else None
    for start in range(0, len(bits), batch_size):
        rows = range(start, min(start + batch_size, len(bits)))
        data = [
            {ID_FIELD: int(item_ids[r]), VECTOR_FIELD: packed[r].tobytes() if vector == "binary" else signs[r].tolist()}
            for r in rows
        ]
        if label_lists is not None:
            for row, r in zip(data, rows):
                row[LABEL_FIELD] = label_lists[r]
        client.insert(collection, data)
    client.flush(collection)
    return len(bits)


def _vector_field(client: Any, collection: str) -> tuple[str, int]:
    """("binary" | "float", bits) of the collection's code field, read from Milvus's own schema."""
    pymilvus = _pymilvus()
    if not client.has_collection(collection):
        raise ValueError(f"Milvus collection {collection!r} does not exist; export_codes() first")
    for field in client.describe_collection(collection)["fields"]:
        if field["name"] == VECTOR_FIELD:
            kind = {pymilvus.DataType.BINARY_VECTOR: "binary", pymilvus.DataType.FLOAT_VECTOR: "float"}.get(
                field["type"]
            )
            if kind is not None:
                return kind, int(field["params"]["dim"])
    raise ValueError(
        f"collection {collection!r} has no {VECTOR_FIELD!r} binary/float vector field; "
        f"it was not written by export_codes"
    )


def search_codes(
    client: Any,
    collection: str,
    query_codes: Any,
    k: int,
    *,
    filter: str = "",
    search_params: dict | None = None,
    batch_size: int = 1000,
) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest items per query: Hamming distances int32 (n_query, k') and item ids int64 (n_query, k').

    Rows are sorted by (distance, id); k' = min(k, items). ``filter`` is a Milvus boolean expression
    (e.g. ``"array_contains(labels, 3)"``).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_TOP_K:
        raise ValueError(f"k must be an integer in 1 … {MAX_TOP_K} (Milvus's top-K limit), got {k!r}")
    kind, num_bits = _vector_field(client, collection)
    bits = code_bits(query_codes, "query_codes")
    if bits.shape[1] != num_bits:
        raise ValueError(
            f"query_codes have {bits.shape[1]} bits but collection {collection!r} holds {num_bits}-bit codes"
        )
    metric = "HAMMING" if kind == "binary" else "IP"
    packed = pack_codes(bits, "query_codes") if kind == "binary" else None
    signs = np.where(bits, 1.0, -1.0).astype(np.float32) if kind == "float" else None
    distances, ids = [], []
    step = min(batch_size, MAX_TOP_K)
    for start in range(0, len(bits), step):
        stop = min(start + step, len(bits))
        data = (
            [packed[r].tobytes() for r in range(start, stop)]
            if kind == "binary"
            else [signs[r].tolist() for r in range(start, stop)]
        )
        hits = client.search(
            collection,
            data=data,
            limit=int(k),
            anns_field=VECTOR_FIELD,
            filter=filter,
            search_params={"metric_type": metric, "params": search_params or {}},
        )
        for row in hits:
            dist = np.array([h["distance"] for h in row], dtype=np.float64)
            if kind == "float":  # ±1 codes: <a, b> = bits - 2 * Hamming
                dist = (num_bits - dist) / 2
            distances.append(np.rint(dist).astype(np.int32))
            ids.append(np.array([h["id"] for h in row], dtype=np.int64))
    width = min(len(d) for d in distances)
    if any(len(d) != width for d in distances):  # a filter can leave some queries fewer items
        raise RuntimeError(
            f"Milvus returned between {width} and {max(len(d) for d in distances)} results per "
            f"query; search with a smaller k or a looser filter"
        )
    d, i = np.stack(distances), np.stack(ids)
    order = np.lexsort((i, d), axis=-1)  # (distance, id) within each row
    return np.take_along_axis(d, order, axis=1), np.take_along_axis(i, order, axis=1)


def fetch_labels(client: Any, collection: str, ids: Any) -> dict[int, list[int]]:
    """The stored label indices of items ``ids`` (1-D): {id: [label index, …]}."""
    arr = to_numpy(ids, "ids").astype(np.int64).ravel().tolist()
    rows = client.get(collection, ids=arr, output_fields=[LABEL_FIELD])
    return {int(r[ID_FIELD]): [int(x) for x in r[LABEL_FIELD]] for r in rows}
