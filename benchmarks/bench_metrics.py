"""mAP@all: a GCDH-style per-query reference next to egath_lite.metrics, at benchmark scale.

    python benchmarks/bench_metrics.py                      # both scales, 16/32/64 bits
    python benchmarks/bench_metrics.py --scales mir --bits 64 --ref-queries 300
    python benchmarks/bench_metrics.py --floors             # ns/pair against the floors, before vs after

``--floors`` (issues 22/23): at NUS-WIDE scale (184,477 retrieval items, 64 bits; ``--queries`` of the 2,100
queries), one thread, the ns per query–item pair of mAP@all, the PR curve, precision@K and ``evaluate_retrieval``
(against the sum of its parts), at 10 (the real NUS-WIDE TC-10 labels), 24 and 80 labels, next to two floors
compiled here (a popcount-and-sum and a distance histogram over the same packed words), for the code under
``--before`` (default /work/main, run through PYTHONPATH in a subprocess) and this checkout, in one run.

Scales: MIRFlickr-25K (2,000 queries × 18,015 retrieval items, 24 labels drawn with the
real per-label frequencies of mir_adj.mat's ``num``) and NUS-WIDE TC-10 (2,100 × 184,477,
the real label rows of nus_tc10_labels.mat, GCDH's split: seed 7). Codes are synthetic but
correlated with the labels (sign of a random projection of the labels plus noise), so
the distance/relevance structure resembles trained codes.

Every (scale, bits, implementation) runs in its own subprocess so that its peak resident
memory (VmHWM) is its own; the data are generated once into a temporary folder.
The reference may be timed on a subset of the queries (``--ref-queries``) and scaled to
all of them; ours always runs on all queries. Our per-query APs are compared with the
reference's on the queries both computed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SCALES = {"mir": (2_000, 18_015), "nus": (2_100, 184_477)}


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------
def make_data(scale: str, bits: int, folder: Path) -> Path:
    """Write query/retrieval codes (int8 ±1) and labels (uint8) for one case; return the .npz path."""
    sys.path.insert(0, str(REPO))
    from egath_lite.data.reference import load_nus_tc10_labels, load_released_adjacency

    rng = np.random.default_rng(bits)
    if scale == "nus":
        labels = load_nus_tc10_labels()
        perm = np.random.RandomState(7).permutation(len(labels))  # GCDH's NUS-WIDE TC-10 split
        query, retrieval = perm[:2_100], perm[2_100:]
    else:
        _, per_label = load_released_adjacency("mirflickr25k")
        freq = per_label.astype(np.float64) / 20_015
        labels = (rng.random((20_015, len(freq))) < freq).astype(np.uint8)
        perm = np.random.RandomState(6).permutation(20_015)  # GCDH's MIRFlickr split
        query, retrieval = perm[:2_000], perm[2_000:]
    projection = rng.normal(size=(labels.shape[1], bits))
    codes = np.empty((len(labels), bits), np.int8)
    for start in range(0, len(labels), 20_000):  # chunked to keep temporaries small
        block = labels[start : start + 20_000] @ projection + 1.5 * rng.normal(
            size=(min(20_000, len(labels) - start), bits)
        )
        codes[start : start + 20_000] = np.where(block >= 0, 1, -1)
    path = folder / f"{scale}_{bits}.npz"
    np.savez(path, qB=codes[query], rB=codes[retrieval], qL=labels[query], rL=labels[retrieval])
    return path


# --------------------------------------------------------------------------------------
# The reference, as GCDH's utils.calc_map_k computes it (one query at a time, torch),
# but with a stable sort so that its ties match ours.
# --------------------------------------------------------------------------------------
def gcdh_style_average_precisions(qB, rB, qL, rL):
    """Per query: Hamming distance by matrix product, stable sort, AP over the relevant ranks."""
    import torch

    qB, rB = torch.from_numpy(qB).float(), torch.from_numpy(rB).float()
    qL, rL = torch.from_numpy(qL).float(), torch.from_numpy(rL).float()
    bits = qB.shape[1]
    aps = np.full(len(qB), np.nan)
    for i in range(len(qB)):
        gnd = (qL[i : i + 1] @ rL.t() > 0).float().squeeze(0)
        tsum = int(gnd.sum())
        if tsum == 0:
            continue
        hamm = 0.5 * (bits - qB[i : i + 1] @ rB.t())
        _, order = torch.sort(hamm.squeeze(0), stable=True)
        ranked = gnd[order]
        count = torch.arange(1, tsum + 1, dtype=torch.float64)
        tindex = torch.nonzero(ranked).squeeze(1).double() + 1.0
        aps[i] = float((count / tindex).mean())
    return aps


# --------------------------------------------------------------------------------------
# One case in a child process
# --------------------------------------------------------------------------------------
def _status_mb(field: str) -> float:
    """A memory line of /proc/self/status in MB (VmRSS: now, VmHWM: peak of this process image)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _rss_mb() -> float:
    return _status_mb("VmRSS")


def _peak_rss_mb() -> float:
    # Not getrusage's ru_maxrss: Linux carries it across exec, so a child would report
    # the parent's resident size at fork time.
    return _status_mb("VmHWM")


def run_case(data: Path, impl: str, num_queries: int | None, threads: int | None) -> dict:
    """Time one implementation on the data file; report seconds, per-query APs and peak memory."""
    sys.path.insert(0, str(REPO))
    arrays = np.load(data)
    qB, rB, qL, rL = arrays["qB"], arrays["rB"], arrays["qL"], arrays["rL"]
    if num_queries is not None:
        qB, qL = qB[:num_queries], qL[:num_queries]
    out = {"impl": impl, "num_queries": len(qB)}
    if impl == "reference":
        import torch

        if threads:
            torch.set_num_threads(threads)
        gcdh_style_average_precisions(qB[:2], rB, qL[:2], rL)  # warm-up
        rss_before = _rss_mb()
        start = time.perf_counter()
        ap = gcdh_style_average_precisions(qB, rB, qL, rL)
        out["seconds"] = time.perf_counter() - start
        out["threads"] = torch.get_num_threads()
    else:
        from egath_lite import metrics

        backend = "numba" if impl == "ours" else "numpy"
        if threads and backend == "numba":
            import numba

            numba.set_num_threads(threads)
        start = time.perf_counter()
        metrics.average_precisions(qB[:2], rB[:50], qL[:2], rL[:50], backend=backend)  # compile or load the cache
        out["warmup_seconds"] = time.perf_counter() - start
        rss_before = _rss_mb()
        start = time.perf_counter()
        ap, _ = metrics.average_precisions(qB, rB, qL, rL, backend=backend, progress=False)
        out["seconds"] = time.perf_counter() - start
        if backend == "numba":
            import numba

            out["threads"] = numba.get_num_threads()
    out["rss_before_mb"] = rss_before
    out["peak_rss_mb"] = _peak_rss_mb()
    out["ap"] = [None if np.isnan(a) else float(a) for a in ap]
    return out


def _child(data: Path, impl: str, num_queries: int | None, threads: int | None) -> dict:
    cmd = [sys.executable, __file__, "--child", str(data), impl, str(num_queries or 0), str(threads or 0)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"case {data.name} {impl} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------
# --floors: ns/pair of each metric against the popcount and histogram floors, before vs after
# --------------------------------------------------------------------------------------
LABEL_COUNTS = (10, 24, 80)


def make_label_variants(folder: Path, num_queries: int) -> Path:
    """NUS-scale 64-bit codes with the real TC-10 labels and with 24 and 80 synthetic labels (about 2.5 per item)."""
    base = np.load(make_data("nus", 64, folder))
    rng = np.random.default_rng(24)
    arrays = {"qB": base["qB"][:num_queries], "rB": base["rB"]}
    arrays["qL10"], arrays["rL10"] = base["qL"][:num_queries], base["rL"]
    for num_labels in LABEL_COUNTS[1:]:
        p = 2.5 / num_labels
        arrays[f"qL{num_labels}"] = (rng.random((num_queries, num_labels)) < p).astype(np.uint8)
        arrays[f"rL{num_labels}"] = (rng.random((len(base["rB"]), num_labels)) < p).astype(np.uint8)
    path = folder / "floors.npz"
    np.savez(path, **arrays)
    return path


def _floor_kernels():
    """Two floors over the packed 64-bit words: XOR + popcount summed, and a per-query distance histogram."""
    import numba
    from numba import njit
    from numba.extending import intrinsic

    @intrinsic
    def popcount(typingctx, x):
        sig = numba.types.uint64(numba.types.uint64)
        return sig, lambda context, builder, signature, args: builder.ctpop(args[0])

    @njit
    def popcount_sum(qc, rc):
        total = np.uint64(0)
        for i in range(qc.shape[0]):
            q = qc[i, 0]
            for j in range(rc.shape[0]):
                total += popcount(q ^ rc[j, 0])
        return total

    @njit
    def histogram(qc, rc):
        cnt = np.zeros(65, np.int64)
        for i in range(qc.shape[0]):
            q = qc[i, 0]
            for j in range(rc.shape[0]):
                cnt[popcount(q ^ rc[j, 0])] += 1
        return cnt

    return popcount_sum, histogram


def run_floors_case(data: Path, repeats: int) -> dict:
    """In this process (egath_lite from PYTHONPATH): min-of-``repeats`` CPU ns/pair of each measure, one thread."""
    import numba

    numba.set_num_threads(1)
    from egath_lite import metrics
    from egath_lite.metrics.inputs import pack_bits

    arrays = np.load(data)
    qB, rB = arrays["qB"], arrays["rB"]
    pairs = len(qB) * len(rB)
    ks = [50, 100, 500, 1000]

    def best(fn):
        fn()  # compile or load the cache
        times = []
        for _ in range(repeats):
            cpu, wall = time.process_time(), time.perf_counter()
            fn()
            times.append((time.process_time() - cpu, time.perf_counter() - wall))
        return min(t[0] for t in times) * 1e9 / pairs, min(t[1] for t in times) * 1e9 / pairs

    out = {"pairs": pairs, "num_queries": len(qB), "num_retrieval": len(rB), "repeats": repeats}
    popcount_sum, histogram = _floor_kernels()
    qc, rc = pack_bits(qB > 0), pack_bits(rB > 0)
    out["popcount floor"] = best(lambda: popcount_sum(qc, rc))
    out["histogram floor"] = best(lambda: histogram(qc, rc))
    for num_labels in LABEL_COUNTS:
        qL, rL = arrays[f"qL{num_labels}"], arrays[f"rL{num_labels}"]
        args = (qB, rB, qL, rL)
        kw = {"backend": "numba", "progress": False}
        out[f"mAP@all {num_labels}"] = best(partial(metrics.average_precisions, *args, **kw))
        if num_labels == 10:
            out["map_value"] = metrics.mean_average_precision(*args, **kw)
        out[f"PR {num_labels}"] = best(partial(metrics.pr_curve, *args, **kw))
        out[f"P@K {num_labels}"] = best(partial(metrics.precision_at_k, *args, ks, **kw))
        out[f"evaluate_retrieval {num_labels}"] = best(partial(metrics.evaluate_retrieval, *args, ks, **kw))
        report = metrics.evaluate_retrieval(*args, ks, **kw)
        out[f"report {num_labels}"] = {k: report[k] for k in ("map", "map_tie_aware", "precision_at_k", "pr_recall")}
    out["threads"] = numba.get_num_threads()
    return out


def _floors_child(data: Path, repeats: int, pythonpath: str) -> dict:
    env = dict(os.environ, PYTHONPATH=pythonpath, NUMBA_NUM_THREADS="1")
    cmd = [sys.executable, __file__, "--floors-child", str(data), str(repeats)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=pythonpath)
    if result.returncode != 0:
        raise RuntimeError(f"floors case under {pythonpath} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def floors_table(before: dict, after: dict) -> str:
    """The --floors rows: CPU ns/pair before and after (wall in brackets), the ratio, and the one-sweep check."""
    lines = [
        "| measure | labels | before ns/pair | after ns/pair | before / after | after / histogram floor |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    floor = after["histogram floor"][0]  # the floor measured in the "after" process

    def row(name, labels, key):
        b, a = before[key], after[key]
        lines.append(
            f"| {name} | {labels} | {b[0]:.2f} ({b[1]:.2f}) | {a[0]:.2f} ({a[1]:.2f}) | {b[0] / a[0]:.2f}× "
            f"| {a[0] / floor:.2f}× |"
        )

    row("popcount-and-sum floor", "–", "popcount floor")
    row("distance-histogram floor", "–", "histogram floor")
    for num_labels in LABEL_COUNTS:
        for name in ("mAP@all", "PR", "P@K", "evaluate_retrieval"):
            row(name, num_labels, f"{name} {num_labels}")
        for res in (before, after):
            parts = sum(res[f"{m} {num_labels}"][0] for m in ("mAP@all", "PR", "P@K"))
            res[f"parts {num_labels}"] = (parts, float("nan"))
        b, a = before[f"parts {num_labels}"][0], after[f"parts {num_labels}"][0]
        lines.append(
            f"| mAP + PR + P@K (sum of parts) | {num_labels} | {b:.2f} | {a:.2f} | {b / a:.2f}× | {a / floor:.2f}× |"
        )
    return "\n".join(lines)


def _min_over_rounds(results: list[dict]) -> dict:
    """One child's results from several alternating rounds: each timed measure's minimum CPU and wall time."""
    out = dict(results[0])
    for key, value in results[0].items():
        if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, float) for v in value):
            out[key] = (min(r[key][0] for r in results), min(r[key][1] for r in results))
    out["rounds"] = len(results)
    return out


def main_floors(args) -> None:
    load = os.getloadavg()
    print(
        f"# bench_metrics --floors: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, one thread, "
        f"{args.queries} queries × 184,477 items, 64 bits, min of {args.repeats} calls × {args.rounds} alternating "
        f"rounds (before, after, before, …); load average before "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench_metrics_floors_") as tmp:
        data = make_label_variants(Path(tmp), args.queries)
        rounds = [
            (_floors_child(data, args.repeats, str(args.before)), _floors_child(data, args.repeats, str(REPO)))
            for _ in range(args.rounds)
        ]
        before = _min_over_rounds([r[0] for r in rounds])
        after = _min_over_rounds([r[1] for r in rounds])
    load = os.getloadavg()
    print(f"# load average after {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n")
    print(floors_table(before, after))
    diffs = []
    for num_labels in LABEL_COUNTS:
        rb, ra = before[f"report {num_labels}"], after[f"report {num_labels}"]
        diffs.append(abs(rb["map"] - ra["map"]))
        diffs.append(abs(rb["map_tie_aware"] - ra["map_tie_aware"]))
        diffs += list(np.abs(np.subtract(rb["precision_at_k"], ra["precision_at_k"])))
        diffs += list(np.abs(np.subtract(rb["pr_recall"], ra["pr_recall"])))
    print(
        f"\nmAP@all (10 labels) {after['map_value']:.6f}; largest |before − after| over every reported number: {max(diffs):.1e}"
    )
    print(
        "CPU time (process_time) per pair, wall in brackets; threads before/after:", before["threads"], after["threads"]
    )
    if args.json:
        args.json.write_text(json.dumps({"before": before, "after": after}, indent=2))


# --------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", nargs="+", default=["mir", "nus"], choices=sorted(SCALES))
    parser.add_argument("--bits", nargs="+", type=int, default=[16, 32, 64])
    parser.add_argument(
        "--ref-queries",
        type=int,
        default=None,
        help="queries the reference is timed on (default: all at MIR scale, 300 at NUS scale)",
    )
    parser.add_argument(
        "--numpy-path", action="store_true", help="also time backend='numpy' (on the reference's queries)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for both (torch.set_num_threads / numba.set_num_threads); default: their own",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    parser.add_argument("--floors", action="store_true", help="ns/pair against the floors, before vs after")
    parser.add_argument("--queries", type=int, default=2_100, help="--floors: NUS queries timed (of 2,100)")
    parser.add_argument("--repeats", type=int, default=5, help="--floors: timed repeats (the minimum is kept)")
    parser.add_argument(
        "--rounds", type=int, default=1, help="--floors: alternate before/after children this many times (min kept)"
    )
    parser.add_argument(
        "--before", type=Path, default=Path("/work/main"), help="--floors: checkout holding the code before"
    )
    args = parser.parse_args()
    if args.floors:
        main_floors(args)
        return

    load = os.getloadavg()
    print(
        f"# bench_metrics: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"threads {args.threads or 'default'}, load average before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_metrics_") as tmp:
        for scale in args.scales:
            nq, n = SCALES[scale]
            ref_queries = args.ref_queries or (nq if scale == "mir" else 300)
            ref_queries = min(ref_queries, nq)
            for bits in args.bits:
                data = make_data(scale, bits, Path(tmp))
                ours = _child(data, "ours", None, args.threads)
                ref = _child(data, "reference", ref_queries, args.threads)
                row = {
                    "scale": scale,
                    "n_query": nq,
                    "n_retrieval": n,
                    "bits": bits,
                    "ref_queries": ref_queries,
                    "ref_seconds_measured": ref["seconds"],
                    "ref_seconds": ref["seconds"] * nq / ref_queries,
                    "ref_threads": ref["threads"],
                    "ref_peak_rss_mb": ref["peak_rss_mb"],
                    "ours_seconds": ours["seconds"],
                    "ours_threads": ours["threads"],
                    "ours_warmup_seconds": ours["warmup_seconds"],
                    "ours_peak_rss_mb": ours["peak_rss_mb"],
                    "ours_rss_before_mb": ours["rss_before_mb"],
                }
                a = np.array([np.nan if x is None else x for x in ours["ap"][:ref_queries]])
                b = np.array([np.nan if x is None else x for x in ref["ap"]])
                assert (np.isnan(a) == np.isnan(b)).all(), "the two disagree on which queries have relevant items"
                row["max_abs_ap_diff"] = float(np.nanmax(np.abs(a - b)))
                row["map"] = float(np.nanmean([np.nan if x is None else x for x in ours["ap"]]))
                row["speedup"] = row["ref_seconds"] / row["ours_seconds"]
                if args.numpy_path:
                    nump = _child(data, "numpy", ref_queries, args.threads)
                    row["numpy_seconds"] = nump["seconds"] * nq / ref_queries
                    row["numpy_peak_rss_mb"] = nump["peak_rss_mb"]
                rows.append(row)
                print(
                    f"  {scale} {bits} bits: ref {row['ref_seconds']:.2f} s, ours {row['ours_seconds']:.3f} s, "
                    f"{row['speedup']:.0f}×",
                    flush=True,
                )
    load = os.getloadavg()
    print(f"# load average after {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n")
    print(markdown_table(rows, args.numpy_path))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


def markdown_table(rows: list[dict], with_numpy: bool) -> str:
    """The rows as the RESULTS.md table."""
    head = (
        "| scale (queries × items) | bits | mAP | reference s (timed on) | ours s | speed-up | threads ref / ours | "
        "peak RSS ref / ours MB | max abs AP diff |"
    )
    sep = "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    if with_numpy:
        head += " numpy path s |"
        sep += " ---: |"
    lines = [head, sep]
    for r in rows:
        line = (
            f"| {r['scale']} ({r['n_query']:,} × {r['n_retrieval']:,}) | {r['bits']} | {r['map']:.4f} | "
            f"{r['ref_seconds']:.2f} ({r['ref_queries']:,} q) | {r['ours_seconds']:.3f} | "
            f"{r['speedup']:.0f}× | {r['ref_threads']} / {r['ours_threads']} | "
            f"{r['ref_peak_rss_mb']:.0f} / {r['ours_peak_rss_mb']:.0f} | "
            f"{r['max_abs_ap_diff']:.1e} |"
        )
        if with_numpy:
            line += f" {r['numpy_seconds']:.2f} |"
        lines.append(line)
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--floors-child":
        print(json.dumps(run_floors_case(Path(sys.argv[2]), int(sys.argv[3]))))
    elif len(sys.argv) > 1 and sys.argv[1] == "--child":
        result = run_case(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]) or None, int(sys.argv[5]) or None)
        print(json.dumps(result))
    else:
        main()
