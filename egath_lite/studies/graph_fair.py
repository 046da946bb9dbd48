"""A fair test of the label graph (issue 20): diagnostics of H and of the loss, and one study cell.

- ``effective_rank(H)``: exp of the entropy of H's normalised singular values (Roy & Vetterli, 2007):
  C for C orthogonal rows of equal norm, 1 when every row points the same way.
- ``max_row_cosine(H)``: the largest cosine between two different rows (two labels' classifiers).
- ``loss_shares(history, weights)``: each weighted loss term's share of the total in the last epoch.
- ``unit_scale_decision(rows)``: the rule, fixed before the measurement was read, that decides whether
  ``classifier_scale``'s default becomes ``"unit"`` from the main job measured at both scales;
  ``python -m egath_lite.studies.graph_fair RESULTS.jsonl`` prints its table and the decision.
- ``train_cell``: one training of EGATH or an ablation on fixed features (one feature seed), with the
  training seed, variant and overrides of the cell; returns mAP@all on the query split and the
  diagnostics of H at initialisation and after training. ``benchmarks/bench_graph_study.py`` runs the grid.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F

LOSS_TERMS = ("cosine", "triplet", "cls", "quant")


def effective_rank(H: torch.Tensor) -> float:
    """exp(−Σ p log p) of p = σ / Σσ, the singular values σ of H (C, d); 0 for H = 0."""
    s = torch.linalg.svdvals(H.detach().double())
    if s.sum() <= 0:
        return 0.0
    p = s / s.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def max_row_cosine(H: torch.Tensor) -> float:
    """max over i ≠ j of cos(H_i, H_j), H (C, d) with C ≥ 2."""
    if H.shape[0] < 2:
        raise ValueError(f"max_row_cosine needs two rows or more, got {H.shape[0]}")
    Hn = F.normalize(H.detach().double(), dim=1)
    cos = Hn @ Hn.t()
    cos.fill_diagonal_(-2.0)
    return float(cos.max())


def row_norms(H: torch.Tensor) -> tuple[float, float]:
    """(mean, max) L2 norm of H's rows."""
    n = H.detach().double().norm(dim=1)
    return float(n.mean()), float(n.max())


def loss_shares(history: dict[str, Any], weights: dict[str, float]) -> dict[str, float]:
    """{term: w·L / Σ w·L} of the last epoch's mean terms (``history['loss_<term>']``); 0 where w = 0."""
    parts = {t: float(weights[f"w_{t}"]) * float(history[f"loss_{t}"][-1]) for t in LOSS_TERMS}
    total = sum(parts.values())
    if total <= 0:
        raise ValueError(f"the weighted loss terms sum to {total}; nothing to share")
    return {t: v / total for t, v in parts.items()}


def h_diagnostics(H: torch.Tensor, prefix: str) -> dict[str, float]:
    """``{prefix}rank``, ``{prefix}max_cos``, ``{prefix}norm`` (mean row norm) of H."""
    return {
        f"{prefix}rank": effective_rank(H),
        f"{prefix}max_cos": max_row_cosine(H),
        f"{prefix}norm": row_norms(H)[0],
    }


def classifier_rows(model: Any) -> torch.Tensor:
    """H (C, d) of an ``EGATH`` model in eval mode (no attention dropout), without gradients."""
    was = model.training
    model.eval()
    with torch.no_grad():
        H = model.label_classifiers()
    model.train(was)
    return H


def train_cell(cfg: Any, bits: int, data: Any, graph: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Train ``cfg.variant`` with ``cfg``'s settings and seed on ``data`` (``engine.HashData``) and ``graph`` tensors.

    Returns a row: mAP@all I→T and T→I of the query items against the retrieval items, the validation mAP,
    H's diagnostics at initialisation (``h0_*``, the model ``train_egath`` starts from) and at the kept
    epoch (``h_*``), each loss term's share of the total in the last epoch (``share_*``) and the timing.
    """
    from egath_lite.metrics import mean_average_precision
    from egath_lite.pipeline.codes import split_codes
    from egath_lite.pipeline.engine import build_egath, train_egath
    from egath_lite.pipeline.variants import loss_config
    from egath_lite.utils import cpu_threads, seed_everything

    with cpu_threads(1):  # the model train_egath starts from: it seeds, then builds (engine._train_egath)
        seed_everything(cfg.seed)
        model0 = build_egath(cfg, bits, data.image.shape[1], data.text.shape[1], graph)
        h0 = h_diagnostics(classifier_rows(model0), "h0_")
    t0 = time.perf_counter()
    model, hist = train_egath(cfg, bits, data, graph, None, progress=False)
    t = split_codes(model, data)
    qL, rL = t["query_labels"], t["retrieval_labels"]
    lc = loss_config(cfg)
    weights = {f"w_{term}": getattr(lc, f"w_{term}") for term in LOSS_TERMS}
    shares = loss_shares(hist, weights)
    return dict(
        i2t=float(mean_average_precision(t["query_image_codes"], t["retrieval_text_codes"], qL, rL, backend="numpy")),
        t2i=float(mean_average_precision(t["query_text_codes"], t["retrieval_image_codes"], qL, rL, backend="numpy")),
        val_map=float(hist["val_map"]),
        best_epoch=int(hist["best_epoch"]),
        epochs_run=int(hist["epochs_run"]),
        train_seconds=float(hist["train_seconds"]),
        cpu_seconds_per_epoch=float(hist["cpu_seconds_per_epoch"]),
        wall=time.perf_counter() - t0,
        **h0,
        **h_diagnostics(classifier_rows(model), "h_"),
        **{f"share_{k}": v for k, v in shares.items()},
        num_edges=int((graph["edge_index"][0] != graph["edge_index"][1]).sum()),
        train_items=len(data.split["train"]),
    )


def paired_difference(
    rows: list[dict[str, Any]], a: str, b: str, key: str, level: float, num_train: int
) -> list[float]:
    """Per training seed, ``a`` − ``b`` of ``key`` (``i2t`` / ``t2i``) among the study's rows (cells named ``cell``)."""
    by = {(r["seed"], r["cell"]): r for r in rows if r["label_dependence"] == level and r["num_train"] == num_train}
    return [by[(s, a)][key] - by[(s, b)][key] for s, c in sorted(by) if c == a and (s, b) in by]


def quote(rows: list[dict[str, Any]], a: str, b: str, key: str, level: float = 0.0, num_train: int = 5000) -> str:
    """How the notebooks and the README quote a paired difference: ``+0.012 ± 0.004`` (mean ± std over seeds)."""
    import statistics

    d = paired_difference(rows, a, b, key, level, num_train)
    if len(d) < 2:
        raise ValueError(f"{a} − {b} ({key}, dependence {level}, {num_train} items): {len(d)} seeds, need 2 or more")
    return f"{statistics.mean(d):+.3f} ± {statistics.stdev(d):.3f}"


SCALE_COLUMNS = tuple((bits, key) for bits in (16, 32, 64) for key in ("i2t", "t2i"))


def unit_scale_decision(rows: list[dict[str, Any]], seeds: tuple[int, ...] = (0, 1, 2)) -> dict[str, Any]:
    """Whether ``classifier_scale``'s default becomes ``"unit"``, by the rule fixed before the main job was measured.

    ``rows``: ``benchmarks/bench_variants.py --variants egath no_gat --classifier-scale released unit`` results
    (one row per ``method``, ``classifier_scale``, ``bits``, ``seed``; rows of other methods are ignored). For each
    variant and each of the 6 columns (16/32/64 bits × I→T/T→I) the paired difference unit − released is averaged
    over ``seeds`` (the measurement's training seeds; each must be there at both scales). The rule: switch when egath's mean over the 6 columns is > 0 and its
    column means are positive in ≥ 4 of the 6, and no_gat's mean over the columns is not below −0.005. Returns
    ``{"switch", "egath_mean", "egath_positive", "no_gat_mean", "columns": {variant: {(bits, key): mean}},
    "seeds"}``; ValueError when a column lacks one of ``seeds`` at either scale (an unfinished measurement).
    """
    import statistics

    by: dict[tuple, float] = {}
    for r in rows:
        if r.get("method") in ("egath", "no_gat") and "classifier_scale" in r:
            for key in ("i2t", "t2i"):
                by[(r["method"], r["classifier_scale"], int(r["bits"]), int(r["seed"]), key)] = float(r[key])
    columns: dict[str, dict[tuple[int, str], float]] = {}
    used: dict[str, dict[tuple[int, str], list[int]]] = {}
    for variant in ("egath", "no_gat"):
        columns[variant], used[variant] = {}, {}
        for bits, key in SCALE_COLUMNS:
            paired = sorted(
                s
                for (v, sc, b, s, k) in by
                if (v, sc, b, k) == (variant, "unit", bits, key) and (variant, "released", bits, s, key) in by
            )
            missing = sorted(set(seeds) - set(paired))
            if missing:
                raise ValueError(f"{variant}, {bits} bits, {key}: seed(s) {missing} not measured at both scales")
            diffs = [by[(variant, "unit", bits, s, key)] - by[(variant, "released", bits, s, key)] for s in seeds]
            columns[variant][(bits, key)] = statistics.mean(diffs)
            used[variant][(bits, key)] = sorted(seeds)
    egath_mean = statistics.mean(columns["egath"].values())
    egath_positive = sum(d > 0 for d in columns["egath"].values())
    no_gat_mean = statistics.mean(columns["no_gat"].values())
    return {
        "switch": egath_mean > 0 and egath_positive >= 4 and no_gat_mean >= -0.005,
        "egath_mean": egath_mean,
        "egath_positive": egath_positive,
        "no_gat_mean": no_gat_mean,
        "columns": columns,
        "seeds": used,
    }


PROG = "python -m egath_lite.studies.graph_fair"


def format_decision(d: dict[str, Any]) -> str:
    """The paired unit − released table of ``unit_scale_decision``'s result (a Markdown table) and the decision."""
    head = " | ".join(f"{'I→T' if k == 'i2t' else 'T→I'} {b}" for b, k in SCALE_COLUMNS)
    lines = [f"| unit − released | {head} | mean | columns > 0 |", "|---" * (len(SCALE_COLUMNS) + 3) + "|"]
    for variant in ("egath", "no_gat"):
        cols = d["columns"][variant]
        cells = " | ".join(f"{cols[c]:+.4f}" for c in SCALE_COLUMNS)
        mean = sum(cols.values()) / len(cols)
        lines.append(f"| {variant} | {cells} | {mean:+.4f} | {sum(v > 0 for v in cols.values())} of {len(cols)} |")
    seeds = sorted({s for ss in d["seeds"]["egath"].values() for s in ss})
    verdict = 'switch the default to "unit"' if d["switch"] else 'keep "released"'
    lines.append(
        f"\nseeds {seeds}; rule: egath mean > 0 ({d['egath_mean']:+.4f}) and > 0 in ≥ 4 of 6 columns "
        f"({d['egath_positive']}), no_gat mean ≥ −0.005 ({d['no_gat_mean']:+.4f}): {verdict}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: the decision on ``classifier_scale``'s default from a bench_variants results file (0; 2 and
    one line when the file is missing, unreadable or incomplete)."""
    import argparse
    import json
    from pathlib import Path

    from egath_lite.errors import EgathError, run_main

    p = argparse.ArgumentParser(prog=PROG, description=format_decision.__doc__)
    p.add_argument(
        "results", help="benchmarks/results/main_job_scale_default.jsonl (bench_variants --classifier-scale)"
    )
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="the training seeds (default: 0 1 2)")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error instead of one line")
    args = p.parse_args(argv)

    def body() -> int:
        rows = []
        for n, line in enumerate(Path(args.results).read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise EgathError(f"{args.results} line {n} is not JSON ({exc.msg}); rerun bench_variants") from None
        try:
            print(format_decision(unit_scale_decision(rows, tuple(args.seeds))))
        except ValueError as exc:
            raise EgathError(f"{args.results}: {exc}; wait until the measurement has every cell") from None
        return 0

    return run_main(PROG, body, debug=args.debug)


if __name__ == "__main__":
    import sys

    sys.exit(main())
