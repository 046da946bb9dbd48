"""The comparison methods of the paper's table, one module each, behind one interface (issue 19).

``METHODS`` names them; ``get_method(name)`` imports ``egath_lite.core.methods.<name>``. Every module defines
``NAME``, ``SUPERVISED`` (reads labels in training), ``TEXT_INPUT`` (``"bow"``: the run's bag of words, or
``"clip"``: CLIP text vectors), a ``Config`` dataclass of its release's hyperparameters, and

- ``build(image_dim, text_dim, num_labels, bits, cfg) -> nn.Module`` whose ``forward(image, text)`` returns at
  least ``h_image``, ``h_text`` (b, K) continuous codes and whose ``encode(x, modality)`` returns int8 ±1 codes;
- ``init_state(Y, bits, cfg, generator) -> dict`` of tensors kept across epochs (``{}`` if none);
- ``optimizer(model, cfg)``, ``loss(out, pos, Y_b, state, cfg) -> {"total", <term>...}`` and
  ``epoch(model, loss_fn, batches, Y, state, opt, cfg) -> {term: mean}``.

Optional: ``NEEDS_GRAPH = True`` (``build`` then takes ``graph=``, the run's label graph tensors) and
``start_epoch(model, opt, epoch, epochs, cfg)`` (a release's per-epoch schedule: learning rate, tanh scale).
``egath`` is an adapter over ``core.models.EGATH``, ``core.losses.egath_loss`` and ``core.train.egath_epoch``;
the pipeline trains it through its own engine (``pipeline.engine.train_egath``) so that its artifacts keep
their keys. Adding a method is adding its module: the registry, the run config's ``method`` field, the codes
stage, the driver and search read ``METHODS``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

METHODS = ("egath", "dcmh", "gcdh", "dchmt", "dsph", "djsrh", "jdsh", "ucch")
SUPERVISED = {"egath": True, "dcmh": True, "gcdh": True, "dchmt": True, "dsph": True}  # the rest: unsupervised
INTERFACE = ("NAME", "SUPERVISED", "TEXT_INPUT", "Config", "build", "init_state", "optimizer", "loss", "epoch")


def get_method(name: str) -> ModuleType:
    """The module of method ``name`` (one of ``METHODS``); ValueError for an unknown or missing one."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    try:
        module = importlib.import_module(f"egath_lite.core.methods.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"egath_lite.core.methods.{name}":
            raise
        raise ValueError(
            f"method {name!r} is not implemented in this version (no module egath_lite.core.methods.{name}); "
            f"available: {', '.join(available_methods())}"
        ) from None
    missing = [attr for attr in INTERFACE if not hasattr(module, attr)]
    if missing:
        raise ValueError(f"method module {module.__name__} lacks {', '.join(missing)} (see core.methods)")
    return module


def available_methods() -> tuple[str, ...]:
    """The names of ``METHODS`` whose module exists in this installation."""
    import importlib.util

    return tuple(m for m in METHODS if importlib.util.find_spec(f"egath_lite.core.methods.{m}") is not None)
