"""DJSRH: Deep Joint-Semantics Reconstructing Hashing (Su, Zhong & Zhang, ICCV 2019), unsupervised.

Release read: zs-zhong/DJSRH (``train.py``: ``Session.train``; ``settings.py``, MIRFlickr block; ``models.py``:
``ImgNet``, ``TxtNet``).

Method, per batch of b pairs (F_I: image features, F_T: bag of words, both L2-normalised by rows)::

    S_I = 2 F_I F_Iᵀ − 1,   S_T = 2 F_T F_Tᵀ − 1
    S̃ = β S_I + (1 − β) S_T                     (joint semantics)
    S = μ [(1 − η) S̃ + η S̃ S̃ᵀ / b]             (neighbourhood-aggregated, scaled)
    h = tanh(α z), α = √(epoch + 1)              (set_alpha)
    B_I, B_T = h_I, h_T normalised by rows
    L = λ₁ ‖B_I B_Iᵀ − S‖² + ‖B_I B_Tᵀ − S‖² + λ₂ ‖B_T B_Tᵀ − S‖²   (each a mean over the b² entries)

Departures from the release:

- F_I are the run's frozen CLIP image vectors (the release: AlexNet fc7 of a frozen copy of the network) and
  the image network is one linear layer on them (the release fine-tunes AlexNet's fc6/fc7 and adds fc_encode);
- one SGD optimiser with two parameter groups (image, text learning rates) in place of two optimisers: the
  same update;
- a last batch of fewer than ``batch_size`` items is kept (the release drops it), and S̃S̃ᵀ is divided by that
  batch's size b (the release: by BATCH_SIZE, equal for its full batches).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from egath_lite.core.methods._common import TwoNets, plain_epoch

NAME = "djsrh"
SUPERVISED = False
TEXT_INPUT = "bow"


@dataclass
class Config:
    """DJSRH's hyperparameters (zs-zhong/DJSRH ``settings.py``; MIRFlickr's block where data sets differ)."""

    lr_image: float = 0.001  # settings.py MIRFlickr: LR_IMG
    lr_text: float = 0.01  # settings.py MIRFlickr: LR_TXT
    momentum: float = 0.9  # settings.py: MOMENTUM
    weight_decay: float = 5e-4  # settings.py: WEIGHT_DECAY
    batch_size: int = 32  # settings.py: BATCH_SIZE
    beta: float = 0.9  # settings.py MIRFlickr: BETA (image weight of the joint similarity)
    eta: float = 0.4  # settings.py: ETA
    mu: float = 1.5  # settings.py: MU
    lambda1: float = 0.1  # settings.py MIRFlickr: LAMBDA1 (image-image term)
    lambda2: float = 0.1  # settings.py MIRFlickr: LAMBDA2 (text-text term)
    text_hidden: int = 4096  # models.py TxtNet: fc1 = Linear(txt_feat_len, 4096)


class DJSRHNets(TwoNets):
    """Image: tanh(α · Linear(D, K)); text: tanh(α · Linear(4096, K)(ReLU(Linear(V, 4096)))); α per epoch."""

    def __init__(self, image_dim: int, text_dim: int, bits: int, text_hidden: int):
        super().__init__()
        self.bits = bits
        self.image_net = nn.Linear(image_dim, bits)
        self.text_fc1 = nn.Linear(text_dim, text_hidden)
        self.text_fc2 = nn.Linear(text_hidden, bits)
        self.register_buffer("alpha", torch.tensor(1.0))

    def image_code(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.alpha * self.image_net(x))

    def text_code(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.alpha * self.text_fc2(F.relu(self.text_fc1(x))))


def build(image_dim: int, text_dim: int, num_labels: int, bits: int, cfg: Config) -> DJSRHNets:
    """The two networks for ``bits``-bit codes (``num_labels`` unused: unsupervised)."""
    return DJSRHNets(image_dim, text_dim, bits, cfg.text_hidden)


def init_state(Y: torch.Tensor, bits: int, cfg: Config, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """No state across epochs."""
    return {}


def optimizer(model: DJSRHNets, cfg: Config) -> torch.optim.Optimizer:
    """SGD with momentum and weight decay; the image layer at ``lr_image``, the text layers at ``lr_text``."""
    text = list(model.text_fc1.parameters()) + list(model.text_fc2.parameters())
    return torch.optim.SGD(
        [{"params": model.image_net.parameters(), "lr": cfg.lr_image}, {"params": text, "lr": cfg.lr_text}],
        lr=cfg.lr_image,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
    )


def start_epoch(model: DJSRHNets, opt: torch.optim.Optimizer, epoch: int, epochs: int, cfg: Config) -> None:
    """α = √(epoch + 1) (models.py ``set_alpha``)."""
    model.alpha.fill_(math.sqrt(epoch + 1.0))


def joint_similarity(x_image: torch.Tensor, x_text: torch.Tensor, cfg: Config) -> torch.Tensor:
    """S (b, b) of the batch from its image features and bags of words (train.py)."""
    fi, ft = F.normalize(x_image.float()), F.normalize(x_text.float())
    S_I, S_T = fi @ fi.t() * 2 - 1, ft @ ft.t() * 2 - 1
    S_tilde = cfg.beta * S_I + (1 - cfg.beta) * S_T
    S = (1 - cfg.eta) * S_tilde + cfg.eta * S_tilde @ S_tilde / len(S_tilde)
    return S * cfg.mu


def loss(out: dict, pos: torch.Tensor, Y_b: torch.Tensor, state: dict, cfg: Config) -> dict[str, torch.Tensor]:
    """λ₁ L_II + L_IT + λ₂ L_TT (``Y_b`` unused)."""
    S = joint_similarity(out["x_image"], out["x_text"], cfg)
    B_I, B_T = F.normalize(out["h_image"]), F.normalize(out["h_text"])
    terms = {
        "image_image": F.mse_loss(B_I @ B_I.t(), S),
        "image_text": F.mse_loss(B_I @ B_T.t(), S),
        "text_text": F.mse_loss(B_T @ B_T.t(), S),
    }
    terms["total"] = cfg.lambda1 * terms["image_image"] + terms["image_text"] + cfg.lambda2 * terms["text_text"]
    return terms


def epoch(model, loss_fn, batches, Y: torch.Tensor, state: dict, opt, cfg: Config) -> dict[str, float]:
    """One pass of SGD steps over the batches."""
    return plain_epoch(model, loss_fn, batches, Y, state, opt, cfg)
