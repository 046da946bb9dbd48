"""The driver's grid with notebooks 01-03 shared between the cells of a run, against every cell running all five.

    python benchmarks/bench_driver_share.py                                   # egath, djsrh, dchmt on a small toy set
    python benchmarks/bench_driver_share.py --methods egath dcmh --size 1200  # the tiny preset's toy set

Both invocations start from an empty runs root each (the tiny CLIP, features, graph and classifiers are computed in
both), one after the other in this process: "unshared" as the driver ran before, every cell running the five notebooks
(``egath_lite.driver.cli.shared_key`` returning None) and notebook 04 writing EGATH out for every method
(``EGATH_BY_HAND = True``), then "shared" (the driver as it is). Printed: each one's wall time, each notebook's seconds
per cell, the ratio, and whether the two results tables are identical (they must be: a shared cell reads the
artifacts its own 01-03 would have reloaded, and 04's skipped sections train nothing that is kept).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def invocation(argv: list[str], runs_root: Path, shared: bool) -> dict:
    """One driver invocation; its wall seconds, per-cell notebook seconds and results table."""
    from egath_lite.driver import cli
    from egath_lite.files import read_json

    real, run_notebook = cli.shared_key, cli.run_notebook
    if not shared:

        def run_all(name, executed_dir, parameters, **kwargs):
            extra = {"EGATH_BY_HAND": True} if name == "04_hash_learning" else {}
            return run_notebook(name, executed_dir, {**parameters, **extra}, **kwargs)

        cli.shared_key, cli.run_notebook = (lambda cfg: None), run_all
    out = io.StringIO()
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out):
            rc = cli.main([*argv, "--runs-root", str(runs_root)])
    finally:
        cli.shared_key, cli.run_notebook = real, run_notebook
    wall = time.perf_counter() - start
    text = out.getvalue()
    if rc != 0:
        raise SystemExit(f"the driver failed (exit {rc}):\n{text[-3000:]}")
    timings = read_json(Path(text.split("\ntimings:")[1].split()[0]))["invocations"][-1]
    cells = [read_json(p)["meta"] for p in timings["cells"]]
    table = text.rsplit("mAP@all (Hamming ranking", 1)[1].split("\n\n")[1]
    return {"wall": wall, "cells": cells, "table": table}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=["egath", "djsrh", "dchmt"])
    p.add_argument("--size", type=int, default=400, help="toy items (the tiny preset: 1200)")
    p.add_argument("--bits", default="16")
    args = p.parse_args(argv)
    small = {"toy_size": args.size, "num_query": args.size // 8, "num_train": args.size // 2, "vocab_size": 64}
    small |= {"clip_epochs": 1, "gat_epochs": 2}
    driver = ["--preset", "tiny", "--device", "cpu", "--bits", args.bits, "--epochs", "2", "--methods", *args.methods]
    driver += [x for k, v in small.items() for x in ("--set", f"{k}={v}")]
    print(f"driver {' '.join(driver)}\n(each invocation from an empty runs root; unshared first, then shared)")
    runs = {}
    with tempfile.TemporaryDirectory(prefix="bench-share-") as tmp:
        for name, share in (("unshared", False), ("shared", True)):
            runs[name] = invocation(driver, Path(tmp) / name, share)
            print(f"{name:>9}: {runs[name]['wall']:.0f} s", flush=True)
    from egath_lite.driver.cli import NOTEBOOKS

    print(f"\n{'cell':<10}" + "".join(f"{n[:2]:>9}" for n in NOTEBOOKS) + "   (seconds; unshared / shared)")
    for a, b in zip(runs["unshared"]["cells"], runs["shared"]["cells"]):
        tag = a["method"] if a["method"] != "egath" else a["variant"]
        row = [
            f"{a['stage_seconds'].get(n, 0):4.0f}/{b['stage_seconds'][n]:<4.0f}"
            if n in b["stage_seconds"]
            else f"{a['stage_seconds'].get(n, 0):4.0f}/-   "
            for n in NOTEBOOKS
        ]
        print(f"{tag:<10}" + "".join(f"{x:>9}" for x in row))
    ratio = runs["unshared"]["wall"] / runs["shared"]["wall"]
    same = runs["unshared"]["table"] == runs["shared"]["table"]
    print(f"\nwall: unshared {runs['unshared']['wall']:.0f} s, shared {runs['shared']['wall']:.0f} s: {ratio:.2f}x")
    print(f"results tables identical: {same}\n{runs['shared']['table']}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
