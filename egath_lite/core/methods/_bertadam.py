"""BertAdam, the optimizer DCHMT and DSPH release with (CLIP4Clip's ``modules/optimization.py``, which both copy).

Per parameter p with gradient g (the release's ``BertAdam.step``)::

    g  <- g clipped to norm max_grad_norm      (clip_grad_norm_ on each parameter alone)
    m  <- b1 m + (1 - b1) g ;  v <- b2 v + (1 - b2) g^2
    u  =  m / (sqrt(v) + e) + weight_decay p   (no bias correction; decoupled decay)
    p  <- p - lr_t u

The release scales ``lr_t`` per step by ``warmup_cosine(step / t_total, warmup)``; the methods here apply the
same schedule once per epoch (their ``start_epoch``), at the epoch's midpoint, because an epoch function does
not know the number of steps to come.
"""

from __future__ import annotations

import math

import torch
from torch.nn.utils import clip_grad_norm_


def warmup_cosine(x: float, warmup: float) -> float:
    """The release's schedule: x / warmup while x < warmup, then (1 + cos(pi x)) / 2; x is training progress in [0, 1]."""
    if x < warmup:
        return x / warmup
    return 0.5 * (1.0 + math.cos(math.pi * x))


class BertAdam(torch.optim.Optimizer):
    """Adam without bias correction, with decoupled weight decay and per-parameter gradient clipping (see module)."""

    def __init__(
        self,
        params,
        lr: float,
        b1: float = 0.9,
        b2: float = 0.999,
        e: float = 1e-6,
        weight_decay: float = 0.01,
        max_grad_norm: float = 1.0,
    ):
        if lr < 0.0 or not 0.0 <= b1 < 1.0 or not 0.0 <= b2 < 1.0 or e < 0.0:
            raise ValueError(f"invalid BertAdam settings lr={lr}, b1={b1}, b2={b2}, e={e}")
        defaults = dict(lr=lr, b1=b1, b2=b2, e=e, weight_decay=weight_decay, max_grad_norm=max_grad_norm)
        super().__init__(params, defaults)
        for group in self.param_groups:
            group.setdefault("initial_lr", group["lr"])

    @torch.no_grad()
    def _adam_group(self, group: dict) -> None:
        for p in group["params"]:
            if p.grad is None:
                continue
            if group["max_grad_norm"] > 0:
                clip_grad_norm_(p, group["max_grad_norm"])
            state = self.state[p]
            if not state:
                state["next_m"] = torch.zeros_like(p)
                state["next_v"] = torch.zeros_like(p)
            m, v = state["next_m"], state["next_v"]
            m.mul_(group["b1"]).add_(p.grad, alpha=1 - group["b1"])
            v.mul_(group["b2"]).addcmul_(p.grad, p.grad, value=1 - group["b2"])
            update = m / (v.sqrt() + group["e"])
            if group["weight_decay"] > 0.0:
                update = update + group["weight_decay"] * p
            p.add_(update, alpha=-group["lr"])

    def step(self, closure=None):
        """One update of every parameter group; ``closure`` re-evaluates the loss (optional, as in torch)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._adam_group(group)
        return loss


def set_epoch_lr(opt: torch.optim.Optimizer, epoch: int, epochs: int, warmup: float) -> None:
    """Each group's lr <- its initial lr x ``warmup_cosine`` at the midpoint of epoch ``epoch`` (0-based) of ``epochs``."""
    if epochs < 1 or not 0 <= epoch < epochs:
        raise ValueError(f"epoch {epoch} is outside 0..{epochs - 1}")
    scale = warmup_cosine((epoch + 0.5) / epochs, warmup)
    for group in opt.param_groups:
        if group.get("scheduled", True):
            group["lr"] = group["initial_lr"] * scale
