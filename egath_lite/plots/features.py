"""Figures of the feature stage: CLIP's similarity matrix, tiny-CLIP training, nearest texts, embedding maps, timing."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def plot_similarity_matrix(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    texts: Sequence[str] | None = None,
    title: str | None = None,
    ax: plt.Axes | None = None,
) -> Figure:
    """Cosine similarities of B images (rows) and their B paired texts (columns); CLIP's targets are the diagonal."""
    img = _unit(image_emb)
    txt = _unit(text_emb)
    if img.shape != txt.shape:
        raise ValueError(f"paired embeddings must have equal shapes, got {img.shape} and {txt.shape}")
    S = img @ txt.T
    fig, ax = _figure(ax, (6.2, 5.4))
    lim = float(np.abs(S).max()) or 1.0
    im = ax.imshow(S, cmap="RdBu_r", vmin=-lim, vmax=lim)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="cosine similarity")
    for i in range(len(S)):  # the positive pairs the contrastive loss pulls up
        ax.add_patch(plt.Rectangle((i - 0.5, i - 0.5), 1, 1, fill=False, ec="black", lw=1.2))
    ax.set_xlabel("text j"), ax.set_ylabel("image i")
    if texts is not None and len(texts) <= 20:
        ax.set_xticks(
            range(len(texts)),
            [textwrap.shorten(t, 22, placeholder="…") for t in texts],
            rotation=70,
            ha="right",
            fontsize=7,
        )
    hit = float(np.mean(S.argmax(1) == np.arange(len(S))))
    ax.set_title(title or f"image–text cosine (boxes: true pairs; row argmax on the diagonal: {hit:.0%})")
    fig.tight_layout()
    return fig


def plot_training_loss(
    step_loss: Sequence[float],
    steps_per_epoch: int,
    batch_size: int | None = None,
    ax: plt.Axes | None = None,
) -> Figure:
    """Contrastive loss per step of the tiny CLIP, epochs marked; ``log B`` is the loss of guessing."""
    loss = np.asarray(step_loss, dtype=float)
    if loss.size == 0:
        raise ValueError("no training steps to plot (the tiny CLIP was not trained in this run)")
    fig, ax = _figure(ax, (6.5, 3.6))
    steps = np.arange(1, len(loss) + 1)
    ax.plot(steps, loss, lw=1, alpha=0.5, label="step")
    k = max(1, min(len(loss) // 8, steps_per_epoch))
    if len(loss) >= 2 * k and k > 1:
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1 :], smooth, lw=2, label=f"mean of {k} steps")
    for e in range(steps_per_epoch, len(loss), steps_per_epoch):
        ax.axvline(e + 0.5, color="grey", lw=0.8, ls=":")
    if batch_size:
        ax.axhline(
            np.log(batch_size), color="red", ls="--", lw=1, label=f"chance: log {batch_size} = {np.log(batch_size):.2f}"
        )
    ax.set_xlabel("training step (dotted: epoch boundaries)"), ax.set_ylabel("CLIP loss")
    ax.set_title("tiny CLIP: symmetric contrastive loss")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_nearest_texts(
    images: np.ndarray,
    texts: Sequence[str],
    label_names: Sequence[str],
    labels: np.ndarray,
    neighbours: Sequence[Sequence[int]],
    candidate_texts: Sequence[str],
    candidate_labels: np.ndarray,
) -> Figure:
    """A few query images with their tags and labels, and the texts nearest to each image (✓: shares a label)."""
    n = len(images)
    if not (n == len(texts) == len(labels) == len(neighbours)) or n == 0:
        raise ValueError("images, texts, labels and neighbours must be non-empty and of equal length")
    fig, axes = plt.subplots(1, n, figsize=(2.7 * n, 4.6), squeeze=False)
    for ax, img, text, lab, nn in zip(axes[0], images, texts, labels, neighbours):
        ax.imshow(img, interpolation="nearest")
        ax.set_xticks([]), ax.set_yticks([])
        names = ", ".join(name for name, y in zip(label_names, lab) if y)
        ax.set_title(textwrap.fill(f"labels: {names}", 30), fontsize=8)
        lines = [textwrap.fill(f"tags: {text}", 34), "nearest texts:"]
        for j in nn:
            mark = "✓" if np.dot(candidate_labels[j], lab) > 0 else "✗"
            lines.append(textwrap.fill(f"{mark} {textwrap.shorten(candidate_texts[j], 60, placeholder='…')}", 34))
        ax.text(0, -0.04, "\n".join(lines), transform=ax.transAxes, va="top", fontsize=7, family="monospace")
    fig.subplots_adjust(bottom=0.42, top=0.9, wspace=0.15)
    return fig


def plot_embedding_map(
    emb: np.ndarray,
    labels: np.ndarray,
    label_names: Sequence[str],
    method: str = "pca",
    seed: int = 0,
    title: str | None = None,
    ax: plt.Axes | None = None,
) -> Figure:
    """2-D PCA or t-SNE of embeddings (N, D), each point coloured by its rarest label (the most specific one)."""
    emb = np.asarray(emb, dtype=np.float64)
    labels = np.asarray(labels) > 0
    if emb.ndim != 2 or len(emb) != len(labels):
        raise ValueError(f"emb must be (N, D) with one label row per item; got {emb.shape} and {labels.shape}")
    if not labels.any(1).all():
        raise ValueError("every item needs at least one label to be coloured")
    if method == "pca":
        from sklearn.decomposition import PCA

        xy = PCA(n_components=2, random_state=seed).fit_transform(emb)
    elif method == "tsne":
        from sklearn.manifold import TSNE

        xy = TSNE(
            n_components=2, init="pca", perplexity=min(30.0, (len(emb) - 1) / 3), random_state=seed
        ).fit_transform(emb)
    else:
        raise ValueError(f"unknown method {method!r}; use 'pca' or 'tsne'")
    freq = labels.sum(0)
    rarest = np.where(labels, freq[None, :], np.inf).argmin(1)
    fig, ax = _figure(ax, (6.4, 5.2))
    cmap = plt.get_cmap("tab10" if len(label_names) <= 10 else "tab20")
    for c, name in enumerate(label_names):
        m = rarest == c
        if m.any():
            ax.scatter(xy[m, 0], xy[m, 1], s=9, alpha=0.7, color=cmap(c % cmap.N), label=f"{name} ({m.sum()})")
    ax.set_xticks([]), ax.set_yticks([])
    ax.set_title(title or f"{method.upper()} of embeddings, coloured by each item's rarest label")
    ax.legend(fontsize=7, markerscale=1.8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig


def plot_map_comparison(
    results: Mapping[str, Mapping[str, float]], prior: float | None = None, ax: plt.Axes | None = None
) -> Figure:
    """Grouped bars of mAP per model (outer keys) and direction (inner keys, e.g. I→T, T→I); optional label prior."""
    models = list(results)
    if not models:
        raise ValueError("no results to plot")
    directions = list(results[models[0]])
    fig, ax = _figure(ax, (5.6, 3.6))
    width = 0.8 / len(models)
    x = np.arange(len(directions))
    for k, model in enumerate(models):
        vals = [results[model][d] for d in directions]
        bars = ax.bar(x + (k - (len(models) - 1) / 2) * width, vals, width, label=model)
        ax.bar_label(bars, fmt="%.3f", fontsize=8)
    if prior is not None:
        ax.axhline(prior, color="grey", ls="--", lw=1, label=f"random ranking ≈ {prior:.3f}")
    ax.set_xticks(x, directions)
    ax.set_ylim(0, 1)
    ax.set_ylabel("mAP@all (cosine ranking)")
    ax.set_title("cross-modal retrieval with continuous CLIP embeddings")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def plot_timing(
    seconds: Mapping[str, float], items: Mapping[str, int] | None = None, ax: plt.Axes | None = None
) -> Figure:
    """Horizontal bars of wall-clock seconds per step; with ``items``, the rate (items/s) is written beside each bar."""
    if not seconds:
        raise ValueError("no timings to plot")
    names = list(seconds)
    vals = [float(seconds[n]) for n in names]
    fig, ax = _figure(ax, (6.0, 0.55 * len(names) + 1.4))
    bars = ax.barh(names, vals, color="#8ecae6")
    labels = []
    for n, v in zip(names, vals):
        rate = f"  ({items[n] / v:,.0f} items/s)" if items and n in items and v > 0 else ""
        labels.append(f"{v:.2f} s{rate}")
    ax.bar_label(bars, labels, fontsize=8, padding=3)
    ax.invert_yaxis()
    ax.set_xlim(0, max(vals) * 1.6 if max(vals) > 0 else 1)
    ax.set_xlabel("seconds on this machine")
    ax.set_title("where the time goes")
    fig.tight_layout()
    return fig


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _figure(ax: plt.Axes | None, size: tuple[float, float]) -> tuple[Figure, plt.Axes]:
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=size)
    return fig, ax
