"""Benchmark of the image pipeline: decode + preprocess images/s, old serial PIL path vs egath_lite.clip.images, side by side.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_images.py            # 600 JPEGs, 500x375, quality 85

Measured in one run, on the same generated files, alternating (median of --repeats):
(a) the serial PIL path as it was: PIL open + convert + open_clip's eval preprocess at 224, one image at a
    time in the main process (what encode._image_batch did for real data sets);
(b) the new pipeline's decode + preprocess to 224 (ImageItems + make_image_loader with this machine's
    workers, normalised in the main process), i.e. the same output tensor as (a);
(c) extraction end to end with the tiny CLIP (64 px: its input size; decode + resize to 64 + encode + shard
    writes) by encode_images_sharded, beside the old encode.encode_images on the same files;
(d) in-memory 64x64 arrays (toy_nuswide) through the loader with 0 and with 2 workers (the default's choice);
(e) the embedding difference between the pipeline's preprocessing and open_clip's PIL preprocess
    (1 - cosine), for the random-init tiny CLIP at 64 px and a random-init ViT-B-32 at 224 px.
The last line is ``pipeline X img/s vs serial PIL Y img/s = R x``: (b) over the faster of (a) with the
default torch threads (as it ran) and (a) with one thread (the issue's 198 img/s baseline was on one).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from egath_lite.clip.encode import encode_images, select_images
from egath_lite.clip.images import (
    ImageItems,
    Preprocess,
    available_cores,
    main_threads_beside_workers,
    make_image_loader,
    to_model_input,
)
from egath_lite.clip.sharded import encode_images_sharded
from egath_lite.clip.weights import load_clip
from egath_lite.data.dataset import MultiModalDataset, SplitDefaults

warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities", category=DeprecationWarning)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def write_jpegs(folder: Path, n: int, size: tuple[int, int] = (500, 375), quality: int = 85) -> list[Path]:
    """n MIRFlickr-sized JPEGs: smooth colour waves plus noise, about 50 kB each at quality 85."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    paths = []
    for k in range(n):
        rng = np.random.default_rng(k)
        f = rng.uniform(8, 60, 3)
        img = np.stack([128 + 90 * np.sin(xx / f[c] + k) * np.cos(yy / f[(c + 1) % 3] - c) for c in range(3)], -1)
        img = np.clip(img + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
        path = folder / f"{k:05d}.jpg"
        Image.fromarray(img).save(path, quality=quality)
        paths.append(path)
    return paths


def serial_pil(paths: list[Path], transform, batch_size: int, threads: int | None = None) -> float:
    """(a): seconds for PIL decode + open_clip preprocess, one image at a time, batches stacked (torch ``threads``)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(threads or saved)
    transform(Image.open(paths[0]).convert("RGB"))  # warm-up: first-call costs are not the path's rate
    t0 = time.perf_counter()
    for start in range(0, len(paths), batch_size):
        x = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths[start : start + batch_size]])
    seconds = time.perf_counter() - t0
    torch.set_num_threads(saved)
    assert x.shape[1:] == (3, 224, 224)
    return seconds


def pipeline(items: ImageItems, batch_size: int, num_workers: int) -> float:
    """(b)/(d): seconds for the loader's decode + preprocess, normalised in the main process (worker start-up included)."""
    t0 = time.perf_counter()
    it = iter(make_image_loader(items, batch_size, num_workers=num_workers))
    n = 0
    with main_threads_beside_workers(num_workers):  # as encode_images_sharded runs it
        for batch in it:
            positions, _, errors = to_model_input(batch, items, "cpu")
            assert not errors
            n += len(positions)
    assert n == len(items)
    seconds = time.perf_counter() - t0
    if num_workers:
        it._shutdown_workers()  # join the persistent workers now, so their CPU time is counted here
    return seconds


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its reaped children (the loader's workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(times: dict, cpu: dict, name: str, fn, *args, **kwargs) -> None:
    """Run fn, append its wall seconds to times[name] and its CPU seconds (workers included) to cpu[name]."""
    c0 = cpu_seconds()
    wall = fn(*args, **kwargs)
    times[name].append(wall)
    cpu[name].append(cpu_seconds() - c0)


def extraction_old(model, preprocess, ds, batch_size: int) -> float:
    t0 = time.perf_counter()
    encode_images(model, preprocess, select_images(ds), batch_size, progress=False)
    return time.perf_counter() - t0


def extraction_new(model, ds, shard_dir: Path, batch_size: int, workers: int) -> float:
    t0 = time.perf_counter()
    encode_images_sharded(
        model,
        ImageItems(ds, None, model),
        shard_dir,
        "bench",
        shard_size=256,
        batch_size=batch_size,
        num_workers=workers,
        progress=False,
    )
    return time.perf_counter() - t0


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return 1.0 - (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@torch.no_grad()
def decoder_difference(model, preprocess, paths: list[Path], tmp: Path, tag: str) -> dict[str, float]:
    """1 - cos between open_clip-PIL-preprocess embeddings and the pipeline's (auto and PIL decoders)."""
    ref = model.encode_image(
        torch.stack([preprocess(Image.open(p).convert("RGB")) for p in paths]), normalize=True
    ).numpy()
    out = {}
    for decoder in ("auto", "pil"):
        emb = encode_images_sharded(
            model,
            ImageItems(paths, None, model, decoder=decoder),
            tmp / f"{tag}_{decoder}",
            "diff",
            shard_size=len(paths),
            batch_size=32,
            num_workers=0,
            progress=False,
        )
        d = cosine_distance(ref, emb)
        out[f"{decoder}_max"], out[f"{decoder}_mean"] = float(d.max()), float(d.mean())
    # scale: how far apart the embeddings of different images are under the same model
    out["between_images_mean"] = float(cosine_distance(ref, np.roll(ref, 1, axis=0)).mean())
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None, help="default: the available cores")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--diff-images", type=int, default=24, help="images for the embedding difference (e)")
    parser.add_argument("--no-vit", action="store_true", help="skip the ViT-B-32 embedding difference")
    args = parser.parse_args(argv)
    workers = available_cores() if args.workers is None else args.workers
    import open_clip

    transform = open_clip.image_transform(224, is_train=False, mean=CLIP_MEAN, std=CLIP_STD)  # CLIP's eval preprocess
    prep224 = Preprocess((224, 224), CLIP_MEAN, CLIP_STD, "bicubic", "shortest")
    tiny, tiny_preprocess, _ = load_clip("egath-tiny-clip", None, "cpu", seed=0)
    r: dict = {
        "machine": f"{platform.machine()}, {available_cores()} available cores, load average "
        f"{os.getloadavg()[0]:.1f} at the start",
        "workers": workers,
        "num_images": args.num_images,
        "torch_threads": torch.get_num_threads(),
    }
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "img").mkdir()
        paths = write_jpegs(tmp / "img", args.num_images)
        ds = MultiModalDataset(
            "bench",
            ["a"],
            np.ones((len(paths), 1), np.uint8),
            ["x"] * len(paths),
            SplitDefaults(1, 1, 0),
            image_paths=[str(p) for p in paths],
        )
        toy = np.random.default_rng(0).integers(0, 256, (4096, 64, 64, 3), dtype=np.uint8)
        names = ("a", "a1", "b", "c_old", "c_new", "d0", "d2")
        times: dict[str, list[float]] = {k: [] for k in names}
        cpu: dict[str, list[float]] = {k: [] for k in names}
        few = paths[: min(len(paths), 150)]  # the two-thread serial path is slow under load: a rate from fewer images
        for rep in range(args.repeats):
            timed(times, cpu, "a", serial_pil, few, transform, args.batch_size)
            timed(times, cpu, "a1", serial_pil, paths, transform, args.batch_size, threads=1)
            timed(times, cpu, "b", pipeline, ImageItems(paths, None, prep224), args.batch_size, workers)
            timed(times, cpu, "c_old", extraction_old, tiny, tiny_preprocess, ds, args.batch_size)
            timed(times, cpu, "c_new", extraction_new, tiny, ds, tmp / f"shards{rep}", args.batch_size, workers)
            timed(times, cpu, "d0", pipeline, ImageItems(toy, None, tiny), 256, 0)
            timed(times, cpu, "d2", pipeline, ImageItems(toy, None, tiny), 256, 2)
        for k in names:
            n = len(toy) if k.startswith("d") else len(few) if k == "a" else len(paths)
            r[f"{k}_rates"] = [n / s for s in times[k]]
            r[k] = n / statistics.median(times[k])
            r[f"{k}_cpu"] = n / statistics.median(cpu[k])  # images per CPU-second
        sub = paths[: args.diff_images]
        r["diff_tiny"] = decoder_difference(tiny, tiny_preprocess, sub, tmp, "tiny")
        if not args.no_vit:
            vit, vit_preprocess, _ = load_clip("ViT-B-32", None, "cpu", seed=0)
            r["diff_vit"] = decoder_difference(vit, vit_preprocess, sub, tmp, "vit")
    print(report(r))
    return r


def report(r: dict) -> str:
    """Human-readable lines, ending with the ratio line."""

    def rate(k: str) -> str:
        runs = ", ".join(f"{v:.0f}" for v in r[f"{k}_rates"])
        return f"{r[k]:.0f} img/s [{runs}] ({r[f'{k}_cpu']:.0f} img per CPU-s)"

    lines = [
        (
            f"{r['machine']}; {r['num_images']} JPEGs 500x375 q85; workers {r['workers']}; main-process torch "
            f"threads {r['torch_threads']}; wall img/s median of {len(r['a_rates'])} [each run] (img per CPU-second, "
            f"workers included)"
        ),
        (
            f"(a) serial PIL decode + open_clip preprocess @224, {r['torch_threads']} torch threads (as it ran): "
            f"{rate('a')}; one torch thread: {rate('a1')}"
        ),
        f"(b) pipeline decode + preprocess @224, {r['workers']} workers: {rate('b')}",
        (
            f"(c) extraction end to end, tiny CLIP @64: old encode_images {rate('c_old')}; "
            f"encode_images_sharded {rate('c_new')} = {r['c_new'] / r['c_old']:.2f} x"
        ),
        f"(d) in-memory 64x64 arrays through the loader: 0 workers {rate('d0')}; 2 workers {rate('d2')}",
    ]
    for tag, name in (("diff_tiny", "tiny CLIP @64"), ("diff_vit", "ViT-B-32 @224 (random init)")):
        if tag in r:
            d = r[tag]
            lines.append(
                f"(e) 1 - cos vs open_clip PIL preprocess, {name}: torchvision decoder max {d['auto_max']:.2e} "
                f"mean {d['auto_mean']:.2e}; PIL decoder max {d['pil_max']:.2e} mean {d['pil_mean']:.2e} "
                f"(between different images: mean {d['between_images_mean']:.2e})"
            )
    serial = max(r["a"], r["a1"])  # the faster of the two serial runs: the ratio does not flatter the pipeline
    lines.append(f"pipeline {r['b']:.0f} img/s vs serial PIL {serial:.0f} img/s = {r['b'] / serial:.2f} x")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
