"""DCHMT: Differentiable Cross-modal Hashing via Multimodal Transformers (Tu, Mao, Guo, Zhang; ACM MM 2022).

Released code: kalenforn/DCHMT (``model/hash_model.py``: ``HashLayer``, ``weights_init_kaiming``;
``train/hash_train.py``: ``similarity_loss``, ``our_loss``; ``utils/get_args.py``; ``utils/utils.py``:
``calc_neighbor``, ``euclidean_similarity``), read in the copies the CLIP-hashing toolboxes carry
(QinLab-WFU/CLIP-based-Cross-Modal-Hashing ``model/DCHMT.py``, ``train/DCHMT/hash_train.py``,
``train/DCHMT/get_args.py``, ``train/base.py``: ``make_hash_code_DCHMT``).

The method, on CLIP vectors x (image or text, D) of a batch with labels Y::

    e      = relu(W0 x + b0)                      (D -> 128, the "selection" hash layer)
    p_k    = softmax(W_k e + b_k) in (0, 1)^2     one two-way softmax per bit k = 1..K
    a      = [p_1 ; ... ; p_K] in R^(2K)          what the loss sees (image a, text t)
    code_k = +1 if argmax p_k = 1 else -1         (test time: the argmax selects the bit)
    S_ij   = 1[y_i . y_j > 0]
    D(u, v)_ij = ||u_i - v_j||_2 ,  m = sqrt(2 K vartheta)
    L(u, v) = mean((S * D)^2) + mean((m (1 - S) - min((1 - S) * D, m))^2)
    loss   = L(a, t) + L(a, a) + L(t, t)

The two-way softmax is the differentiable sign: a bit is the choice between two states, and the
pair distance between the concatenated choices counts disagreeing bits (two choices one-hot and
different are sqrt(2) apart). ``h`` (tanh range, the interface's continuous code) is p_k[1] - p_k[0]
= tanh((z_k1 - z_k0) / 2); its sign is the argmax code.

Departures from the release:

- runs on the run's frozen CLIP image and text vectors; the release fine-tunes CLIP ViT-B/32 (lr 1e-5)
  under the hash layers, and its multimodal transformers are that CLIP. ``TEXT_INPUT = "clip"``: the
  release's text branch is CLIP's text transformer, so its hash layer reads CLIP text vectors;
- the release's BertAdam lr schedule (warmup_cosine per step, warmup 10 %) is applied once per epoch
  (``start_epoch``, at the epoch's midpoint);
- the K two-way output layers are one linear map to 2K outputs, initialised block by block as the
  release initialises each (Kaiming uniform, fan_out = 2, zero bias): the same function and the same
  initial distribution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from egath_lite.core.methods._bertadam import BertAdam, set_epoch_lr
from egath_lite.core.methods._common import plain_epoch

NAME = "dchmt"
SUPERVISED = True
TEXT_INPUT = "clip"


@dataclass
class Config:
    """DCHMT's hyperparameters, defaults from its release (``utils/get_args.py`` unless said)."""

    lr: float = 0.001  # --lr (the hash layers' group in BertAdam, train/hash_train.py _init_model)
    batch_size: int = 64  # --batch-size
    epochs: int = 100  # --epochs
    vartheta: float = 0.5  # --vartheta, "the rate of error code": the negative margin is sqrt(2 K vartheta)
    weight_decay: float = 0.2  # --weight-decay (BertAdam)
    warmup_proportion: float = 0.1  # --warmup-proportion (BertAdam schedule warmup_cosine)
    betas: tuple[float, float] = (0.9, 0.98)  # BertAdam(b1=0.9, b2=0.98), train/hash_train.py _init_model
    eps: float = 1e-6  # BertAdam(e=1e-6), ibid.
    max_grad_norm: float = 1.0  # BertAdam(max_grad_norm=1.0), ibid.
    embed: int = 128  # HashLayer.LINEAR_EMBED, model/hash_model.py


def _kaiming_fan_out(linear: nn.Linear, blocks: int = 1) -> None:
    """The release's ``weights_init_kaiming`` (Kaiming uniform, mode fan_out, zero bias), block by block."""
    for block in linear.weight.data.view(blocks, -1, linear.in_features):
        nn.init.kaiming_uniform_(block, mode="fan_out")
    nn.init.zeros_(linear.bias)


class SelectHash(nn.Module):
    """The release's "select" hash layer: x (n, D) -> per-bit two-way softmax p (n, K, 2)."""

    def __init__(self, in_dim: int, bits: int, embed: int = 128):
        super().__init__()
        self.bits = bits
        self.fc = nn.Linear(in_dim, embed)
        self.heads = nn.Linear(embed, 2 * bits)  # K independent Linear(embed, 2), stacked
        _kaiming_fan_out(self.fc)
        _kaiming_fan_out(self.heads, blocks=bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (n, D) -> p (n, K, 2), each row of p[:, k] a probability pair."""
        z = self.heads(torch.relu(self.fc(x)))
        return torch.softmax(z.view(len(x), self.bits, 2), dim=-1)


class DCHMT(nn.Module):
    """One select hash layer per modality on CLIP vectors; ``forward`` gives the pairs and the tanh-range codes."""

    def __init__(self, image_dim: int, text_dim: int, bits: int, embed: int = 128):
        super().__init__()
        self.bits = bits
        self.image_hash = SelectHash(image_dim, bits, embed)
        self.text_hash = SelectHash(text_dim, bits, embed)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> dict[str, torch.Tensor]:
        """image (b, D), text (b, D_t) -> p_image, p_text (b, 2K) (the loss's inputs) and h_image, h_text (b, K)."""
        p_i, p_t = self.image_hash(image), self.text_hash(text)
        return {
            "p_image": p_i.flatten(1),
            "p_text": p_t.flatten(1),
            "h_image": p_i[..., 1] - p_i[..., 0],
            "h_text": p_t[..., 1] - p_t[..., 0],
        }

    @torch.no_grad()
    def encode(self, x: torch.Tensor, modality: str, batch_size: int = 1024) -> torch.Tensor:
        """int8 (n, K) codes in {-1, +1} of one modality, eval mode: +1 where the softmax picks state 1."""
        if modality not in ("image", "text"):
            raise ValueError(f"modality must be 'image' or 'text', got {modality!r}")
        head = self.image_hash if modality == "image" else self.text_hash
        was_training = self.training
        self.eval()
        device = head.fc.weight.device
        chunks = [head(x[i : i + batch_size].to(device).float()) for i in range(0, len(x), batch_size)]
        self.train(was_training)
        if not chunks:
            return torch.empty(0, self.bits, dtype=torch.int8)
        p = torch.cat(chunks)
        return torch.where(p[..., 1] > p[..., 0], 1, -1).to(torch.int8).cpu()


def build(image_dim: int, text_dim: int, num_labels: int, bits: int, cfg: Config) -> DCHMT:
    """The model; ``num_labels`` is unused (labels enter the loss only)."""
    return DCHMT(image_dim, text_dim, bits, cfg.embed)


def init_state(Y: torch.Tensor, bits: int, cfg: Config, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """DCHMT keeps nothing across epochs."""
    return {}


def optimizer(model: nn.Module, cfg: Config) -> BertAdam:
    """The release's BertAdam on the hash layers (its CLIP group, lr 1e-5, is absent: CLIP is frozen here)."""
    return BertAdam(
        model.parameters(),
        lr=cfg.lr,
        b1=cfg.betas[0],
        b2=cfg.betas[1],
        e=cfg.eps,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
    )


def start_epoch(model: nn.Module, opt: torch.optim.Optimizer, epoch: int, epochs: int, cfg: Config) -> None:
    """The release's warmup_cosine learning-rate schedule, once per epoch."""
    set_epoch_lr(opt, epoch, epochs, cfg.warmup_proportion)


def label_similarity(Y_b: torch.Tensor) -> torch.Tensor:
    """S (b, b): 1 where two items share a label (the release's ``calc_neighbor``)."""
    Y_b = Y_b.float()
    return (Y_b @ Y_b.T > 0).float()


def pair_loss(u: torch.Tensor, v: torch.Tensor, S: torch.Tensor, bits: int, vartheta: float) -> tuple:
    """(positive, negative) terms of the release's euclidean l2 ``similarity_loss`` between rows of u and v."""
    D = torch.cdist(u, v, p=2.0)
    margin = math.sqrt(2 * bits * vartheta)
    positive = D * S
    negative = margin * (1 - S) - (D * (1 - S)).clamp(max=margin)
    return positive.pow(2).mean(), negative.pow(2).mean()


def loss(
    out: dict[str, torch.Tensor], pos: torch.Tensor, Y_b: torch.Tensor, state: dict, cfg: Config
) -> dict[str, torch.Tensor]:
    """The release's ``our_loss`` (select layer, euclidean distance, l2): image-text plus image-image plus text-text."""
    a, t = out["p_image"], out["p_text"]
    bits = a.shape[1] // 2
    S = label_similarity(Y_b).to(a.device)
    terms = {}
    for name, (u, v) in {"image_text": (a, t), "image_image": (a, a), "text_text": (t, t)}.items():
        positive, negative = pair_loss(u, v, S, bits, cfg.vartheta)
        terms[name] = positive + negative
    terms["total"] = terms["image_text"] + terms["image_image"] + terms["text_text"]
    return terms


def epoch(model, loss_fn, batches, Y: torch.Tensor, state: dict, opt, cfg: Config) -> dict[str, float]:
    """One pass over the batches: forward, loss, backward, BertAdam step (it clips each gradient). (``_common.plain_epoch``)"""
    return plain_epoch(model, loss_fn, batches, Y, state, opt, cfg)
