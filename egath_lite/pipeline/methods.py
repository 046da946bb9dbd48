"""The comparison methods (``egath_lite.core.methods``) through the same stages as EGATH.

``ensure_method_codes(cfg, bits)`` is ``codes.ensure_codes`` for ``cfg.method != "egath"``: it trains the method
on the run's features (frozen CLIP image vectors; the bag of words or CLIP text vectors, as the method reads),
its training split, with its release's optimizer, batch size and loss, for the run's ``epochs``, keeping the
epoch with the best validation mAP (``early_stop_patience``), and stores the model and the codes in an artifact
of the codes stage named ``codes-<method>-<bits>-<key>.pt``. The key digests the method's module source (an
edit retrains, saying so), the run's ``method``, ``epochs``, ``early_stop_patience``, ``seed`` and the upstream
features and graph. ``train_method`` is the loop: seeded, resumable after every epoch, with a history.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import time
from functools import cache
from types import ModuleType
from typing import Any

import torch
import torch.nn as nn

from egath_lite.core.methods import get_method
from egath_lite.pipeline.code_digest import CORE_MODULES
from egath_lite.pipeline.config import Config
from egath_lite.pipeline.engine import HashData, load_resume, save_resume, training_record, validation_map
from egath_lite.pipeline.results import training_split
from egath_lite.progress import tqdm
from egath_lite.utils import cpu_threads, resolve_device, seed_everything

METHOD_FIELDS = ("method", "preset", "epochs", "early_stop_patience", "seed")
# The releases size their networks for a GPU. On the ``tiny`` preset (CI, a first look on a laptop) these widths
# are narrowed so that every method trains in seconds; every other preset uses the release's ``Config()`` as it is.
TINY_WIDTHS: dict[str, dict[str, Any]] = {
    "ucch": {"hidden": 512},  # release 8192: a 67 M-parameter image MLP
    "gcdh": {"text_hidden": (512, 512), "hidden_dim": 512},  # release (8192, 4096) and 2048
}
RESUME_FORMAT = "egath_lite.method_resume/1"


def check_method(cfg: Config) -> ModuleType:
    """The module of ``cfg.method``; one-line ValueError for a combination the comparison does not run."""
    module = get_method(cfg.method)
    if cfg.method != "egath":
        if cfg.variant != "egath":
            raise ValueError(
                f"variant={cfg.variant!r} is an ablation of EGATH; method={cfg.method!r} takes variant='egath'"
            )
        if cfg.finetune_clip:
            raise ValueError(
                f"method {cfg.method!r} runs on frozen CLIP features only; set finetune_clip=False for it "
                f"(EGATH alone fine-tunes the CLIP tower)"
            )
    return module


def method_config(module: ModuleType, cfg: Config) -> Any:
    """The method's ``Config()`` of its release, with ``TINY_WIDTHS`` applied on the ``tiny`` preset."""
    mcfg = module.Config()
    if cfg.preset == "tiny":
        mcfg = dataclasses.replace(mcfg, **TINY_WIDTHS.get(module.NAME, {}))
    return mcfg


def build_method(
    module: ModuleType, image_dim: int, text_dim: int, num_labels: int, bits: int, graph: dict, mcfg: Any = None
) -> nn.Module:
    """``module.build`` with ``mcfg`` (default: the release's ``Config()``) and the run's label graph when the
    method reads it."""
    extra = {"graph": graph} if getattr(module, "NEEDS_GRAPH", False) else {}
    return module.build(image_dim, text_dim, num_labels, bits, module.Config() if mcfg is None else mcfg, **extra)


def method_data(features: dict[str, Any], module: ModuleType) -> HashData:
    """Image vectors, the text input the method reads (``TEXT_INPUT``), labels and split, from the features payload."""
    t = features["tensors"]
    text = t["text_emb"] if module.TEXT_INPUT == "clip" else t["bow"]
    labels = t["labels"].float()
    return HashData(image=t["image_emb"].float(), text=text.float(), labels=labels, split=training_split(features))


def train_method(
    cfg: Config,
    bits: int,
    data: HashData,
    graph: dict[str, torch.Tensor],
    module: ModuleType | None = None,
    progress: bool = True,
    resume_path: str | os.PathLike | None = None,
    resume_key: str = "",
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``cfg.method`` (or ``module``) at ``bits`` bits; the model of the best validation epoch and a history.

    Per epoch: ``module.start_epoch`` (the release's schedule, if any), the batches of a seeded permutation of the
    training items (``Config.batch_size`` of the method; a last batch of one item is dropped), ``module.epoch``,
    then the validation mAP (mean of I→T and T→I against the training items); stops after
    ``cfg.early_stop_patience`` epochs without a better one. ``seconds_per_epoch`` is the median epoch time
    without validation. With ``resume_path`` the whole state is written after every epoch and a run that finds
    one of ``resume_key`` continues after its epoch.
    """
    module = module or check_method(cfg)
    if cfg.epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {cfg.epochs}")
    with cpu_threads(1):
        seed_everything(cfg.seed)
        device = resolve_device(cfg.device)
        mcfg = method_config(module, cfg)
        train_idx = data.split["train"]
        Ytr = data.labels[train_idx].float()
        model = build_method(module, data.image.shape[1], data.text.shape[1], Ytr.shape[1], bits, graph, mcfg)
        model = model.to(device)
        opt = module.optimizer(model, mcfg)
        gen = torch.Generator().manual_seed(cfg.seed)
        state = module.init_state(Ytr, bits, mcfg, gen)
        names = ("loss", "val_map_i2t", "val_map_t2i", "epoch_seconds", "epoch_cpu_seconds")
        hist: dict[str, list[float]] = {n: [] for n in names}
        best_score, best_epoch, best_state, stale, start = -1.0, -1, None, 0, 0
        saved = load_resume(resume_path, RESUME_FORMAT, resume_key)
        if saved is not None:
            model.load_state_dict(saved["model"])
            opt.load_state_dict(saved["opt"])
            state = dict(saved["state"])
            gen.set_state(saved["gen"])
            torch.set_rng_state(saved["rng"])
            hist = {k: list(v) for k, v in saved["hist"].items()}
            best_score, best_epoch, stale = float(saved["best_score"]), int(saved["best_epoch"]), int(saved["stale"])
            best_state, start = saved["best_state"], int(saved["epoch"]) + 1
            print(f"[codes] resuming {cfg.method} after epoch {start} of {cfg.epochs} from {resume_path}")
        t_start = time.perf_counter()
        bar = tqdm(range(start, cfg.epochs), desc=f"{cfg.method} {bits} bits", disable=not progress)
        for ep in bar:
            if best_state is not None and stale >= cfg.early_stop_patience:
                break
            t0, c0 = time.perf_counter(), time.process_time()
            if hasattr(module, "start_epoch"):
                module.start_epoch(model, opt, ep, cfg.epochs, mcfg)
            perm = torch.randperm(len(train_idx), generator=gen)
            size = mcfg.batch_size
            batches = [p for p in (perm[i : i + size] for i in range(0, len(perm), size)) if len(p) >= 2]

            def inputs(batches=batches):
                for pos in batches:
                    items = train_idx[pos]
                    yield pos, data.image[items].to(device), data.text[items].to(device)

            means = module.epoch(model, module.loss, inputs(), Ytr, state, opt, mcfg)
            hist["epoch_seconds"].append(time.perf_counter() - t0)
            hist["epoch_cpu_seconds"].append(time.process_time() - c0)
            for name, value in means.items():
                hist.setdefault("loss" if name == "total" else f"loss_{name}", []).append(value)
            if not math.isfinite(hist["loss"][-1]):
                raise FloatingPointError(f"{cfg.method}: loss became {hist['loss'][-1]} at epoch {ep}")
            i2t, t2i = validation_map(model, data, data.split["val"], train_idx)
            hist["val_map_i2t"].append(i2t)
            hist["val_map_t2i"].append(t2i)
            score = (i2t + t2i) / 2
            if score > best_score:
                best_score, best_epoch, stale, best_state = score, ep, 0, copy.deepcopy(model.state_dict())
            else:
                stale += 1
            bar.set_postfix(loss=f"{hist['loss'][-1]:.3f}", val_i2t=f"{i2t:.3f}", val_t2i=f"{t2i:.3f}")
            if resume_path is not None:
                save_resume(
                    resume_path,
                    RESUME_FORMAT,
                    resume_key,
                    ep,
                    model,
                    opt,
                    gen,
                    hist,
                    best_score,
                    best_epoch,
                    best_state,
                    stale,
                    state=state,
                )
            if stale >= cfg.early_stop_patience:
                break
        model.load_state_dict(best_state)
        model.eval()
    return model, training_record(hist, best_epoch, best_score, t_start, start if saved is not None else None)


@cache
def method_code(method: str) -> tuple[str, ...]:
    """The modules whose source keys a method's codes: its own, the registry, the shared helpers, core.models."""
    return (
        "egath_lite.core.methods",
        *(m for m in CORE_MODULES if m.startswith("egath_lite.core.methods._")),  # _common, _bertadam, ...
        f"egath_lite.core.methods.{method}",
        "egath_lite.core.models",
        "egath_lite.pipeline.methods",  # the loop and TINY_WIDTHS
    )
