"""The machinery at real sizes (issue 22): fingerprint, load, stage keys and a features artifact, old code vs new.

    python benchmarks/bench_scale.py                                   # 20k and 50k items, NUS-WIDE and MS-COCO
    python benchmarks/bench_scale.py --sizes 20000 50000 full          # "full": 186,577 (NUS) / 122,218 (COCO)
    python benchmarks/bench_scale.py --old /work/main --json out.json --markdown out.md
    python benchmarks/bench_scale.py --threads 4096                    # texts/s at 1 and 2 torch threads

Data: NUS-WIDE TC-10 in GCDH's ``.mat`` layout (tagList.mat as MATLAB v7.3) and MS-COCO 2014's JSON
layout, written by ``egath_lite.testing.fixtures`` at the real file layout and counts; every image is
the same tiny JPEG (the loaders stat images, never decode them here). Each step runs in its own
subprocess, so that its peak resident memory (``ru_maxrss``) is its own, once with the code under
``--old`` on ``PYTHONPATH`` (before) and once with this checkout's (after), side by side on the same files:

* ``fingerprint``: the data set's fingerprint, first call in a fresh process (a stat of every image);
* ``keys``: the features / graph / codes / results stage keys after a first fingerprint, as a notebook
  computes them (before: each re-fingerprints the tree; after: one stat pass per session);
* ``load``: ``dataset_from_config`` in a fresh process and fresh runs root (after: writes the bundle);
* ``reopen``: the same call in another fresh process (after: opens the bundle);
* ``artifact save`` / ``artifact open``: a features-shaped artifact (image and text embeddings, N x 512
  float32) written, then opened and verified (checksum, finiteness) in a fresh process.

Correctness is checked, never timed: old and new code give the same fingerprint and keys (the key
format is unchanged), the reopened data set equals the loaded one (labels, texts, image paths), and the
opened artifact equals the saved one. ``--inline`` runs every step in this process with the new code
only (the CI test: correctness at a small size; no timing or memory figure is meaningful then).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FULL = {"nuswide_tc10": 186_577, "mscoco": 122_218}
STEPS = ("fingerprint", "keys", "load", "reopen", "artifact_save", "artifact_open")
DATA_STEPS = ("fingerprint", "load", "reopen")  # run without torch imported: their memory is the data's
DIM = 512


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------
def write_data(dataset: str, n: int, root: Path) -> float:
    """Write the fixture (tiny identical JPEGs); returns seconds."""
    import io

    import numpy as np
    from PIL import Image

    from egath_lite.testing import fixtures

    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(buf, "JPEG")
    jpeg = buf.getvalue()

    folders: set[str] = set()

    def write_jpeg(path: Path, size, rng, quality: int = 80) -> None:  # one file per item, no encoding
        name = str(path)
        folder = os.path.dirname(name)
        if folder not in folders:
            os.makedirs(folder, exist_ok=True)
            folders.add(folder)
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, jpeg)
        finally:
            os.close(fd)

    saved = fixtures.write_jpeg
    fixtures.write_jpeg = write_jpeg
    start = time.perf_counter()
    try:
        if dataset == "nuswide_tc10":
            fixtures.write_nuswide_gcdh_mat(root, n_items=n, seed=0)
        else:
            fixtures.write_mscoco_json(root, n_items=n, seed=0, num_unlabeled=0)
    finally:
        fixtures.write_jpeg = saved
    _age(root)
    return time.perf_counter() - start


def _age(root: Path, seconds: int = 60) -> None:
    """Move every mtime a minute back: files written a moment ago are not memoised (the racy rule)."""
    for dirpath, _, files in os.walk(root, topdown=False):
        for name in [*files, "."]:
            p = os.path.join(dirpath, name)
            st = os.stat(p)
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns - seconds * 10**9))


# --------------------------------------------------------------------------------------
# One step (in a child process, or inline)
# --------------------------------------------------------------------------------------
def _cfg(dataset: str, root: Path, runs: Path, light: bool = False):
    """The run config; ``light``: only the fields the data layer reads (no import of torch, which the
    config module pulls in: ~480 MB of resident memory that is not the data set's)."""
    if light:
        from types import SimpleNamespace

        return SimpleNamespace(
            dataset=dataset, data_root=str(root), layout="auto", drop_unlabeled=False, runs_root=str(runs)
        )
    from egath_lite.pipeline.config import get_config

    return get_config("tiny", dataset=dataset, data_root=str(root), clip_pretrained="random", runs_root=str(runs))


def _begin_session() -> bool:
    """Start a fingerprint session where the code has one (the new code); False for the old code."""
    try:
        from egath_lite.data.fingerprint import begin_session
    except ImportError:
        return False
    begin_session(inherit=False)
    return True


def _dataset_digest(ds) -> str:
    h = hashlib.sha256(ds.labels.tobytes())
    for s in (*ds.texts, *ds.image_paths, *ds.label_names):
        h.update(s.encode() + b"\0")
    return h.hexdigest()[:16]


def _sums(*tensors) -> str:
    """float64 sums, accumulated without a float64 copy of the tensors (which would count in the peak)."""
    import torch

    def total(t) -> float:  # by slices: torch.sum(t, dtype=float64) would first make a float64 copy
        flat = t.reshape(-1)
        return sum(float(torch.sum(flat[i : i + (1 << 20)], dtype=torch.float64)) for i in range(0, len(flat), 1 << 20))

    return "/".join(f"{total(t):.6e}" for t in tensors)


def _bench_stage():
    from egath_lite.pipeline.stages import Stage

    return Stage("bench_features", fields=("seed",), tensors=("image", "text"))


def run_step(step: str, dataset: str, root: Path, runs: Path, n: int) -> dict[str, Any]:
    """Time one step; returns {"seconds", "check", ...}."""
    from egath_lite.data import dataset_fingerprint, dataset_from_config

    cfg = _cfg(dataset, root, runs, light=step in DATA_STEPS)
    out: dict[str, Any] = {}
    if step == "fingerprint":
        t = time.perf_counter()
        out["check"] = dataset_fingerprint(cfg)
        out["seconds"] = time.perf_counter() - t
    elif step == "keys":
        from egath_lite.pipeline.codes import CODES_STAGE
        from egath_lite.pipeline.features import FEATURES_STAGE
        from egath_lite.pipeline.graph import GRAPH_STAGE
        from egath_lite.pipeline.runs import RESULTS_STAGE

        out["session"] = _begin_session()
        t = time.perf_counter()
        dataset_fingerprint(cfg)  # the notebook's first key: one stat pass in both versions
        out["first"] = time.perf_counter() - t
        params = {"variant": cfg.variant, "bits": cfg.bits[0], "notebook": "05_pr_curve_evaluation"}
        keys, seconds = [], {}
        for stage in (FEATURES_STAGE, GRAPH_STAGE, CODES_STAGE, RESULTS_STAGE):
            t = time.perf_counter()
            keys.append(stage.key(cfg, **{p: params[p] for p in stage.params}))
            seconds[stage.name] = time.perf_counter() - t
        out.update(seconds=sum(seconds.values()), per_key=seconds, check="-".join(keys))
        if out["session"]:
            from egath_lite.data.fingerprint import end_session

            end_session()
    elif step in ("load", "reopen"):
        if step == "reopen" and _begin_session():  # a notebook's later load: the session's fingerprint is known
            t = time.perf_counter()
            dataset_fingerprint(cfg)
            out["fingerprint_seconds"] = time.perf_counter() - t
        t = time.perf_counter()
        ds = dataset_from_config(cfg)
        out["seconds"] = time.perf_counter() - t
        out["check"] = _dataset_digest(ds)
        out["items"] = len(ds)
    elif step == "artifact_save":
        import torch

        g = torch.Generator().manual_seed(0)
        image, text = torch.randn(n, DIM, generator=g), torch.randn(n, DIM, generator=g)
        t = time.perf_counter()
        payload = _bench_stage().save(cfg, {"image": image, "text": text}, {"n": n})
        out["seconds"] = time.perf_counter() - t
        out["check"] = _sums(image, text)
        out["mib"] = os.path.getsize(payload["path"]) / 2**20
    elif step == "artifact_open":
        t = time.perf_counter()
        payload = _bench_stage().load(cfg)
        out["seconds"] = time.perf_counter() - t
        tensors = payload["tensors"]
        out["check"] = _sums(tensors["image"], tensors["text"])
    else:
        raise ValueError(step)
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM (reset by exec, unlike ``ru_maxrss``, which keeps the
    forking parent's peak), else ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(argv: list[str]) -> None:
    step, dataset, root, runs, n = argv
    import egath_lite.data  # noqa: F401 - imports before the step, so the baseline is known

    if step not in DATA_STEPS:
        import egath_lite.pipeline.stages  # noqa: F401
    base = peak_rss_mb()

    out = run_step(step, dataset, Path(root), Path(runs), int(n))
    out["imports_rss_mb"] = base
    print("RESULT " + json.dumps(out))


def run_child(code: Path, step: str, dataset: str, root: Path, runs: Path, n: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(code), "HF_HUB_OFFLINE": "1", "PYTHONHASHSEED": "0"}
    env.pop("EGATH_TREE_DIGESTS", None)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", step, dataset, str(root), str(runs), str(n)]
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=str(runs.parent))
    wall = time.perf_counter() - t
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{step} with {code} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return {**json.loads(lines[-1][len("RESULT ") :]), "process_seconds": wall}


# --------------------------------------------------------------------------------------
# The comparison
# --------------------------------------------------------------------------------------
def measure(dataset: str, n: int, work: Path, old: Path | None, inline: bool, steps=STEPS, log=print) -> dict[str, Any]:
    root, done = work / f"{dataset}-{n}", work / f"{dataset}-{n}.complete"
    if done.is_file():  # a kept --work folder: the same fixture, written before
        log(f"  {dataset} {n:,}: fixture of an earlier run")
    else:
        shutil.rmtree(root, ignore_errors=True)
        write_seconds = write_data(dataset, n, root)
        done.write_text(f"{write_seconds:.1f}\n")
        log(f"  {dataset} {n:,}: fixture written in {write_seconds:.1f} s")
    versions = {"new": REPO} if old is None else {"old": old, "new": REPO}
    rows: dict[str, dict[str, Any]] = {}
    for name, code in versions.items():
        runs = work / f"runs-{name}"
        shutil.rmtree(runs, ignore_errors=True)
        runs.mkdir(parents=True)
        rows[name] = {}
        for step in steps:
            if inline:
                rows[name][step] = run_step(step, dataset, root, runs, n)
            else:
                rows[name][step] = run_child(code, step, dataset, root, runs, n)
            r = rows[name][step]
            log(f"    {name:<3} {step:<14} {r['seconds']:8.2f} s  peak {r['peak_rss_mb']:7.0f} MB")
        shutil.rmtree(runs, ignore_errors=True)
    checks = verify(rows)
    items = next((r["items"] for r in rows["new"].values() if "items" in r), n)
    return {"dataset": dataset, "n": n, "items": items, "rows": rows, "checks": checks}


def verify(rows: dict[str, dict[str, Any]]) -> dict[str, bool]:
    """The correctness the benchmark shows (and the CI test asserts)."""
    new, old = rows["new"], rows.get("old", {})

    def same(name: str, a: dict, step_a: str, b: dict, step_b: str) -> None:
        if step_a in a and step_b in b:
            out[name] = a[step_a]["check"] == b[step_b]["check"]

    out: dict[str, bool] = {}
    same("reopen equals load", new, "reopen", new, "load")
    same("opened artifact equals saved", new, "artifact_open", new, "artifact_save")
    same("same fingerprint as old code", old, "fingerprint", new, "fingerprint")
    same("same stage keys as old code", old, "keys", new, "keys")
    same("same data set as old code", old, "load", new, "load")
    same("reopened data set as old code", old, "reopen", new, "reopen")
    bad = [k for k, v in out.items() if not v]
    if bad:
        raise AssertionError(f"bench_scale: {bad} failed: {rows}")
    return out


def exponents(results: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Growth exponent b of wall ~ N^b per (dataset, version, step), from the smallest and the largest size."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for ds in sorted({r["dataset"] for r in results}):
        rs = sorted((r for r in results if r["dataset"] == ds), key=lambda r: r["items"])
        if len(rs) < 2:
            continue
        lo, hi = rs[0], rs[-1]
        out[ds] = {}
        for version in hi["rows"]:
            out[ds][version] = {}
            for step in (s for s in STEPS if s in lo["rows"][version] and s in hi["rows"][version]):
                a, b = lo["rows"][version][step]["seconds"], hi["rows"][version][step]["seconds"]
                if a > 0 and b > 0:
                    out[ds][version][step] = math.log(b / a) / math.log(hi["items"] / lo["items"])
    return out


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "| data set | items | step | before: wall | before: peak RSS | after: wall | after: peak RSS | before / after |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    names = {
        "fingerprint": "fingerprint (fresh process)",
        "keys": "4 stage keys after the first",
        "load": "`dataset_from_config`, first",
        "reopen": "`dataset_from_config`, again",
        "artifact_save": "features artifact: save",
        "artifact_open": "features artifact: open + verify",
    }
    for r in report["results"]:
        old, new = r["rows"].get("old"), r["rows"]["new"]
        for step in (s for s in STEPS if s in new):
            o, w = (old or {}).get(step), new[step]
            label = names[step] + (f" ({w['mib']:.0f} MiB)" if step == "artifact_save" else "")
            ratio = f"{o['seconds'] / max(w['seconds'], 1e-6):.1f}×" if o else "–"
            lines.append(
                f"| {r['dataset']} | {r['items']:,} | {label} | "
                + (f"{o['seconds']:.2f} s | {o['peak_rss_mb']:.0f} MB" if o else "– | –")
                + f" | {w['seconds']:.3f} s | {w['peak_rss_mb']:.0f} MB | {ratio} |"
            )
    exps = report.get("exponents") or {}
    if exps:
        lines += ["", "| data set | version | " + " | ".join(STEPS) + " |", "| --- | --- |" + " ---: |" * len(STEPS)]
        for ds, by_version in exps.items():
            for version, steps in by_version.items():
                lines.append(
                    f"| {ds} | {version} | " + " | ".join(f"{steps.get(s, float('nan')):.2f}" for s in STEPS) + " |"
                )
    return "\n".join(lines)


def bench_threads(num_texts: int, repeats: int = 3, batch_size: int = 256) -> dict[str, Any]:
    """Texts/s of the tiny CLIP's text encoder with torch set to 1 and 2 threads: the plain batch loop (what
    ``encode_texts`` ran before) next to ``encode_texts`` (its ``ThreadChooser``), interleaved, median of repeats."""
    import numpy as np
    import torch

    from egath_lite.clip.encode import encode_texts
    from egath_lite.clip.weights import load_clip
    from egath_lite.pipeline.config import get_config

    cfg = get_config("tiny")
    model, _, tokenizer = load_clip(cfg.clip_model, None, "cpu", seed=0)
    rng = np.random.default_rng(0)
    words = [f"tag{j}" for j in range(1000)]
    texts = [" ".join(rng.choice(words, rng.integers(1, 12))) for _ in range(num_texts)]

    @torch.no_grad()
    def plain() -> None:
        for start in range(0, len(texts), batch_size):
            model.encode_text(tokenizer(texts[start : start + batch_size]), normalize=True)

    def chooser() -> None:
        encode_texts(model, tokenizer, texts, batch_size, "cpu", progress=False)

    saved = torch.get_num_threads()
    rates: dict[str, list[float]] = {}
    try:
        for _ in range(repeats):
            for threads in (1, 2):
                for name, fn in (("plain loop", plain), ("encode_texts", chooser)):
                    torch.set_num_threads(threads)
                    start = time.perf_counter()
                    fn()
                    rates.setdefault(f"{name}, {threads} thread(s)", []).append(
                        len(texts) / (time.perf_counter() - start)
                    )
    finally:
        torch.set_num_threads(saved)
    return {k: float(np.median(v)) for k, v in rates.items()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="+", default=["20000", "50000"], help='item counts, or "full"')
    p.add_argument("--datasets", nargs="+", default=["nuswide_tc10", "mscoco"], choices=sorted(FULL))
    p.add_argument("--old", default=None, help="a checkout of the code before (e.g. /work/main); none: new only")
    p.add_argument("--work", default=None, help="folder for the data and runs (default: a temporary one)")
    p.add_argument("--steps", nargs="+", default=list(STEPS), choices=STEPS, help="default: all")
    p.add_argument("--inline", action="store_true", help="run the steps in this process, new code only (CI)")
    p.add_argument("--json", default=None)
    p.add_argument("--markdown", default=None)
    p.add_argument("--threads", type=int, default=None, help="only: texts/s at 1 and 2 threads over this many texts")
    args = p.parse_args(argv)
    if args.threads:
        rates = bench_threads(args.threads)
        for name, rate in rates.items():
            print(f"{name:<28} {rate:8.0f} texts/s")
        if args.json:
            Path(args.json).write_text(json.dumps({"threads": rates, "texts": args.threads}, indent=2))
        return {"threads": rates}
    if args.inline and args.old:
        p.error("--inline runs the new code only; leave out --old")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench_scale-"))
    work.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for dataset in args.datasets:
            for size in args.sizes:
                n = FULL[dataset] if size == "full" else int(size)
                old = Path(args.old) if args.old else None
                results.append(measure(dataset, n, work, old, args.inline, args.steps))
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    report = {
        "results": results,
        "exponents": exponents(results),
        "machine": {"python": platform.python_version(), "cores": os.cpu_count(), "inline": args.inline},
    }
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    text = markdown(report)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    print(text)
    return report


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2:])
    else:
        main()
