"""GPU smoke run: the `default` preset's stages on CUDA, through the package, with per-stage timings.

    python scripts/gpu_smoke.py [--preset default] [--runs-root /tmp/egath_gpu] [--device cuda]

Runs the same stage functions the notebooks call (data -> features -> graph -> GAT -> codes ->
mAP), so it needs no Jupyter kernel; prints one line per stage and a JSON summary at the end.
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
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="default")
    p.add_argument("--runs-root", default="/tmp/egath_gpu")
    p.add_argument("--device", default="cuda")
    args = p.parse_args()

    import torch

    from egath_lite.config import get_config
    from egath_lite.data import dataset_from_config
    from egath_lite.features import ensure_features
    from egath_lite.graph import ensure_graph
    from egath_lite.metrics import mean_average_precision
    from egath_lite.classifier import ensure_gat
    from egath_lite.codes import ensure_codes

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("CUDA is not available on this machine", file=sys.stderr)
        return 1
    cfg = get_config(args.preset, run_name=f"gpu-{args.preset}", runs_root=args.runs_root, device=args.device)
    print(f"torch {torch.__version__}, device {args.device}"
          + (f" ({torch.cuda.get_device_name(0)})" if args.device.startswith("cuda") else ""))
    timings: dict[str, float] = {}

    def stage(name, fn):
        t = time.perf_counter()
        out = fn()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        timings[name] = round(time.perf_counter() - t, 2)
        print(f"{name:<24} {timings[name]:8.2f} s", flush=True)
        return out

    stage("data (toy_nuswide)", lambda: dataset_from_config(cfg))
    stage("features (CLIP)", lambda: ensure_features(cfg))
    stage("label graph", lambda: ensure_graph(cfg))
    stage("GAT classifier", lambda: ensure_gat(cfg))
    maps = {}
    for bits in cfg.bits:
        codes = stage(f"hash learning {bits} bits", lambda b=bits: ensure_codes(cfg, b))["tensors"]

        def evaluate(c=codes):
            return (mean_average_precision(c["query_image_codes"], c["retrieval_text_codes"],
                                           c["query_labels"], c["retrieval_labels"]),
                    mean_average_precision(c["query_text_codes"], c["retrieval_image_codes"],
                                           c["query_labels"], c["retrieval_labels"]))

        i2t, t2i = stage(f"evaluation {bits} bits", evaluate)
        maps[bits] = {"i2t": round(float(i2t), 4), "t2i": round(float(t2i), 4)}
        print(f"  mAP@all {bits} bits: I→T {i2t:.4f}  T→I {t2i:.4f}")
    if args.device.startswith("cuda"):
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    print(json.dumps({"timings_s": timings, "map": maps, "total_s": round(sum(timings.values()), 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
