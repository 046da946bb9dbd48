"""Notebook 06's work: every method at every code length and seed, scored the paper's way, and what holds.

``score_methods(cfg, methods, seeds, bits)`` trains (or reuses, through the codes stage) each method and returns
one row per (seed, method, bits) with I→T and T→I mAP@all, the training seconds per epoch, and the PR curves;
LSH and the continuous CLIP vectors ranked by cosine come as two more methods. ``paper_table`` lays the rows out
as the paper's Table (methods × bits, I→T then T→I, mean ± std over seeds); ``paired_differences`` gives EGATH
minus each method per seed; ``what_holds`` says in words which comparisons EGATH wins on this data, computed from
the rows. ``reported_tables`` reads the literature's numbers that ship with the package.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

from egath_lite.pipeline.config import Config

BASELINES = ("lsh", "clip_cosine")
DIRECTIONS = {
    "i2t": ("query_image_codes", "retrieval_text_codes"),
    "t2i": ("query_text_codes", "retrieval_image_codes"),
}


def seed_config(cfg: Config, seed: int) -> Config:
    """The run of ``seed``: ``cfg`` itself for its own seed, else the run ``<run_name>-s<seed>`` (own data, CLIP)."""
    return cfg if seed == cfg.seed else cfg.replace(seed=seed, run_name=f"{cfg.run_name}-s{seed}")


def score_methods(
    cfg: Config,
    methods: Sequence[str],
    seeds: Sequence[int],
    bits: Sequence[int],
    progress: bool = False,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Rows ``{seed, method, bits, i2t, t2i, seconds_per_epoch, pr}`` (``pr[direction] = (precision, recall)``)."""
    from egath_lite.metrics import mean_average_precision, pr_curve
    from egath_lite.pipeline.baselines import ensure_clip_baseline, lsh_cross_modal_codes
    from egath_lite.pipeline.codes import ensure_codes
    from egath_lite.pipeline.features import ensure_features

    rows = []
    for seed in seeds:
        scfg = seed_config(cfg, seed)
        features = ensure_features(scfg, progress=progress)
        clip = ensure_clip_baseline(scfg)
        for b in bits:
            sources = {m: ensure_codes(scfg.replace(method=m, variant="egath"), b, progress=progress) for m in methods}
            sources["lsh"] = lsh_cross_modal_codes(features, b, seed=seed)
            for method, c in sources.items():
                get = c.__getitem__ if isinstance(c, dict) else lambda name, c=c: getattr(c, name)  # LSH: a dict
                qL, rL = get("query_labels"), get("retrieval_labels")
                row: dict[str, Any] = {"seed": seed, "method": method, "bits": b, "pr": {}}
                for d, (q, r) in DIRECTIONS.items():
                    qB, rB = get(q), get(r)
                    row[d] = float(mean_average_precision(qB, rB, qL, rL, backend="numpy"))
                    row["pr"][d] = tuple(pr_curve(qB, rB, qL, rL))
                if method in methods:
                    row["seconds_per_epoch"] = float(c["meta"]["seconds_per_epoch"])
                    row["epochs_run"] = int(c["meta"]["epochs_run"])
                rows.append(row)
            rows.append({"seed": seed, "method": "clip_cosine", "bits": b, "i2t": clip["i2t"], "t2i": clip["t2i"]})
            log(
                f"seed {seed}, {b} bits: "
                + ", ".join(f"{r['method']} {_avg(r):.3f}" for r in rows[-len(sources) - 1 :])
            )
    return rows


def _avg(row: dict[str, Any]) -> float:
    return (row["i2t"] + row["t2i"]) / 2


def _values(rows, method, bits, key):
    return [r[key] for r in rows if r["method"] == method and r["bits"] == bits]


def mean_std(xs: Sequence[float]) -> str:
    """``0.612 ± 0.004`` (± only with two or more values)."""
    if not xs:
        return "–"
    return f"{statistics.mean(xs):.3f}" + (f" ± {statistics.stdev(xs):.3f}" if len(xs) > 1 else "")


def paper_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one row per method, I→T at each bit length then T→I (the paper's Table layout)."""
    bits = sorted({r["bits"] for r in rows})
    methods = list(dict.fromkeys(r["method"] for r in rows))
    head = "| method | " + " | ".join(f"I→T {b}" for b in bits) + " | " + " | ".join(f"T→I {b}" for b in bits) + " |"
    lines = [head, "|---" * (1 + 2 * len(bits)) + "|"]
    for m in methods:
        cells = [mean_std(_values(rows, m, b, d)) for d in ("i2t", "t2i") for b in bits]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_differences(rows: list[dict[str, Any]], reference: str = "egath") -> dict[tuple[str, int, str], list[float]]:
    """``{(method, bits, direction): [reference − method, one per seed both have]}``."""
    ref = {(r["seed"], r["bits"]): r for r in rows if r["method"] == reference}
    out: dict[tuple[str, int, str], list[float]] = {}
    for r in rows:
        if r["method"] != reference and (r["seed"], r["bits"]) in ref:
            for d in DIRECTIONS:
                out.setdefault((r["method"], r["bits"], d), []).append(ref[r["seed"], r["bits"]][d] - r[d])
    return out


def what_holds(rows: list[dict[str, Any]], reference: str = "egath") -> str:
    """One paragraph, computed from ``rows``: where ``reference`` has the best mean and where each method beats it."""
    diffs = paired_differences(rows, reference)
    trained = [m for m in dict.fromkeys(r["method"] for r in rows) if m not in (reference, *BASELINES)]
    cells = sorted({(b, d) for (_, b, d) in diffs})
    seeds = sorted({r["seed"] for r in rows})
    wins = [(b, d) for b, d in cells if all(statistics.mean(diffs[m, b, d]) > 0 for m in trained if (m, b, d) in diffs)]
    text = [
        f"On this data ({len(seeds)} seed(s), {len(cells)} bit-length × direction cells), {reference} has a higher mean "
        f"mAP than every other trained method ({', '.join(trained) or 'none'}) in {len(wins)} of {len(cells)} cells."
    ]
    for m in trained:
        lost = [f"{b} bits {d.upper().replace('2', '→')}" for b, d in cells if statistics.mean(diffs[m, b, d]) < 0]
        every = all(min(diffs[m, b, d]) > 0 for b, d in cells)
        if lost:
            text.append(f"{m} is ahead of {reference} at {', '.join(lost)}.")
        elif every:
            text.append(f"{reference} beats {m} in every cell and every seed.")
        else:
            text.append(f"{reference} beats {m} on average in every cell, though not in every seed.")
    clip = [(b, d) for b, d in cells if statistics.mean(diffs.get(("clip_cosine", b, d), [0.0])) < 0]
    text.append(
        f"The continuous CLIP vectors ranked by cosine (no hashing) are ahead of {reference} in {len(clip)} of "
        f"{len(cells)} cells; LSH is behind it in "
        f"{sum(statistics.mean(diffs[('lsh', b, d)]) > 0 for b, d in cells if ('lsh', b, d) in diffs)}."
    )
    if len(seeds) < 2:
        text.append("With one seed there is no spread: no difference here is shown to exceed seed-to-seed noise.")
    return " ".join(text)


def reported_tables() -> dict[str, Any]:
    """The literature's numbers shipped with the package: ``{"DCHMT": (note, rows)}`` (rows: dicts of the CSV)."""
    import csv

    from egath_lite.data.reference import reference_file

    path = reference_file("reported_mAP_DCHMT_table1.csv")
    lines = path.read_text().splitlines()
    note = lines[0].lstrip("# ").strip()
    return {"DCHMT": (note, list(csv.DictReader(lines[1:])))}
