"""DCMH: Deep Cross-Modal Hashing (Jiang & Li, CVPR 2017), on CLIP image features and the bag of words.

Release read: jiangqy/DCMH-CVPR2017 (MATLAB/TensorFlow, the authors') through its PyTorch port
WendellGul/DCMH (``main.py``: ``train``, ``calc_neighbor``, ``calc_loss``; ``config.py``; ``models/txt_module.py``).

Method (F, G: the N × K network outputs of the training items, kept in buffers; B = sign(F + G))::

    S_ij = 1 if y_i · y_j > 0 else 0                      (calc_neighbor)
    Θ_ij = ½ F_i · G_j
    L_x = −Σ_ij (S_ij Θ_ij − log(1 + e^Θ_ij)) + γ ‖B_b − F_b‖² + η ‖Fᵀ 1‖²    (image batch b against all G)
    L_y = the same with F and G swapped                                   (text batch b against all F)
    each divided by (b · N); SGD, lr 10^−1.5 decayed linearly to 10^−6 over the epochs
    B ← sign(F + G) after each epoch

Departures from the release:

- the image network is one linear layer on frozen CLIP features (the release: CNN-F's fc8 on CNN-F features,
  CNN-F fine-tuned); the text network is the release's bag-of-words MLP (V → 8192 → K);
- one pass per epoch updates both networks (the release: a pass for the image network, then one for the text
  network); their losses share no parameter (F and G enter as buffers), so each step is the release's step,
  only the text network sees the epoch's newer F;
- batches are the epoch's permutation (the release draws a fresh random batch per iteration);
- log(1 + e^Θ) is computed as softplus (the same value, no overflow);
- the text balance term keeps its gradient: the release computes it from the detached buffer G, which makes
  it a constant there (``balance_y = sum(G.sum(0)²)`` after ``G_buffer[ind] = cur_g.data``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from egath_lite.core.methods._common import TwoNets, mlp, plain_epoch

NAME = "dcmh"
SUPERVISED = True
TEXT_INPUT = "bow"


@dataclass
class Config:
    """DCMH's hyperparameters (WendellGul/DCMH ``config.py`` unless said)."""

    lr: float = 10 ** (-1.5)  # config.py: lr = 10 ** (-1.5)
    lr_min: float = 1e-6  # main.py train: np.linspace(opt.lr, np.power(10, -6.), opt.max_epoch + 1)
    batch_size: int = 128  # config.py: batch_size
    gamma: float = 1.0  # config.py: gamma (quantisation weight)
    eta: float = 1.0  # config.py: eta (bit balance weight)
    text_hidden: int = 8192  # models/txt_module.py: LAYER1_NODE


class DCMHNets(TwoNets):
    """Image: Linear(D, K); text: Linear(V, 8192) → ReLU → Linear(8192, K); no tanh (the release's outputs)."""

    def __init__(self, image_dim: int, text_dim: int, bits: int, text_hidden: int):
        super().__init__()
        self.bits = bits
        self.image_net = nn.Linear(image_dim, bits)
        self.text_net = mlp([text_dim, text_hidden, bits])

    def image_code(self, x: torch.Tensor) -> torch.Tensor:
        return self.image_net(x)

    def text_code(self, x: torch.Tensor) -> torch.Tensor:
        return self.text_net(x)


def build(image_dim: int, text_dim: int, num_labels: int, bits: int, cfg: Config) -> DCMHNets:
    """The two networks for ``bits``-bit codes."""
    return DCMHNets(image_dim, text_dim, bits, cfg.text_hidden)


def init_state(Y: torch.Tensor, bits: int, cfg: Config, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """F, G ~ N(0, 1) (N, K) and B = sign(F + G), as main.py ``train``; Y (N, C) for the similarity S."""
    Fb = torch.randn(len(Y), bits, generator=generator)
    Gb = torch.randn(len(Y), bits, generator=generator)
    return {"F": Fb, "G": Gb, "B": _sign(Fb + Gb), "Y": Y.float().clone()}


def optimizer(model: nn.Module, cfg: Config) -> torch.optim.Optimizer:
    """Plain SGD at ``cfg.lr`` (main.py: ``SGD(img_model.parameters(), lr=lr)``, the same for text)."""
    return torch.optim.SGD(model.parameters(), lr=cfg.lr)


def start_epoch(model: nn.Module, opt: torch.optim.Optimizer, epoch: int, epochs: int, cfg: Config) -> None:
    """The release's linear decay: lr of epoch e = linspace(lr, lr_min, epochs + 1)[e]."""
    lr = float(np.linspace(cfg.lr, cfg.lr_min, epochs + 1)[epoch])
    for group in opt.param_groups:
        group["lr"] = lr


def loss(out: dict, pos: torch.Tensor, Y_b: torch.Tensor, state: dict, cfg: Config) -> dict[str, torch.Tensor]:
    """L_x + L_y of the batch (items ``pos`` among the N training items), each over b · N pairs."""
    f, g = out["h_image"], out["h_text"]
    device = f.device
    Fb, Gb = state["F"].to(device).clone(), state["G"].to(device).clone()
    Fb[pos], Gb[pos] = f.detach(), g.detach()  # the buffers hold the batch's newest outputs (main.py)
    S = (Y_b.float() @ state["Y"].to(device).t() > 0).float()  # (b, N)
    B = state["B"].to(device)[pos]
    n, b = len(Fb), len(pos)
    terms = {}
    for name, h, other, own in (("image", f, Gb, Fb), ("text", g, Fb, Gb)):
        theta = 0.5 * h @ other.t()
        logloss = -(S * theta - F.softplus(theta)).sum()
        quant = ((B - h) ** 2).sum()
        balance = ((h.sum(0) + own.sum(0) - own[pos].sum(0)) ** 2).sum()
        terms[f"logloss_{name}"] = logloss / (b * n)
        terms[f"quant_{name}"] = cfg.gamma * quant / (b * n)
        terms[f"balance_{name}"] = cfg.eta * balance / (b * n)
    terms["total"] = sum(terms.values())
    return terms


def epoch(model, loss_fn, batches, Y: torch.Tensor, state: dict, opt, cfg: Config) -> dict[str, float]:
    """One pass over the batches (buffers F, G updated after each step), then B ← sign(F + G)."""

    def keep(pos: torch.Tensor, out: dict) -> None:
        state["F"][pos] = out["h_image"].detach().float().cpu()
        state["G"][pos] = out["h_text"].detach().float().cpu()

    means = plain_epoch(model, loss_fn, batches, Y, state, opt, cfg, keep)
    state["B"] = _sign(state["F"] + state["G"])
    return means


def _sign(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x >= 0, 1.0, -1.0)


__all__ = ["NAME", "SUPERVISED", "TEXT_INPUT", "Config", "build", "init_state", "optimizer", "loss", "epoch"]
