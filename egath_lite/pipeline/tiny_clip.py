"""The tiny CLIP stage: the offline CLIP trained on the toy training split (``egath_lite.clip.tiny``), saved
as an open_clip checkpoint and loaded back by path like real weights.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from egath_lite.clip.tiny import PREPROCESS_VERSION, train_tiny_clip
from egath_lite.files import ArtifactError, atomic_write_bytes
from egath_lite.pipeline.config import DATA_FIELDS, Config
from egath_lite.pipeline.stages import FORMAT, Stage


def _architecture(cfg: Config) -> dict[str, Any]:
    """data set fingerprint, architecture JSON digest, preprocessing version"""
    # The shipped architecture JSON is part of the key: editing it must not reuse an old checkpoint.
    from egath_lite.clip.weights import MODEL_CONFIG_DIR
    from egath_lite.data import dataset_fingerprint

    arch = MODEL_CONFIG_DIR / f"{cfg.clip_model}.json"
    return {
        "data": dataset_fingerprint(cfg),
        "preprocess": PREPROCESS_VERSION,
        "architecture": hashlib.sha256(arch.read_bytes()).hexdigest()[:16] if arch.is_file() else None,
    }


def _save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    # open_clip loads {"state_dict": ...} by path; the record travels as one JSON string (weights_only-safe).
    record = {k: v for k, v in payload.items() if k != "tensors"}
    ckpt = {"state_dict": payload["tensors"], "egath_lite": {"format": FORMAT, "json": json.dumps(record)}}
    atomic_write_bytes(path, lambda f: torch.save(ckpt, f))


def _load_checkpoint(path: Path) -> dict[str, Any]:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    info = ckpt.get("egath_lite") if isinstance(ckpt, dict) else None
    if not isinstance(info, dict) or "json" not in info or not isinstance(ckpt.get("state_dict"), dict):
        raise ArtifactError("not an egath_lite tiny CLIP checkpoint (no 'egath_lite' record or 'state_dict')")
    return {**json.loads(info["json"]), "tensors": ckpt["state_dict"]}


TINY_CLIP_STAGE = Stage(
    "tiny_clip",
    fields=DATA_FIELDS + ("clip_model", "clip_epochs", "clip_lr", "clip_batch_size"),
    version="2",
    extra=_architecture,
    codec=(_save_checkpoint, _load_checkpoint),
    description="the offline tiny CLIP, trained on the toy training split (an open_clip checkpoint)",
)


def ensure_tiny_clip(cfg: Config, force: bool = False, progress: bool = True) -> tuple[Path, dict[str, Any]]:
    """Train the tiny CLIP on the training split, train ∪ val (or reuse its checkpoint): ``(path, info)``."""

    def compute() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        from egath_lite.clip.weights import load_clip
        from egath_lite.data import dataset_from_config, split_from_config

        ds = dataset_from_config(cfg)
        _, train, val, _ = split_from_config(ds, cfg)
        # The whole training split: validation items are training items too (they steer early stopping
        # of later stages, never a reported number); the query items stay unseen.
        train_idx = np.sort(np.concatenate([train, val]))
        images = _in_memory_images(ds)
        model, _, tokenizer = load_clip(cfg.clip_model, None, cfg.device, seed=cfg.seed)
        history = train_tiny_clip(
            model,
            images[train_idx],
            [ds.texts[i] for i in train_idx],
            tokenizer,
            epochs=cfg.clip_epochs,
            lr=cfg.clip_lr,
            batch_size=cfg.clip_batch_size,
            seed=cfg.seed,
            progress=progress,
        )
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        return state, {"model": cfg.clip_model, "dataset": cfg.dataset, "history": history}

    payload = TINY_CLIP_STAGE.run(cfg, compute, force=force)
    return Path(payload["path"]), {**payload["meta"], "key": payload["key"], "cache_hit": payload["cache_hit"]}


def _in_memory_images(ds: Any) -> np.ndarray:
    images = getattr(ds, "images", None)
    if images is None:
        raise ValueError(
            f"dataset {ds.name!r} has no in-memory images; the tiny CLIP is trained on toy_nuswide only. "
            f"For real benchmarks use real CLIP weights, e.g. MODEL='ViT-B-32', PRETRAINED='openai'"
        )
    return images
