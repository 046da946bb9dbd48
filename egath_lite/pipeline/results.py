"""What the stages hand back: typed results with named fields instead of payload dicts indexed by string.

``ensure_features``, ``ensure_graph``, ``ensure_label_classifier`` and ``ensure_codes`` return a
``Features``, ``Graph``, ``Classifier`` and ``Codes``: ``codes.query_image_codes``, ``codes.best_epoch``,
``graph.edge_index``. Each field is documented with its shape. Every result also reads like the artifact's
payload (``result["tensors"]``, ``result["meta"]``): the stage machinery, the tests and older code keep
working, and ``result.payload`` is the whole dict. ``training_split`` and ``graph_from_payload`` read a payload
(``Features.split`` and ``Graph.label_graph()`` call them); they live here, below the stages that import them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch

from egath_lite.core.label_graph import LabelGraph


def training_split(features: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Index tensors ``train`` (excluding the validation items: checked, never assumed), ``val``, ``query``, ``retrieval``."""
    t = features["tensors"]
    train, val = t["train_idx"].long(), t["val_idx"].long()
    if len(val) == 0:
        raise ValueError(
            "the validation split is empty; set val_fraction > 0 so the model can be selected without the query set"
        )
    if len(np.intersect1d(val.numpy(), t["query_idx"].numpy())):
        raise ValueError(f"validation items overlap the query set in {features.get('path')}; the split is broken")
    train = torch.from_numpy(np.setdiff1d(train.numpy(), val.numpy())).long()
    if len(train) == 0:
        raise ValueError("no training items left after removing the validation items")
    return {"train": train, "val": val, "query": t["query_idx"].long(), "retrieval": t["retrieval_idx"].long()}


def graph_from_payload(payload: Mapping[str, Any]) -> LabelGraph:
    """Rebuild a LabelGraph from a graph artifact payload (for plots and later stages)."""
    t, meta = payload["tensors"], payload["meta"]
    return LabelGraph(
        label_names=list(meta["label_names"]),
        counts=t["counts"].numpy(),
        label_counts=t["label_counts"].numpy(),
        cond_prob=t["cond_prob"].double().numpy(),
        adjacency=t["adjacency"].numpy(),
        edge_index=t["edge_index"],
        edge_weight=t["edge_weight"],
        zeta=float(meta["zeta"]),
        self_loops=bool(meta["self_loops"]),
        reweight=bool(meta["reweight"]),
        reweight_p=float(meta["reweight_p"]),
        num_items=int(meta["num_train_items"]),
    )


def state_from(payload: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The ``state.*`` tensors of a payload as a state dict (empty when the stage stores no model)."""
    return {k[len("state.") :]: v for k, v in payload["tensors"].items() if k.startswith("state.")}


class StageResult(Mapping):
    """A stage's artifact: where it lives, whether it was reused, its key; the fields of the subclasses."""

    def __init__(self, payload: Mapping[str, Any]):
        self.payload = dict(payload)

    # -- the payload, for the stage machinery and older code
    def __getitem__(self, name: str) -> Any:
        return self.payload[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.payload)

    def __len__(self) -> int:
        return len(self.payload)

    def __repr__(self) -> str:
        state = "reused" if self.cache_hit else "computed"
        return f"{type(self).__name__}({self.path!r}, {state})"

    # -- common fields
    @property
    def path(self) -> str:
        """The artifact's file."""
        return self.payload.get("path", "")

    @property
    def cache_hit(self) -> bool:
        """True when a valid artifact of this key was reused, False when it was computed now."""
        return bool(self.payload.get("cache_hit"))

    @property
    def key(self) -> str:
        """The artifact's 16-hex key (``Stage.explain`` says what it digests)."""
        return self.payload.get("key", "")

    @property
    def meta(self) -> dict[str, Any]:
        """The artifact's JSON record (times, names, settings)."""
        return self.payload.get("meta", {})

    @property
    def tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor of the artifact by name."""
        return self.payload.get("tensors", {})

    @property
    def state(self) -> dict[str, torch.Tensor]:
        """The stored model's state dict (the ``state.*`` tensors), empty when the stage stores no model."""
        return state_from(self.payload)

    def _t(self, name: str) -> torch.Tensor:
        return self.tensors[name]


class Features(StageResult):
    """Notebook 01: CLIP embeddings of every item, the bag of words, the labels and the split."""

    @property
    def image_emb(self) -> torch.Tensor:
        """float (N, D): L2-normalised CLIP image embeddings."""
        return self._t("image_emb")

    @property
    def text_emb(self) -> torch.Tensor:
        """float (N, D): L2-normalised CLIP text embeddings."""
        return self._t("text_emb")

    @property
    def bow(self) -> torch.Tensor:
        """uint8 (N, V): the bag of words over the training tags' vocabulary."""
        return self._t("bow")

    @property
    def labels(self) -> torch.Tensor:
        """float32 (N, C): multi-hot labels (0 or 1)."""
        return self._t("labels")

    @property
    def label_names(self) -> list[str]:
        """The C label names, in column order."""
        return list(self.meta.get("label_names", []))

    @property
    def split(self) -> dict[str, torch.Tensor]:
        """int64 indices ``train`` (without the validation items), ``val``, ``query``, ``retrieval``."""
        return training_split(self.payload)


class Graph(StageResult):
    """Notebook 02: the label graph of the training labels and the label embeddings (its node inputs)."""

    @property
    def counts(self) -> torch.Tensor:
        """int64 (C, C): co-occurrence counts C = YᵀY of the training labels."""
        return self._t("counts")

    @property
    def label_counts(self) -> torch.Tensor:
        """int64 (C,): N_i, the training items carrying label i."""
        return self._t("label_counts")

    @property
    def cond_prob(self) -> torch.Tensor:
        """float (C, C): D_ij = C_ij / N_i = P(label j | label i)."""
        return self._t("cond_prob")

    @property
    def adjacency(self) -> torch.Tensor:
        """float (C, C): A_ij = 1[D_ij ≥ ζ] with self-loops (re-weighted when configured)."""
        return self._t("adjacency")

    @property
    def edge_index(self) -> torch.Tensor:
        """int64 (2, M): PyG edges, A_ij > 0 ↦ (source j, target i)."""
        return self._t("edge_index")

    @property
    def edge_weight(self) -> torch.Tensor:
        """float (M,): the adjacency's value of each edge."""
        return self._t("edge_weight")

    @property
    def label_emb(self) -> torch.Tensor:
        """float (C, F): the label embeddings E (GloVe, CLIP prompts or the user's file)."""
        return self._t("label_emb")

    @property
    def label_names(self) -> list[str]:
        """The C label names, in node order."""
        return list(self.meta.get("label_names", []))

    @property
    def num_edges(self) -> int:
        """Directed edges between distinct labels."""
        return int(self.meta.get("num_edges", 0))

    @property
    def inputs(self) -> dict[str, torch.Tensor]:
        """``{label_emb, edge_index, edge_weight}``: what a model reads of the graph."""
        return {"label_emb": self.label_emb, "edge_index": self.edge_index, "edge_weight": self.edge_weight}

    def label_graph(self) -> LabelGraph:
        """The artifact as a ``core.label_graph.LabelGraph`` (numpy arrays, edge list, properties)."""
        return graph_from_payload(self.payload)


class Classifier(StageResult):
    """Notebook 03: a label classifier on frozen CLIP features, its per-label AP on the query split, its history."""

    @property
    def kind(self) -> str:
        """``gat``, ``gcn`` or ``independent``."""
        return self.meta["kind"]

    @property
    def ap_image(self) -> torch.Tensor:
        """float (C,): per-label AP of the image features' scores on the query split (0 where ``ap_present`` is False)."""
        return self._t("ap_image")

    @property
    def ap_text(self) -> torch.Tensor:
        """float (C,): per-label AP of the text features' scores on the query split."""
        return self._t("ap_text")

    @property
    def ap_present(self) -> torch.Tensor:
        """bool (C,): the label has at least one query item (else it has no AP)."""
        return self.tensors.get("ap_present", torch.ones_like(self.ap_image, dtype=torch.bool))

    @property
    def map_image(self) -> float:
        """Mean AP over the labels present, image features."""
        return float(self.meta["map_image"])

    @property
    def map_text(self) -> float:
        """Mean AP over the labels present, text features."""
        return float(self.meta["map_text"])

    @property
    def history(self) -> dict[str, list[float]]:
        """Per epoch: ``loss`` (training BCE) and ``val_map`` (validation mean AP)."""
        return {"loss": self._t("history_loss").tolist(), "val_map": self._t("history_val_map").tolist()}

    @property
    def best_epoch(self) -> int:
        """The kept epoch, counted from 1 (the plots mark the same epoch)."""
        return int(self.meta["best_epoch"]) + 1

    @property
    def best_val_map(self) -> float:
        """Validation mean AP of the kept epoch."""
        return float(self.meta["best_val_map"])

    @property
    def label_names(self) -> list[str]:
        """The C label names."""
        return list(self.meta.get("label_names", []))


class Codes(StageResult):
    """Notebook 04: a trained EGATH (or ablation) at one code length and its query / retrieval codes."""

    @property
    def variant(self) -> str:
        """``egath`` or the ablation's name."""
        return self.meta["variant"]

    @property
    def bits(self) -> int:
        """The code length K."""
        return int(self.meta["bits"])

    @property
    def query_image_codes(self) -> torch.Tensor:
        """int8 (Q, K) in {−1, +1}: the query items' image codes."""
        return self._t("query_image_codes")

    @property
    def query_text_codes(self) -> torch.Tensor:
        """int8 (Q, K): the query items' text codes."""
        return self._t("query_text_codes")

    @property
    def retrieval_image_codes(self) -> torch.Tensor:
        """int8 (R, K): the retrieval items' image codes."""
        return self._t("retrieval_image_codes")

    @property
    def retrieval_text_codes(self) -> torch.Tensor:
        """int8 (R, K): the retrieval items' text codes."""
        return self._t("retrieval_text_codes")

    @property
    def query_labels(self) -> torch.Tensor:
        """uint8 (Q, C): the query items' labels."""
        return self._t("query_labels")

    @property
    def retrieval_labels(self) -> torch.Tensor:
        """uint8 (R, C): the retrieval items' labels."""
        return self._t("retrieval_labels")

    @property
    def history(self) -> dict[str, list[float]]:
        """Per epoch: ``loss``, each loss term ``loss_<term>``, ``val_map_i2t``, ``val_map_t2i``, ``lr``, times."""
        n = len("history_")
        return {k[n:]: v.tolist() for k, v in self.tensors.items() if k.startswith("history_")}

    @property
    def best_epoch(self) -> int:
        """The kept epoch (best validation mAP), counted from 1 (the plots mark the same epoch)."""
        return int(self.meta["best_epoch"]) + 1

    @property
    def val_map(self) -> float:
        """Validation mAP of the kept epoch (mean of I→T and T→I)."""
        return float(self.meta["val_map"])

    @property
    def train_seconds(self) -> float:
        """Wall time of the training."""
        return float(self.meta["train_seconds"])

    @property
    def seconds_per_epoch(self) -> float:
        """Median wall time of an epoch (training steps and the discrete step, without validation)."""
        return float(self.meta["seconds_per_epoch"])
