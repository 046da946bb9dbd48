"""GCDH: Graph Convolutional network Discrete Hashing (Bai et al., 2023), EGATH's direct parent.

Release read: Zjut-MultimediaPlus/GCDH (``main.py``: ``train``, ``calculate_C``; ``config.py``; ``models/gcn.py``:
``GraphConvolution``, ``gen_A``, ``gen_adj``, ``GCN``; ``models/img_model.py``; ``models/txt_model.py``: ``TXT``;
``triplet_loss.py``: ``TripletLoss``, ``_get_triplet_mask``).

Method (f_I: image features, f_T: text MLP output, h = tanh(W f + c); B, C, D: N × K; Y: N × C labels)::

    A = binarise(P ≥ t) · 0.25 / colsum + I,  Â = D^−½ Aᵀ D^−½     (gen_A on P_ij = n_ij / n_i, gen_adj)
    W_cls = GC₂(LeakyReLU(GC₁(E, Â)), Â)ᵀ ;  ŝ = [f_I ; f_T] W_cls      (GCN label classifier on GloVe E)
    triplet(h_a, h_t) = Σ_{a,p,n} max(0, w_ap,n · m_ap,n · (d(a, p) − d(a, n) + margin)),  d = 1 − cos
        m: p shares a label with a, n does not; w = g_ap − g_an with g_ij = (2^{y_i·y_j} − 1) / Z_i (DCG gains)
    L = α (tri(h_I, h_T) + tri(h_I, h_I) + tri(h_T, h_I) + tri(h_T, h_T)) + ‖B − h_I‖² + ‖B − h_T‖² + BCE(ŝ, y)
    after each epoch (all N items):
        R = (YᵀY + I)⁻¹ Yᵀ B;  B = sign(Y R + γ (C − D/γ) + μ (H_I + H_T))
        C = U Vᵀ of the SVD of B + D/γ;  D ← D + γ (B − C);  γ ← ρ γ
    Adam (lr 1e-4, weight decay 5e-4) decayed geometrically to 1e-6 over the epochs

Departures from the release:

- f_I are the run's frozen CLIP image vectors (the release: ResNet-50's pooled features, fine-tuned), so the
  classifier's width is D + hidden_dim instead of 2 · hidden_dim;
- the label graph is the run's (its co-occurrence probabilities ``cond_prob`` and GloVe or CLIP label
  embeddings from the graph stage); the threshold t is GCDH's own (0.3, config.py ``deta``);
- ``calculate_C`` takes U Vhᵀ of ``torch.linalg.svd`` (whose third output is already Vᵀ, so the release's
  ``U @ V.t()`` transposes it once more) and the same product when B is rank-deficient (the release's branch
  for that case calls ``torch.hstack`` with two arguments and would fail).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from egath_lite.core.methods._common import TwoNets, plain_epoch

NAME = "gcdh"
SUPERVISED = True
TEXT_INPUT = "bow"
NEEDS_GRAPH = True


@dataclass
class Config:
    """GCDH's hyperparameters (Zjut-MultimediaPlus/GCDH ``config.py`` unless said)."""

    lr: float = 1e-4  # config.py: lr
    lr_min: float = 1e-6  # main.py: gamma = (10 ** (-6) / opt.lr) ** (1 / opt.max_epoch)
    weight_decay: float = 5e-4  # main.py: Adam(..., weight_decay=0.0005)
    batch_size: int = 64  # config.py: batch_size
    hidden_dim: int = 2048  # config.py: hidden_dim (text feature width)
    text_hidden: tuple[int, int] = (8192, 4096)  # models/txt_model.py TXT: fully_c
    gcn_hidden: int = 1024  # models/gcn.py GCN: gc1 = GraphConvolution(300, 1024)
    leaky_slope: float = 0.2  # models/gcn.py GCN: LeakyReLU(0.2)
    adj_threshold: float = 0.3  # config.py: deta (models/gcn.py gen_A's t; 0.01 for NUS-WIDE)
    alpha: float = 10.0  # config.py: alpha (triplet weight)
    margin: float = 0.4  # config.py: margin
    mu: float = 0.5  # config.py: mu
    gamma: float = 0.01  # config.py: gamma (ADMM penalty, grows by rho each epoch)
    rho: float = 1.05  # config.py: rho


def gcdh_adjacency(cond_prob: torch.Tensor, threshold: float) -> torch.Tensor:
    """gen_A then gen_adj: binarise P ≥ t, re-weight columns to 0.25, add I, Â = D^−½ Aᵀ D^−½ (C, C)."""
    A = (cond_prob >= threshold).float()
    A = A * 0.25 / (A.sum(0, keepdim=True) + 1e-6) + torch.eye(len(A))
    d = A.sum(1).pow(-0.5)
    return (A @ torch.diag(d)).t() @ torch.diag(d)


class GraphConvolution(nn.Module):
    """X W then Â (X W), no bias; W ~ U(−1/√out, 1/√out) (models/gcn.py)."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out).uniform_(-1 / math.sqrt(n_out), 1 / math.sqrt(n_out)))

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        return adj @ (x @ self.weight)


class GCDHNets(TwoNets):
    """Image hash layer on CLIP vectors, text MLP + hash layer, and the GCN label classifier on both features."""

    def __init__(self, image_dim: int, text_dim: int, bits: int, label_emb: torch.Tensor, adj: torch.Tensor, cfg):
        super().__init__()
        self.bits = bits
        self.image_hash = nn.Linear(image_dim, bits)
        h1, h2 = cfg.text_hidden
        layers: list[nn.Module] = []
        for a, b in ((text_dim, h1), (h1, h2), (h2, cfg.hidden_dim)):
            layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU()]
        self.text_features = nn.Sequential(*layers)
        self.text_hash = nn.Linear(cfg.hidden_dim, bits)
        for m in [self.image_hash, self.text_hash, *self.text_features]:
            if isinstance(m, nn.Linear):  # kaiming_init of img_model.py / txt_model.py
                nn.init.kaiming_normal_(m.weight)
                nn.init.zeros_(m.bias)
        self.gc1 = GraphConvolution(label_emb.shape[1], cfg.gcn_hidden)
        self.gc2 = GraphConvolution(cfg.gcn_hidden, image_dim + cfg.hidden_dim)
        self.leaky_slope = cfg.leaky_slope
        self.register_buffer("label_emb", label_emb.detach().float().clone())
        self.register_buffer("adj", adj.detach().float().clone())

    def image_code(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.image_hash(x))

    def text_code(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.text_hash(self.text_features(x)))

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> dict[str, torch.Tensor]:
        f_t = self.text_features(text)
        W = self.gc2(F.leaky_relu(self.gc1(self.label_emb, self.adj), self.leaky_slope), self.adj)  # (C, D + d)
        return {
            "h_image": torch.tanh(self.image_hash(image)),
            "h_text": torch.tanh(self.text_hash(f_t)),
            "logits": torch.cat([image, f_t], dim=1) @ W.t(),
        }


def build(
    image_dim: int, text_dim: int, num_labels: int, bits: int, cfg: Config, graph: dict | None = None
) -> GCDHNets:
    """The networks on the run's label graph (``graph``: ``cond_prob`` (C, C) and ``label_emb`` (C, F))."""
    if graph is None or graph["label_emb"].shape[0] != num_labels:
        raise ValueError("GCDH needs the run's label graph (graph=...) with one embedding per label")
    return GCDHNets(
        image_dim, text_dim, bits, graph["label_emb"], gcdh_adjacency(graph["cond_prob"], cfg.adj_threshold), cfg
    )


def init_state(Y: torch.Tensor, bits: int, cfg: Config, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """B = sign(N(0, 1)), H_I, H_T ~ N(0, 1), C = B, D = 0, γ (main.py ``train``); Y for the discrete step."""
    n = len(Y)
    B = _sign(torch.randn(n, bits, generator=generator))
    return {
        "B": B,
        "H_image": torch.randn(n, bits, generator=generator),
        "H_text": torch.randn(n, bits, generator=generator),
        "C": B.clone(),
        "D": torch.zeros(n, bits),
        "gamma": torch.tensor(cfg.gamma, dtype=torch.float64),
        "Y": Y.float().clone(),
    }


def optimizer(model: nn.Module, cfg: Config) -> torch.optim.Optimizer:
    """Adam with weight decay (the release's three Adams over the image, text and GCN parameters, as one)."""
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def start_epoch(model: nn.Module, opt: torch.optim.Optimizer, epoch: int, epochs: int, cfg: Config) -> None:
    """lr of epoch e = lr · g^e, g = (lr_min / lr)^(1 / epochs) (main.py)."""
    g = (cfg.lr_min / cfg.lr) ** (1.0 / epochs)
    for group in opt.param_groups:
        group["lr"] = cfg.lr * g**epoch


def triplet(source: torch.Tensor, target: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """GCDH's DCG-weighted triplet loss, summed (triplet_loss.py ``TripletLoss(reduction='sum')``)."""
    cos = F.cosine_similarity(source.unsqueeze(1), target.unsqueeze(0), dim=-1)
    dist = torch.clamp(1 - cos, min=0)
    overlap = labels @ labels.t()
    sim = (overlap > 0).float()
    ideal = torch.sort(overlap, dim=1, descending=True)[0]
    discount = torch.log2(torch.arange(len(labels), dtype=overlap.dtype, device=overlap.device) + 2)
    Z = ((2**ideal - 1) / discount).sum(1, keepdim=True)
    gain = (2**overlap - 1) / Z
    weight = gain.unsqueeze(2) - gain.unsqueeze(1)
    mask = sim.unsqueeze(2) * (1 - sim.unsqueeze(1))
    return (weight * mask * (dist.unsqueeze(2) - dist.unsqueeze(1) + margin)).clamp(min=0).sum()


def loss(out: dict, pos: torch.Tensor, Y_b: torch.Tensor, state: dict, cfg: Config) -> dict[str, torch.Tensor]:
    """α · (four triplet terms) + quantisation (sums) + BCE of the GCN scores."""
    h_i, h_t, Y_b = out["h_image"], out["h_text"], Y_b.float()
    B = state["B"].to(h_i.device)[pos]
    tri = sum(triplet(a, t, Y_b, cfg.margin) for a, t in ((h_i, h_t), (h_i, h_i), (h_t, h_i), (h_t, h_t)))
    terms = {
        "triplet": cfg.alpha * tri,
        "quant": ((B - h_i) ** 2).sum() + ((B - h_t) ** 2).sum(),
        "cls": F.binary_cross_entropy_with_logits(out["logits"], Y_b),
    }
    terms["total"] = terms["triplet"] + terms["quant"] + terms["cls"]
    return terms


def discrete_step(state: dict[str, torch.Tensor], cfg: Config) -> None:
    """The release's once-per-epoch update of B, C, D and γ (in place)."""
    Y, B, gamma = state["Y"], state["B"], float(state["gamma"])
    R = torch.linalg.solve(Y.t() @ Y + torch.eye(Y.shape[1]), Y.t() @ B)
    B = _sign(Y @ R + gamma * (state["C"] - state["D"] / gamma) + cfg.mu * (state["H_image"] + state["H_text"]))
    U, _, Vh = torch.linalg.svd(B + state["D"] / gamma, full_matrices=False)
    C = U @ Vh
    state.update(B=B, C=C, D=state["D"] + gamma * (B - C), gamma=torch.tensor(gamma * cfg.rho, dtype=torch.float64))


def epoch(model, loss_fn, batches, Y: torch.Tensor, state: dict, opt, cfg: Config) -> dict[str, float]:
    """Adam steps over the batches (H_I, H_T kept per item), then ``discrete_step``."""

    def keep(pos: torch.Tensor, out: dict) -> None:
        state["H_image"][pos] = out["h_image"].detach().float().cpu()
        state["H_text"][pos] = out["h_text"].detach().float().cpu()

    means = plain_epoch(model, loss_fn, batches, Y, state, opt, cfg, keep)
    discrete_step(state, cfg)
    return means


def _sign(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x >= 0, 1.0, -1.0)
