"""mAP@all of every EGATH variant and both learning-free baselines, over seeds × bit lengths.

    python benchmarks/bench_variants.py                          # default preset, seeds 0 1 2, all variants
    python benchmarks/bench_variants.py --preset tiny --seeds 0 --variants egath no_gat --workers 2
    python benchmarks/bench_variants.py --table-only             # re-print the table from the results file
    python benchmarks/bench_variants.py --variants egath no_gat --classifier-scale released unit \
        --results benchmarks/results/main_job_scale_default.jsonl   # the main job at both classifier scales, paired

One seed is one whole pipeline: the toy data set, the tiny CLIP, the features, the label
graph and the hash training all draw from it, so the spread over seeds includes the data.
Run folders are ``<runs_root>/<preset>-<dataset>-s<seed>/``, the same as
``egath_lite.driver.cli``, so the two share their cached artifacts.

Resumable: every trained (seed, variant, bits) cell is cached by ``ensure_codes`` and its
row is appended to ``--results`` (JSON lines) as soon as it is done; a rerun skips the
rows it finds. Cells run in ``--workers`` processes (one torch thread each). mAP is
computed with the numpy kernel of ``egath_lite.metrics`` (identical numbers to numba; see
``train.retrieval_map`` for why numba is kept out of training processes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

VARIANTS = ("egath", "no_gat", "gcn", "no_triplet", "no_cosine", "clip_text")
BASELINES = ("LSH", "CLIP (continuous)")


def _cfg(preset: str, runs_root: str, seed: int, dataset: str, device: str, **kw: Any):
    from egath_lite import get_config

    return get_config(
        preset,
        run_name=f"{preset}-{dataset}-s{seed}",
        runs_root=runs_root,
        dataset=dataset,
        seed=seed,
        device=device,
        **kw,
    )


def prepare_seed(preset: str, runs_root: str, seed: int, dataset: str, device: str) -> dict[str, Any]:
    """Features and graph of one seed (cached), plus the baseline rows of that seed."""
    import torch

    torch.set_num_threads(max(1, int(os.environ.get("BENCH_PREP_THREADS", "1"))))
    from egath_lite.pipeline.baselines import clip_continuous_map, lsh_map
    from egath_lite.pipeline.features import ensure_features
    from egath_lite.pipeline.graph import ensure_graph

    cfg = _cfg(preset, runs_root, seed, dataset, device)
    t0 = time.perf_counter()
    features = ensure_features(cfg, progress=False)
    ensure_graph(cfg)
    rows = []
    clip = clip_continuous_map(features)
    for bits in cfg.bits:
        rows.append(dict(seed=seed, method="CLIP (continuous)", bits=bits, **clip))
        rows.append(dict(seed=seed, method="LSH", bits=bits, **lsh_map(features, bits, seed=seed, backend="numpy")))
    return {"seed": seed, "rows": rows, "seconds": time.perf_counter() - t0, "bits": list(cfg.bits)}


def run_cell(
    preset: str, runs_root: str, seed: int, dataset: str, device: str, variant: str, bits: int, **overrides: Any
) -> dict[str, Any]:
    """Train (or load) one variant at one bit length (config ``overrides`` applied) and evaluate it on the query split."""
    import torch

    torch.set_num_threads(1)
    from egath_lite.pipeline.codes import ensure_codes

    cfg = _cfg(preset, runs_root, seed, dataset, device, variant=variant, **overrides)
    t0 = time.perf_counter()
    payload = ensure_codes(cfg, bits, progress=False)
    t, m = payload["tensors"], payload["meta"]
    return dict(
        seed=seed,
        method=variant,
        bits=bits,
        **overrides,
        **query_maps(t),
        val_map=m["val_map"],
        best_epoch=m["best_epoch"],
        epochs_run=m["epochs_run"],
        seconds_per_epoch=m["seconds_per_epoch"],
        cpu_seconds_per_epoch=m.get("cpu_seconds_per_epoch"),
        train_seconds=m["train_seconds"],
        cache_hit=payload["cache_hit"],
        wall=time.perf_counter() - t0,
    )


def query_maps(t: dict[str, Any]) -> dict[str, float]:
    """{"i2t", "t2i"}: mAP@all of the query codes against the retrieval codes (numpy kernel)."""
    from egath_lite.metrics import mean_average_precision

    qL, rL = t["query_labels"], t["retrieval_labels"]
    return dict(
        i2t=float(mean_average_precision(t["query_image_codes"], t["retrieval_text_codes"], qL, rL, backend="numpy")),
        t2i=float(mean_average_precision(t["query_text_codes"], t["retrieval_image_codes"], qL, rL, backend="numpy")),
    )


def load_rows(path: Path) -> list[dict[str, Any]]:
    """Rows already in the results file (JSON lines); a broken line is reported, not trusted."""
    rows = []
    if path.is_file():
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise SystemExit(f"{path}:{n} is not valid JSON ({exc}); delete that line and rerun") from exc
    return rows


def append_row(path: Path, row: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(row, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def summarize(rows: list[dict[str, Any]], methods: list[str], bits_list: list[int]) -> str:
    """Markdown table: mean ± std over seeds of I→T and T→I mAP@all per method and bit length."""

    def cell(method: str, bits: int, key: str) -> str:
        vals = [r[key] for r in rows if r["method"] == method and r["bits"] == bits]
        if not vals:
            return "—"
        if len(vals) == 1:
            return f"{vals[0]:.4f} (n=1)"
        return f"{statistics.mean(vals):.4f} ± {statistics.stdev(vals):.4f}"

    head = (
        "| method | "
        + " | ".join(f"I→T {b}" for b in bits_list)
        + " | "
        + " | ".join(f"T→I {b}" for b in bits_list)
        + " |"
    )
    sep = "| --- |" + " ---: |" * (2 * len(bits_list))
    lines = [head, sep]
    for method in methods:
        cells = [cell(method, b, "i2t") for b in bits_list] + [cell(method, b, "t2i") for b in bits_list]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _scale(row: dict[str, Any]) -> str:
    return row.get("classifier_scale", "released")  # rows written before the option existed ran as released


def paired_summary(rows: list[dict[str, Any]], variants: list[str], bits_list: list[int], scales: list[str]) -> str:
    """Paired differences over seeds (mean ± std, wins): each scale against the first, and each variant against no_gat.

    A difference is taken within one seed (same data, features and initial draw), then averaged over seeds."""
    by = {(r["seed"], r["method"], r["bits"], _scale(r)): r for r in rows if r["method"] in VARIANTS}

    def diff(a: tuple[str, str], b: tuple[str, str], bits: int, key: str) -> str:
        vals = [
            by[(s, a[0], bits, a[1])][key] - by[(s, b[0], bits, b[1])][key]
            for s in sorted({k[0] for k in by})
            if (s, a[0], bits, a[1]) in by and (s, b[0], bits, b[1]) in by
        ]
        if not vals:
            return "—"
        sd = f" ± {statistics.stdev(vals):.3f}" if len(vals) > 1 else ""
        return f"{statistics.mean(vals):+.3f}{sd} ({sum(v > 0 for v in vals)}/{len(vals)})"

    head = "| difference (paired by seed; wins/seeds) | " + " | ".join(
        [f"I→T {b}" for b in bits_list] + [f"T→I {b}" for b in bits_list]
    )
    lines = [head + " |", "| --- |" + " ---: |" * (2 * len(bits_list))]
    pairs = []
    for v in variants:
        for sc in scales[1:]:
            pairs.append((f"{v}: {sc} − {scales[0]}", (v, sc), (v, scales[0])))
    for sc in scales:
        for v in variants:
            if v != "no_gat" and "no_gat" in variants:
                pairs.append((f"{v} − no_gat, both {sc}", (v, sc), ("no_gat", sc)))
    for name, a, b in pairs:
        cells = [diff(a, b, bits, k) for k in ("i2t", "t2i") for bits in bits_list]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def timing_summary(rows: list[dict[str, Any]]) -> str:
    trained = [r for r in rows if r["method"] in VARIANTS and not r.get("cache_hit")]
    if not trained:
        return "no cell was trained in this results file (all cache hits)"
    spe = [r["seconds_per_epoch"] for r in trained]
    cpu = [r["cpu_seconds_per_epoch"] for r in trained if r.get("cpu_seconds_per_epoch") is not None]
    ep = [r["epochs_run"] for r in trained]
    best = [r["best_epoch"] for r in trained]
    return (
        f"{len(trained)} cells trained: median {statistics.median(spe):.2f} s/epoch wall "
        f"(CPU {statistics.median(cpu):.2f} s), epochs run {min(ep)}–{max(ep)} (median {statistics.median(ep):g}), "
        f"selected epoch median {statistics.median(best):g}, training {statistics.median([r['train_seconds'] for r in trained]):.0f} s per cell (median)"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="default")
    p.add_argument("--dataset", default="toy_nuswide")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--bits", type=int, nargs="+", default=None, help="default: the preset's bits")
    p.add_argument("--runs-root", default=str(REPO / "runs"))
    p.add_argument("--device", default="cpu", help="training device of the hash models (features: 'auto')")
    p.add_argument("--workers", type=int, default=1, help="parallel training processes (one torch thread each)")
    p.add_argument(
        "--results", default=None, help="JSON-lines results file (default: <runs_root>/bench_variants_<preset>.jsonl)"
    )
    p.add_argument(
        "--classifier-scale",
        nargs="+",
        default=["released"],
        choices=["released", "unit"],
        help="run every cell at each of these classifier scales (the first is the reference of the paired table)",
    )
    p.add_argument("--table-only", action="store_true", help="print the table from the results file and exit")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results = Path(args.results or Path(args.runs_root) / f"bench_variants_{args.preset}.jsonl")
    rows = load_rows(results)
    from egath_lite import get_config

    bits_list = args.bits or list(get_config(args.preset).bits)
    methods = list(args.variants) + list(BASELINES)
    scales = list(args.classifier_scale)

    def report() -> None:
        for sc in scales:
            if len(scales) > 1:
                print(f"\nclassifier_scale = {sc!r}:")
            print(summarize([r for r in rows if r["method"] in BASELINES or _scale(r) == sc], methods, bits_list))
        if len(scales) > 1 or "no_gat" in args.variants:
            print()
            print(paired_summary(rows, list(args.variants), bits_list, scales))
        print(timing_summary(rows))

    if args.table_only:
        report()
        return 0

    t_start = time.perf_counter()
    print(
        f"[bench] {platform.node()} | {os.cpu_count()} CPUs | preset {args.preset} | seeds {args.seeds} | "
        f"variants {args.variants} | bits {bits_list} | workers {args.workers} | results {results}",
        flush=True,
    )
    done = {(r["seed"], r["method"], r["bits"]) for r in rows if r["method"] in BASELINES}
    done |= {(r["seed"], r["method"], r["bits"], _scale(r)) for r in rows if r["method"] not in BASELINES}
    # 1. features + graph + baselines per seed (the CLIP stage may use a GPU: device 'auto')
    todo_seeds = [
        s
        for s in args.seeds
        if any((s, m, b) not in done for m in BASELINES for b in bits_list)
        or any((s, v, b, sc) not in done for v in args.variants for b in bits_list for sc in scales)
    ]
    with ProcessPoolExecutor(max_workers=max(1, min(args.workers, len(todo_seeds) or 1))) as pool:
        futures = {
            pool.submit(prepare_seed, args.preset, args.runs_root, s, args.dataset, "auto"): s for s in todo_seeds
        }
        for fut in as_completed(futures):
            res = fut.result()
            for row in res["rows"]:
                if (row["seed"], row["method"], row["bits"]) not in done and row["bits"] in bits_list:
                    append_row(results, row)
                    done.add((row["seed"], row["method"], row["bits"]))
                    rows.append(row)
            print(
                f"[bench] seed {res['seed']}: features + graph + baselines in {res['seconds']:.0f} s "
                f"({time.perf_counter() - t_start:.0f} s elapsed)",
                flush=True,
            )
    # 2. every (seed, variant, bits) cell
    cells = [
        (s, v, b, sc)
        for s in args.seeds
        for b in bits_list
        for sc in scales
        for v in args.variants
        if (s, v, b, sc) not in done
    ]
    print(f"[bench] {len(cells)} cells to train ({len(done)} rows already in {results})", flush=True)
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = {
            pool.submit(
                run_cell,
                args.preset,
                args.runs_root,
                s,
                args.dataset,
                args.device,
                v,
                b,
                **({} if sc == "released" and scales == ["released"] else {"classifier_scale": sc}),
            ): (s, v, b, sc)
            for s, v, b, sc in cells
        }
        for k, fut in enumerate(as_completed(futures), 1):
            row = fut.result()
            append_row(results, row)
            rows.append(row)
            print(
                f"[bench] {k}/{len(cells)} seed {row['seed']} {row['method']:>10s} {_scale(row):>8s} {row['bits']:>2d} bits: "
                f"I→T {row['i2t']:.4f} T→I {row['t2i']:.4f} (val {row['val_map']:.4f}, best epoch {row['best_epoch']}/"
                f"{row['epochs_run']}, {row['seconds_per_epoch']:.1f} s/epoch) | {time.perf_counter() - t_start:.0f} s elapsed",
                flush=True,
            )
    report()
    print(f"[bench] done in {time.perf_counter() - t_start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
