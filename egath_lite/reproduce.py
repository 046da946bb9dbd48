"""Papermill driver: run the notebooks in order over datasets x variants x seeds and tabulate.

    python -m egath_lite.reproduce                      # the main job: preset "default"
    python -m egath_lite.reproduce --preset tiny        # minutes (CI)
    python -m egath_lite.reproduce --preset paper --datasets mirflickr25k nuswide_tc10 mscoco \
        --variants egath no_gat --seeds 0 1 2           # real benchmarks, GPU

One grid cell is (dataset, seed, variant). Notebooks 01-03 depend on (dataset, seed) only, so
they run once per run folder ``<runs_root>/<preset>-<dataset>-s<seed>/``; 04 and 05 run per
variant. A cell whose results file exists is skipped (resume) unless ``--force``. A failing
notebook stops the driver with the notebook, cell and error; finished results stay intact.
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .artifacts import atomic_write_bytes, read_json, write_json
from .config import PRESETS, get_config

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
SHARED_NOTEBOOKS = ("01_feature_extraction", "02_label_graph", "03_gat_classification")
VARIANT_NOTEBOOKS = ("04_hash_learning", "05_pr_curve_evaluation")
VARIANTS = ("egath", "no_gat", "gcn", "no_triplet", "no_cosine", "clip_text")


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names the notebook, the cell and the error."""


@dataclass
class Cell:
    """One point of the grid and where its outputs go."""

    dataset: str
    seed: int
    variant: str
    run_name: str
    results_path: Path
    stage_seconds: dict[str, float] = field(default_factory=dict)


def run_notebook(name: str, executed_dir: Path, parameters: dict[str, Any], kernel: str = "python3") -> float:
    """Execute ``notebooks/<name>.ipynb`` with papermill; return wall seconds or raise NotebookFailed."""
    import papermill as pm

    src = NOTEBOOK_DIR / f"{name}.ipynb"
    if not src.is_file():
        raise FileNotFoundError(
            f"notebook {src} not found; run the driver from a clone of the repository "
            f"(the notebooks are not part of the installed package)"
        )
    executed_dir.mkdir(parents=True, exist_ok=True)
    suffix = f".{parameters['VARIANT']}" if name in VARIANT_NOTEBOOKS and "VARIANT" in parameters else ""
    out = executed_dir / f"{name}{suffix}.ipynb"
    start = time.perf_counter()
    try:
        pm.execute_notebook(
            str(src), str(out), parameters=parameters, kernel_name=kernel,
            cwd=str(NOTEBOOK_DIR), progress_bar=False, log_output=False,
        )
    except pm.PapermillExecutionError as exc:
        first_line = (exc.source or "").strip().splitlines()[:1]
        raise NotebookFailed(
            f"{name} failed in cell {_source_cell_index(src, exc.cell_index)} "
            f"(counting from 0; starts {first_line[0] if first_line else '?'!r}): "
            f"{exc.ename}: {exc.evalue}\n  executed copy with the traceback: {out}"
        ) from None
    return time.perf_counter() - start


def _source_cell_index(src: Path, executed_index: int) -> int:
    """Map a cell index of the executed copy back to the source notebook (papermill injects one cell)."""
    import nbformat

    cells = nbformat.read(src, as_version=4).cells
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    return executed_index - 1 if tagged and executed_index > tagged[0] else executed_index


def _grid(preset: str, datasets: Sequence[str], seeds: Sequence[int], variants: Sequence[str],
          runs_root: Path) -> list[Cell]:
    cells = []
    for dataset in datasets:
        for seed in seeds:
            run_name = f"{preset}-{dataset}-s{seed}"
            for variant in variants:
                path = runs_root / run_name / "results" / f"{variant}.json"
                cells.append(Cell(dataset, seed, variant, run_name, path))
    return cells


def _rows_from_results(cell: Cell, res05: dict[str, Any], res04: dict[str, Any]) -> list[dict[str, Any]]:
    """Flatten notebook 05's ``map`` table ({method: {bits: {i2t, t2i}}}) into table rows."""
    rows = []
    table = res05.get("map")
    if not isinstance(table, dict) or not table:
        raise NotebookFailed(f"05_pr_curve_evaluation wrote no 'map' table for {cell.run_name}/{cell.variant}")
    for method, by_bits in table.items():
        for bits, vals in by_bits.items():
            rows.append({
                "dataset": cell.dataset, "seed": cell.seed, "method": method, "bits": int(bits),
                "i2t": float(vals["i2t"]), "t2i": float(vals["t2i"]),
            })
    return rows


def describe_dataset(cfg, png: Path) -> Path:
    """Print the data set's summary (items, labels, per-label counts, tags per item); save example images."""
    from .data import dataset_from_config
    from .data.__main__ import write_example_grid

    ds = dataset_from_config(cfg)
    print(ds.format_summary())
    path = write_example_grid(ds, png)
    print(f"example images with their tags: {path}")
    return path


def run_cell(cell: Cell, preset: str, runs_root: Path, device: str, bits: Sequence[int] | None,
             force: bool, log=print) -> dict[str, Any]:
    """Run (or resume) one grid cell; returns its results dict (also written to disk)."""
    run_dir = runs_root / cell.run_name
    executed = run_dir / "executed"
    base = {"PRESET": preset, "RUN_NAME": cell.run_name, "RUNS_ROOT": str(runs_root),
            "DATASET": cell.dataset, "SEED": cell.seed, "DEVICE": device}
    if bits:
        base["BITS"] = list(bits)
    stages: dict[str, float] = {}
    for name in SHARED_NOTEBOOKS:
        # Shared stages reuse their artifacts across variants (the notebooks hit their caches).
        stages[name] = run_notebook(name, executed, base)
        log(f"    {name:<28} {stages[name]:7.1f} s", flush=True)
    params = dict(base, VARIANT=cell.variant)
    for name in VARIANT_NOTEBOOKS:
        stages[name] = run_notebook(name, executed, params)
        log(f"    {name + ' [' + cell.variant + ']':<28} {stages[name]:7.1f} s", flush=True)
    res04 = read_json(run_dir / "04_hash_learning.json")
    res05 = read_json(run_dir / "05_pr_curve_evaluation.json")
    result = {
        "dataset": cell.dataset, "seed": cell.seed, "variant": cell.variant, "preset": preset,
        "stage_seconds": stages, "rows": _rows_from_results(cell, res05, res04),
        "notebook_results": {"04": res04, "05": res05},
    }
    write_json(cell.results_path, result)
    return result


def summarize(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and std over seeds of every (dataset, method, bits)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for res in results:
        for row in res["rows"]:
            groups.setdefault((row["dataset"], row["method"], row["bits"]), []).append(row)
    table = []
    for (dataset, method, bits), rows in sorted(groups.items()):
        seeds = sorted({r["seed"] for r in rows})
        # Baseline rows repeat across variants of one seed: average per seed first.
        per_seed = {s: [r for r in rows if r["seed"] == s] for s in seeds}
        i2t = [sum(r["i2t"] for r in rs) / len(rs) for rs in per_seed.values()]
        t2i = [sum(r["t2i"] for r in rs) / len(rs) for rs in per_seed.values()]
        table.append({"dataset": dataset, "method": method, "bits": bits, "seeds": len(seeds),
                      "i2t_mean": _mean(i2t), "i2t_std": _std(i2t),
                      "t2i_mean": _mean(t2i), "t2i_std": _std(t2i)})
    return table


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def _std(xs: list[float]) -> float:
    if len(xs) < 2:
        return 0.0
    m = _mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def format_markdown(table: list[dict[str, Any]]) -> str:
    """The results table as Markdown: one row per (dataset, method), columns per bits."""
    bits = sorted({r["bits"] for r in table})
    head = "| dataset | method | " + " | ".join(f"I→T {b}" for b in bits) + " | " + \
        " | ".join(f"T→I {b}" for b in bits) + " |"
    sep = "|" + "---|" * (2 + 2 * len(bits))
    lines = [head, sep]
    keys = sorted({(r["dataset"], r["method"]) for r in table})
    by = {(r["dataset"], r["method"], r["bits"]): r for r in table}

    def fmt(r: dict[str, Any] | None, d: str) -> str:
        if r is None:
            return "–"
        return f"{r[d + '_mean']:.4f}" + (f" ± {r[d + '_std']:.4f}" if r["seeds"] > 1 else "")

    for dataset, method in keys:
        cells = [fmt(by.get((dataset, method, b)), "i2t") for b in bits] + \
                [fmt(by.get((dataset, method, b)), "t2i") for b in bits]
        lines.append(f"| {dataset} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_tables(table: list[dict[str, Any]], out_dir: Path) -> tuple[Path, Path]:
    """Write results.csv and results.md atomically; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out_dir / "results.csv", out_dir / "results.md"
    fields = ["dataset", "method", "bits", "seeds", "i2t_mean", "i2t_std", "t2i_mean", "t2i_std"]

    def write_csv(f):
        import io

        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=fields)
        w.writeheader()
        w.writerows(table)
        f.write(buf.getvalue().encode())

    atomic_write_bytes(csv_path, write_csv)
    md = format_markdown(table)
    atomic_write_bytes(md_path, lambda f: f.write(md.encode()))
    return csv_path, md_path


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    p = argparse.ArgumentParser(prog="python -m egath_lite.reproduce", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="default", choices=PRESETS)
    p.add_argument("--datasets", nargs="+", default=None, help="default: the preset's dataset")
    p.add_argument("--variants", nargs="+", default=["egath"], choices=VARIANTS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--bits", nargs="+", type=int, default=None, help="default: the preset's bits")
    p.add_argument("--runs-root", default=os.environ.get("EGATH_RUNS_ROOT", "runs"))
    p.add_argument("--device", default="auto")
    p.add_argument("--force", action="store_true", help="rerun finished grid cells")
    args = p.parse_args(argv)

    cfg = get_config(args.preset)
    datasets = args.datasets or [cfg.dataset]
    runs_root = Path(args.runs_root).resolve()
    cells = _grid(args.preset, datasets, args.seeds, args.variants, runs_root)
    print(f"egath_lite.reproduce: preset {args.preset}, {len(cells)} grid cell(s) "
          f"[datasets {datasets} x seeds {args.seeds} x variants {args.variants}], runs in {runs_root}")
    t0 = time.perf_counter()
    for dataset in datasets:  # what the notebooks will work on, before spending minutes on them
        describe_dataset(get_config(args.preset, dataset=dataset, seed=args.seeds[0]),
                         runs_root / f"{args.preset}-{dataset}-s{args.seeds[0]}" / "data_examples.png")
    results = []
    for i, cell in enumerate(cells, 1):
        label = f"[{i}/{len(cells)}] {cell.dataset} seed {cell.seed} variant {cell.variant}"
        if cell.results_path.is_file() and not args.force:
            print(f"{label}: done before, reusing {cell.results_path}")
            results.append(read_json(cell.results_path))
            continue
        print(label)
        try:
            results.append(run_cell(cell, args.preset, runs_root, args.device, args.bits, args.force))
        except NotebookFailed as exc:
            print(f"\nFAILED: {exc}\nFinished cells keep their results; rerun to resume.", file=sys.stderr)
            return 1
    table = summarize(results)
    out_dir = runs_root / f"reproduce-{args.preset}"
    csv_path, md_path = write_tables(table, out_dir)
    stage_totals: dict[str, float] = {}
    for res in results:
        for k, v in res.get("stage_seconds", {}).items():
            stage_totals[k] = stage_totals.get(k, 0.0) + v
    write_json(out_dir / "timings.json", {"stage_seconds": stage_totals,
                                           "wall_seconds": time.perf_counter() - t0})
    print("\nmAP@all (Hamming ranking; queries without a relevant item skipped)\n")
    print(format_markdown(table))
    if stage_totals:
        print("wall time per stage (this invocation, executed cells only): " +
              ", ".join(f"{k} {v:.0f} s" for k, v in stage_totals.items()))
    print(f"results: {csv_path}\n         {md_path}\ntotal {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
