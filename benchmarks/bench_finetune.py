"""End-to-end fine-tuning of the CLIP image tower against frozen features, on the toy data, over seeds.

    python benchmarks/bench_finetune.py                       # default preset sizes, seeds 0 1 2, 32 bits
    python benchmarks/bench_finetune.py --preset tiny --seeds 0 --epochs 2
    python benchmarks/bench_finetune.py --decode-once                 # decodes per epoch, before / after

``--decode-once`` times fine-tuning's image path on a MIRFlickr-layout fixture of real-size JPEGs
(500x375, 375x500, 640x480, 320x240): the same hash training run twice in subprocesses, once with
main's code (``--before``, default /work/main: every JPEG decoded in every epoch for its crop and again
for validation) and once with this tree's (``clip.decode_cache``: decoded once), counting the decoder
calls per epoch and timing each epoch, then the data path alone at CLIP's 224 px (decode + crop vs crop
from the cache), single-threaded: the per-core rates the GPU estimate in benchmarks/RESULTS.md uses.

One seed is a whole pipeline (toy data, tiny CLIP, features, graph); for each seed EGATH is trained
twice at the same settings: on the cached features (``finetune_clip=False``) and with the tiny CLIP's
image tower in front of CLIPTrans, trained from the images through the image pipeline
(``finetune_clip=True``, tower at ``lr × finetune_lr_scale``). Prints mean ± std of mAP@all, the
paired difference (E2E − frozen) and the seconds per epoch of each, side by side from one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="default", choices=["tiny", "default"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--bits", type=int, default=32)
    p.add_argument("--epochs", type=int, default=None, help="default: the preset's")
    # the driver's run folders (runs/<preset>-toy_nuswide-s<seed>): the main job's features and codes are reused
    p.add_argument("--runs-root", default=str(REPO / "runs"))
    p.add_argument("--decode-once", action="store_true", help="decodes and seconds per epoch, before / after")
    p.add_argument("--before", default="/work/main", help="--decode-once: the tree of the code before")
    p.add_argument("--items", type=int, default=200, help="--decode-once: fixture items")
    args = p.parse_args(argv)
    if args.decode_once:
        return decode_once(args)

    import torch

    from egath_lite.metrics import mean_average_precision
    from egath_lite.pipeline.codes import ensure_codes
    from egath_lite.pipeline.config import get_config

    rows = []
    for seed in args.seeds:
        extra = {"epochs": args.epochs} if args.epochs else {}
        cfg = get_config(
            args.preset,
            runs_root=args.runs_root,
            run_name=f"{args.preset}-toy_nuswide-s{seed}",
            seed=seed,
            bits=[args.bits],
            num_workers=0,
            **extra,
        )
        for finetune in (False, True):
            t0 = time.perf_counter()
            payload = ensure_codes(cfg.replace(finetune_clip=finetune), args.bits, progress=False)
            t, m = payload["tensors"], payload["meta"]
            qL, rL = t["query_labels"], t["retrieval_labels"]
            row = {
                "seed": seed,
                "finetune_clip": finetune,
                "bits": args.bits,
                "i2t": float(mean_average_precision(t["query_image_codes"], t["retrieval_text_codes"], qL, rL)),
                "t2i": float(mean_average_precision(t["query_text_codes"], t["retrieval_image_codes"], qL, rL)),
                "seconds_per_epoch": m["seconds_per_epoch"],
                "epochs_run": m["epochs_run"],
                "best_epoch": m["best_epoch"],
                "cache_hit": payload["cache_hit"],
                "wall_seconds": time.perf_counter() - t0,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(
        f"\ntoy_nuswide, preset {args.preset}, {args.bits} bits, seeds {args.seeds}, torch threads "
        f"{torch.get_num_threads()} (training runs on one)\n"
    )
    print("| training | I→T | T→I | s / epoch | epochs run |")
    print("|---|---|---|---|---|")

    def ms(values):
        return f"{statistics.mean(values):.4f}" + (f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else "")

    for finetune, name in ((False, "frozen CLIP features"), (True, "end to end (tower trained)")):
        sel = [r for r in rows if r["finetune_clip"] == finetune]
        print(
            f"| {name} | {ms([r['i2t'] for r in sel])} | {ms([r['t2i'] for r in sel])} | "
            f"{statistics.mean(r['seconds_per_epoch'] for r in sel):.1f} | "
            f"{statistics.mean(r['epochs_run'] for r in sel):.1f} |"
        )
    diff = {
        d: [
            next(r[d] for r in rows if r["seed"] == s and r["finetune_clip"])
            - next(r[d] for r in rows if r["seed"] == s and not r["finetune_clip"])
            for s in args.seeds
        ]
        for d in ("i2t", "t2i")
    }
    print(
        f"\npaired difference E2E − frozen: I→T {ms(diff['i2t'])}, T→I {ms(diff['t2i'])} "
        f"(per seed: I→T {[round(x, 4) for x in diff['i2t']]}, T→I {[round(x, 4) for x in diff['t2i']]})"
    )
    return 0


# One hash training with fine-tuning, run in a subprocess against one tree (PYTHONPATH): decodes and time per epoch.
_WORKER = r"""
import json, sys, time
import torch
from egath_lite.clip import images
from egath_lite.pipeline.config import get_config
from egath_lite.pipeline.engine import clip_image_backbone, hash_data, train_egath
from egath_lite.pipeline.features import ensure_features
from egath_lite.pipeline.graph import ensure_graph

cfg = get_config("tiny", **json.loads(sys.argv[1]))
features, graph = ensure_features(cfg, progress=False), ensure_graph(cfg)
backbone = clip_image_backbone(cfg)
data = hash_data(cfg, features, backbone)
calls = [0]
real = images.decode_bytes
def counted(*a, **k):
    calls[0] += 1
    return real(*a, **k)
images.decode_bytes = counted
marks = [(0, time.perf_counter(), time.process_time())]
def on_epoch(epoch, h):
    marks.append((calls[0], time.perf_counter(), time.process_time()))
train_egath(cfg, 16, data, graph["tensors"], backbone, progress=False, on_epoch=on_epoch)
split = data.split
print("RESULT " + json.dumps({
    "decodes": [b[0] - a[0] for a, b in zip(marks, marks[1:])],
    "seconds": [b[1] - a[1] for a, b in zip(marks, marks[1:])],
    "cpu_seconds": [b[2] - a[2] for a, b in zip(marks, marks[1:])],
    "train": len(split["train"]), "val": len(split["val"]), "image_size": list(backbone.prep.size),
    "package": __import__("egath_lite").__file__,
}))
"""


def decode_once(args) -> int:
    """Before / after of decoding each fine-tuning image once, side by side in one run (see the module docstring)."""
    import os
    import subprocess
    import tempfile

    import numpy as np
    import torch

    from egath_lite.clip.decode_cache import cache_side, decode_images
    from egath_lite.clip.images import ImageItems, Preprocess
    from egath_lite.clip.weights import load_clip, save_clip_checkpoint
    from egath_lite.testing.fixtures import write_mirflickr_raw

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="bench_decode_once-") as tmp:
        tmp = Path(tmp)
        info = write_mirflickr_raw(tmp / "mir", args.items, seed=0, min_label_count=2)
        model, _, _ = load_clip("egath-tiny-clip", None, "cpu", seed=0)
        ckpt = save_clip_checkpoint(model, tmp / "clip_random_init.pt")
        num_train = args.items - 20
        fields = dict(
            dataset="mirflickr25k",
            data_root=str(info.root),
            clip_pretrained=str(ckpt),
            num_query=20,
            num_train=num_train,
            vocab_size=64,
            num_workers=0,
            device="cpu",
            epochs=args.epochs or 3,
            hash_batch_size=32,
            early_stop_patience=10,
            finetune_clip=True,
            seed=args.seeds[0],
        )
        # the paper preset validates on 2,000 of MIRFlickr's 9,450 training items: the same share here
        share = 2_000 / 9_450
        runs = {
            "before": (args.before, {**fields, "runs_root": str(tmp / "runs-before")}),
            "after": (
                str(REPO),
                {**fields, "runs_root": str(tmp / "runs-after"), "val_sample_size": round(share * num_train)},
            ),
        }
        out = {}
        for name, (tree, cfg_fields) in runs.items():
            env = {**os.environ, "PYTHONPATH": tree, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
            proc = subprocess.run(
                [sys.executable, "-c", _WORKER, json.dumps(cfg_fields)],
                env=env,
                capture_output=True,
                text=True,
                cwd=tmp,  # python -c puts the working folder first on sys.path: not the tree under test
            )
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            if proc.returncode or not line:
                print(proc.stdout[-2000:], proc.stderr[-3000:])
                raise SystemExit(f"the {name} run failed")
            out[name] = json.loads(line[-1][len("RESULT ") :])
            if not out[name]["package"].startswith(str(Path(tree).resolve())):
                raise SystemExit(f"the {name} run imported {out[name]['package']}, not the tree {tree}")
            print(f"{name} ({tree}): {json.dumps(out[name])}", flush=True)

        # the data path alone at CLIP's 224 px, one thread: decode + crop (before) vs crop from the cache (after)
        prep = Preprocess((224, 224), (0.48, 0.46, 0.41), (0.27, 0.26, 0.28))
        paths = sorted(str(p) for p in (info.root / "mirflickr").glob("im*.jpg"))[:64]
        ids = np.arange(len(paths))
        t0 = time.perf_counter()
        cache = decode_images(paths, ids, [], prep, seed=0, num_workers=0)
        t_build = time.perf_counter() - t0
        every = ImageItems(paths, ids, prep, train=True, seed=0)
        t0 = time.perf_counter()
        for i in ids:
            every[(1, int(i))]
        t_before = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in ids:
            cache.crop_pixels([int(i)], 1)
        t_after = time.perf_counter() - t0

    b, a = out["before"], out["after"]
    n_ep = len(b["decodes"])
    print(
        f"\nMIRFlickr-layout fixture, {args.items} items ({b['train']} train, {b['val']} val, real-size JPEGs), "
        f"tiny CLIP at {b['image_size'][0]} px, 16 bits, {n_ep} epochs, num_workers 0, one thread, seed "
        f"{args.seeds[0]}; validation retrieves from {round(share * num_train)} sampled "
        f"training items after, all {b['train']} before\n"
    )
    print("| epoch | decodes before | decodes after | s before | s after | CPU s before | CPU s after |")
    print("|---|---|---|---|---|---|---|")
    for e in range(n_ep):
        print(
            f"| {e} | {b['decodes'][e]} | {a['decodes'][e]} | {b['seconds'][e]:.2f} | {a['seconds'][e]:.2f} | "
            f"{b['cpu_seconds'][e]:.2f} | {a['cpu_seconds'][e]:.2f} |"
        )
    later_b, later_a = statistics.mean(b["cpu_seconds"][1:]), statistics.mean(a["cpu_seconds"][1:])
    print(
        f"\nlater epochs: {statistics.mean(b['decodes'][1:]):.0f} → {statistics.mean(a['decodes'][1:]):.0f} decodes, "
        f"CPU {later_b:.2f} → {later_a:.2f} s ({later_b / later_a:.1f}x); all epochs: "
        f"{sum(b['decodes'])} → {sum(a['decodes'])} decodes, CPU {sum(b['cpu_seconds']):.2f} → "
        f"{sum(a['cpu_seconds']):.2f} s"
    )
    print(
        f"\ndata path at 224 px, {len(paths)} images, one thread: decode + train crop {1e3 * t_before / len(paths):.2f} "
        f"ms/img ({len(paths) / t_before:.0f} img/s per core); crop from the cache {1e3 * t_after / len(paths):.2f} "
        f"ms/img ({len(paths) / t_after:.0f} img/s); building the cache (decode + resize to {cache_side(prep)} px) "
        f"{1e3 * t_build / len(paths):.2f} ms/img; cache {cache.nbytes / len(paths) / 1024:.0f} KiB/img"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
