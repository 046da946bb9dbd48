"""The graph stage (notebook 02): the label graph of a run's training labels and its label embeddings.

The graph itself is the paper's and lives in ``egath_lite.core.label_graph`` (co-occurrence, D = C / N,
A = 1[D ≥ ζ], PyG edges); this module picks the rows (train ∪ validation, never a query row), the node
inputs (GloVe, CLIP prompts or the user's file) and caches the result as the ``graph`` artifact.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from egath_lite.core.label_embeddings import load_label_embedding_file
from egath_lite.core.label_graph import LabelGraph, build_label_graph, graph_training_rows
from egath_lite.data.reference import (
    MIRFLICKR25K_LABELS,
    load_glove,
    reference_label_names,
)
from egath_lite.pipeline.config import DATA_FIELDS, Config, is_manifest_path
from egath_lite.pipeline.results import Graph
from egath_lite.pipeline.stages import Stage, shape_problems

# Row order of the shipped reference files (*_glove.mat, *_adj.mat): egath_lite/data/reference_files/README.md.
MIR_LABELS = MIRFLICKR25K_LABELS


REFERENCE_DATASETS = ("toy_nuswide", "nuswide_tc10", "mirflickr25k", "mscoco")


LABEL_EMBEDDINGS = ("glove", "clip")


# --------------------------------------------------------------------------- label embeddings
def glove_embeddings(dataset: str, label_names: Sequence[str]) -> np.ndarray:
    """GloVe rows of the dataset's label names, float32 (C, 300), reordered to ``label_names``."""
    if dataset not in REFERENCE_DATASETS:
        raise ValueError(
            f"no GloVe vectors for dataset {dataset!r} (shipped for {list(REFERENCE_DATASETS)}); "
            f"use label_embedding='clip'"
        )
    emb = load_glove(dataset)
    file_order = reference_label_names(dataset)
    if len(file_order) != emb.shape[0] or sorted(file_order) != sorted(label_names):
        raise ValueError(
            f"label names {list(label_names)} do not match the {emb.shape[0]} GloVe rows of {dataset!r} "
            f"({file_order[:5]}…); check the dataset's label_names or use label_embedding='clip'"
        )
    row = {name: k for k, name in enumerate(file_order)}
    return np.ascontiguousarray(emb[[row[name] for name in label_names]], dtype=np.float32)


def label_embedding_source(cfg: Config) -> str:
    """Where the node inputs of cfg come from: 'file' (label_embedding_file), 'glove' or 'clip'.

    A manifest (own data) has no shipped GloVe vectors: with label_embedding='glove' it takes CLIP
    prompts of its label names (``label_embeddings`` prints a line saying so).
    """
    if cfg.label_embedding_file is not None:
        return "file"
    if cfg.label_embedding == "glove" and is_manifest_path(cfg.dataset):
        return "clip"
    return cfg.label_embedding


def label_embeddings(kind: str, dataset: str, label_names: Sequence[str], cfg: Config | None = None) -> np.ndarray:
    """Node inputs E (C, F) float32: GloVe (the paper's choice, F = 300), CLIP text embeddings of prompts, or
    'file': cfg.label_embedding_file. Pass ``label_embedding_source(cfg)`` as ``kind`` to follow the config."""
    if kind == "glove" and is_manifest_path(dataset):
        kind = "clip"  # own data: no GloVe file ships for its names
    if kind == "clip" and is_manifest_path(dataset):
        print(
            f"label embeddings: CLIP text embeddings of {cfg.label_prompt if cfg else 'a photo of a {}'!r} for the "
            f"{len(label_names)} label names of the manifest (no GloVe vectors ship for own data; "
            f"label_embedding_file=<.npy of shape ({len(label_names)}, F)> uses your own)"
        )
    if kind == "file":
        if cfg is None or cfg.label_embedding_file is None:
            raise ValueError("label embedding 'file' needs cfg with label_embedding_file set")
        E = load_label_embedding_file(cfg.label_embedding_file, label_names)
    elif kind == "glove":
        E = glove_embeddings(dataset, label_names)
    elif kind == "clip":
        if cfg is None:
            raise ValueError("label_embedding='clip' needs cfg (the CLIP model to encode the prompts with)")
        from egath_lite.pipeline.features import encode_label_prompts

        E = encode_label_prompts(cfg, list(label_names), template=cfg.label_prompt)
        E = E.detach().cpu().numpy() if isinstance(E, torch.Tensor) else np.asarray(E)
        E = E.astype(np.float32)
    else:
        raise ValueError(f"unknown label embedding {kind!r}; choose one of {LABEL_EMBEDDINGS + ('file',)}")
    if E.ndim != 2 or E.shape[0] != len(label_names):
        raise ValueError(f"{kind} label embeddings have shape {E.shape}, expected ({len(label_names)}, F)")
    if not np.isfinite(E).all():
        raise ValueError(f"{kind} label embeddings contain NaN or Inf")
    return E


# --------------------------------------------------------------------------- the stage
GRAPH_TENSORS = ("counts", "label_counts", "cond_prob", "adjacency", "edge_index", "edge_weight", "label_emb")


# What fixes the training labels (train ∪ validation rows: val_fraction does not change them) ...
_GRAPH_DATA_FIELDS = tuple(f for f in DATA_FIELDS if f != "val_fraction")


# ... and what fixes the graph and its node inputs.
_GRAPH_FIELDS = ("zeta", "self_loops", "reweight", "reweight_p", "label_embedding", "label_embedding_file")


_CLIP_FIELDS = ("clip_model", "label_prompt")


def graph_key_fields(cfg: Config) -> tuple[str, ...]:
    """Config fields the graph artifact depends on (CLIP fields only when the label embeddings come from CLIP)."""
    return _GRAPH_DATA_FIELDS + _GRAPH_FIELDS + (_CLIP_FIELDS if label_embedding_source(cfg) == "clip" else ())


def _graph_inputs(cfg: Config) -> dict[str, Any]:
    """data set fingerprint (+ weights for CLIP label embeddings, + digest of label_embedding_file)"""
    from egath_lite.data import dataset_fingerprint
    from egath_lite.data.fingerprint import file_digest

    out = {"data": dataset_fingerprint(cfg)}
    source = label_embedding_source(cfg)
    if source == "clip":
        from egath_lite.clip.weights import weights_fingerprint

        out["weights"] = weights_fingerprint(cfg)
    elif source == "file":
        from pathlib import Path

        path = Path(cfg.label_embedding_file)
        out["label_embedding_file"] = file_digest(path) if path.is_file() else "missing"
    return out


def _graph_upstream(cfg: Config) -> tuple:
    if label_embedding_source(cfg) == "clip" and cfg.clip_pretrained == "train":
        from egath_lite.pipeline.tiny_clip import TINY_CLIP_STAGE

        return (TINY_CLIP_STAGE,)
    return ()


def _graph_expect(cfg: Config, params: dict[str, Any], payload: dict[str, Any]) -> list[str]:
    t = payload["tensors"]
    c = len(payload["meta"].get("label_names", []))
    e = t["edge_index"].shape[1] if t["edge_index"].dim() == 2 else -1
    problems = shape_problems(
        t,
        {
            "counts": ((c, c), torch.int64),
            "label_counts": ((c,), torch.int64),
            "cond_prob": ((c, c), torch.float32),
            "adjacency": ((c, c), torch.float32),
            "edge_index": ((2, e), torch.int64),
            "edge_weight": ((e,), torch.float32),
            "label_emb": ((c, None), torch.float32),
        },
    )
    if not problems and e and (t["edge_index"].min() < 0 or t["edge_index"].max() >= c):
        problems.append(f"edge_index names nodes outside the {c} labels")
    return problems


GRAPH_STAGE = Stage(
    "graph",
    fields=graph_key_fields,
    version="2",
    upstream=_graph_upstream,
    extra=_graph_inputs,
    tensors=GRAPH_TENSORS,
    expect=_graph_expect,
    code=("egath_lite.core.label_graph", "egath_lite.core.label_embeddings"),
    description="label co-occurrence, conditional probabilities, adjacency at zeta, label embeddings",
)


def graph_from_labels(
    labels: np.ndarray,
    label_names: Sequence[str],
    query: np.ndarray,
    train: np.ndarray,
    val: np.ndarray | None,
    cfg: Config,
) -> LabelGraph:
    """The label graph of cfg from the dataset's labels (N, C) and its split; query rows never enter."""
    rows = graph_training_rows(query, train, val)
    return build_label_graph(
        np.asarray(labels)[rows], cfg.zeta, label_names, cfg.self_loops, cfg.reweight, cfg.reweight_p
    )


def _compute_graph(cfg: Config) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from egath_lite import data as data_mod  # imported here: the data stage is the heavier import

    if cfg.label_embedding not in LABEL_EMBEDDINGS:
        raise ValueError(f"unknown label_embedding {cfg.label_embedding!r}; choose one of {LABEL_EMBEDDINGS}")
    ds = data_mod.dataset_from_config(cfg)
    query, train, val, _retrieval = data_mod.split_from_config(ds, cfg)
    graph = graph_from_labels(ds.labels, ds.label_names, query, train, val, cfg)
    E = label_embeddings(label_embedding_source(cfg), cfg.dataset, graph.label_names, cfg)
    tensors = {
        "counts": torch.from_numpy(graph.counts),
        "label_counts": torch.from_numpy(graph.label_counts),
        "cond_prob": torch.from_numpy(graph.cond_prob.astype(np.float32)),
        "adjacency": torch.from_numpy(graph.adjacency),
        "edge_index": graph.edge_index,
        "edge_weight": graph.edge_weight,
        "label_emb": torch.from_numpy(np.asarray(E, dtype=np.float32)),
    }
    meta = {
        "label_names": graph.label_names,
        "zeta": graph.zeta,
        "label_embedding": cfg.label_embedding,
        "label_embedding_source": label_embedding_source(cfg),
        "self_loops": graph.self_loops,
        "reweight": graph.reweight,
        "reweight_p": graph.reweight_p,
        "num_train_items": graph.num_items,
        "num_edges": graph.num_edges,
        "message_passing": "edge_index[0] = source j, edge_index[1] = target i for A[i, j] > 0 (node i receives from j)",
    }
    return tensors, meta


def ensure_graph(cfg: Config, force: bool = False) -> Graph:
    """The graph artifact of ``cfg``: reused when valid, else built from the dataset's training labels.

    Rows: the split's whole training part, train ∪ validation (the paper's training set; the
    validation items are training items set aside for early stopping), never a query row. So
    ``val_fraction`` does not change the graph and is not part of its key. Tensors: counts
    (C, C) int64, label_counts (C,) int64, cond_prob (C, C) float32, adjacency (C, C) float32,
    edge_index (2, E) int64 (source → target), edge_weight (E,) float32, label_emb (C, F) float32.
    """
    return Graph(GRAPH_STAGE.run(cfg, lambda: _compute_graph(cfg), force=force))
