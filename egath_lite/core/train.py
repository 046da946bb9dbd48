"""Training, one epoch at a time: EGATH's epoch (continuous steps, then the discrete B step) and a classifier's.

Both loops are model-agnostic, as minGPT's ``trainer.py``: they take the model, the loss function and the
batches, and know nothing of files, configs or devices beyond what they are given. What wraps them
(mixed precision, resuming after an interruption, images streamed from disk, early stopping, the
learning-rate schedule) lives in ``egath_lite.pipeline.engine``; the notebooks write the same epochs by
hand and check them against these.

EGATH's epoch (paper §3.3, GCDH's alternating optimisation):

    for each batch of training items:            h_I, h_T, Ŝ_I, Ŝ_T = model(image, text)
        L = loss_fn(out, Y_batch, B_batch)        (egath_lite.core.losses.egath_loss by default)
        θ ← θ − Adam(∇θ L)
    B ← sign(Y R + μ (H_I + H_T)),  R = (YᵀY + I)⁻¹ YᵀB     (discrete_code_step, once per epoch)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn as nn

from egath_lite.core.losses import discrete_code_step

# (out of model.forward, Y (b, C), B (b, K)) -> {"total": scalar, <term>: scalar, ...}
LossFn = Callable[[dict[str, torch.Tensor], torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]


@dataclass
class DiscreteCodes:
    """GCDH's shared binary codes B of the N training items and the networks' latest outputs for them.

    B (N, K) in {−1, +1}; H_image, H_text (N, K): the continuous codes each network gave each item when it
    last saw it (the discrete step reads them).
    """

    B: torch.Tensor
    H_image: torch.Tensor
    H_text: torch.Tensor

    @classmethod
    def random(cls, num_items: int, bits: int, generator: torch.Generator) -> DiscreteCodes:
        """A random ±1 start (each bit a fair coin from ``generator``) and zero network outputs."""
        B = torch.where(torch.rand(num_items, bits, generator=generator) < 0.5, -1.0, 1.0)
        return cls(B, torch.zeros(num_items, bits), torch.zeros(num_items, bits))


def plain_step(opt: torch.optim.Optimizer) -> Callable[[torch.Tensor], None]:
    """The default optimisation step: zero the gradients, backpropagate ``loss``, step."""

    def step(loss: torch.Tensor) -> None:
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def egath_epoch(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    Y: torch.Tensor,
    codes: DiscreteCodes,
    opt: torch.optim.Optimizer,
    mu: float = 0.5,
    step: Callable[[torch.Tensor], None] | None = None,
    autocast: contextlib.AbstractContextManager | None = None,
) -> dict[str, float]:
    """One EGATH epoch over the training items; updates ``codes`` (B after the discrete step, H_image, H_text).

    Inputs: ``batches`` yields (pos int64 (b,), image (b, D) or pixels, text (b, V)) with the inputs on the
    model's device and ``pos`` the items' positions among the N training items; Y (N, C) labels (CPU float);
    ``codes`` of those N items. ``loss_fn(out, Y[pos], B[pos])`` returns the terms and their ``total``;
    ``step(total)`` backpropagates and steps (default ``plain_step(opt)``; the engine passes its AMP step);
    ``autocast`` wraps forward and loss (default: none). Returns each term's mean over the N items.
    """
    step = step or plain_step(opt)
    autocast = autocast or contextlib.nullcontext()
    device = next(model.parameters()).device
    model.train()
    sums: dict[str, float] = {}
    for pos, image, text in batches:
        Y_b = Y[pos].to(device)
        with autocast:
            out = model(image, text)
            terms = loss_fn(out, Y_b, codes.B[pos].to(device))
        step(terms["total"])
        codes.H_image[pos] = out["h_image"].detach().float().cpu()
        codes.H_text[pos] = out["h_text"].detach().float().cpu()
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + value.item() * len(pos)
    codes.B = discrete_code_step(Y, codes.H_image, codes.H_text, codes.B, mu)
    return {name: total / len(Y) for name, total in sums.items()}


def classifier_epoch(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    opt: torch.optim.Optimizer,
    graph: tuple[torch.Tensor, ...] = (),
    step: Callable[[torch.Tensor], None] | None = None,
) -> float:
    """One epoch of a label classifier: per batch (x (b, D), y (b, C)), ``loss_fn(model(x, *graph), y)`` and a step.

    ``graph`` is what the model reads besides the features, e.g. (E (C, F), edge_index (2, M), edge_weight (M))
    for ``FrozenFeatureClassifier``. Returns the mean loss per item.
    """
    step = step or plain_step(opt)
    model.train()
    total, count = 0.0, 0
    for x, y in batches:
        loss = loss_fn(model(x, *graph), y)
        step(loss)
        total += loss.item() * len(x)
        count += len(x)
    return total / max(count, 1)
