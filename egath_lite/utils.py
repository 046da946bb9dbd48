"""Small shared helpers: device choice and seeding."""

from __future__ import annotations

import contextlib
import os
import random
import re

import numpy as np
import torch

from egath_lite.errors import SettingsError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit device that is absent is an error."""
    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name not in ("cpu", "mps") and not re.fullmatch(r"cuda(:\d+)?", name):
        raise SettingsError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SettingsError(
            f"device {name!r} asked for but CUDA is not available on this machine (no GPU or no CUDA build of "
            f"torch); use device 'auto' or 'cpu'"
        )
    if name.startswith("cuda:") and int(name[5:]) >= torch.cuda.device_count():
        raise SettingsError(
            f"device {name!r} asked for but this machine has {torch.cuda.device_count()} CUDA device(s); "
            f"use 'cuda' or 'auto'"
        )
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise SettingsError("device 'mps' asked for but MPS is not available; use device 'auto' or 'cpu'")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices) for repeatable runs."""
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


@contextlib.contextmanager
def cpu_threads(n: int = 1):
    """Run torch's CPU ops on ``n`` threads inside the block, then restore the previous setting.

    The hash and classifier models are small (batches of 64, tens of label nodes): op overhead
    dominates, and a second intra-op thread only spins. Measured on the 2-core machine with other
    load: the GAT classifier of notebook 03 (5 epochs) took 37.6 s wall / 24.9 s CPU on 2 threads
    and 7.3 s / 4.9 s on one.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
