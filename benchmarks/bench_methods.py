"""mAP@all of EGATH and every comparison method (``egath_lite.core.methods``), with LSH and CLIP cosine.

    python benchmarks/bench_methods.py                                    # default preset, seeds 0 1 2, 16/32/64
    python benchmarks/bench_methods.py --seeds 0 --bits 32                # what fits a busy machine
    python benchmarks/bench_methods.py --table-only                       # re-print the table from the results

One seed is one whole pipeline (toy data, tiny CLIP, features, graph, hash training), in the run folder
``<runs_root>/<preset>-toy_nuswide-s<seed>/`` that ``egath_lite.driver.cli`` and ``bench_variants.py`` use, so
they share cached artifacts. Every (seed, method, bits) is cached by ``ensure_codes`` and its row appended to
``--results`` (JSON lines) when done: a rerun skips the rows it has. The table gives mean ± std over seeds,
EGATH minus each method paired by seed (mean ± std of the per-seed differences of the mean of I→T and T→I),
and each method's median seconds per training epoch (wall, and CPU time of its process) measured in this run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _cfg(preset: str, runs_root: str, seed: int, device: str, method: str):
    from egath_lite import get_config

    return get_config(
        preset, run_name=f"{preset}-toy_nuswide-s{seed}", runs_root=runs_root, seed=seed, device=device, method=method
    )


def run_cell(preset: str, runs_root: str, seed: int, method: str, bits: int, device: str) -> dict[str, Any]:
    """Train (or reuse) one method at one bit length; its mAP and timings."""
    from egath_lite.metrics import mean_average_precision
    from egath_lite.pipeline.codes import ensure_codes

    cfg = _cfg(preset, runs_root, seed, device, method)
    c = ensure_codes(cfg, bits, progress=False)
    qL, rL = c.query_labels, c.retrieval_labels
    meta = c["meta"]
    return {
        "seed": seed,
        "method": method,
        "bits": bits,
        "i2t": float(mean_average_precision(c.query_image_codes, c.retrieval_text_codes, qL, rL, backend="numpy")),
        "t2i": float(mean_average_precision(c.query_text_codes, c.retrieval_image_codes, qL, rL, backend="numpy")),
        "seconds_per_epoch": float(meta["seconds_per_epoch"]),
        "cpu_seconds_per_epoch": float(meta.get("cpu_seconds_per_epoch", float("nan"))),
        "epochs_run": int(meta["epochs_run"]),
        "best_epoch": int(meta["best_epoch"]),
        "cache_hit": bool(c["cache_hit"]),
    }


def baseline_rows(preset: str, runs_root: str, seed: int, bits: int, device: str) -> list[dict[str, Any]]:
    """LSH (seeded by the run's seed) and the continuous CLIP vectors ranked by cosine."""
    from egath_lite.pipeline.baselines import ensure_clip_baseline, lsh_map
    from egath_lite.pipeline.features import ensure_features

    cfg = _cfg(preset, runs_root, seed, device, "egath")
    lsh = lsh_map(ensure_features(cfg, progress=False), bits, seed=seed, backend="numpy")
    clip = ensure_clip_baseline(cfg)
    return [
        {"seed": seed, "method": "LSH", "bits": bits, **lsh},
        {"seed": seed, "method": "CLIP cosine", "bits": bits, **clip},
    ]


def _ms(xs: list[float]) -> str:
    if not xs:
        return "–"
    return f"{statistics.mean(xs):.3f}" + (f" ± {statistics.stdev(xs):.3f}" if len(xs) > 1 else "")


def table(rows: list[dict[str, Any]], order: list[str]) -> str:
    """Methods × bits (I→T, T→I), EGATH minus each method paired by seed, seconds per epoch."""
    bits = sorted({r["bits"] for r in rows})
    by = {(r["method"], r["bits"], r["seed"]): r for r in rows}
    methods = [m for m in order if any(r["method"] == m for r in rows)]
    head = "| method | " + " | ".join(f"I→T {b}" for b in bits) + " | " + " | ".join(f"T→I {b}" for b in bits)
    head += " | EGATH − method, " + ", ".join(f"{b}" for b in bits) + " bits | s/epoch (wall) | s/epoch (CPU) |"
    lines = [head, "|" + "---|" * (2 * len(bits) + 4)]
    for m in methods:
        cells = []
        for d in ("i2t", "t2i"):
            for b in bits:
                cells.append(_ms([r[d] for (mm, bb, _), r in by.items() if mm == m and bb == b]))
        diffs = []
        for b in bits:
            per_seed = [
                (by[("egath", b, s)]["i2t"] + by[("egath", b, s)]["t2i"]) / 2 - (r["i2t"] + r["t2i"]) / 2
                for (mm, bb, s), r in by.items()
                if mm == m and bb == b and ("egath", b, s) in by
            ]
            diffs.append("–" if m == "egath" else _ms(per_seed))
        secs = [r["seconds_per_epoch"] for (mm, _, _), r in by.items() if mm == m and "seconds_per_epoch" in r]
        cpus = [r["cpu_seconds_per_epoch"] for (mm, _, _), r in by.items() if mm == m and "cpu_seconds_per_epoch" in r]
        wall = f"{statistics.median(secs):.2f}" if secs else "–"
        cpu = f"{statistics.median(cpus):.2f}" if cpus else "–"
        lines.append(f"| {m} | " + " | ".join(cells) + " | " + ", ".join(diffs) + f" | {wall} | {cpu} |")
    seeds = sorted({r["seed"] for r in rows})
    return "\n".join(lines) + f"\n\nseeds {seeds}; bits {bits}; mAP@all, Hamming ranking (CLIP cosine: continuous)\n"


def main(argv: list[str] | None = None) -> int:
    from egath_lite.core.methods import available_methods

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="default")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--bits", nargs="+", type=int, default=[16, 32, 64])
    p.add_argument("--methods", nargs="+", default=list(available_methods()))
    p.add_argument("--runs-root", default=str(REPO / "runs"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--results", default=str(REPO / "benchmarks" / "results" / "bench_methods.jsonl"))
    p.add_argument("--table-only", action="store_true")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = Path(args.results)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    done = {(r["seed"], r["method"], r["bits"]) for r in rows}
    order = ["egath", *[m for m in args.methods if m != "egath"], "LSH", "CLIP cosine"]
    if not args.table_only:
        print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
        for seed in args.seeds:
            for bits in args.bits:
                todo = [(m, None) for m in args.methods if (seed, m, bits) not in done]
                if (seed, "LSH", bits) not in done:
                    new = baseline_rows(args.preset, args.runs_root, seed, bits, args.device)
                    _append(path, new, rows, done)
                for method, _ in todo:
                    t0 = time.perf_counter()
                    row = run_cell(args.preset, args.runs_root, seed, method, bits, args.device)
                    _append(path, [row], rows, done)
                    print(
                        f"seed {seed} {method:>6} {bits:>2} bits: I→T {row['i2t']:.4f} T→I {row['t2i']:.4f} "
                        f"({row['epochs_run']} epochs, {row['seconds_per_epoch']:.2f} s/epoch, "
                        f"{time.perf_counter() - t0:.0f} s)",
                        flush=True,
                    )
    wanted = [r for r in rows if r["seed"] in args.seeds and r["bits"] in args.bits and r["method"] in order]
    print(table(wanted, order))
    return 0


def _append(path: Path, new: list[dict[str, Any]], rows: list, done: set) -> None:
    with path.open("a") as f:
        for r in new:
            f.write(json.dumps(r) + "\n")
            rows.append(r)
            done.add((r["seed"], r["method"], r["bits"]))


if __name__ == "__main__":
    sys.exit(main())
