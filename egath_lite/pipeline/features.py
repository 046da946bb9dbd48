"""Stage 1: CLIP features of every item, with the bag-of-words, labels and split (notebook 01).

The artifact ``features-<key>.pt`` holds L2-normalised image and text embeddings float32
(N, D), the binary bag-of-words uint8 (N, V), labels float32 (N, C) and the split indices.
Its key covers the data (fields and the data set's fingerprint), the model, the weights (a
tag, a checkpoint's content digest, or the tiny CLIP stage's key) and the preprocessing.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from egath_lite.clip.sharded import cleanup_shards, encode_images_sharded
from egath_lite.clip.tiny import PREPROCESS_VERSION
from egath_lite.clip.weights import load_clip, weights_fingerprint
from egath_lite.pipeline import distributed
from egath_lite.pipeline.artifacts import run_dir
from egath_lite.pipeline.config import DATA_FIELDS, Config
from egath_lite.pipeline.results import Features, training_split  # noqa: F401  (training_split: notebook 03 imports it from here)
from egath_lite.pipeline.stages import Stage, shape_problems
from egath_lite.pipeline.tiny_clip import TINY_CLIP_STAGE, ensure_tiny_clip

FEATURE_TENSORS = ("image_emb", "text_emb", "bow", "labels", "query_idx", "train_idx", "val_idx", "retrieval_idx")


def _inputs(cfg: Config) -> dict[str, Any]:
    """data set fingerprint, weights (tag or file digest), preprocessing version"""
    from egath_lite.data import dataset_fingerprint

    return {"data": dataset_fingerprint(cfg), "weights": weights_fingerprint(cfg), "preprocess": PREPROCESS_VERSION}


def _expect(cfg: Config, params: dict[str, Any], payload: dict[str, Any]) -> list[str]:
    t, meta = payload["tensors"], payload["meta"]
    n = t["labels"].shape[0] if t["labels"].dim() == 2 else -1
    problems = shape_problems(
        t,
        {
            "image_emb": ((n, None), torch.float32),
            "text_emb": ((n, None), torch.float32),
            "bow": ((n, None), torch.uint8),
            "labels": ((n, len(meta.get("label_names", []))), torch.float32),
            **{f"{s}_idx": ((None,), torch.int64) for s in ("query", "train", "val", "retrieval")},
        },
    )
    if problems:
        return problems
    if t["bow"].shape[1] > cfg.vocab_size:
        problems.append(f"bow has {t['bow'].shape[1]} columns, more than vocab_size {cfg.vocab_size}")
    if cfg.num_query is not None and len(t["query_idx"]) != cfg.num_query:
        problems.append(f"{len(t['query_idx'])} query items, the key promises num_query={cfg.num_query}")
    if cfg.num_train is not None and len(t["train_idx"]) + len(t["val_idx"]) != cfg.num_train:
        problems.append(
            f"{len(t['train_idx'])} training + {len(t['val_idx'])} validation items, the key promises "
            f"num_train={cfg.num_train}"
        )
    for name in ("query_idx", "train_idx", "val_idx", "retrieval_idx"):
        if len(t[name]) and (t[name].min() < 0 or t[name].max() >= n):
            problems.append(f"{name} points outside the {n} items")
    return problems


FEATURES_STAGE = Stage(
    "features",
    fields=DATA_FIELDS + ("vocab_size", "clip_model", "image_decoder"),
    version="2",
    upstream=lambda cfg: (TINY_CLIP_STAGE,) if cfg.clip_pretrained == "train" else (),
    extra=_inputs,
    tensors=FEATURE_TENSORS,
    expect=_expect,
    description="CLIP image and text embeddings, bag-of-words, labels and split of every item",
)


def resolve_pretrained(cfg: Config, progress: bool = True) -> tuple[str | None, dict[str, Any] | None]:
    """``cfg.clip_pretrained`` as load_clip takes it (training the tiny CLIP for 'train'), plus the training info."""
    if cfg.clip_pretrained == "train":
        path, info = ensure_tiny_clip(cfg, progress=progress)
        return str(path), info
    return cfg.clip_pretrained, None


def ensure_features(cfg: Config, force: bool = False, progress: bool = True) -> Features:
    """The features artifact of ``cfg``: reused when valid, else extracted (training the tiny CLIP if asked)."""

    def compute() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        from egath_lite.data import bag_of_words, build_vocabulary, dataset_from_config, split_from_config

        ds = dataset_from_config(cfg)
        query, train, val, retrieval = split_from_config(ds, cfg)
        labels = np.asarray(ds.labels, dtype=np.float32)
        empty = int((labels.sum(1) == 0).sum())
        if empty:
            raise ValueError(
                f"{empty} items of {cfg.dataset!r} have no label; set drop_unlabeled=True "
                f"(driver: --set drop_unlabeled=true) to drop them: 'shares a label' is undefined for them"
            )
        # a manifest of captions leaves English stop words out of the vocabulary (data/manifest.py); others: none
        vocab = build_vocabulary(ds.texts, train, cfg.vocab_size, stop_words=ds.info.get("bow_stop_words", ()))
        bow = np.asarray(bag_of_words(ds.texts, vocab)).astype(np.uint8)  # binary: one byte per entry, not four
        pretrained, clip_train = resolve_pretrained(cfg, progress)
        model, _, tokenizer = load_clip(cfg.clip_model, pretrained, cfg.device, seed=cfg.seed)
        feats = _extract(cfg, model, tokenizer, ds, progress)
        if feats is None:  # a rank other than 0: its shards are on disk, rank 0 writes the artifact
            return None, {}
        tensors = {
            "image_emb": torch.from_numpy(feats["image_emb"]),
            "text_emb": torch.from_numpy(feats["text_emb"]),
            "bow": torch.from_numpy(bow),
            "labels": torch.from_numpy(labels),
            "query_idx": _idx(query),
            "train_idx": _idx(train),
            "val_idx": _idx(val),
            "retrieval_idx": _idx(retrieval),
        }
        meta = {
            "label_names": list(ds.label_names),
            "vocab": list(vocab),
            "dataset": cfg.dataset,
            "clip_model": cfg.clip_model,
            "clip_pretrained": cfg.clip_pretrained,
            "weights": weights_fingerprint(cfg),
            "clip_checkpoint": pretrained if cfg.clip_pretrained == "train" else None,
            "extract_seconds": feats["seconds"],
            "items_per_second": feats["items_per_second"],
            "image_seconds": feats["image_seconds"],
            "text_seconds": feats["text_seconds"],
            "image_shards": feats["shards"],
            "device": str(next(model.parameters()).device),
            "normalized": True,
            "preprocess": PREPROCESS_VERSION,
            "clip_train": None
            if clip_train is None
            else {
                "cache_hit": clip_train["cache_hit"],
                **{
                    k: clip_train["history"][k]
                    for k in ("seconds", "seconds_per_epoch", "epoch_loss", "step_loss", "steps_per_epoch", "num_pairs")
                },
            },
        }
        return tensors, meta

    payload = Features(distributed.stage_on_rank0(FEATURES_STAGE, cfg, compute, force=force))
    if (
        not payload["cache_hit"] and distributed.is_main()
    ):  # the artifact holds every row now: the shards have served their purpose
        cleanup_shards(shard_folder(cfg), shard_key(cfg))
    return payload


def shard_key(cfg: Config) -> str:
    """The features key with the image files left out of the data set's fingerprint: each shard checks its own
    files (size, mtime), so replacing a broken image recomputes only the shard that holds it."""
    from egath_lite.data import dataset_fingerprint
    from egath_lite.pipeline.config import digest

    parts = FEATURES_STAGE.key_parts(cfg)
    parts["extra"] = {**parts["extra"], "data": dataset_fingerprint(cfg, images=False)}
    return digest(parts)


def shard_folder(cfg: Config) -> Path:
    """``<run>/image_shards``: where an extraction keeps its finished shards until the artifact is written."""
    return run_dir(cfg) / "image_shards"


def _extract(cfg: Config, model: torch.nn.Module, tokenizer: Any, ds: Any, progress: bool) -> dict[str, Any]:
    """Image embeddings through the sharded DataLoader pipeline (resumable), then the text embeddings."""
    from egath_lite.clip.encode import encode_texts
    from egath_lite.clip.images import ImageItems

    device = next(model.parameters()).device
    items = ImageItems(ds, None, model, decoder=cfg.image_decoder)
    shards: dict[str, Any] = {}
    t0 = time.perf_counter()
    encode = functools.partial(  # the sharded image encoding of this data set (resumable: shards are files)
        encode_images_sharded,
        model,
        items,
        shard_folder(cfg),
        shard_key(cfg),
        shard_size=cfg.extract_shard_size,
        batch_size=cfg.extract_batch_size,
        num_workers=cfg.num_workers,
        device=device,
        progress=progress,
    )
    if distributed.world_size() > 1:  # torchrun: each rank encodes its shards, rank 0 then reuses them all
        w, r = distributed.world_size(), distributed.rank()
        encode(only=lambda s: s % w == r)
        distributed.barrier()
        if not distributed.is_main():
            return None
    image_emb = encode(info=shards)
    t1 = time.perf_counter()
    text_emb = encode_texts(model, tokenizer, list(ds.texts), cfg.extract_batch_size, device, progress)
    t2 = time.perf_counter()
    return {
        "image_emb": image_emb,
        "text_emb": text_emb,
        "seconds": t2 - t0,
        "image_seconds": t1 - t0,
        "text_seconds": t2 - t1,
        "items_per_second": len(ds) / max(t2 - t0, 1e-9),
        "shards": shards,
    }


def _idx(a: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.int64))


def encode_label_prompts(cfg: Config, label_names: list[str], template: str = "a photo of a {}") -> np.ndarray:
    """CLIP text embeddings of ``template.format(name)`` per label: float32 (C, D), L2-normalised."""
    from egath_lite.clip.encode import encode_texts

    if "{}" not in template:
        raise ValueError(f"template {template!r} needs a '{{}}' where the label name goes")
    if len(label_names) == 0:
        raise ValueError("no label names given")
    pretrained, _ = resolve_pretrained(cfg, progress=False)
    model, _, tokenizer = load_clip(cfg.clip_model, pretrained, cfg.device, seed=cfg.seed)
    prompts = [template.format(name.replace("_", " ")) for name in label_names]
    return encode_texts(model, tokenizer, prompts, batch_size=max(1, len(prompts)), progress=False)
