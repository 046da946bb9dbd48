"""End-to-end fine-tuning of the CLIP image tower against frozen features, on the toy data, over seeds.

    python benchmarks/bench_finetune.py                       # default preset sizes, seeds 0 1 2, 32 bits
    python benchmarks/bench_finetune.py --preset tiny --seeds 0 --epochs 2

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
    args = p.parse_args(argv)

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


if __name__ == "__main__":
    sys.exit(main())
