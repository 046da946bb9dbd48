"""What the comparison methods share: a two-network model's ``encode`` and the plain epoch loop."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn as nn

from egath_lite.core.models import binarize


class TwoNets(nn.Module):
    """An image network and a text network, each mapping its input to K continuous code values.

    Subclasses define ``image_code(x)`` and ``text_code(x)`` (b, K); ``encode`` takes their signs, in eval mode,
    batch by batch, as ``core.models.EGATH.encode``.
    """

    bits: int

    def image_code(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def text_code(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> dict[str, torch.Tensor]:
        """``h_image``, ``h_text`` (b, K) and the inputs themselves (``x_image``, ``x_text``, for similarity losses)."""
        return {"h_image": self.image_code(image), "h_text": self.text_code(text), "x_image": image, "x_text": text}

    @torch.no_grad()
    def encode(self, x: torch.Tensor, modality: str, batch_size: int = 1024) -> torch.Tensor:
        """Binary codes int8 (n, K) in {−1, +1} of one modality (sign(0) = +1)."""
        if modality not in ("image", "text"):
            raise ValueError(f"modality must be 'image' or 'text', got {modality!r}")
        was_training = self.training
        self.eval()
        fn = self.image_code if modality == "image" else self.text_code
        device = next(self.parameters()).device
        codes = [binarize(fn(x[i : i + batch_size].to(device).float())).cpu() for i in range(0, len(x), batch_size)]
        self.train(was_training)
        return torch.cat(codes) if codes else torch.empty(0, self.bits, dtype=torch.int8)


def plain_epoch(
    model: nn.Module,
    loss_fn: Callable[..., dict[str, torch.Tensor]],
    batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    Y: torch.Tensor,
    state: dict[str, torch.Tensor],
    opt: torch.optim.Optimizer,
    cfg: object,
    after_step: Callable[[torch.Tensor, dict[str, torch.Tensor]], None] | None = None,
) -> dict[str, float]:
    """One pass: per batch ``loss_fn(out, pos, Y[pos], state, cfg)``, a step, ``after_step(pos, out)``; term means."""
    model.train()
    device = next(model.parameters()).device
    sums: dict[str, float] = {}
    count = 0
    for pos, image, text in batches:
        out = model(image, text)
        terms = loss_fn(out, pos, Y[pos].to(device), state, cfg)
        if not torch.isfinite(terms["total"]):
            raise FloatingPointError(f"the loss became {terms['total'].item()}; lower the method's learning rate")
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
        if after_step is not None:
            after_step(pos, out)
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + value.item() * len(pos)
        count += len(pos)
    return {name: total / max(count, 1) for name, total in sums.items()}


def mlp(sizes: list[int], batch_norm: bool = False) -> nn.Sequential:
    """Linear layers of ``sizes`` with ReLU between (and BatchNorm1d before each ReLU with ``batch_norm``)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            if batch_norm:
                layers.append(nn.BatchNorm1d(b))
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)
