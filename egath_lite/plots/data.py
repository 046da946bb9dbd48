"""Figures of the data stage: example images with their tags, label frequencies, co-occurrence vs NUS-WIDE."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import numpy as np


def example_grid(ds, indices: Sequence[int] | None = None, cols: int = 6, rows: int = 4, seed: int = 0, wrap: int = 22):
    """Grid of images with their labels (bold) and tags; indices None -> a seeded random sample. Returns the Figure."""
    import matplotlib.pyplot as plt

    if indices is None:
        indices = np.random.default_rng(seed).choice(len(ds), min(cols * rows, len(ds)), replace=False)
    indices = list(indices)
    rows = int(np.ceil(len(indices) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, i in zip(axes.flat, indices):
        ax.imshow(np.asarray(ds.get_image(int(i))), interpolation="nearest")
        ax.set_title(
            label_caption([n for n, y in zip(ds.label_names, ds.labels[i]) if y], wrap),
            fontsize=8,
            fontweight="bold",
            pad=3,
        )
        tags = textwrap.shorten(ds.texts[i], 4 * wrap, placeholder=" …") if ds.texts[i] else "(no tags)"
        tags = textwrap.fill(tags, wrap)
        ax.text(0.5, -0.03, tags, transform=ax.transAxes, ha="center", va="top", fontsize=7, color="0.25")
    fig.suptitle(f"{ds.name}: examples (bold: labels; grey: tags)", fontsize=11)
    fig.tight_layout()
    return fig


def label_caption(names: Sequence[str], wrap: int = 22, max_names: int = 4) -> str:
    """An item's label names for a gallery title: at most ``max_names`` (then "+k"), wrapped to two lines."""
    shown = list(names[:max_names]) + ([f"+{len(names) - max_names}"] if len(names) > max_names else [])
    lines = textwrap.wrap(", ".join(shown), wrap)
    if len(lines) > 2:
        lines = [lines[0], lines[1] + " …"]
    return "\n".join(lines) or "(no label)"


def label_frequencies(ds, reference: np.ndarray | None = None):
    """Bar chart of per-label frequency (fraction of items), beside a reference label matrix's when given."""
    import matplotlib.pyplot as plt

    from egath_lite.plots.graph import set_label_ticks

    freq = ds.labels.mean(axis=0)
    if reference is not None and np.shape(reference)[1:] != (ds.num_labels,):
        raise ValueError(
            f"reference labels have shape {np.shape(reference)}, expected (n, {ds.num_labels}) for {ds.name}'s labels"
        )
    x = np.arange(ds.num_labels)
    width_in = float(np.clip(0.3 * ds.num_labels + 2.5, 5.0, 18.0))
    fig, ax = plt.subplots(figsize=(width_in, 3.2 if ds.num_labels <= 24 else 4.0))
    width = 0.4 if reference is not None else 0.8
    ax.bar(x - (width / 2 if reference is not None else 0), freq, width, label=ds.name)
    if reference is not None:
        ax.bar(x + width / 2, np.asarray(reference).mean(axis=0), width, label="reference", color="0.6")
        ax.legend(fontsize=8)
    set_label_ticks(ax, ds.label_names, "x", axis_inches=0.85 * width_in, rotation=45 if ds.num_labels <= 24 else 90)
    ax.set_xlim(-0.6, ds.num_labels - 0.4)
    ax.set_ylabel("fraction of items")
    ax.set_title(f"{ds.name}: label frequencies ({len(ds):,} items)")
    fig.tight_layout()
    return fig


def conditional_probability(labels: np.ndarray) -> np.ndarray:
    """P(j | i) = C_ij / N_i from a multi-hot matrix (N, C); rows of unseen labels are 0."""
    labels = np.asarray(labels, dtype=np.float64)
    counts = labels.T @ labels
    n_i = np.diag(counts).copy()
    return np.divide(counts, n_i[:, None], out=np.zeros_like(counts), where=n_i[:, None] > 0)


def cooccurrence_comparison(
    labels: np.ndarray,
    reference: np.ndarray,
    label_names: Sequence[str],
    titles: tuple[str, str] = ("toy_nuswide", "NUS-WIDE TC-10"),
):
    """Heatmaps of P(j | i) for a label matrix and a reference, and their difference. Returns the Figure."""
    import matplotlib.pyplot as plt

    from egath_lite.plots.graph import set_label_ticks

    p, q = conditional_probability(labels), conditional_probability(reference)
    C = len(label_names)
    if p.shape != (C, C) or q.shape != (C, C):
        raise ValueError(
            f"labels ({p.shape[0]} columns) and reference ({q.shape[0]} columns) must both have the "
            f"{C} labels named; compare a set only with a reference of the same labels"
        )
    side = float(np.clip(0.3 * C + 2.0, 4.0, 6.0))  # three panels side by side on one page
    fig, axes = plt.subplots(1, 3, figsize=(3 * side + 1.5, side + 0.6))
    panels = (
        (axes[0], p, titles[0], "viridis", (0, 1)),
        (axes[1], q, titles[1], "viridis", (0, 1)),
        (axes[2], p - q, "difference", "coolwarm", (-0.15, 0.15)),
    )
    for ax, mat, title, cmap, lim in panels:
        im = ax.imshow(mat, cmap=cmap, vmin=lim[0], vmax=lim[1])
        set_label_ticks(ax, label_names, axis_inches=0.8 * side, rotation=90)
        ax.set_title(f"P(column | row): {title}", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig
