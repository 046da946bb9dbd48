"""EGATH behind the comparison methods' interface (``egath_lite.core.methods``): an adapter, no second copy.

Model ``core.models.EGATH``, loss ``core.losses.egath_loss``, epoch ``core.train.egath_epoch`` (docs/paper_map.md
has the formulas). The pipeline trains EGATH through ``pipeline.engine.train_egath`` (its ablations are the
run config's ``variant``); this module lets a notebook or a test treat EGATH as one more entry of
``METHODS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from egath_lite.core.losses import LossConfig, egath_loss
from egath_lite.core.models import EGATH, EncoderConfig, GATConfig, HashConfig
from egath_lite.core.train import DiscreteCodes, egath_epoch

NAME = "egath"
SUPERVISED = True
TEXT_INPUT = "bow"
NEEDS_GRAPH = True


@dataclass
class Config:
    """EGATH's settings as the run config's defaults give them (``pipeline.config``, default preset)."""

    lr: float = 1e-3  # run config, default preset (docs/paper_map.md: the paper's 1e-4 is the paper preset's)
    batch_size: int = 64  # run config hash_batch_size
    weight_decay: float = 5e-4
    mu: float = 0.5  # discrete step weight (GCDH config.py mu)
    loss: LossConfig = field(default_factory=LossConfig)
    hash: HashConfig = field(default_factory=HashConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    gat: GATConfig = field(default_factory=GATConfig)


def build(image_dim: int, text_dim: int, num_labels: int, bits: int, cfg: Config, graph: dict | None = None) -> EGATH:
    """``core.models.EGATH`` on the run's label graph ``graph`` (label_emb (C, F), edge_index, edge_weight)."""
    if graph is None or graph["label_emb"].shape[0] != num_labels:
        raise ValueError("EGATH needs the run's label graph (graph=...) with one embedding per label")
    return EGATH(
        image_dim,
        text_dim,
        graph["label_emb"],
        graph["edge_index"],
        graph.get("edge_weight"),
        bits,
        cfg.hash,
        cfg.encoder,
        cfg.gat,
    )


def init_state(Y: torch.Tensor, bits: int, cfg: Config, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """GCDH's shared codes B (random ±1) and the networks' last outputs H_image, H_text (zeros)."""
    codes = DiscreteCodes.random(len(Y), bits, generator)
    return {"B": codes.B, "H_image": codes.H_image, "H_text": codes.H_text}


def optimizer(model: nn.Module, cfg: Config) -> torch.optim.Optimizer:
    """Adam, as ``pipeline.engine.train_egath``."""
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def loss(out: dict, pos: torch.Tensor, Y_b: torch.Tensor, state: dict, cfg: Config) -> dict[str, torch.Tensor]:
    """``core.losses.egath_loss`` against the shared codes of the batch's items."""
    return egath_loss(out, Y_b, state["B"][pos].to(Y_b.device), cfg.loss)


def epoch(model, loss_fn, batches, Y: torch.Tensor, state: dict, opt, cfg: Config) -> dict[str, float]:
    """``core.train.egath_epoch`` (continuous steps, then the discrete B step); updates ``state``."""
    codes = DiscreteCodes(state["B"], state["H_image"], state["H_text"])
    # egath_epoch hands the loss B already indexed by the batch: slice(None) selects all of its rows
    means = egath_epoch(
        model, lambda out, Y_b, B_b: loss_fn(out, slice(None), Y_b, {"B": B_b}, cfg), batches, Y, codes, opt, cfg.mu
    )
    state.update(B=codes.B, H_image=codes.H_image, H_text=codes.H_text)
    return means
