"""Figures of the label-graph stage: D heatmap, the graph with label names, edges vs ζ, the mod-256 pitfall."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def plot_conditional_probabilities(
    D: np.ndarray,
    label_names: Sequence[str],
    zeta: float | None = None,
    title: str | None = None,
    ax: plt.Axes | None = None,
) -> Figure:
    """Heatmap of D (C, C) with values; with ζ, cells that become edges (D_ij ≥ ζ, i ≠ j) are outlined."""
    D = np.asarray(D, dtype=float)
    fig, ax = _figure(ax, heatmap_size(len(label_names)))
    shown = np.ma.masked_where(np.eye(len(D), dtype=bool), D)  # the diagonal (=1) would swamp the scale
    _label_heatmap(fig, ax, shown, label_names, "P(column label | row label)", cmap="viridis", vmin=0, vmax=1)
    ax.set_xlabel("label j"), ax.set_ylabel("given label i")
    if len(D) <= 12:
        for i, j in np.ndindex(D.shape):
            if i != j:
                ax.text(
                    j,
                    i,
                    f"{D[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="black" if D[i, j] > 0.6 else "white",
                )
    if zeta is not None:
        lw = 1.8 if len(D) <= 24 else 0.8  # thin outlines keep 80 x 80 cells visible
        for i, j in zip(*np.nonzero(D >= zeta)):
            if i != j:
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=lw))
    ax.set_title(title or ("$D_{ij} = C_{ij} / N_i$" + (f"  (red: ≥ ζ = {zeta:g})" if zeta is not None else "")))
    fig.tight_layout()
    return fig


def plot_label_graph(
    adjacency: np.ndarray,
    label_names: Sequence[str],
    label_counts: Sequence[int] | None = None,
    cond_prob: np.ndarray | None = None,
    title: str | None = None,
    ax: plt.Axes | None = None,
) -> Figure:
    """The directed label graph drawn with names; an arrow j → i means node i receives from j (A_ij > 0).

    Nodes sit on a circle. Up to 16 labels the names are written on the nodes; beyond that
    (MIRFlickr's 24, MS-COCO's 80) they are written outside the circle, rotated along the
    radius, and node sizes, arrows and fonts shrink with C so the drawing stays readable.
    """
    import networkx as nx

    A = np.asarray(adjacency)
    C = len(label_names)
    if A.shape != (C, C):
        raise ValueError(f"adjacency has shape {A.shape} but there are {C} label names")
    side = float(np.clip(5.5 + C / 10, 6.5, 13.0))
    fig, ax = _figure(ax, (side, side))
    g = nx.DiGraph()
    g.add_nodes_from(range(C))
    for i, j in zip(*np.nonzero(A)):
        if i != j:
            g.add_edge(int(j), int(i), weight=float(cond_prob[i, j]) if cond_prob is not None else 1.0)
    pos = nx.circular_layout(g)
    big = C > 16
    base = 1700.0 if not big else max(60.0, 24_000.0 / C)  # node area shrinks with the circumference per node
    if label_counts is not None:
        counts = np.asarray(label_counts, dtype=float)
        sizes = 0.18 * base + 0.82 * base * counts / max(counts.max(), 1)
    else:
        sizes = 0.5 * base
    isolated = [n for n in g.nodes if g.degree(n) == 0]
    colours = ["lightgrey" if n in isolated else "#8ecae6" for n in g.nodes]
    nx.draw_networkx_nodes(
        g, pos, ax=ax, node_size=sizes, node_color=colours, edgecolors="#023047", linewidths=1.0 if not big else 0.5
    )
    scale = 1.0 if not big else max(0.25, 16 / C)
    widths = (
        [(0.5 + 4 * d["weight"]) * scale for _, _, d in g.edges(data=True)] if cond_prob is not None else 1.5 * scale
    )
    nx.draw_networkx_edges(
        g,
        pos,
        ax=ax,
        width=widths,
        arrowsize=max(6, 16 * scale),
        edge_color="#fb8500",
        connectionstyle="arc3,rad=0.12",
        node_size=sizes,
        arrowstyle="-|>",
        alpha=1.0 if not big else 0.7,
    )
    if not big:
        nx.draw_networkx_labels(g, pos, {i: n for i, n in enumerate(label_names)}, ax=ax, font_size=9)
    else:
        font = float(np.clip(11 - C / 12, 5.5, 9))
        for i, name in enumerate(label_names):
            x, y = pos[i]
            angle = np.degrees(np.arctan2(y, x))
            flip = 90 < angle % 360 < 270  # keep the text upright on the left half
            ax.text(
                1.08 * x,
                1.08 * y,
                name,
                fontsize=font,
                rotation=angle + (180 if flip else 0),
                rotation_mode="anchor",
                ha="right" if flip else "left",
                va="center",
            )
    ax.set_title(title or f"{g.number_of_edges()} directed edges (arrow j → i: i listens to j)")
    ax.axis("off")
    ax.set_aspect("equal")
    lim = 1.45 if big else 1.2
    ax.set_xlim(-lim, lim), ax.set_ylim(-lim, lim)
    fig.tight_layout()
    return fig


def plot_edges_vs_zeta(
    curves: Mapping[str, Sequence[int]],
    zetas: Sequence[float],
    zeta: float | None = None,
    num_labels: int | None = None,
    ax: plt.Axes | None = None,
    marks: Mapping[str, float] | None = None,
    log_x: bool = False,
) -> Figure:
    """Directed off-diagonal edge count against ζ, one line per graph; ``marks`` {name: ζ} draws labelled lines."""
    fig, ax = _figure(ax, (6.0, 3.8))
    for name, counts in curves.items():
        ax.step(zetas, counts, where="post", label=name, lw=1.8)
    if zeta is not None:
        ax.axvline(zeta, color="grey", ls="--", lw=1, label=f"ζ = {zeta:g}")
    for k, (name, z) in enumerate((marks or {}).items()):
        ax.axvline(z, color=f"C{k + 3}", ls=":", lw=1.4, label=f"{name}: ζ = {z:g}")
    if log_x:
        ax.set_xscale("log")
    if num_labels is not None:
        ax.axhline(num_labels * (num_labels - 1), color="lightgrey", lw=1)
        ax.text(min(zetas), num_labels * (num_labels - 1), " complete graph", va="bottom", fontsize=8, color="grey")
    ax.set_xlabel("threshold ζ")
    ax.set_ylabel("directed edges (no self-loops)")
    ax.set_title("How many edges survive the threshold")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_released_vs_true_counts(
    true_counts: np.ndarray, released: np.ndarray, label_names: Sequence[str] | None = None
) -> Figure:
    """Two panels over label pairs i < j: released vs recomputed counts, and released vs recomputed mod 256."""
    true = np.asarray(true_counts, dtype=np.int64)
    rel = np.asarray(released, dtype=np.int64)
    iu = np.triu_indices(len(true), k=1)  # the files are symmetric: one point per label pair
    x, y = true[iu], rel[iu]
    wrapped = x >= 256
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.0))
    top = max(x.max(), 256) * 1.5
    ax1.plot([1, top], [1, top], color="grey", lw=1, ls="--", label="y = x (what a count should be)")
    ax1.axhline(255, color="lightgrey", lw=1)
    ax1.text(1.2, 255 * 1.15, "uint8 maximum 255", fontsize=8, color="grey")
    for ax, xs in ((ax1, x), (ax2, x % 256)):
        ax.scatter(
            xs[~wrapped], y[~wrapped], s=20, color="#219ebc", label=f"count < 256 ({(~wrapped).sum()} pairs)", zorder=3
        )
        ax.scatter(
            xs[wrapped],
            y[wrapped],
            s=20,
            color="#d62828",
            label=f"count ≥ 256, wrapped ({wrapped.sum()} pairs)",
            zorder=3,
        )
    if label_names is not None:
        k = int(np.argmax(x))
        i, j = iu[0][k], iu[1][k]
        ax1.annotate(
            f"{label_names[i]}–{label_names[j]}:\n{x[k]:,} stored as {y[k]}",
            (x[k], y[k]),
            xytext=(-150, 90),
            textcoords="offset points",
            fontsize=8,
            arrowprops=dict(arrowstyle="->"),
        )
    ax1.set_xscale("log"), ax1.set_yscale("log")
    ax1.set_xlim(1, top), ax1.set_ylim(1, top)
    ax1.set_xlabel("co-occurrences recomputed from all labels")
    ax1.set_ylabel("value in the released file")
    ax1.set_title("released vs recomputed")
    ax1.legend(loc="upper left", fontsize=8)
    ax2.plot([0, 255], [0, 255], color="grey", lw=1, ls="--", label="y = x mod 256")
    ax2.set_xlabel("recomputed count mod 256")
    ax2.set_ylabel("value in the released file")
    ax2.set_title("released = recomputed mod 256, exactly")
    ax2.legend(loc="upper left", fontsize=8)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_cond_prob_difference(
    D_a: np.ndarray, D_b: np.ndarray, label_names: Sequence[str], title: str, ax: plt.Axes | None = None
) -> Figure:
    """Heatmap of D_a − D_b (C, C) on a symmetric colour scale, values annotated."""
    diff = np.asarray(D_a, dtype=float) - np.asarray(D_b, dtype=float)
    fig, ax = _figure(ax, heatmap_size(len(label_names)))
    lim = max(np.abs(diff).max(), 1e-12)
    _label_heatmap(fig, ax, diff, label_names, cmap="RdBu_r", vmin=-lim, vmax=lim)
    if len(diff) <= 12:
        for i, j in np.ndindex(diff.shape):
            if i != j:
                ax.text(
                    j,
                    i,
                    f"{diff[i, j]:+.3f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if abs(diff[i, j]) > 0.6 * lim else "black",
                )
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_embedding_similarity(
    E: np.ndarray,
    label_names: Sequence[str],
    title: str = "cosine similarity of label embeddings",
    ax: plt.Axes | None = None,
) -> Figure:
    """Cosine-similarity heatmap of label embeddings E (C, F)."""
    E = np.asarray(E, dtype=float)
    En = E / np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-12)
    S = En @ En.T
    fig, ax = _figure(ax, heatmap_size(len(label_names)))
    _label_heatmap(fig, ax, S, label_names, cmap="magma", vmin=min(0.0, S.min()), vmax=1)
    if len(S) <= 12:
        for i, j in np.ndindex(S.shape):
            ax.text(
                j,
                i,
                f"{S[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=6,
                color="white" if S[i, j] < 0.6 else "black",
            )
    ax.set_title(title)
    fig.tight_layout()
    return fig


def heatmap_size(num_labels: int) -> tuple[float, float]:
    """Figure size (inches) of a C x C label heatmap: grows with C, capped so 80 labels fit a notebook page."""
    side = float(np.clip(0.5 * num_labels + 2.0, 4.5, 13.0))
    return side + 1.2, side


def tick_layout(num_labels: int, axis_inches: float) -> tuple[int, float]:
    """(every how many labels to name, font size) so tick labels do not overlap along an axis of that length."""
    slot = 72.0 * axis_inches / max(num_labels, 1)  # points per label
    font = float(np.clip(0.8 * slot, 5.0, 9.0))
    step = max(1, int(np.ceil(5.0 / (0.8 * slot)))) if 0.8 * slot < 5.0 else 1
    return step, font


def set_label_ticks(
    ax: plt.Axes,
    label_names: Sequence[str],
    axes: str = "xy",
    axis_inches: float | None = None,
    rotation: float | None = None,
) -> None:
    """Name the labels on the x and/or y axis: every label when they fit, else every k-th; smaller fonts for large C."""
    C = len(label_names)
    if axis_inches is None:
        w, h = ax.figure.get_size_inches()
        pos = ax.get_position()
        axis_inches = min(w * pos.width, h * pos.height)
    step, font = tick_layout(C, axis_inches)
    ticks = np.arange(0, C, step)
    shown = [label_names[k] for k in ticks]
    if "x" in axes:
        rot = rotation if rotation is not None else (60 if C <= 24 else 90)
        ax.set_xticks(ticks, shown, rotation=rot, ha="right" if rot not in (0, 90) else "center", fontsize=font)
    if "y" in axes:
        ax.set_yticks(ticks, shown, fontsize=font)


def _label_heatmap(
    fig: Figure,
    ax: plt.Axes,
    M: np.ndarray,
    label_names: Sequence[str],
    colorbar_label: str | None = None,
    **imshow: Any,
) -> None:
    """Draw a label × label matrix M (C, C) with a colour bar and the label names on both axes."""
    if np.shape(M) != (len(label_names), len(label_names)):  # np.shape keeps a masked array's mask
        raise ValueError(f"matrix has shape {np.shape(M)} but there are {len(label_names)} label names")
    im = ax.imshow(M, **imshow)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=colorbar_label)
    set_label_ticks(ax, label_names)


def _figure(ax: plt.Axes | None, size: tuple[float, float]) -> tuple[Figure, plt.Axes]:
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=size)
    return fig, ax


def plot_label_frequencies(
    frequencies: Mapping[str, np.ndarray], label_names: Sequence[str], ax: plt.Axes | None = None
) -> Figure:
    """Grouped bars: fraction of items carrying each label, one group member per label matrix (all of length C)."""
    C = len(label_names)
    bad = {name: np.shape(f) for name, f in frequencies.items() if np.shape(f) != (C,)}
    if bad:
        raise ValueError(
            f"every frequency vector must have one value per label ({C}); got {bad}. Compare sets with "
            f"the same labels (e.g. the NUS-WIDE reference only for toy_nuswide / nuswide_tc10)"
        )
    width_in = float(np.clip(0.28 * C * max(1, len(frequencies)) ** 0.5 + 2.5, 7.0, 18.0))
    fig, ax = _figure(ax, (width_in, 3.6 if C <= 24 else 4.2))
    width = 0.8 / max(len(frequencies), 1)
    x = np.arange(C)
    for k, (name, freq) in enumerate(frequencies.items()):
        ax.bar(x + (k - (len(frequencies) - 1) / 2) * width, freq, width, label=name)
    set_label_ticks(ax, label_names, "x", axis_inches=0.85 * width_in, rotation=45 if C <= 24 else 90)
    ax.set_xlim(-0.6, C - 0.4)
    ax.set_ylabel("fraction of items")
    ax.set_title("Label frequencies $N_i / n$")
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def plot_released_file(facts: Mapping[str, Any], title: str | None = None) -> Figure:
    """A released ``*_adj.mat`` on its own (``graph.released_file_facts``): per-label counts against the training
    split size and the dtype's maximum, and the conditional probabilities a graph built from it would use."""
    names, num = list(facts["label_names"]), np.asarray(facts["num"], dtype=float)
    C = len(names)
    side = heatmap_size(C)[1]
    fig, (ax1, ax2) = plt.subplots(
        1, 2, figsize=(float(np.clip(0.2 * C + 6, 8, 16)) + side, side), gridspec_kw={"width_ratios": [1.2, 1]}
    )
    x = np.arange(C)
    over = num > facts["benchmark_num_train"]
    ax1.bar(x[~over], num[~over], color="#219ebc", label="N_i ≤ training split")
    ax1.bar(x[over], num[over], color="#d62828", label="N_i > training split: not counted on it alone")
    ax1.axhline(
        facts["benchmark_num_train"],
        color="black",
        ls="--",
        lw=1,
        label=f"benchmark training split: {facts['benchmark_num_train']:,} items",
    )
    if facts["dtype_max"] is not None and facts["dtype_max"] < 2**31:
        ax1.axhline(
            facts["dtype_max"],
            color="grey",
            ls=":",
            lw=1.2,
            label=f"{facts['released_dtype']} maximum {facts['dtype_max']}: pair counts above it wrapped",
        )
    ax1.set_yscale("log")
    set_label_ticks(ax1, names, "x", axis_inches=0.8 * float(np.clip(0.2 * C + 6, 8, 16)), rotation=90)
    ax1.set_xlim(-0.6, C - 0.4)
    ax1.set_ylabel("per-label count N_i in the file (num)")
    ax1.legend(fontsize=7, loc="lower right")
    ax1.grid(alpha=0.3, axis="y")
    D = np.ma.masked_where(np.eye(C, dtype=bool), facts["cond_prob_released"])
    _label_heatmap(fig, ax2, D, names, "adj / num", cmap="viridis", vmin=0, vmax=1)
    ax2.set_title(f"D from the file: {facts['edges_released']} edges at ζ = {facts['zeta']:g}", fontsize=9)
    fig.suptitle(
        title
        or f"{facts['dataset']}: the released co-occurrence file ({facts['released_dtype']}, "
        f"{facts['pairs_that_may_have_wrapped']} of {facts['pairs']} pairs may have wrapped)"
    )
    fig.tight_layout()
    return fig
