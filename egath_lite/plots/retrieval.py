"""Figures of the evaluation stage: distance histograms, mAP bars, PR and top-K curves, a retrieval gallery."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

HIT, MISS = "#2a9d8f", "#e76f51"  # relevant / irrelevant, in every figure of this module
_STYLES = ["-o", "-s", "-^", "-D", "-v", "-P", "-X"]


def _grid(n_panels: int, width: float = 4.2, height: float = 3.4, max_cols: int = 3):
    cols = min(max_cols, n_panels)
    rows = int(np.ceil(n_panels / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n_panels:]:
        ax.set_visible(False)
    return fig, axes.flat[:n_panels]


def plot_distance_histograms(panels: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> Figure:
    """Per panel: share of relevant and of irrelevant query–item pairs at each Hamming distance.

    ``panels`` maps a title to ``(items, relevant)`` per-distance counts, (bits+1,) or
    per query (n_query, bits+1) as returned by ``metrics.hamming_histograms``.
    """
    if not panels:
        raise ValueError("no histograms to plot")
    fig, axes = _grid(len(panels))
    for ax, (title, (items, relevant)) in zip(axes, panels.items()):
        items, relevant = np.asarray(items), np.asarray(relevant)
        if items.ndim == 2:
            items, relevant = items.sum(axis=0), relevant.sum(axis=0)
        irrelevant = items - relevant
        d = np.arange(len(items))
        rel_share = relevant / max(relevant.sum(), 1)
        irr_share = irrelevant / max(irrelevant.sum(), 1)
        ax.bar(d - 0.2, rel_share, width=0.4, color=HIT, label=f"relevant ({relevant.sum():,} pairs)")
        ax.bar(d + 0.2, irr_share, width=0.4, color=MISS, label=f"irrelevant ({irrelevant.sum():,} pairs)")
        mean_rel = (d * relevant).sum() / max(relevant.sum(), 1)
        mean_irr = (d * irrelevant).sum() / max(irrelevant.sum(), 1)
        ax.axvline(mean_rel, color=HIT, ls="--", lw=1)
        ax.axvline(mean_irr, color=MISS, ls="--", lw=1)
        ax.set_title(f"{title}\nmean distance {mean_rel:.1f} vs {mean_irr:.1f}", fontsize=10)
        ax.set_xlabel("Hamming distance")
        ax.set_ylabel("share of pairs")
        ax.set_ylim(0, 1.35 * max(rel_share.max(), irr_share.max()))  # headroom for the legend
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def plot_map_bars(
    table: Mapping[str, Mapping[int | str, Mapping[str, float]]],
    directions: Sequence[tuple[str, str]] = (("i2t", "image → text"), ("t2i", "text → image")),
) -> Figure:
    """Grouped bars of mAP per method and bit length; ``table[method][bits] = {"i2t": .., "t2i": ..}``."""
    if not table:
        raise ValueError("empty mAP table")
    methods = list(table)
    bits = sorted({int(b) for by_bits in table.values() for b in by_bits})
    fig, axes = plt.subplots(1, len(directions), figsize=(5.2 * len(directions), 3.8), squeeze=False, sharey=True)
    width = 0.8 / len(methods)
    for ax, (key, name) in zip(axes.flat, directions):
        for m, method in enumerate(methods):
            values = [table[method].get(b, table[method].get(str(b), {})).get(key, np.nan) for b in bits]
            x = np.arange(len(bits)) + (m - (len(methods) - 1) / 2) * width
            bars = ax.bar(x, values, width=width, label=method)
            ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=1)
        ax.set_xticks(np.arange(len(bits)), [f"{b} bits" for b in bits])
        ax.set_title(f"mAP@all, {name}")
        ax.set_ylim(0, 1.18)  # headroom for the legend above the bars
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", ncol=len(methods))
    axes.flat[0].set_ylabel("mAP")
    fig.tight_layout()
    return fig


def plot_pr_curves(panels: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]]) -> Figure:
    """PR curves by Hamming radius; ``panels[title][method] = (precision, recall)``, each (bits+1,), index = radius."""
    if not panels:
        raise ValueError("no PR curves to plot")
    fig, axes = _grid(len(panels))
    for ax, (title, curves) in zip(axes, panels.items()):
        for style, (method, (precision, recall)) in zip(_STYLES * 3, curves.items()):
            precision, recall = np.asarray(precision, float), np.asarray(recall, float)
            shown = np.isfinite(precision)  # NaN: no query has any item within that radius
            ax.plot(recall[shown], precision[shown], style, ms=3, lw=1.2, label=method)
        ax.set_xlim(0, 1.02)
        _finish_curve_axis(ax, "recall", "precision", title)
    fig.tight_layout()
    return fig


def _finish_curve_axis(ax, xlabel: str, ylabel: str, title: str) -> None:
    """Labels, a [0, 1] precision axis, grid and legend shared by the PR and precision@K panels."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def plot_precision_at_k(panels: Mapping[str, Mapping[str, tuple[Sequence[int], np.ndarray]]]) -> Figure:
    """Top-K precision curves; ``panels[title][method] = (ks, precision)``."""
    if not panels:
        raise ValueError("no precision@K curves to plot")
    fig, axes = _grid(len(panels))
    for ax, (title, curves) in zip(axes, panels.items()):
        for style, (method, (ks, precision)) in zip(_STYLES * 3, curves.items()):
            ax.plot(ks, precision, style, ms=3, lw=1.2, label=method)
        _finish_curve_axis(ax, "K (number of retrieved items)", "precision@K", title)
    fig.tight_layout()
    return fig


def plot_retrieval_gallery(
    query_image: np.ndarray,
    query_image_labels: str,
    text_results: Sequence[tuple[str, bool, int]],
    query_text: str,
    query_text_labels: str,
    image_results: Sequence[tuple[np.ndarray, bool, int]],
) -> Figure:
    """Image → text (top texts listed, hits green) above text → image (top images framed green/red).

    ``text_results``: (text, is_relevant, hamming_distance) in rank order;
    ``image_results``: (image H×W×3, is_relevant, hamming_distance) in rank order.
    """
    n = len(image_results)
    if n == 0 or not text_results:
        raise ValueError("the gallery needs at least one retrieved text and one retrieved image")
    fig = plt.figure(figsize=(1.7 * (n + 1.6), 5.6))
    grid = fig.add_gridspec(2, n + 2, height_ratios=[1.05, 1])

    ax = fig.add_subplot(grid[0, 0])
    ax.imshow(query_image)
    ax.set_title("image query", fontsize=9)
    ax.set_xlabel(textwrap.fill(query_image_labels, 22), fontsize=7)
    ax.set_xticks([]), ax.set_yticks([])
    ax = fig.add_subplot(grid[0, 1:])
    ax.axis("off")
    ax.set_title("top texts (Hamming ranking, ties by index)", fontsize=9, loc="left")
    rows = len(text_results)
    for r, (text, hit, dist) in enumerate(text_results):
        mark = "✓" if hit else "✗"
        line = textwrap.shorten(f"{r + 1:>2}. [d={dist}] {mark} {text}", width=115, placeholder=" …")
        ax.text(
            0.0,
            1 - (r + 0.5) / rows,
            line,
            color=HIT if hit else MISS,
            fontsize=8,
            va="center",
            family="monospace",
            transform=ax.transAxes,
        )

    ax = fig.add_subplot(grid[1, :2])
    ax.axis("off")
    ax.text(0.02, 0.95, "text query:", fontsize=9, weight="bold", va="top", transform=ax.transAxes)
    ax.text(0.02, 0.78, textwrap.fill(query_text, 34), fontsize=8, va="top", family="monospace", transform=ax.transAxes)
    ax.text(
        0.02, 0.08, textwrap.fill("labels: " + query_text_labels, 34), fontsize=7, va="bottom", transform=ax.transAxes
    )
    for r, (image, hit, dist) in enumerate(image_results):
        ax = fig.add_subplot(grid[1, r + 2])
        ax.imshow(image)
        ax.set_xticks([]), ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_edgecolor(HIT if hit else MISS)
            spine.set_linewidth(4)
        ax.set_title(f"{r + 1}. d={dist} {'✓' if hit else '✗'}", fontsize=8, color=HIT if hit else MISS)
    fig.tight_layout()
    return fig
