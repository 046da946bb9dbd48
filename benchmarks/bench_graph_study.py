"""When does the label graph help? EGATH vs its graph-free and GCN ablations over ζ, GAT dropout and label scarcity.

    python benchmarks/bench_graph_study.py                      # default preset, seeds 0 1 2, both grids, 32 bits
    python benchmarks/bench_graph_study.py --seeds 0 1 --grids ablation
    python benchmarks/bench_graph_study.py --table-only         # re-print the tables from the results file

Two grids at one bit length (``--bits``, 32), every cell one whole training of one seed:

- **ablation**: egath, no_gat, gcn × ζ ∈ {0.01, 0.3} × gat_dropout ∈ {0.0, 0.2}, at the preset's training size.
  Not every variant reads every knob (``egath_lite.core.models``): ``no_gat`` (``IndependentClassifier``) reads neither
  the graph nor the GAT, so it is trained once per seed; ``gcn`` (``GCNClassifier``) reads the graph but not
  ``gat_dropout`` (it drops node features by ``gat_input_dropout``), so it is trained once per seed and ζ.
  The codes stage keys every cell by all of those fields anyway; ``tests/test_graph_study.py`` checks on the
  tiny preset that the shared cells really are identical (same codes) across the knobs they ignore.
- **scarcity**: the three variants at num_train ∈ {250, 500, 1000, 5000} labelled training items (ζ and dropout
  at the preset's values). Only the labelled items shrink: the features (tiny CLIP, trained on image–text
  pairs without labels, and the tag vocabulary) stay those of the preset's split, as a pretrained CLIP would;
  the query and retrieval sets are unchanged (GCDH's split puts the training items after the queries, so a
  smaller ``num_train`` keeps both and takes a prefix of the training items); the label graph and the
  validation carve (``val_fraction`` of the training items) come from the smaller split. The cell at the
  preset's own ``num_train`` is the ablation cell of the same settings.

Rows go to ``--results`` (JSON lines, one per cell, appended as each finishes); a rerun skips the cells it finds.
Ablation cells are cached by ``ensure_codes`` in the run folders shared with ``bench_variants.py`` and
``egath_lite.driver.cli``; scarcity cells keep only their row. Reuses ``bench_variants``' machinery.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_variants as bv  # noqa: E402  (the benchmarks folder is not a package)

REPO = bv.REPO
METHODS = ("egath", "no_gat", "gcn")
ZETAS = (0.01, 0.3)
DROPOUTS = (0.0, 0.2)
NUM_TRAINS = (250, 500, 1000, 5000)
GRIDS = ("ablation", "scarcity", "fair")
# The knobs each variant's classifier ignores (read from egath_lite.core.models; checked in tests/test_graph_study.py).
IGNORES = {"egath": (), "no_gat": ("zeta", "gat_dropout"), "gcn": ("gat_dropout",)}


# --------------------------------------------------------------------------- the cells
def canonical(method: str, zeta: float, gat_dropout: float, preset_cfg: Any) -> tuple[float, float]:
    """(ζ, dropout) the cell of ``method`` is trained at: an ignored knob is set to the preset's value."""
    z = preset_cfg.zeta if "zeta" in IGNORES[method] else zeta
    d = preset_cfg.gat_dropout if "gat_dropout" in IGNORES[method] else gat_dropout
    return float(z), float(d)


def grid_cells(
    grids: list[str], seeds: list[int], preset_cfg: Any, num_trains: tuple[int, ...] = NUM_TRAINS
) -> list[tuple]:
    """Distinct cells (seed, method, zeta, gat_dropout, num_train) of the grids, seed-major (seed 0 finishes first)."""
    cells: list[tuple] = []
    for seed in seeds:
        for method in METHODS:
            if "ablation" in grids:
                for zeta in ZETAS:
                    for drop in DROPOUTS:
                        cells.append((seed, method, *canonical(method, zeta, drop, preset_cfg), preset_cfg.num_train))
            if "scarcity" in grids:
                for n in num_trains:
                    cells.append((seed, method, float(preset_cfg.zeta), float(preset_cfg.gat_dropout), n))
    return list(dict.fromkeys(cells))  # shared cells once, order kept


def cell_key(row: dict[str, Any]) -> tuple:
    return (row["seed"], row["method"], float(row["zeta"]), float(row["gat_dropout"]), int(row["num_train"]))


def scarce_data(cfg_n: Any, features: dict[str, Any]):
    """HashData of the preset's features with the split of ``cfg_n`` (fewer training items); query/retrieval checked equal."""
    import numpy as np
    import torch

    from egath_lite.data import dataset_from_config, split_from_config
    from egath_lite.pipeline.engine import HashData, hash_data

    t = features["tensors"]
    ds = dataset_from_config(cfg_n)
    query, train, val, retrieval = split_from_config(ds, cfg_n)
    for name, ours, theirs in (("query", query, t["query_idx"]), ("retrieval", retrieval, t["retrieval_idx"])):
        if not np.array_equal(np.asarray(ours), theirs.numpy()):
            raise ValueError(f"num_train={cfg_n.num_train} changes the {name} set; the scarcity sweep needs it fixed")
    full = data = hash_data(cfg_n, features)
    labelled = np.union1d(t["train_idx"].numpy(), t["val_idx"].numpy())
    if not np.isin(np.concatenate([train, val]), labelled).all():
        raise ValueError(f"num_train={cfg_n.num_train} is not a subset of the features' training items")
    # train sorted and val in carve order, as results.training_split has them (the preset's own size reproduces
    # ensure_codes exactly)
    split = {
        "train": torch.from_numpy(np.sort(train)).long(),
        "val": torch.from_numpy(np.asarray(val)).long(),
        "query": full.split["query"],
        "retrieval": full.split["retrieval"],
    }
    return HashData(image=data.image, text=data.text, labels=data.labels, split=split)


def train_scarce(cfg: Any, num_train: int, bits: int) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Train ``cfg.variant`` on the first ``num_train`` labelled items of the split, on ``cfg``'s features.

    Returns (model, history, tensors with the query/retrieval codes and labels).
    """
    from egath_lite.pipeline.codes import split_codes
    from egath_lite.pipeline.engine import train_egath
    from egath_lite.pipeline.features import ensure_features
    from egath_lite.pipeline.graph import ensure_graph

    features = ensure_features(cfg, progress=False)
    cfg_n = cfg.replace(num_train=num_train)
    data = scarce_data(cfg_n, features)
    graph = ensure_graph(cfg_n)  # the graph of the smaller training split's labels
    model, hist = train_egath(cfg_n, bits, data, graph["tensors"], None, progress=False)
    tensors = split_codes(model, data)
    info = dict(num_edges=int(graph["meta"]["num_edges"]), train_items=len(data.split["train"]))
    return model, {**hist, **info}, tensors


def run_graph_cell(
    preset: str, runs_root: str, seed: int, dataset: str, device: str, method: str, bits: int, zeta: float,
    gat_dropout: float, num_train: int,
) -> dict[str, Any]:  # fmt: skip
    """One cell: the preset's size through ``bench_variants.run_cell`` (cached codes), a smaller one from scratch."""
    import torch

    torch.set_num_threads(1)
    base = bv._cfg(preset, runs_root, seed, dataset, device, variant=method, zeta=zeta, gat_dropout=gat_dropout)
    knobs = dict(zeta=zeta, gat_dropout=gat_dropout, num_train=num_train, ignores=list(IGNORES[method]))
    if num_train == base.num_train:
        row = bv.run_cell(preset, runs_root, seed, dataset, device, method, bits, zeta=zeta, gat_dropout=gat_dropout)
        from egath_lite.pipeline.graph import ensure_graph

        row["num_edges"] = int(ensure_graph(base)["meta"]["num_edges"])
        return {**row, **knobs}
    t0 = time.perf_counter()
    _, hist, tensors = train_scarce(base, num_train, bits)
    return dict(
        seed=seed,
        method=method,
        bits=bits,
        **bv.query_maps(tensors),
        val_map=float(hist["val_map"]),
        best_epoch=int(hist["best_epoch"]),
        epochs_run=int(hist["epochs_run"]),
        seconds_per_epoch=float(hist["seconds_per_epoch"]),
        cpu_seconds_per_epoch=float(hist["cpu_seconds_per_epoch"]),
        train_seconds=float(hist["train_seconds"]),
        cache_hit=False,
        num_edges=hist["num_edges"],
        train_items=hist["train_items"],
        wall=time.perf_counter() - t0,
        **knobs,
    )


# --------------------------------------------------------------------------- the tables
DIRECTIONS = (("i2t", "I→T"), ("t2i", "T→I"))
PAIRS = (("egath", "no_gat"), ("egath", "gcn"), ("gcn", "no_gat"))  # paired differences, first minus second


def lookup(rows: list[dict[str, Any]], preset_cfg: Any, seed: int, method: str, zeta: float, drop: float, n: int):
    """The row of a grid position (a shared cell stands for every value of the knobs its method ignores)."""
    key = (seed, method, *canonical(method, zeta, drop, preset_cfg), n)
    return next((r for r in rows if cell_key(r) == key), None)


def _mean_std(vals: list[float]) -> str:
    if not vals:
        return "—"
    if len(vals) == 1:
        return f"{vals[0]:.4f} (n=1)"
    return f"{statistics.mean(vals):.4f} ± {statistics.stdev(vals):.4f}"


def _diff(vals: list[float]) -> str:
    if not vals:
        return "—"
    wins = sum(v > 0 for v in vals)
    if len(vals) == 1:
        return f"{vals[0]:+.4f} (n=1)"
    return f"{statistics.mean(vals):+.4f} ± {statistics.stdev(vals):.4f} ({wins}/{len(vals)} > 0)"


def _table(rows, preset_cfg, seeds, columns, heads, method_note) -> str:
    """Markdown: mean ± std over seeds per (method, direction) and column, then paired differences."""
    lines = ["| method | dir | " + " | ".join(heads) + " |", "| --- | --- |" + " ---: |" * len(heads)]
    for method in METHODS:
        for key, name in DIRECTIONS:
            cells = []
            for z, d, n in columns:
                vals = [r[key] for s in seeds if (r := lookup(rows, preset_cfg, s, method, z, d, n))]
                cells.append(_mean_std(vals))
            lines.append(f"| {method}{method_note.get(method, '')} | {name} | " + " | ".join(cells) + " |")
    lines += ["", "Paired differences (same seed; mean ± std over seeds, and how many seeds are > 0):", ""]
    lines += ["| difference | dir | " + " | ".join(heads) + " |", "| --- | --- |" + " ---: |" * len(heads)]
    for first, other in PAIRS:
        for key, name in DIRECTIONS:
            cells = []
            for z, d, n in columns:
                diffs = []
                for s in seeds:
                    a, b = lookup(rows, preset_cfg, s, first, z, d, n), lookup(rows, preset_cfg, s, other, z, d, n)
                    if a and b:
                        diffs.append(a[key] - b[key])
                cells.append(_diff(diffs))
            lines.append(f"| {first} − {other} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ablation_table(rows: list[dict[str, Any]], preset_cfg: Any, seeds: list[int]) -> str:
    """mAP@all over ζ × GAT dropout at the preset's training size."""
    columns = [(z, d, preset_cfg.num_train) for z in ZETAS for d in DROPOUTS]
    heads = [f"ζ {z:g}, drop {d:g}" for z, d, _ in columns]
    notes = {"no_gat": " ¹", "gcn": " ²"}
    return _table(rows, preset_cfg, seeds, columns, heads, notes)


def scarcity_table(rows: list[dict[str, Any]], preset_cfg: Any, seeds: list[int]) -> str:
    """mAP@all over the number of labelled training items (ζ and dropout at the preset's values)."""
    columns = [(preset_cfg.zeta, preset_cfg.gat_dropout, n) for n in NUM_TRAINS]
    heads = [f"{n:,} items" for n in NUM_TRAINS]
    return _table(rows, preset_cfg, seeds, columns, heads, {})


def noise_line(rows: list[dict[str, Any]]) -> str:
    """Median seed std of the cells (the yardstick the differences are read against)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(cell_key(r)[1:], []).append(r)
    stds = [statistics.stdev([r[k] for r in g]) for g in groups.values() if len(g) > 1 for k, _ in DIRECTIONS]
    if not stds:
        return "seed noise: fewer than two seeds per cell"
    return f"seed noise: median std over seeds of a cell {statistics.median(stds):.4f} (max {max(stds):.4f})"


def edges_line(rows: list[dict[str, Any]]) -> str:
    """Directed label-graph edges (no self-loops) per ζ and training size, from the rows."""
    seen: dict[tuple, set] = {}
    for r in rows:
        if r["method"] != "no_gat" and "num_edges" in r:
            seen.setdefault((float(r["zeta"]), int(r["num_train"])), set()).add(r["num_edges"])
    parts = [f"ζ {z:g} / {n:,} items: {sorted(e)}" for (z, n), e in sorted(seen.items())]
    return "edges of the 90 possible (per seed): " + "; ".join(parts)


def timing_line(rows: list[dict[str, Any]]) -> str:
    trained = [r for r in rows if not r.get("cache_hit")]
    if not trained:
        return "no cell trained (all cache hits)"
    by_n: dict[int, list[float]] = {}
    for r in trained:
        by_n.setdefault(int(r["num_train"]), []).append(r["train_seconds"])
    parts = [f"{n:,} items {statistics.median(v):.0f} s (n={len(v)})" for n, v in sorted(by_n.items())]
    return f"{len(trained)} cells trained; median training time per cell: " + ", ".join(parts)


def report(rows: list[dict[str, Any]], preset_cfg: Any, seeds: list[int], bits: int) -> str:
    return "\n".join(
        [
            f"### Ablation at {preset_cfg.num_train:,} training items, {bits} bits (mAP@all)",
            "",
            ablation_table(rows, preset_cfg, seeds),
            "",
            "¹ no_gat reads neither the graph nor the GAT: one cell per seed stands in all four columns.",
            "² gcn does not read gat_dropout: one cell per seed and ζ stands in both dropout columns.",
            "",
            f"### Label scarcity, ζ {preset_cfg.zeta:g}, GAT dropout {preset_cfg.gat_dropout:g}, {bits} bits (mAP@all)",
            "",
            scarcity_table(rows, preset_cfg, seeds),
            "",
            noise_line(rows),
            edges_line(rows),
            timing_line(rows),
        ]
    )


# --------------------------------------------------------------------------- the fair test (issue 20)
FEATURE_SEED = 0  # one toy data set and tiny CLIP per dependence level; the cells vary the training seed
# name -> (variant, config overrides); every cell at ζ 0.3 and released settings unless it says otherwise
FAIR_CELLS: dict[str, tuple[str, dict[str, Any]]] = {
    "egath": ("egath", {}),
    "no_gat": ("no_gat", {}),
    "gcn": ("gcn", {}),
    "egath, self-loops only (ζ 1)": ("egath", {"zeta": 1.0}),
    "no classifier (w_cls 0, no label fusion)": ("egath", {"w_cls": 0.0, "label_fusion": "none"}),
    "egath, w_cls 0.1": ("egath", {"w_cls": 0.1}),
    "no_gat, w_cls 0.1": ("no_gat", {"w_cls": 0.1}),
    "egath, unit scale": ("egath", {"classifier_scale": "unit"}),
    "no_gat, unit scale": ("no_gat", {"classifier_scale": "unit"}),
    "gcn, unit scale": ("gcn", {"classifier_scale": "unit"}),
    "egath, ζ 0.01": ("egath", {"zeta": 0.01}),
    "egath GATv2": ("egath", {"gat_conv": "gatv2"}),
    "egath GATv2, ζ 0.01": ("egath", {"gat_conv": "gatv2", "zeta": 0.01}),
}
KNOB_CELLS = ("egath, unit scale", "no_gat, unit scale", "gcn, unit scale")
KNOB_LEVELS = (0.0, 0.5, 1.0)
KNOB_SCARCE = 500  # the label-scarcity axis of the knob: labelled training items
FAIR_PAIRS = (
    ("egath", "no_gat"),
    ("egath, self-loops only (ζ 1)", "no_gat"),
    ("no classifier (w_cls 0, no label fusion)", "no_gat"),
    ("egath, w_cls 0.1", "no_gat, w_cls 0.1"),
    ("egath, unit scale", "no_gat, unit scale"),
    ("gcn, unit scale", "no_gat, unit scale"),
    ("egath, unit scale", "egath"),
    ("no_gat, unit scale", "no_gat"),
    ("egath GATv2", "egath"),
    ("egath GATv2, ζ 0.01", "egath, ζ 0.01"),
)


# the order the grid trains in: the scale confound and its controls first, then the knob, then the rest
FAIR_TIERS = (
    ("egath", "no_gat", "egath, unit scale", "no_gat, unit scale", "egath, self-loops only (ζ 1)"),
    ("no classifier (w_cls 0, no label fusion)", "egath, w_cls 0.1", "no_gat, w_cls 0.1"),
    "knob",
    ("gcn", "gcn, unit scale", "egath GATv2", "egath, ζ 0.01", "egath GATv2, ζ 0.01"),
    "scarce",
)


TIER_NAMES = ("controls", "weights", "knob", "gcn_gatv2", "scarce")  # --fair-tiers picks some of FAIR_TIERS


def fair_cells(seeds: list[int], preset_cfg: Any, tiers: tuple[str, ...] = TIER_NAMES) -> list[tuple]:
    """(seed, level, num_train, name) of the fair grid: tier by tier (``FAIR_TIERS``), each tier seed-major."""
    n = preset_cfg.num_train
    cells: list[tuple] = []
    for tier_name, tier in zip(TIER_NAMES, FAIR_TIERS):
        if tier_name not in tiers:
            continue
        for seed in seeds:
            if tier == "knob":
                cells += [(seed, lvl, n, name) for lvl in KNOB_LEVELS[1:] for name in KNOB_CELLS]
            elif tier == "scarce":
                cells += [(seed, lvl, KNOB_SCARCE, name) for lvl in (0.0, 1.0) for name in KNOB_CELLS]
            else:
                cells += [(seed, 0.0, n, name) for name in tier]
    assert tiers != TIER_NAMES or {c[3] for c in cells} == set(FAIR_CELLS)
    return list(dict.fromkeys(cells))


def fair_key(row: dict[str, Any]) -> tuple:
    return (row["seed"], float(row["label_dependence"]), int(row["num_train"]), row["cell"])


def _fair_rows(rows: list[dict[str, Any]], bits: int, epochs: int) -> list[dict[str, Any]]:
    """The rows of one bit length and one number of hash-learning epochs."""
    return [r for r in rows if r["bits"] == bits and r.get("epochs") == epochs]


def run_fair_cell(
    preset: str, runs_root: str, dataset: str, device: str, bits: int, epochs: int, seed: int, level: float,
    num_train: int, name: str,
) -> dict[str, Any]:  # fmt: skip
    """One cell on the features of FEATURE_SEED at dependence ``level``: training seed ``seed``, cell ``name``."""
    import torch

    from egath_lite.pipeline.engine import hash_data
    from egath_lite.pipeline.features import ensure_features
    from egath_lite.pipeline.graph import ensure_graph
    from egath_lite.studies.graph_fair import train_cell

    torch.set_num_threads(1)
    variant, overrides = FAIR_CELLS[name]
    fcfg = bv._cfg(preset, runs_root, FEATURE_SEED, dataset, device, label_dependence=level)
    if level:  # its own run folder per level (the features of one level per run)
        fcfg = fcfg.replace(run_name=f"{fcfg.run_name}-dep{level:g}")
    features = ensure_features(fcfg, progress=False)
    graph_fields = {k: v for k, v in overrides.items() if k == "zeta"}
    gcfg = fcfg.replace(num_train=num_train, **graph_fields)
    data = hash_data(fcfg, features) if num_train == fcfg.num_train else scarce_data(gcfg, features)
    graph = ensure_graph(gcfg)["tensors"]
    tcfg = fcfg.replace(seed=seed, variant=variant, epochs=epochs, **overrides)
    row = train_cell(tcfg, bits, data, graph)
    return dict(seed=seed, label_dependence=level, num_train=num_train, cell=name, bits=bits, epochs=epochs, **row)


def fair_lookup(rows, seed, level, n, name):
    return next((r for r in rows if fair_key(r) == (seed, level, n, name)), None)


def _fair_stat(rows, seeds, level, n, name, key) -> str:
    vals = [r[key] for s in seeds if (r := fair_lookup(rows, s, level, n, name))]
    return _mean_std(vals)


def _fair_diff(rows, seeds, level, n, a, b, key) -> str:
    diffs = []
    for s in seeds:
        ra, rb = fair_lookup(rows, s, level, n, a), fair_lookup(rows, s, level, n, b)
        if ra and rb:
            diffs.append(ra[key] - rb[key])
    return _diff(diffs)


def fair_controls_table(rows, preset_cfg, seeds) -> str:
    """Every control cell at dependence 0: mAP, H's diagnostics before / after training, the loss shares."""
    n = preset_cfg.num_train
    heads = ["cell", "I→T", "T→I", "edges", "H rank 0→end", "max cos 0→end", "row norm 0", "cls share", "quant share"]
    lines = ["| " + " | ".join(heads) + " |", "| --- |" + " ---: |" * (len(heads) - 1)]
    for name in FAIR_CELLS:
        got = [r for s in seeds if (r := fair_lookup(rows, s, 0.0, n, name))]
        if not got:
            continue

        def m(k, fmt="{:.2f}", got=got):
            return fmt.format(statistics.mean(r[k] for r in got))

        edges = sorted({r["num_edges"] for r in got})
        lines.append(
            f"| {name} | {_fair_stat(rows, seeds, 0.0, n, name, 'i2t')} | {_fair_stat(rows, seeds, 0.0, n, name, 't2i')}"
            f" | {edges} | {m('h0_rank')} → {m('h_rank')} | {m('h0_max_cos', '{:.3f}')} → {m('h_max_cos', '{:.3f}')}"
            f" | {m('h0_norm')} | {m('share_cls', '{:.3f}')} | {m('share_quant', '{:.3f}')} |"
        )
    return "\n".join(lines)


def fair_pairs_table(rows, preset_cfg, seeds) -> str:
    """Paired differences (same training seed) of the named controls at dependence 0."""
    n = preset_cfg.num_train
    lines = ["| difference | I→T | T→I |", "| --- | ---: | ---: |"]
    for a, b in FAIR_PAIRS:
        cells = [_fair_diff(rows, seeds, 0.0, n, a, b, k) for k, _ in DIRECTIONS]
        lines.append(f"| {a} − {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def knob_table(rows, preset_cfg, seeds) -> str:
    """mAP per dependence level and training size of the unit-scale arms, and their paired differences."""
    columns = [(lvl, preset_cfg.num_train) for lvl in KNOB_LEVELS] + [(lvl, KNOB_SCARCE) for lvl in (0.0, 1.0)]
    heads = [f"dep {lvl:g}, {n:,} items" for lvl, n in columns]
    lines = ["| cell | dir | " + " | ".join(heads) + " |", "| --- | --- |" + " ---: |" * len(heads)]
    for name in KNOB_CELLS:
        for key, d in DIRECTIONS:
            cells = [_fair_stat(rows, seeds, lvl, n, name, key) for lvl, n in columns]
            lines.append(f"| {name} | {d} | " + " | ".join(cells) + " |")
    lines += ["", "| difference | dir | " + " | ".join(heads) + " |", "| --- | --- |" + " ---: |" * len(heads)]
    for a, b in (("egath, unit scale", "no_gat, unit scale"), ("gcn, unit scale", "no_gat, unit scale")):
        for key, d in DIRECTIONS:
            cells = [_fair_diff(rows, seeds, lvl, n, a, b, key) for lvl, n in columns]
            lines.append(f"| {a.split(',')[0]} − {b.split(',')[0]} (unit) | {d} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fair_report(rows, preset_cfg, seeds, bits) -> str:
    trained = [r for r in rows if "train_seconds" in r]
    timing = (
        f"{len(trained)} cells; median training time {statistics.median(r['train_seconds'] for r in trained):.0f} s"
        if trained
        else "no cells"
    )
    return "\n".join(
        [
            f"### Controls at {preset_cfg.num_train:,} items, {bits} bits, dependence 0 (mAP@all, seeds {seeds})",
            "",
            fair_controls_table(rows, preset_cfg, seeds),
            "",
            "Paired differences (same training seed; mean ± std, seeds > 0):",
            "",
            fair_pairs_table(rows, preset_cfg, seeds),
            "",
            f"### The label_dependence knob, unit scale, {bits} bits (mAP@all)",
            "",
            knob_table(rows, preset_cfg, seeds),
            "",
            timing,
        ]
    )


def run_fair(args: Any, preset_cfg: Any) -> int:
    results = Path(args.results or REPO / "benchmarks" / "results" / f"graph_fair_{args.preset}.jsonl")
    epochs = args.epochs or preset_cfg.epochs
    rows = _fair_rows(bv.load_rows(results), args.bits, epochs)
    if args.table_only:
        print(fair_report(rows, preset_cfg, args.seeds, args.bits))
        return 0
    t_start = time.perf_counter()
    done = {fair_key(r) for r in rows}
    cells = [c for c in fair_cells(args.seeds, preset_cfg, tuple(args.fair_tiers)) if c not in done]
    print(f"[graph-fair] {len(cells)} cells to train ({len(done)} rows in {results})", flush=True)
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = [
            pool.submit(run_fair_cell, args.preset, args.runs_root, args.dataset, args.device, args.bits, epochs, *c)
            for c in cells
        ]
        for k, fut in enumerate(as_completed(futures), 1):
            row = fut.result()
            bv.append_row(results, row)
            rows.append(row)
            print(
                f"[graph-fair] {k}/{len(cells)} seed {row['seed']} dep {row['label_dependence']:g} n "
                f"{row['num_train']} {row['cell']}: I→T {row['i2t']:.4f} T→I {row['t2i']:.4f} rank "
                f"{row['h0_rank']:.2f}→{row['h_rank']:.2f} cls share {row['share_cls']:.3f} "
                f"({row['train_seconds']:.0f} s) | {time.perf_counter() - t_start:.0f} s elapsed",
                flush=True,
            )
    print(fair_report(rows, preset_cfg, args.seeds, args.bits))
    return 0


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="default")
    p.add_argument("--dataset", default="toy_nuswide")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--grids", nargs="+", default=["ablation", "scarcity"], choices=GRIDS)
    p.add_argument("--bits", type=int, default=32)
    p.add_argument("--runs-root", default=str(REPO / "runs"))
    p.add_argument("--device", default="cpu", help="training device of the hash models")
    p.add_argument("--workers", type=int, default=1, help="parallel training processes (one torch thread each)")
    p.add_argument(
        "--results",
        default=None,
        help="JSON-lines results file (default: benchmarks/results/graph_study_<preset>.jsonl)",
    )
    p.add_argument("--fair-tiers", nargs="+", default=list(TIER_NAMES), choices=TIER_NAMES, help="fair grid: tiers")
    p.add_argument("--epochs", type=int, default=None, help="fair grid: hash-learning epochs (default: the preset's)")
    p.add_argument("--table-only", action="store_true", help="print the tables from the results file and exit")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from egath_lite import get_config

    preset_cfg = get_config(args.preset, dataset=args.dataset)
    if "fair" in args.grids:
        if len(args.grids) > 1:
            raise SystemExit("run the fair grid on its own: --grids fair")
        return run_fair(args, preset_cfg)
    if preset_cfg.num_train not in NUM_TRAINS:
        raise SystemExit(
            f"the {args.preset} preset trains on {preset_cfg.num_train} items; the sweep {NUM_TRAINS} must include it"
        )
    results = Path(args.results or REPO / "benchmarks" / "results" / f"graph_study_{args.preset}.jsonl")
    rows = [r for r in bv.load_rows(results) if r["bits"] == args.bits]
    if args.table_only:
        print(report(rows, preset_cfg, args.seeds, args.bits))
        return 0
    t_start = time.perf_counter()
    done = {cell_key(r) for r in rows}
    cells = [c for c in grid_cells(args.grids, args.seeds, preset_cfg) if c not in done]
    print(
        f"[graph-study] {platform.node()} | {os.cpu_count()} CPUs | load {os.getloadavg()[0]:.1f} | preset "
        f"{args.preset} | seeds {args.seeds} | grids {args.grids} | {args.bits} bits | workers {args.workers} | "
        f"{len(cells)} cells to train ({len(done)} rows in {results})",
        flush=True,
    )
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = [
            pool.submit(
                run_graph_cell, args.preset, args.runs_root, s, args.dataset, args.device, m, args.bits, z, d, n
            )
            for s, m, z, d, n in cells
        ]
        for k, fut in enumerate(as_completed(futures), 1):
            row = fut.result()
            bv.append_row(results, row)
            rows.append(row)
            took = "cached" if row["cache_hit"] else f"{row['train_seconds']:.0f} s"
            print(
                f"[graph-study] {k}/{len(cells)} seed {row['seed']} {row['method']:>6s} ζ {row['zeta']:g} drop "
                f"{row['gat_dropout']:g} n {row['num_train']:>4d}: I→T {row['i2t']:.4f} T→I {row['t2i']:.4f} "
                f"(val {row['val_map']:.4f}, epoch {row['best_epoch']}/{row['epochs_run']}, "
                f"{took}) | "
                f"{time.perf_counter() - t_start:.0f} s elapsed, load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    print(report(rows, preset_cfg, args.seeds, args.bits))
    print(f"[graph-study] done in {time.perf_counter() - t_start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
