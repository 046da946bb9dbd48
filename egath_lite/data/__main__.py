"""``python -m egath_lite.data [--dataset NAME|MANIFEST] [--size N|tiny|default] [--out PNG]``: summary, example grid."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from egath_lite.errors import run_main

PROG = "python -m egath_lite.data"
GRID_KEY = "egath_lite data set"  # the PNG text field naming the data set (fingerprint) an example grid shows


def main(argv: list[str] | None = None) -> int:
    """Print the dataset summary and write a grid of example images with their tags (2 and one line on a mistake)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_main(PROG, lambda: _main(argv), debug="--debug" in argv)


def _main(argv: list[str]) -> int:
    from egath_lite.data import available_datasets, is_manifest_path, load_dataset

    parser = argparse.ArgumentParser(prog="python -m egath_lite.data", description=__doc__)
    parser.add_argument(
        "--dataset",
        default="toy_nuswide",
        help=f"one of {available_datasets()}, or the path of your own .csv / .jsonl manifest",
    )
    parser.add_argument("--root", default=None, help="folder of a real benchmark (default: data/<dataset>)")
    parser.add_argument("--size", default="default", help="toy_nuswide: number of items, 'tiny' or 'default'")
    parser.add_argument("--seed", type=int, default=0, help="toy_nuswide: generator seed")
    parser.add_argument("--image-size", type=int, default=64, help="toy_nuswide: image side in pixels")
    parser.add_argument("--out", default="runs/data_examples.png", help="where to write the example grid (PNG)")
    parser.add_argument("--examples", type=int, default=24, help="number of example images in the grid")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error instead of one line")
    args = parser.parse_args(argv)
    if not is_manifest_path(args.dataset) and args.dataset not in available_datasets():
        parser.error(f"--dataset {args.dataset!r}: use one of {available_datasets()} or a .csv / .jsonl manifest")

    if args.dataset == "toy_nuswide":
        size = int(args.size) if args.size.isdigit() else args.size
        ds = load_dataset("toy_nuswide", size=size, seed=args.seed, image_size=args.image_size)
        hit = "cache hit" if ds.info["cache_hit"] else f"generated in {ds.info['generate_seconds']:.1f} s"
        print(f"[{hit}: {ds.info['cache_path']}]")
    elif is_manifest_path(args.dataset):
        ds = load_dataset(args.dataset)
    else:
        ds = load_dataset(args.dataset, root=args.root)
    print(ds.format_summary())
    print(f"example grid: {write_example_grid(ds, args.out, args.examples)}")
    return 0


def write_example_grid(ds, out: str | Path, examples: int = 24, fingerprint: str | None = None) -> Path:
    """Save a grid of ``examples`` images of ``ds`` with their labels and tags as a PNG; return its path.

    ``fingerprint`` (the data set's) is written into the PNG's text (``GRID_KEY``): the driver leaves a grid of
    the same data set alone."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from egath_lite.files import atomic_write_bytes
    from egath_lite.plots.data import example_grid

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cols = 6
    fig = example_grid(ds, cols=cols, rows=max(1, -(-examples // cols)))
    meta = {GRID_KEY: fingerprint} if fingerprint else None
    atomic_write_bytes(out, lambda f: fig.savefig(f, format="png", dpi=110, metadata=meta))  # never half a PNG
    plt.close(fig)
    return out


if __name__ == "__main__":
    sys.exit(main())
