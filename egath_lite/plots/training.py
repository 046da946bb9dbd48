"""Figures of notebooks 03 and 04: training histories, per-label AP, GAT attention, mAP by bits."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _plt():
    import matplotlib.pyplot as plt

    return plt


def _np(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def _selected_epoch(score: np.ndarray, selected: Mapping[Any, int] | None, name: Any) -> int:
    """The kept epoch counted from 1: ``selected[name]`` (a result's ``.best_epoch``), else the first best ``score``."""
    if selected is not None and name in selected:
        epoch = int(selected[name])
        if not 1 <= epoch <= len(score):
            raise ValueError(f"selected epoch {epoch} of {name!r} is outside 1..{len(score)} (epochs count from 1)")
        return epoch
    return int(np.argmax(score)) + 1


def plot_classifier_history(histories: Mapping[str, Mapping[str, Any]], selected: Mapping[str, int] | None = None):
    """Loss and validation mAP per epoch of label classifiers: {name: {"loss": (E,), "val_map": (E,)}}.

    Epochs count from 1. ``selected``: {name: kept epoch, counted from 1} (``Classifier.best_epoch``), circled;
    default: the first epoch of the highest validation mAP, the rule ``ensure_label_classifier`` keeps by.
    """
    from matplotlib.ticker import MaxNLocator

    plt = _plt()
    fig, (ax_l, ax_m) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, h in histories.items():
        loss, val = _np(h["loss"]), _np(h["val_map"])
        epochs = np.arange(1, len(loss) + 1)
        ax_l.plot(epochs, loss, marker="o", ms=3, label=name)
        (line,) = ax_m.plot(epochs, val, marker="o", ms=3, label=name)
        best = _selected_epoch(val, selected, name)
        ax_m.scatter([best], [val[best - 1]], s=80, facecolor="none", edgecolor=line.get_color(), zorder=3)
    ax_l.set(xlabel="epoch", ylabel="BCE (training)", title="classification loss")
    ax_m.set(xlabel="epoch", ylabel="mean AP (validation)", title="validation mAP (circle: selected epoch)")
    for ax in (ax_l, ax_m):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


def plot_label_ap(
    ap_by_method: Mapping[str, Any], label_names: Sequence[str], title: str = "per-label AP (query split)"
):
    """Grouped bars of per-label AP, one group per label, one bar per method; the legend shows the mean."""
    plt = _plt()
    names = list(ap_by_method)
    C = len(label_names)
    width = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * C + 2), 3.8))
    x = np.arange(C)
    for k, name in enumerate(names):
        ap = _np(ap_by_method[name]).astype(float)
        if ap.shape != (C,):
            raise ValueError(f"AP of {name!r} has shape {ap.shape}, expected ({C},) — one value per label")
        ax.bar(x + (k - (len(names) - 1) / 2) * width, ap, width, label=f"{name} (mAP {ap.mean():.3f})")
    ax.set_xticks(x, label_names, rotation=30, ha="right")
    ax.set(ylabel="average precision", ylim=(0, 1.02), title=title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def attention_matrix(edge_index: Any, alpha: Any, num_nodes: int) -> np.ndarray:
    """Dense attention (C, C): entry [i, j] = α_ij, how much target label i listens to source j (heads averaged)."""
    ei, a = _np(edge_index).astype(int), _np(alpha).astype(float)
    if a.ndim == 2:
        a = a.mean(1)
    M = np.zeros((num_nodes, num_nodes))
    np.add.at(M, (ei[1], ei[0]), a)
    return M


def plot_attention(edge_index: Any, alpha: Any, label_names: Sequence[str], title: str = "GAT attention"):
    """Attention α_ij of one GAT layer as a heat map (left) and drawn over the label graph (right)."""
    plt = _plt()
    C = len(label_names)
    M = attention_matrix(edge_index, alpha, C)
    fig, (ax_h, ax_g) = plt.subplots(1, 2, figsize=(11.5, 5.4), gridspec_kw={"width_ratios": [1, 1.1]})
    im = ax_h.imshow(M, cmap="viridis", vmin=0, vmax=1)
    ax_h.set_xticks(range(C), label_names, rotation=60, ha="right", fontsize=8)
    ax_h.set_yticks(range(C), label_names, fontsize=8)
    ax_h.set(xlabel="source j (speaks)", ylabel="target i (listens)", title=f"{title}: α_ij")
    fig.colorbar(im, ax=ax_h, fraction=0.046)
    # graph: labels on a circle, an arrow j → i per edge, width ∝ α_ij; node colour = self-attention α_ii
    angles = np.linspace(0, 2 * np.pi, C, endpoint=False) + np.pi / 2
    pos = np.stack([np.cos(angles), np.sin(angles)], 1)
    for i in range(C):
        for j in range(C):
            if i != j and M[i, j] > 0:
                ax_g.annotate(
                    "",
                    xy=pos[i] * 0.9,
                    xytext=pos[j] * 0.9,
                    arrowprops=dict(
                        arrowstyle="-|>",
                        lw=0.5 + 5 * M[i, j],
                        alpha=0.35 + 0.6 * M[i, j],
                        color="tab:blue",
                        shrinkA=12,
                        shrinkB=12,
                        connectionstyle="arc3,rad=0.12",
                    ),
                )
    sc = ax_g.scatter(
        pos[:, 0] * 0.9, pos[:, 1] * 0.9, s=700, c=np.diag(M), cmap="Oranges", vmin=0, vmax=1, edgecolors="k", zorder=3
    )
    for i, name in enumerate(label_names):
        ax_g.text(pos[i, 0] * 1.24, pos[i, 1] * 1.2, name, ha="center", va="center", fontsize=9)
    fig.colorbar(sc, ax=ax_g, fraction=0.046, label="self-attention α_ii")
    ax_g.set(xlim=(-1.5, 1.5), ylim=(-1.35, 1.35), aspect="equal", title="arrow j → i, width ∝ α_ij")
    ax_g.axis("off")
    fig.tight_layout()
    return fig


def plot_hash_history(histories: Mapping[int, Mapping[str, Any]], selected: Mapping[int, int] | None = None):
    """Per bit length: training loss terms (top) and validation mAP I→T / T→I (bottom); dashed: selected epoch.

    ``histories``: {bits: {"loss", "loss_<term>" for each term the loss returned (EGATH's: cosine, triplet,
    cls, quant; a custom ``loss_fn``'s own), "val_map_i2t", "val_map_t2i"}} (``Codes.history``). Epochs count
    from 1. ``selected``: {bits: kept epoch, counted from 1} (``Codes.best_epoch``); default: the first epoch
    of the best mean of I→T and T→I, the rule the training engine keeps by.
    """
    from matplotlib.ticker import MaxNLocator

    plt = _plt()
    bits_list = list(histories)
    fig, axes = plt.subplots(2, len(bits_list), figsize=(4.2 * len(bits_list), 6.2), squeeze=False)
    for col, bits in enumerate(bits_list):
        h = histories[bits]
        ax_l, ax_m = axes[0, col], axes[1, col]
        epochs = np.arange(1, len(_np(h["loss"])) + 1)
        ax_l.plot(epochs, _np(h["loss"]), color="k", lw=2, label="total")
        known = ("cosine", "triplet", "cls", "quant")
        others = sorted(k[len("loss_") :] for k in h if k.startswith("loss_") and k[len("loss_") :] not in known)
        for term in (*known, *others):
            if f"loss_{term}" in h:
                ax_l.plot(epochs, _np(h[f"loss_{term}"]), lw=1, label=term)
        ax_l.set(title=f"{bits} bits: loss", xlabel="epoch")
        ax_l.grid(alpha=0.3)
        ax_l.legend(fontsize=7)
        i2t, t2i = _np(h["val_map_i2t"]), _np(h["val_map_t2i"])
        ax_m.plot(epochs, i2t, marker="o", ms=3, label="I→T")
        ax_m.plot(epochs, t2i, marker="s", ms=3, label="T→I")
        best = _selected_epoch((i2t + t2i) / 2, selected, bits)
        for ax in (ax_l, ax_m):
            ax.axvline(best, ls="--", color="gray", lw=1, label="selected epoch" if ax is ax_m else None)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax_m.set(title=f"{bits} bits: validation mAP", xlabel="epoch")
        ax_m.grid(alpha=0.3)
        ax_m.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_map_by_bits(table: Mapping[str, Mapping[int, Mapping[str, float]]], title: str = "mAP@all on the query split"):
    """Grouped bars: {method: {bits: {"i2t", "t2i"}}} → one panel per direction; a method without bits is a line."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    hashed = {m: v for m, v in table.items() if v and all(isinstance(b, (int, np.integer)) for b in v)}
    bits = sorted({int(b) for v in hashed.values() for b in v})
    width = 0.8 / max(len(hashed), 1)
    for ax, direction, label in ((axes[0], "i2t", "image → text"), (axes[1], "t2i", "text → image")):
        x = np.arange(len(bits))
        for k, (method, by_bits) in enumerate(hashed.items()):
            vals = [by_bits.get(b, {}).get(direction, math.nan) for b in bits]
            ax.bar(x + (k - (len(hashed) - 1) / 2) * width, vals, width, label=method)
        for method, v in table.items():
            if method not in hashed and direction in v:
                ax.axhline(v[direction], ls="--", color="gray")
                ax.text(len(bits) - 0.5, v[direction], f" {method}", va="bottom", ha="right", fontsize=8, color="gray")
        ax.set_xticks(np.arange(len(bits)), [f"{b} bits" for b in bits])
        ax.set(title=f"{title}: {label}", ylim=(0, 1))
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("mAP@all")
    axes[0].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def plot_code_distribution(h_continuous: Any, codes: Any, title: str = "codes before and after sign"):
    """Histogram of the tanh outputs (n, bits) and the fraction of +1 per bit (balance) of the sign codes."""
    plt = _plt()
    h, B = _np(h_continuous).astype(float), _np(codes).astype(float)
    fig, (ax_h, ax_b) = plt.subplots(1, 2, figsize=(10, 3.4))
    ax_h.hist(h.ravel(), bins=60, color="tab:blue")
    ax_h.set(xlabel="h = tanh(W[f; σ(Ŝ)] + b)", ylabel="count", title=f"{title}: continuous outputs")
    frac = (B > 0).mean(0)
    ax_b.bar(np.arange(len(frac)), frac, color="tab:orange")
    ax_b.axhline(0.5, ls="--", color="k", lw=1)
    ax_b.set(xlabel="bit", ylabel="fraction of +1", ylim=(0, 1), title="bit balance (0.5 = each bit splits the data)")
    fig.tight_layout()
    return fig


def attention_edges(edge_index: Any, alpha: Any, cond_prob: Any) -> dict[str, np.ndarray]:
    """Per edge j → i of one GAT layer (self-loops included): α_ij next to what co-occurrence alone would give.

    Returns int (M,) ``target``, ``source``, bool ``self_loop`` and float (M,) ``alpha`` (heads averaged, as in
    ``attention_matrix``), ``cond_prob`` D_ij = P(j | i) (1 on a self-loop) and ``cond_prob_normalised``
    D̃_ij = D_ij / Σ_k D_ik over the same neighbourhood k ∈ N(i) ∪ {i}, which sums to 1 per target like α.
    """
    D = _np(cond_prob).astype(float).copy()
    np.fill_diagonal(D, 1.0)  # P(i | i)
    M = attention_matrix(edge_index, alpha, D.shape[0])
    on = M > 0
    target, source = np.nonzero(on)
    D_on = np.where(on, D, 0.0)
    D_norm = D_on / D_on.sum(1, keepdims=True).clip(min=1e-12)
    return {
        "target": target.astype(np.int64),
        "source": source.astype(np.int64),
        "self_loop": target == source,
        "alpha": M[target, source],
        "cond_prob": D[target, source],
        "cond_prob_normalised": D_norm[target, source],
    }


def plot_attention_vs_cond_prob(
    edge_index: Any, alpha: Any, cond_prob: Any, label_names: Sequence[str], title: str = "trained GAT"
):
    """Learned α_ij, the co-occurrence weights D̃_ij on the same edges, and α against D̃ per edge (y = x: α copies D̃)."""
    plt = _plt()
    C = len(label_names)
    e = attention_edges(edge_index, alpha, cond_prob)
    A, Dn = np.full((C, C), np.nan), np.full((C, C), np.nan)
    A[e["target"], e["source"]] = e["alpha"]
    Dn[e["target"], e["source"]] = e["cond_prob_normalised"]
    fig, (ax_a, ax_d, ax_s) = plt.subplots(1, 3, figsize=(15, 4.6))
    for ax, mat, name in ((ax_a, A, "attention α_ij"), (ax_d, Dn, "D̃_ij = D_ij / Σ_k D_ik")):
        im = ax.imshow(mat, cmap="viridis", vmin=0, vmax=1)
        ax.set_xticks(range(C), label_names, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(C), label_names, fontsize=8)
        ax.set(xlabel="source j", ylabel="target i", title=f"{title}: {name}")
        fig.colorbar(im, ax=ax, fraction=0.046)
    loop = e["self_loop"]
    ax_s.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="α = D̃")
    ax_s.scatter(e["cond_prob_normalised"][~loop], e["alpha"][~loop], s=24, label="edge j → i, i ≠ j")
    ax_s.scatter(e["cond_prob_normalised"][loop], e["alpha"][loop], s=30, marker="x", label="self-loop i → i")
    ax_s.set(xlabel="D̃_ij (co-occurrence, normalised per target)", ylabel="α_ij", xlim=(0, 1.02), ylim=(0, 1.02))
    ax_s.set_title("attention against co-occurrence")
    ax_s.grid(alpha=0.3)
    ax_s.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_scarcity_curve(curves: Mapping[str, Mapping[str, Sequence[float]]], title: str = "labelled training items"):
    """Mean AP against the number of labelled items: {name: {"sizes": (K,), "map_image": (K,), "map_text": (K,)}}."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, key, label in ((axes[0], "map_image", "image features"), (axes[1], "map_text", "text features")):
        for name, c in curves.items():
            ax.plot(_np(c["sizes"]), _np(c[key]), marker="o", label=name)
        ax.set_xscale("log")
        ax.set(xlabel="labelled training items (log scale)", title=f"{title}: {label}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean per-label AP, query split")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig
