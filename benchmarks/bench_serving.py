"""Serving 64-bit codes at 1 M and 10 M: faiss flat (exact), IVF and HNSW through egath_lite.serve.index.HammingIndex.

    nice -n 10 python benchmarks/bench_serving.py                        # the RESULTS.md table
    python benchmarks/bench_serving.py --sizes 100000 --hnsw-sizes 100000 # a quick look

Codes are synthetic and label-correlated, like trained hash codes: each item draws a label set (24 labels,
each with probability 0.15, at least one), and its code is sign(sum of its labels' Gaussian prototypes +
noise · N(0, 1)). Items of similar label sets crowd together, so many distances tie. Queries are 1,000 more
items of the same distribution. The database of a smaller size is the prefix of the larger one.

Per index and size: build seconds (IVF: k-means training + adding), queries/s for all queries in one
call, recall@100 against the exact ranking of the flat index (tie-aware: any item at the exact 100th
distance counts, see ``egath_lite.serve.index.tie_aware_recall``; and the plain id overlap with the stable
order, lower because of the ties), index bytes (faiss's serialised size) and the resident-memory growth
of the process while building. HNSW built 1 M codes in ~10 minutes here (one thread, loaded machine), so 10 M
would take hours: it runs at ``--hnsw-sizes`` and the growth between them is reported instead. One faiss thread (``--threads``).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from egath_lite.serve.index import HammingIndex, default_nlist, tie_aware_recall  # noqa: E402

BITS, NUM_LABELS, LABEL_RATE, NOISE = 64, 24, 0.15, 1.5
CHUNK = 1_000_000


def _label_correlated(n: int, seed: int, prototypes: np.ndarray) -> np.ndarray:
    """Codes {-1,+1} int8 (n, BITS) = sign(labels @ prototypes + noise), labels drawn per item."""
    rng = np.random.default_rng(seed)
    labels = rng.random((n, NUM_LABELS)) < LABEL_RATE
    labels[np.arange(n), rng.integers(0, NUM_LABELS, n)] = True
    h = labels.astype(np.float32) @ prototypes + NOISE * rng.standard_normal((n, BITS), dtype=np.float32)
    return np.where(h >= 0, 1, -1).astype(np.int8)


def make_codes(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Database codes int8 (n, 64) in chunks of 1 M (chunk c seeded by c, so sizes nest) and 1,000 query codes."""
    prototypes = np.random.default_rng(seed).standard_normal((NUM_LABELS, BITS)).astype(np.float32)
    db = np.empty((n, BITS), np.int8)
    for c, start in enumerate(range(0, n, CHUNK)):
        db[start : start + CHUNK] = _label_correlated(min(CHUNK, n - start), 1000 + c, prototypes)
    return db, _label_correlated(1000, 999, prototypes)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def index_bytes(index: HammingIndex) -> int:
    import faiss

    return int(faiss.serialize_index_binary(index._index).nbytes)


def build(kind: str, db: np.ndarray, **options) -> tuple[HammingIndex, float, int]:
    """(index, build seconds, RSS growth bytes)."""
    before, t = rss_bytes(), time.perf_counter()
    index = HammingIndex(BITS, kind=kind, **options).add(db)
    return index, time.perf_counter() - t, rss_bytes() - before


def timed_search(index: HammingIndex, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, float]:
    t = time.perf_counter()
    d, i = index.search(queries, k, progress=False)
    return d, i, len(queries) / (time.perf_counter() - t)


def id_recall(i: np.ndarray, exact_i: np.ndarray) -> float:
    return float(np.mean([len(np.intersect1d(a, b)) / len(b) for a, b in zip(i, exact_i)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--hnsw-sizes", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--nprobes", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--ef-searches", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--hnsw-neighbors", type=int, default=16)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="faiss OpenMP threads; on 2 cores shared with other work, 2 threads ran a flat search "
        "3x slower than 1 (spin-waiting), so the table is per thread",
    )
    args = parser.parse_args()
    import faiss

    faiss.omp_set_num_threads(args.threads)

    largest = max(args.sizes + args.hnsw_sizes)
    t = time.perf_counter()
    all_db, queries = make_codes(largest)
    print(
        f"# {largest:,} database + {len(queries):,} query codes of {BITS} bits in {time.perf_counter() - t:.1f} s; "
        f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, {platform.processor() or platform.machine()},"
        f" {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    print(
        "| n | index | settings | build s | queries/s | recall@100 (tie-aware) | id recall@100 | index MB | RSS growth MB |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")

    def row(n, kind, settings, seconds, qps, d, i, exact_d, exact_i, nbytes, grown):
        print(
            f"| {n:,} | {kind} | {settings} | {seconds:.1f} | {qps:,.0f} | {tie_aware_recall(d, exact_d).mean():.4f} | "
            f"{id_recall(i, exact_i):.4f} | {nbytes / 2**20:.1f} | {grown / 2**20:.0f} |",
            flush=True,
        )

    for n in sorted(set(args.sizes + args.hnsw_sizes)):
        db = all_db[:n]
        flat, seconds, grown = build("flat", db)
        exact_d, exact_i, qps = timed_search(flat, queries, args.k)
        row(n, "flat", "exact", seconds, qps, exact_d, exact_i, exact_d, exact_i, index_bytes(flat), grown)
        del flat
        if n in args.sizes:
            ivf, seconds, grown = build("ivf", db)
            nbytes = index_bytes(ivf)
            for nprobe in args.nprobes:
                ivf.nprobe = nprobe
                d, i, qps = timed_search(ivf, queries, args.k)
                row(
                    n, "ivf", f"nlist {ivf.nlist}, nprobe {nprobe}", seconds, qps, d, i, exact_d, exact_i, nbytes, grown
                )
            del ivf
        if n in args.hnsw_sizes:
            hnsw, seconds, grown = build("hnsw", db, hnsw_neighbors=args.hnsw_neighbors, ef_construction=64)
            nbytes = index_bytes(hnsw)
            for ef in args.ef_searches:
                hnsw.ef_search = ef
                d, i, qps = timed_search(hnsw, queries, args.k)
                row(
                    n,
                    "hnsw",
                    f"M {args.hnsw_neighbors}, efSearch {ef}",
                    seconds,
                    qps,
                    d,
                    i,
                    exact_d,
                    exact_i,
                    nbytes,
                    grown,
                )
            del hnsw
    print(f"# default_nlist: {', '.join(f'{n:,} -> {default_nlist(n)}' for n in args.sizes)}")


if __name__ == "__main__":
    main()
