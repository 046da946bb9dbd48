"""Generation rate of toy_nuswide on one core: ``python benchmarks/bench_toy_nuswide.py [--size N] [--repeats R]``.

Prints items/s by wall clock and by process CPU time (the CPU figure is what one core
delivers even on a busy shared machine). Generation only, no cache, labels + images + tags;
the numba kernels are compiled (or loaded from numba's cache) before timing.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core, before numpy/numba load

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402


def main() -> None:
    """Time generate_toy_nuswide and print the rates."""
    from egath_lite.data import GENERATOR_VERSION, generate_toy_nuswide

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=10_000, help="items per run (default: the default size)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    generate_toy_nuswide(256, seed=123, image_size=args.image_size, progress=False)  # compile / load kernels
    walls, cpus = [], []
    for r in range(args.repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        generate_toy_nuswide(args.size, seed=r, image_size=args.image_size, progress=False)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    cpu_name = platform.processor() or platform.machine()
    print(
        f"toy_nuswide generator v{GENERATOR_VERSION}: {args.size:,} items at {args.image_size}x{args.image_size}, "
        f"{args.repeats} runs, one thread ({cpu_name}, {os.cpu_count()} cores visible)"
    )
    for label, times in (("wall", walls), ("cpu ", cpus)):
        median = sorted(times)[len(times) // 2]
        print(f"  {label}: best {args.size / min(times):,.0f} items/s, median {args.size / median:,.0f} items/s")


if __name__ == "__main__":
    main()
