"""Are toy_nuswide's labels learnable from pixels? A small CNN's held-out AP per label against the label prior.

``python benchmarks/learnability_toy_nuswide.py [--size 10000] [--epochs 15] [--device auto] [--out JSON]``

Trains a 4-layer CNN (multi-label BCE, Adam) on 80% of the items and reports the average
precision of each label on the other 20%, beside the prior (the AP of a random ranking).
Minutes on a GPU; about an hour on 2 busy CPU cores. Not a test: a number for RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    """Generate, train, evaluate, print (and optionally save) the per-label APs."""
    import numpy as np
    import torch
    from sklearn.metrics import average_precision_score
    from torch import nn

    from egath_lite.data import generate_toy_nuswide
    from egath_lite.data.reference import NUS_TC10_LABELS
    from egath_lite.utils import resolve_device, seed_everything

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()

    seed_everything(args.seed)
    device = resolve_device(args.device)
    data = generate_toy_nuswide(args.size, seed=args.seed, progress=False)
    x = torch.tensor(data["images"]).permute(0, 3, 1, 2).float().div(255).to(device)
    y = torch.tensor(data["labels"]).float().to(device)
    n_train = int(0.8 * len(x))
    net = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1),
        nn.BatchNorm2d(128),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(128, 128, 3, padding=1),
        nn.BatchNorm2d(128),
        nn.ReLU(),
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Linear(128, len(NUS_TC10_LABELS)),
    ).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    start = time.perf_counter()
    history = []
    for epoch in range(args.epochs):
        net.train()
        perm = torch.randperm(n_train, device=device)
        for i in range(0, n_train, 128):
            batch = perm[i : i + 128]
            loss = nn.functional.binary_cross_entropy_with_logits(net(x[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            scores = torch.cat([net(x[i : i + 512]) for i in range(n_train, len(x), 512)]).cpu().numpy()
        truth = data["labels"][n_train:]
        aps = [float(average_precision_score(truth[:, c], scores[:, c])) for c in range(truth.shape[1])]
        history.append(float(np.mean(aps)))
        print(f"epoch {epoch + 1:2d}  loss {loss.item():.3f}  held-out mAP {history[-1]:.3f}", flush=True)
    priors = data["labels"][n_train:].mean(0)
    print(f"\n{'label':<10} {'prior':>6} {'AP':>6}")
    for name, p, ap in zip(NUS_TC10_LABELS, priors, aps):
        print(f"{name:<10} {p:6.3f} {ap:6.3f}")
    print(f"{'mean':<10} {priors.mean():6.3f} {np.mean(aps):6.3f}   ({time.perf_counter() - start:.0f} s on {device})")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(
                {
                    "labels": NUS_TC10_LABELS,
                    "prior": priors.tolist(),
                    "ap": aps,
                    "map_by_epoch": history,
                    "size": args.size,
                    "epochs": args.epochs,
                    "device": str(device),
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
