"""JDSH: Joint-modal Distribution-based Similarity Hashing (Liu et al., ACM MM 2020), unsupervised.

Release read: KaiserLew/JDSH (``JDSH.py``: ``train``, ``cal_similarity_matrix``, ``cal_loss``; ``config.py``,
MIRFlickr block; ``main.py``, whose command-line defaults override some of it; ``models.py``).

Method, per batch of b pairs (F_I: image features, F_T: bag of words, rows L2-normalised)::

    S_I = 2 F_I F_Iᵀ − 1,  S_T = 2 F_T F_Tᵀ − 1,  S_high = norm(S_I) norm(S_T)ᵀ
    S' = a S_I + b S_T + λ (S_high + S_highᵀ) / 2
    left = LOC_LEFT − ALPHA · SCALE_LEFT,  right = LOC_RIGHT + BETA · SCALE_RIGHT
    S'_ij ← (1 + L1 e^{−(S'_ij − MIN)}) S'_ij  where S'_ij < left     (distribution-based re-weighting)
    S'_ij ← (1 + L2 e^{S'_ij − MAX}) S'_ij     where S'_ij > right    (on the result of the line above)
    S = μ S'
    B_I, B_T = h_I, h_T normalised by rows (h = tanh(α z), α = √(epoch + 1))
    L = INTRA (‖B_I B_Iᵀ − S‖² + ‖B_T B_Tᵀ − S‖²) + ‖B_I B_Tᵀ − S‖² + ‖B_T B_Iᵀ − S‖² − mean_i ⟨B_I,i, B_T,i⟩
    (each ‖·‖² a mean over the b² entries)

Departures from the release:

- F_I are the run's frozen CLIP image vectors and the image network is one linear layer on them (the release:
  AlexNet fine-tuned, its fc7 output as F_I);
- the release's ``code_T = self.TxtNet(txt)`` takes TxtNet's whole output tuple as the code (a bug that
  ``F.normalize`` would reject); we use the tanh code, as for the image;
- one SGD optimiser with two parameter groups in place of two; a last short batch is kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from egath_lite.core.methods._common import TwoNets, plain_epoch
from egath_lite.core.methods.djsrh import DJSRHNets

NAME = "jdsh"
SUPERVISED = False
TEXT_INPUT = "bow"


@dataclass
class Config:
    """JDSH's hyperparameters (KaiserLew/JDSH ``config.py`` MIRFlickr block, unless said)."""

    a: float = 0.5  # config.py: alpha (image similarity weight; main.py --alpha default 0.5 too)
    b: float = 0.1  # config.py: beta (text similarity weight; main.py --beta default 0.1 too)
    lamb: float = 0.4  # config.py: lamb (high-order weight; main.py's --lamada sets another name)
    mu: float = 1.4  # main.py: --mu default 1.4 overrides config.py's 1.47
    intra: float = 0.1  # config.py: INTRA
    lr_image: float = 0.01  # config.py: LR_IMG
    lr_text: float = 0.01  # config.py: LR_TXT
    min_: float = -0.52  # config.py: MIN
    max_: float = 0.68  # config.py: MAX
    alpha_left: float = 2.0  # config.py: ALPHA
    loc_left: float = -0.49  # config.py: LOC_LEFT
    scale_left: float = 0.019  # config.py: SCALE_LEFT
    beta_right: float = 4.0  # config.py: BETA
    loc_right: float = -0.49  # config.py: LOC_RIGHT
    scale_right: float = 0.088  # config.py: SCALE_RIGHT
    l1: float = 0.1  # config.py: L1
    l2: float = 0.2  # config.py: L2
    batch_size: int = 32  # config.py: BATCH_SIZE
    momentum: float = 0.9  # config.py: MOMENTUM
    weight_decay: float = 5e-4  # config.py: WEIGHT_DECAY
    text_hidden: int = 4096  # models.py TxtNet: fc1 = Linear(txt_feat_len, 4096)


def build(image_dim: int, text_dim: int, num_labels: int, bits: int, cfg: Config) -> TwoNets:
    """The release's networks are DJSRH's (models.py): the same classes (``djsrh.DJSRHNets``)."""
    return DJSRHNets(image_dim, text_dim, bits, cfg.text_hidden)


def init_state(Y: torch.Tensor, bits: int, cfg: Config, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """No state across epochs."""
    return {}


def optimizer(model: nn.Module, cfg: Config) -> torch.optim.Optimizer:
    """SGD with momentum and weight decay; image layer at ``lr_image``, text layers at ``lr_text``."""
    text = list(model.text_fc1.parameters()) + list(model.text_fc2.parameters())
    return torch.optim.SGD(
        [{"params": model.image_net.parameters(), "lr": cfg.lr_image}, {"params": text, "lr": cfg.lr_text}],
        lr=cfg.lr_image,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
    )


def start_epoch(model: nn.Module, opt: torch.optim.Optimizer, epoch: int, epochs: int, cfg: Config) -> None:
    """α = √(epoch + 1) (models.py ``set_alpha``)."""
    model.alpha.fill_(math.sqrt(epoch + 1.0))


def similarity(x_image: torch.Tensor, x_text: torch.Tensor, cfg: Config) -> torch.Tensor:
    """S (b, b): the joint-modal similarity with its distribution-based re-weighting (``cal_similarity_matrix``)."""
    fi, ft = F.normalize(x_image.float()), F.normalize(x_text.float())
    S_I, S_T = fi @ fi.t() * 2 - 1, ft @ ft.t() * 2 - 1
    S_high = F.normalize(S_I) @ F.normalize(S_T).t()
    S = cfg.a * S_I + cfg.b * S_T + cfg.lamb * (S_high + S_high.t()) / 2
    left = cfg.loc_left - cfg.alpha_left * cfg.scale_left
    right = cfg.loc_right + cfg.beta_right * cfg.scale_right
    S = torch.where(S < left, (1 + cfg.l1 * torch.exp(-(S - cfg.min_))) * S, S)
    S = torch.where(S > right, (1 + cfg.l2 * torch.exp(S - cfg.max_)) * S, S)
    return S * cfg.mu


def loss(out: dict, pos: torch.Tensor, Y_b: torch.Tensor, state: dict, cfg: Config) -> dict[str, torch.Tensor]:
    """INTRA (L_II + L_TT) + L_IT + L_TI − mean ⟨B_I, B_T⟩ (``cal_loss``; ``Y_b`` unused)."""
    S = similarity(out["x_image"], out["x_text"], cfg)
    B_I, B_T = F.normalize(out["h_image"], dim=1), F.normalize(out["h_text"], dim=1)
    terms = {
        "image_image": F.mse_loss(B_I @ B_I.t(), S),
        "cross": F.mse_loss(B_I @ B_T.t(), S) + F.mse_loss(B_T @ B_I.t(), S) - (B_I * B_T).sum(dim=1).mean(),
        "text_text": F.mse_loss(B_T @ B_T.t(), S),
    }
    terms["total"] = cfg.intra * terms["image_image"] + terms["cross"] + cfg.intra * terms["text_text"]
    return terms


def epoch(model, loss_fn, batches, Y: torch.Tensor, state: dict, opt, cfg: Config) -> dict[str, float]:
    """One pass of SGD steps over the batches."""
    return plain_epoch(model, loss_fn, batches, Y, state, opt, cfg)
