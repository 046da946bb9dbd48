"""Benchmark of the feature stage: tiny-CLIP training seconds/epoch, extraction items/s, retrieval mAP before/after.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_features.py --preset default

Prints a markdown section for benchmarks/RESULTS.md and writes the numbers to
``<runs_root>/<run_name>/bench_features.json``. mAP is mAP@all of a cosine ranking of the
continuous embeddings (query split vs retrieval split; relevant = shares a label;
queries without a relevant item skipped), the same embeddings the later stages use.
"""

from __future__ import annotations

import argparse
import platform

import numpy as np
import torch

from egath_lite.clip.encode import extract_features
from egath_lite.clip.weights import load_clip
from egath_lite.data import dataset_from_config
from egath_lite.files import write_json
from egath_lite.metrics import map_from_embeddings
from egath_lite.pipeline.artifacts import run_dir
from egath_lite.pipeline.config import get_config
from egath_lite.pipeline.features import ensure_features
from egath_lite.pipeline.tiny_clip import ensure_tiny_clip


def retrieval_maps(
    image_emb: np.ndarray, text_emb: np.ndarray, labels: np.ndarray, query: np.ndarray, retrieval: np.ndarray
) -> dict[str, float]:
    """I→T and T→I mAP@all (cosine) of query items against retrieval items."""
    return {
        "i2t": map_from_embeddings(image_emb[query], text_emb[retrieval], labels[query], labels[retrieval]),
        "t2i": map_from_embeddings(text_emb[query], image_emb[retrieval], labels[query], labels[retrieval]),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default", choices=["tiny", "default"])
    parser.add_argument("--runs-root", default="runs")
    parser.add_argument("--run-name", default=None, help="default: bench_features_<preset>")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--retrain", action="store_true", help="retrain the tiny CLIP even when its checkpoint exists")
    args = parser.parse_args(argv)

    cfg = get_config(
        args.preset,
        run_name=args.run_name or f"bench_features_{args.preset}",
        runs_root=args.runs_root,
        device=args.device,
    )
    path, info = ensure_tiny_clip(cfg, force=args.retrain)
    hist = info["history"]
    # force=True: extraction is timed now, on this machine (the tiny CLIP checkpoint is reused).
    payload = ensure_features(cfg, force=True)
    T, meta = payload["tensors"], payload["meta"]
    labels = T["labels"].numpy()
    query, retrieval = T["query_idx"].numpy(), T["retrieval_idx"].numpy()
    after = retrieval_maps(T["image_emb"].numpy(), T["text_emb"].numpy(), labels, query, retrieval)

    ds = dataset_from_config(cfg)
    model, preprocess, tokenizer = load_clip(cfg.clip_model, None, cfg.device, seed=cfg.seed)
    init = extract_features(model, preprocess, tokenizer, ds.images, list(ds.texts), cfg.extract_batch_size)
    before = retrieval_maps(init["image_emb"], init["text_emb"], labels, query, retrieval)
    rng = np.random.default_rng(0)  # the label prior: what a ranking that ignores content scores
    noise = rng.standard_normal((len(labels), 16)).astype(np.float32)
    prior = map_from_embeddings(noise[query], noise[retrieval], labels[query], labels[retrieval])

    out = {
        "preset": cfg.preset,
        "device": meta["device"],
        "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        "num_items": int(len(labels)),
        "num_train_pairs": hist["num_pairs"],
        "clip_epochs": hist["epochs"],
        "clip_batch_size": hist["batch_size"],
        "clip_lr": hist["lr"],
        "clip_train_seconds": hist["seconds"],
        "clip_seconds_per_epoch": hist["seconds_per_epoch"],
        "clip_train_cache_hit": info["cache_hit"],
        "clip_epoch_loss": hist["epoch_loss"],
        "extract_seconds": meta["extract_seconds"],
        "items_per_second": meta["items_per_second"],
        "image_seconds": meta["image_seconds"],
        "text_seconds": meta["text_seconds"],
        "map_before": before,
        "map_after": after,
        "map_label_prior": prior,
        "checkpoint": str(path),
    }
    write_json(run_dir(cfg) / "bench_features.json", out)
    print(markdown(out))
    return out


def markdown(r: dict) -> str:
    """The RESULTS.md section for these numbers."""
    return "\n".join(
        [
            f"## Feature stage (tiny CLIP, preset `{r['preset']}`, {r['device']}, {r['torch_threads']} torch threads)",
            "",
            "| quantity | value |",
            "| --- | --- |",
            f"| tiny-CLIP training | {r['clip_epochs']} epochs × {r['num_train_pairs']:,} pairs, batch {r['clip_batch_size']}, "
            f"lr {r['clip_lr']:g}: {r['clip_train_seconds']:.1f} s ({r['clip_seconds_per_epoch']:.1f} s/epoch)"
            + (" (cached checkpoint)" if r["clip_train_cache_hit"] else "")
            + " |",
            f"| loss per epoch | {', '.join(f'{v:.3f}' for v in r['clip_epoch_loss'])} |",
            f"| extraction | {r['num_items']:,} items in {r['extract_seconds']:.1f} s = **{r['items_per_second']:.0f} items/s** "
            f"(images {r['image_seconds']:.1f} s, texts {r['text_seconds']:.1f} s) |",
            f"| I→T mAP@all, cosine | random init {r['map_before']['i2t']:.3f} → trained **{r['map_after']['i2t']:.3f}** |",
            f"| T→I mAP@all, cosine | random init {r['map_before']['t2i']:.3f} → trained **{r['map_after']['t2i']:.3f}** |",
            f"| label prior (random ranking) | {r['map_label_prior']:.3f} |",
        ]
    )


if __name__ == "__main__":
    main()
