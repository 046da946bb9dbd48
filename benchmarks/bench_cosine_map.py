"""Cosine-ranking mAP of continuous embeddings (the CLIP baseline): the earlier argsort code against the bucket sort.

    python benchmarks/bench_cosine_map.py                    # NUS-WIDE scale, one direction
    python benchmarks/bench_cosine_map.py --queries 500      # smaller, for a quick look

Data: random unit-norm 512-d float32 embeddings, 2,100 queries × 184,477 retrieval items
(NUS-WIDE TC-10's split sizes), and random 10-label multi-hot labels (each label present
with probability 0.2, at least one per item; NUS-WIDE TC-10 averages 1.9 labels per item).

Timed side by side in one process, after a warm-up that compiles (or loads) the numba
kernel: ``_embedding_average_precisions_reference`` (the earlier code: a stable argsort of
each chunk of scores), the new default route (``backend="numba"``) and, with ``--numpy``,
the pure-numpy route. The per-query APs are compared. Both compute the float32 scores by
a chunked BLAS product, and BLAS's last bit can depend on the chunk's number of rows, so
the reference is also rerun on the new route's first chunk with the same chunking and one
BLAS thread (as the new route's workers): there the scores are identical and the APs must
agree to rounding.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from egath_lite.metrics import (
    _embeddings,  # noqa: E402
    embedding_average_precisions,  # noqa: E402
)


def make_data(num_query: int, num_retrieval: int, dim: int, num_labels: int, seed: int = 0):
    """Unit-norm float32 embeddings (nq, dim), (n, dim) and uint8 multi-hot labels with at least one label per row."""
    rng = np.random.default_rng(seed)

    def emb(n):
        x = rng.standard_normal((n, dim), dtype=np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def lab(n):
        y = (rng.random((n, num_labels)) < 0.2).astype(np.uint8)
        y[np.arange(n), rng.integers(0, num_labels, size=n)] = 1
        return y

    return emb(num_query), emb(num_retrieval), lab(num_query), lab(num_retrieval)


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=2_100)
    parser.add_argument("--retrieval", type=int, default=184_477)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--numpy", action="store_true", help="also time backend='numpy'")
    args = parser.parse_args()

    import numba

    load = os.getloadavg()
    print(
        f"# bench_cosine_map: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"numba threads {numba.get_num_threads()}, load average before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    q, r, qL, rL = make_data(args.queries, args.retrieval, args.dim, 10)
    print(f"# {args.queries:,} queries × {args.retrieval:,} items, {args.dim}-d float32, 10 labels")

    embedding_average_precisions(q[:2], r[:1000], qL[:2], rL[:1000], backend="numba")  # compile or load the cache
    new_s, (new_ap, new_valid) = timed(embedding_average_precisions, q, r, qL, rL, backend="numba", progress=False)
    print(f"new (numba bucket sort): {new_s:.2f} s", flush=True)
    old_s, (old_ap, old_valid) = timed(
        _embeddings._embedding_average_precisions_reference, q, r, qL, rL, progress=False
    )
    print(f"old (argsort reference): {old_s:.2f} s", flush=True)
    if args.numpy:
        np_s, (np_ap, _) = timed(embedding_average_precisions, q, r, qL, rL, backend="numpy", progress=False)
        print(f"numpy route (integer sort): {np_s:.2f} s, max |AP - new| {np.nanmax(np.abs(np_ap - new_ap)):.1e}")

    assert (new_valid == old_valid).all(), "the two disagree on which queries have relevant items"
    diff = np.abs(new_ap - old_ap)[new_valid]
    print(
        f"mAP new {new_ap[new_valid].mean():.10f} old {old_ap[old_valid].mean():.10f}; "
        f"max |AP new - AP old| {diff.max():.1e} (BLAS's last bit depends on chunk shape and threads)"
    )
    rows = max(1, _embeddings._SCORE_CHUNK_BYTES // (4 * args.retrieval))  # the new route's chunk of queries
    first = slice(0, min(rows, args.queries))
    with threadpool_limits(limits=1, user_api="blas"):  # as the new route's workers
        same_ap, _ = _embeddings._embedding_average_precisions_reference(
            q[first], r, qL[first], rL, chunk_size=rows, progress=False
        )
    same = np.abs(same_ap - new_ap[first])[new_valid[first]]
    print(f"same chunks and BLAS threads ({first.stop} queries): max |AP new - AP old| {same.max():.1e}")
    load = os.getloadavg()
    print(f"# load average after {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"cosine mAP new {new_s:.2f} s vs old {old_s:.2f} s = {old_s / new_s:.1f} x")


if __name__ == "__main__":
    main()
