"""GPU smoke run: the real-data route at real sizes on one device, through the package, with per-stage timings.

    python scripts/gpu_smoke.py                       # CUDA, 11,000 real-size JPEGs, ViT-B-32
    python scripts/gpu_smoke.py --device cpu --images 300 --model egath-tiny-clip   # a CPU rehearsal

Stages (each prints one line; a JSON summary closes the run):
1. write N MIRFlickr-layout JPEGs of 500x375 / 375x500 / 640x480 / 320x240 (egath_lite.testing.fixtures);
2. save a random-init open_clip model to a checkpoint file and load it back by path (no download);
3. extract the features through the sharded DataLoader pipeline (egath_lite.pipeline.features);
4. one end-to-end fine-tuning epoch on 10,000 training images streamed from disk (finetune_clip);
5. hash training on the frozen features;
6. evaluation at NUS-WIDE scale: Hamming mAP and the continuous-cosine mAP, 2,100 x 184,477.
Everything is written under --runs-root. Budget: 5 minutes on one GPU (the data writing is CPU work).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> int:
    """Run every stage once on the chosen device; exit 1 if CUDA was asked for and is absent."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--images", type=int, default=11_000, help="items written (1,000 queries, the rest train)")
    p.add_argument("--model", default="ViT-B-32", help="open_clip model, random init, saved and loaded by path")
    p.add_argument("--runs-root", default="/tmp/egath_gpu")
    p.add_argument("--batch-size", type=int, default=512, help="extraction batch")
    args = p.parse_args()

    import numpy as np
    import torch

    from egath_lite.clip.weights import load_clip, save_clip_checkpoint
    from egath_lite.metrics import map_from_embeddings, mean_average_precision
    from egath_lite.pipeline.codes import ensure_codes
    from egath_lite.pipeline.config import get_config
    from egath_lite.pipeline.features import ensure_features
    from egath_lite.pipeline.graph import ensure_graph
    from egath_lite.testing.fixtures import write_mirflickr_raw

    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        print("CUDA is not available on this machine", file=sys.stderr)
        return 1
    print(f"torch {torch.__version__}, device {args.device}" + (f" ({torch.cuda.get_device_name(0)})" if cuda else ""))
    timings: dict[str, float] = {}

    def stage(name, fn):
        t = time.perf_counter()
        out = fn()
        if cuda:
            torch.cuda.synchronize()
        timings[name] = round(time.perf_counter() - t, 2)
        print(f"{name:<36} {timings[name]:8.2f} s", flush=True)
        return out

    root = os.path.join(args.runs_root, "data", "mirflickr25k")
    n_query = min(1_000, max(10, args.images // 10))
    stage(
        f"write {args.images} JPEGs (MIRFlickr layout)",
        lambda: write_mirflickr_raw(root, args.images, seed=0, min_label_count=2),
    )
    ckpt = stage(
        f"random {args.model} -> checkpoint file",
        lambda: save_clip_checkpoint(
            load_clip(args.model, None, "cpu", seed=0)[0], os.path.join(args.runs_root, "weights", f"{args.model}.pt")
        ),
    )
    cfg = get_config(
        "default",
        dataset="mirflickr25k",
        data_root=root,
        clip_model=args.model,
        clip_pretrained=str(ckpt),
        num_query=n_query,
        num_train=args.images - n_query,
        vocab_size=1_000,
        extract_batch_size=args.batch_size,
        device=args.device,
        bits=[32],
        runs_root=args.runs_root,
        run_name=f"smoke-{args.model}",
        epochs=5,
        hash_batch_size=128,
    )
    feats = stage("features (sharded DataLoader pipeline)", lambda: ensure_features(cfg))
    m = feats["meta"]
    print(f"  {m['items_per_second']:.0f} items/s ({m['image_seconds']:.1f} s images, {m['text_seconds']:.1f} s texts)")
    stage("label graph", lambda: ensure_graph(cfg))
    tuned = stage(
        f"fine-tuning: 1 epoch on {args.images - n_query} images",
        lambda: ensure_codes(cfg.replace(finetune_clip=True, epochs=1, hash_batch_size=64), 32),
    )
    print(
        f"  {tuned['meta']['seconds_per_epoch']:.1f} s per epoch (with validation: {tuned['meta']['train_seconds']:.1f} s)"
    )
    frozen = stage("hash training, frozen features (5 epochs)", lambda: ensure_codes(cfg, 32))

    rng = np.random.default_rng(0)
    q_labels = (rng.random((2_100, 10)) < 0.18).astype(np.uint8)
    r_labels = (rng.random((184_477, 10)) < 0.18).astype(np.uint8)
    q_labels[q_labels.sum(1) == 0, 0] = 1
    r_labels[r_labels.sum(1) == 0, 0] = 1
    qB = np.where(rng.random((2_100, 32)) < 0.5, -1, 1).astype(np.int8)
    rB = np.where(rng.random((184_477, 32)) < 0.5, -1, 1).astype(np.int8)
    stage("Hamming mAP, 2,100 x 184,477", lambda: mean_average_precision(qB, rB, q_labels, r_labels))
    qX = rng.standard_normal((2_100, 512)).astype(np.float32)
    rX = rng.standard_normal((184_477, 512)).astype(np.float32)
    stage("cosine mAP, 2,100 x 184,477 x 512", lambda: map_from_embeddings(qX, rX, q_labels, r_labels))
    summary = {
        "timings_s": timings,
        "total_s": round(sum(timings.values()), 1),
        "map_32_frozen": {k: round(float(v), 4) for k, v in frozen["meta"].items() if k == "val_map"},
        "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20) if cuda else None,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
