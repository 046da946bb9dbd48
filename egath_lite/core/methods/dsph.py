"""DSPH: Deep Semantic-aware Proxy Hashing for multi-label cross-modal retrieval (Huo, Qin, et al.; IEEE TCSVT 2023).

Released code: QinLab-WFU/DSPH (``model/hash_model.py``: ``LinearHash``, ``DSPH``; ``utils/utils.py``: ``HyP``;
``train/hash_train.py``: ``_init_model``, ``train_epoch``; ``utils/get_args.py``: the arguments and the threshold
read from ``utils/codetable.xlsx``).

The method, on CLIP vectors of a batch (image x, text t) with labels Y (b, C) and learnable proxies P (C, K)::

    h_x = tanh(dropout(W_x x + b_x)),  h_t = tanh(dropout(W_t t + b_t))        (b, K)
    c_ic = cos(h_i, P_c)
    L_proxy(h) = sum_{Y_ic = 1} (1 - c_ic) / #{Y = 1}  +  sum_{Y_ic = 0} relu(c_ic - zeta) / #{Y = 0}
    M = items with more than one label;  N = pairs (i, j) of M with y_i . y_j = 0
    L_pair = alpha sum_N [relu(cos(hx_i, hx_j) - zeta) + relu(cos(ht_i, ht_j) - zeta)
                          + relu(cos(hx_i, ht_j) - zeta)] / |N|        (0 when N is empty)
    loss = L_proxy(h_x) + L_proxy(h_t) + L_pair

zeta is the largest cosine two of 2^m binary codes of length K must reach, m = ceil(log2 C) (HyP2's
code-table threshold): zeta = 1 - 2 d / K with d the largest minimum distance of such a code. The hash
layers train with BertAdam, the proxies with SGD (lr 0.02, momentum 0.9, weight decay 5e-4).

Departures from the release:

- runs on the run's frozen CLIP image and text vectors; the release fine-tunes CLIP ViT-B/32 (lr 1e-5).
  ``TEXT_INPUT = "clip"``: the release's text hash layer reads CLIP's text encoder;
- the release reads zeta from ``codetable.xlsx`` (a table of best-known linear codes, not readable here);
  ``proxy_threshold`` computes d as the largest distance the Griesmer bound allows for a linear [K, m]
  code. That is exact where the bound is met: for 17 to 32 labels (MIRFlickr's 24, NUS-WIDE's 21) at 16,
  32 and 64 bits, d = K/2 and zeta = 0 (first-order Reed-Muller codes reach K/2, the bound allows no
  more); for 80 labels (MS-COCO) at 16 and 64 bits ([16, 7, 6], [64, 7, 32]). Elsewhere the bound may sit
  above the best code, so zeta below the table's value (COCO at 32 bits: 0.0625 from d <= 15);
  ``Config.threshold`` overrides it;
- the proxies live in the model (an ``nn.Parameter``) and one optimizer holds both of the release's
  optimizers (BertAdam for the hash layers, SGD for the proxies) as two kinds of parameter group;
- the BertAdam lr schedule (warmup_cosine per step) is applied once per epoch (``start_epoch``);
- #{Y = 0} is taken as at least 1 (the release divides by zero when every label is on).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from egath_lite.core.methods._bertadam import BertAdam, set_epoch_lr
from egath_lite.core.methods._common import plain_epoch

NAME = "dsph"
SUPERVISED = True
TEXT_INPUT = "clip"


@dataclass
class Config:
    """DSPH's hyperparameters, defaults from its release (``utils/get_args.py`` unless said)."""

    lr: float = 0.001  # --lr (the hash layers' groups of BertAdam, train/hash_train.py _init_model)
    batch_size: int = 64  # --batch-size
    epochs: int = 100  # --epochs
    alpha: float = 0.8  # --alpha, weight of the irrelevant-pair term (utils/utils.py HyP.forward)
    dropout: float = 0.2  # LinearHash: nn.Dropout(p=0.2) before tanh (model/hash_model.py)
    weight_decay: float = 0.2  # --weight-decay (BertAdam)
    warmup_proportion: float = 0.1  # --warmup-proportion (BertAdam schedule warmup_cosine)
    betas: tuple[float, float] = (0.9, 0.98)  # BertAdam(b1=0.9, b2=0.98), train/hash_train.py _init_model
    eps: float = 1e-6  # BertAdam(e=1e-6), ibid.
    max_grad_norm: float = 1.0  # BertAdam(max_grad_norm=1.0), ibid.
    proxy_lr: float = 0.02  # SGD(self.hyp.parameters(), lr=0.02, ...), train/hash_train.py _init_model
    proxy_momentum: float = 0.9  # ibid., momentum=0.9
    proxy_weight_decay: float = 0.0005  # ibid., weight_decay=0.0005
    hypseed: int = 0  # --hypseed: the proxies' seed (torch.manual_seed in HyP.__init__), the same for every run
    threshold: float | None = None  # release: codetable.xlsx; None: proxy_threshold(bits, labels) (module doc)


def griesmer_distance(n: int, k: int) -> int:
    """The largest d with n >= sum_{i<k} ceil(d / 2^i): the Griesmer bound on a binary linear [n, k] code's distance."""
    if n < 1 or k < 1:
        raise ValueError(f"code length {n} and dimension {k} must be >= 1")
    best = 0
    for d in range(1, n + 1):
        if sum(-(-d // 2**i) for i in range(k)) <= n:
            best = d
    return best


def proxy_threshold(bits: int, num_labels: int) -> float:
    """zeta = 1 - 2 d / K for 2^m codewords of K bits, m = ceil(log2 C) (at least 1), d from ``griesmer_distance``."""
    m = max(1, math.ceil(math.log2(max(num_labels, 1))))
    return 1.0 - 2.0 * griesmer_distance(bits, m) / bits


class LinearHash(nn.Module):
    """The release's hash layer: tanh(dropout(W x + b)) (n, K); PyTorch's default initialisation, as released."""

    def __init__(self, in_dim: int, bits: int, dropout: float = 0.2):
        super().__init__()
        self.fc = nn.Linear(in_dim, bits)
        self.drop_out = nn.Dropout(p=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.drop_out(self.fc(x)))


class DSPH(nn.Module):
    """A linear hash layer per modality on CLIP vectors and the label proxies P (C, K)."""

    def __init__(self, image_dim: int, text_dim: int, num_labels: int, bits: int, dropout: float, hypseed: int):
        super().__init__()
        self.bits = bits
        self.image_hash = LinearHash(image_dim, bits, dropout)
        self.text_hash = LinearHash(text_dim, bits, dropout)
        proxies = torch.empty(num_labels, bits)
        nn.init.kaiming_normal_(proxies, mode="fan_out", generator=torch.Generator().manual_seed(hypseed))
        self.proxies = nn.Parameter(proxies)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> dict[str, torch.Tensor]:
        """image (b, D), text (b, D_t) -> h_image, h_text (b, K) and the proxies (C, K) the loss reads."""
        return {"h_image": self.image_hash(image), "h_text": self.text_hash(text), "proxies": self.proxies}

    @torch.no_grad()
    def encode(self, x: torch.Tensor, modality: str, batch_size: int = 1024) -> torch.Tensor:
        """int8 (n, K) codes sign(h) in {-1, +1} (0 -> +1) of one modality, eval mode (no dropout)."""
        if modality not in ("image", "text"):
            raise ValueError(f"modality must be 'image' or 'text', got {modality!r}")
        head = self.image_hash if modality == "image" else self.text_hash
        was_training = self.training
        self.eval()
        device = self.proxies.device
        chunks = [head(x[i : i + batch_size].to(device).float()) for i in range(0, len(x), batch_size)]
        self.train(was_training)
        if not chunks:
            return torch.empty(0, self.bits, dtype=torch.int8)
        return torch.where(torch.cat(chunks) >= 0, 1, -1).to(torch.int8).cpu()


def build(image_dim: int, text_dim: int, num_labels: int, bits: int, cfg: Config) -> DSPH:
    """The model, proxies included (seeded by ``cfg.hypseed`` as the release seeds them)."""
    return DSPH(image_dim, text_dim, num_labels, bits, cfg.dropout, cfg.hypseed)


def init_state(Y: torch.Tensor, bits: int, cfg: Config, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """DSPH keeps nothing across epochs (the proxies are parameters of the model)."""
    return {}


class DSPHOptimizer(BertAdam):
    """BertAdam for the hash layers' groups; plain SGD with momentum (torch.optim.SGD's rule) for groups with ``sgd``."""

    @torch.no_grad()
    def _sgd_group(self, group: dict) -> None:
        for p in group["params"]:
            if p.grad is None:
                continue
            d_p = p.grad + group["weight_decay"] * p
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = d_p.clone()
            else:
                state["momentum_buffer"].mul_(group["momentum"]).add_(d_p)
            p.add_(state["momentum_buffer"], alpha=-group["lr"])

    def step(self, closure=None):
        """One update: SGD on the proxy group, BertAdam on the others."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            if group.get("sgd", False):
                self._sgd_group(group)
            else:
                self._adam_group(group)
        return loss


def optimizer(model: nn.Module, cfg: Config) -> DSPHOptimizer:
    """The release's two optimizers in one: BertAdam on the hash layers, SGD on the proxies (module doc)."""
    heads = [p for name, p in model.named_parameters() if name != "proxies"]
    return DSPHOptimizer(
        [
            {"params": heads},
            {
                "params": [model.proxies],
                "sgd": True,
                "lr": cfg.proxy_lr,
                "momentum": cfg.proxy_momentum,
                "weight_decay": cfg.proxy_weight_decay,
                "scheduled": False,
            },
        ],
        lr=cfg.lr,
        b1=cfg.betas[0],
        b2=cfg.betas[1],
        e=cfg.eps,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
    )


def start_epoch(model: nn.Module, opt: torch.optim.Optimizer, epoch: int, epochs: int, cfg: Config) -> None:
    """The release's warmup_cosine schedule on the hash layers, once per epoch (the proxies' SGD has none)."""
    set_epoch_lr(opt, epoch, epochs, cfg.warmup_proportion)


def proxy_loss(h: torch.Tensor, P: torch.Tensor, Y: torch.Tensor, zeta: float) -> torch.Tensor:
    """Positive pairs pulled to cosine 1, negative pairs pushed below zeta, each averaged over its own count."""
    cos = F.normalize(h, dim=1) @ F.normalize(P, dim=1).T
    on = Y == 1
    positive = torch.where(on, 1 - cos, torch.zeros_like(cos)).sum() / max(int(on.sum()), 1)
    negative = torch.where(~on, F.relu(cos - zeta), torch.zeros_like(cos)).sum() / max(int((~on).sum()), 1)
    return positive + negative


def pair_loss(h_i: torch.Tensor, h_t: torch.Tensor, Y: torch.Tensor, zeta: float, alpha: float) -> torch.Tensor:
    """The irrelevant-pair term among multi-label items (zero when they hold no pair without a shared label)."""
    multi = Y.sum(dim=1) > 1
    x, t, y = F.normalize(h_i[multi], dim=1), F.normalize(h_t[multi], dim=1), Y[multi]
    irrelevant = (y @ y.T) == 0
    count = int(irrelevant.sum())
    if count == 0:
        return h_i.new_zeros(())
    total = h_i.new_zeros(())
    for sim in (x @ x.T, t @ t.T, x @ t.T):
        total = total + torch.where(irrelevant, alpha * F.relu(sim - zeta), torch.zeros_like(sim)).sum() / count
    return total


def loss(
    out: dict[str, torch.Tensor], pos: torch.Tensor, Y_b: torch.Tensor, state: dict, cfg: Config
) -> dict[str, torch.Tensor]:
    """The release's ``HyP.forward``: proxy terms of both modalities plus the irrelevant-pair term."""
    h_i, h_t, P = out["h_image"], out["h_text"], out["proxies"]
    Y_b = Y_b.float().to(h_i.device)
    zeta = cfg.threshold if cfg.threshold is not None else proxy_threshold(h_i.shape[1], Y_b.shape[1])
    terms = {
        "proxy_image": proxy_loss(h_i, P, Y_b, zeta),
        "proxy_text": proxy_loss(h_t, P, Y_b, zeta),
        "pair": pair_loss(h_i, h_t, Y_b, zeta, cfg.alpha) if cfg.alpha > 0 else h_i.new_zeros(()),
    }
    terms["total"] = terms["proxy_image"] + terms["proxy_text"] + terms["pair"]
    return terms


def epoch(model, loss_fn, batches, Y: torch.Tensor, state: dict, opt, cfg: Config) -> dict[str, float]:
    """One pass over the batches: forward, loss, backward, one step of both optimizers. (``_common.plain_epoch``)"""
    return plain_epoch(model, loss_fn, batches, Y, state, opt, cfg)
