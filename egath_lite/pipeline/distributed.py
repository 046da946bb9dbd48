"""Several processes, one run: ``torchrun --nproc_per_node N -m egath_lite.driver.torchrun`` (NCCL on GPUs, gloo on CPUs).

``init_from_env()`` joins the process group torchrun describes (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``); without them it is one process and every helper here is a no-op, so the
single-process code path is the same code. What runs where:

* the features stage: each rank encodes the image shards ``s`` with ``s % world == rank``
  (``clip.sharded.encode_images_sharded(only=...)``), then rank 0 assembles them and writes the artifact;
* hash training (``engine.train_egath``): every rank draws the same batches; each batch is split into
  ``world`` contiguous chunks, each rank runs its chunk through ``DistributedDataParallel`` and the outputs
  are gathered (``gather_rows``), so the loss, the codes H and GCDH's discrete B step see the whole batch,
  as in one process: the same codes up to floating-point summation order, on frozen features and with
  ``finetune_clip``, where the CLIP tower's BatchNorm layers (ResNet towers, the toy CLIP's too) become
  ``GlobalBatchNorm`` and normalise over the whole batch, not each rank's chunk (``global_batchnorm``;
  per-chunk statistics had left two processes 0.84% apart in loss after one toy epoch);
* artifacts (``stage_on_rank0``): rank 0 alone writes; the others take part in the computation, wait at a
  barrier and then read what rank 0 wrote.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist


def world_size() -> int:
    """Processes in the run (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """Whether this process writes artifacts (rank 0)."""
    return rank() == 0


def backend_for(device: str | torch.device | None = None) -> str:
    """``nccl`` for CUDA, ``gloo`` for the CPU."""
    if device is None:
        return "nccl" if torch.cuda.is_available() else "gloo"
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init_from_env(backend: str | None = None) -> bool:
    """Join torchrun's process group when ``WORLD_SIZE`` > 1 (once); returns whether this run is distributed.

    On CUDA each process takes the GPU ``LOCAL_RANK``. ``backend``: default ``backend_for()``.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        backend = backend or backend_for()
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    return True


def local_device(device: torch.device) -> torch.device:
    """``device`` with this process's GPU (``cuda`` -> ``cuda:LOCAL_RANK``) when distributed on CUDA."""
    if device.type == "cuda" and world_size() > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def barrier() -> None:
    """Wait for every process (no-op alone)."""
    if world_size() > 1:
        dist.barrier()


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def chunk_of(n: int) -> tuple[int, int, list[int]]:
    """(start, stop, sizes): this rank's contiguous chunk of ``n`` rows split into ``world`` near-equal chunks."""
    w, r = world_size(), rank()
    sizes = [n // w + (1 if i < n % w else 0) for i in range(w)]
    start = sum(sizes[:r])
    return start, start + sizes[r], sizes


def gather_rows(local: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """The rows of every rank's ``local`` (rank order), this rank's own rows keeping their autograd graph.

    The other ranks' rows are constants here: each rank backpropagates the (identical) loss through its own
    rows only, and DDP's gradient average then needs the loss scaled by the world size (``engine`` does it).
    """
    if world_size() == 1:
        return local
    top = max(sizes)
    pad = torch.zeros((top - local.shape[0], *local.shape[1:]), dtype=local.dtype, device=local.device)
    mine = torch.cat([local.detach(), pad])
    parts = [torch.empty_like(mine) for _ in sizes]
    dist.all_gather(parts, mine.contiguous())
    parts = [p[:s] for p, s in zip(parts, sizes)]
    parts[rank()] = local
    return torch.cat(parts)


class _SumOverRanks(torch.autograd.Function):
    """``all_reduce(SUM)`` with its gradient: the backward of a sum over ranks is the sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad)
        return grad


class GlobalBatchNorm(torch.nn.modules.batchnorm._BatchNorm):
    """Batch normalisation over the whole batch across ranks in training (one process's statistics); else torch's.

    Inputs: x (n, C, ...), this rank's rows. In training with several processes the mean and then the
    (biased) variance about it are sums over every rank's rows (two all-reduces of C numbers, with their
    gradients: ``_SumOverRanks``; no host synchronisation), so each rank normalises its rows as one process
    normalises the whole batch, and its backward carries the other ranks' share of the statistics'
    gradient, as torch's ``SyncBatchNorm`` does (which refuses CPU tensors, hence this module for gloo).
    The running statistics are updated with the whole batch's mean and unbiased variance, equal on every
    rank. In evaluation, or alone, it is ``torch.nn.BatchNorm*d`` (running statistics / the local batch).
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The normalised rows of ``x`` (same shape and dtype)."""
        if not self.training or world_size() == 1:
            return super().forward(x)
        self._check_input_dim(x)
        dims = [0, *range(2, x.dim())]
        shape = (1, -1) + (1,) * (x.dim() - 2)
        xf = x.float()
        count = torch.full((1,), xf.numel() // xf.shape[1], dtype=torch.float64, device=x.device)
        total = _SumOverRanks.apply(torch.cat([xf.sum(dims).double(), count]))  # C sums, values per channel
        n = total[-1].detach()
        mean = (total[:-1] / n).float()
        centred = xf - mean.view(shape)
        var = (_SumOverRanks.apply((centred * centred).sum(dims).double()) / n).float()
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                f = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - f).add_(mean.detach().to(self.running_mean.dtype), alpha=f)
                unbiased = var.detach() * (n / (n - 1).clamp(min=1)).float()
                self.running_var.mul_(1 - f).add_(unbiased.to(self.running_var.dtype), alpha=f)
        return y.to(x.dtype)


def global_batchnorm(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` with each ``BatchNorm1d/2d/3d`` replaced by a ``GlobalBatchNorm`` holding its parameters and buffers.

    The state-dict keys stay the same. CLIP's ResNet towers (and the tiny toy CLIP) have BatchNorm; its
    ViTs have none, and then nothing changes.
    """
    bn = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)
    if isinstance(module, bn) and not isinstance(module, GlobalBatchNorm):
        new = GlobalBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        ).to(device=module.weight.device if module.affine else None)
        new.load_state_dict(module.state_dict())
        if module.affine:
            new.weight.requires_grad_(module.weight.requires_grad)
            new.bias.requires_grad_(module.bias.requires_grad)
        new.train(module.training)
        return new
    for name, child in module.named_children():
        replaced = global_batchnorm(child)
        if replaced is not child:
            setattr(module, name, replaced)
    return module


class GatheredBatch(torch.nn.Module):
    """``model(image, text)`` on this rank's chunk through DDP, every output gathered to the whole batch.

    Called with the whole batch's inputs; each rank takes its chunk (``chunk_of``), so the loss, the codes
    and the discrete step downstream see what one process would.
    """

    def __init__(self, ddp: torch.nn.Module):
        super().__init__()
        self.ddp = ddp

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> dict[str, torch.Tensor]:
        start, stop, sizes = chunk_of(len(text))
        if len(image) == len(text):  # the whole batch's images; else this rank's chunk already (fine-tuning crops)
            image = image[start:stop]
        out = self.ddp(image, text[start:stop])
        return {k: gather_rows(v, sizes) for k, v in out.items()}


def stage_on_rank0(
    stage: Any,
    cfg: Any,
    compute: Callable[[], tuple[Any, Any]],
    force: bool = False,
    custom: Any = None,
    **params: Any,
) -> dict[str, Any]:
    """``stage.run`` where every rank computes (they share collectives) and rank 0 alone writes the artifact.

    Rank 0 decides whether the artifact is reused (the others follow its decision, so no rank waits in a
    collective the others skip); the others run ``compute`` with rank 0, wait at a barrier, then read it.
    """
    if world_size() == 1:
        return stage.run(cfg, compute, force=force, custom=custom, **params)
    reuse = broadcast_object(is_main() and not force and stage.try_load(cfg, custom=custom, **params) is not None)
    if not reuse:
        if is_main():
            payload = stage.run(cfg, compute, force=True, custom=custom, **params)
        else:
            compute()
        barrier()
    return payload if not reuse and is_main() else stage.load(cfg, custom=custom, **params)
