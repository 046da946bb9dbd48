"""The image pipeline (egath_lite.clip.images) and sharded extraction (egath_lite.clip.sharded) on real image files.

References: open_clip's own PIL preprocess, torchvision's RandomResizedCrop.get_params, the old
``encode.images_to_tensor`` path, and a clean single extraction run.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from egath_lite.clip.encode import images_to_tensor
from egath_lite.clip.images import (
    EpochBatches,
    ImageItems,
    Preprocess,
    crop_seed,
    decode_bytes,
    default_num_workers,
    eval_resize,
    make_image_loader,
    random_resized_crop_params,
    to_model_input,
    train_crop,
)
from egath_lite.clip.sharded import UnreadableImagesError, cleanup_shards, encode_images_sharded, shard_path
from egath_lite.clip.weights import load_clip
from egath_lite.data.dataset import MultiModalDataset, SplitDefaults

SIZES = [(500, 375), (375, 500), (320, 240)]
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# torchvision 0.29 deprecates torchvision.io's image decoders in favour of TorchCodec; they still work.
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")


@pytest.fixture(scope="module")
def clip():
    """The random-init tiny CLIP (64 px, bicubic) and its open_clip PIL preprocess."""
    model, preprocess, _ = load_clip("egath-tiny-clip", None, "cpu", seed=0)
    return model, preprocess


def scene(w: int, h: int, seed: int) -> np.ndarray:
    """uint8 (h, w, 3): smooth waves plus pixel noise, so a one-pixel shift of a crop changes many values."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    f = rng.uniform(8, 40, 3)
    img = np.stack([128 + 90 * np.sin(xx / f[c] + c) * np.cos(yy / f[(c + 1) % 3] - c) for c in range(3)], -1)
    return np.clip(img + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)


def write_images(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """n files cycling through 500x375 / 375x500 / 320x240 RGB JPEGs (quality 85), a grey JPEG and an RGBA PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        w, h = SIZES[k % 3]
        img = Image.fromarray(scene(w, h, seed * 1000 + k))
        if k % 5 == 3:
            path = folder / f"img{k:03d}.jpg"
            img.convert("L").save(path, quality=85)
        elif k % 5 == 4:
            path = folder / f"img{k:03d}.png"
            img.convert("RGBA").save(path)
        else:
            path = folder / f"img{k:03d}.jpg"
            img.save(path, quality=85)
        paths.append(path)
    return paths


def pil_embeddings(model, preprocess, paths) -> np.ndarray:
    """The old path: PIL open + convert + open_clip's preprocess, one image at a time."""
    x = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in paths])
    with torch.no_grad():
        return model.encode_image(x, normalize=True).numpy()


# --------------------------------------------------------------------------- decoding and preprocessing
def test_auto_decoder_gives_pils_pixels(tmp_path):
    paths = write_images(tmp_path, 5)  # RGB JPEGs of three sizes, a grey JPEG, an RGBA PNG
    for mode in ("P", "L", "CMYK"):
        fmt = "JPEG" if mode == "CMYK" else "PNG"
        path = tmp_path / f"extra_{mode}.{fmt.lower()}"
        Image.fromarray(scene(90, 70, 7)).convert(mode).save(path, fmt)
        paths.append(path)
    for path in paths:
        data = path.read_bytes()
        ref = np.array(Image.open(path).convert("RGB"))
        for decoder in ("auto", "torchvision", "pil"):
            got = decode_bytes(data, decoder)
            assert got.dtype == torch.uint8 and got.shape == (3, *ref.shape[:2]), (path.name, decoder)
            if decoder == "torchvision" and path.name.endswith("CMYK.jpeg"):
                continue  # auto sends CMYK to PIL: torchvision's CMYK conversion is its own
            assert torch.equal(got.permute(1, 2, 0), torch.from_numpy(ref)), (path.name, decoder)


def test_eval_resize_matches_open_clip_pil_at_224(tmp_path):
    import open_clip

    paths = write_images(tmp_path, 5)
    prep = Preprocess((224, 224), CLIP_MEAN, CLIP_STD, "bicubic", "shortest")
    transform = open_clip.image_transform(224, is_train=False, mean=CLIP_MEAN, std=CLIP_STD)
    for path in paths:
        ref = transform(Image.open(path).convert("RGB"))  # float (3, 224, 224), normalised
        pixels = eval_resize(decode_bytes(path.read_bytes()), prep)
        assert pixels.shape == (3, 224, 224) and pixels.dtype == torch.uint8
        got = (pixels.float() / 255 - torch.tensor(CLIP_MEAN).view(3, 1, 1)) / torch.tensor(CLIP_STD).view(3, 1, 1)
        levels = ((got - ref) * torch.tensor(CLIP_STD).view(3, 1, 1) * 255).abs()
        # torch's and PIL's antialiased bicubic differ by rounding only: at most one grey level, rarely
        assert levels.max() <= 1.0 + 1e-3, path.name
        assert (levels > 0.5).float().mean() < 0.05, path.name


@pytest.fixture(scope="module")
def small_vit():
    """A random-init open_clip ViT at 64 px: unlike the random tiny CLIP (ResNet), its embeddings follow the input."""
    import open_clip

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = open_clip.model.CLIP(
            64,
            {"image_size": 64, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
            {"context_length": 8, "vocab_size": 100, "width": 32, "heads": 2, "layers": 1},
        )
    return model.eval(), open_clip.image_transform(64, is_train=False)


def test_pipeline_embeddings_close_to_open_clip_preprocess(tmp_path, small_vit):
    model, preprocess = small_vit
    paths = write_images(tmp_path / "img", 10)
    ref = pil_embeddings(model, preprocess, paths)
    run = {"shard_size": 4, "batch_size": 3, "num_workers": 0, "progress": False}
    emb = encode_images_sharded(model, ImageItems(paths, None, model), tmp_path / "a", "k", **run)
    assert emb.shape == ref.shape == (10, 64) and emb.dtype == np.float32
    distance = 1 - (emb * ref).sum(1)
    between_images = 1 - (ref * np.roll(ref, 1, axis=0)).sum(1)
    # the scale: a slightly different preprocessing (bilinear instead of bicubic) already moves the embeddings
    bilinear = Preprocess((64, 64), CLIP_MEAN, CLIP_STD, "bilinear", "shortest")
    other = encode_images_sharded(model, ImageItems(paths, None, bilinear), tmp_path / "b", "k", **run)
    distance_bilinear = 1 - (other * ref).sum(1)
    # measured: distance <= 1.2e-7 (float32 rounding); bilinear 1.8e-6 on average; different images >= 1.2e-3.
    # The tolerance sits between the first two: it tells CLIP's bicubic resize from a bilinear one.
    assert np.abs(distance).max() < 1e-6
    assert distance_bilinear.mean() > 1e-6 and between_images.min() > 1e-4


def test_in_memory_path_equals_images_to_tensor(clip):
    model, _ = clip
    images = np.random.default_rng(0).integers(0, 256, (13, 64, 64, 3), dtype=np.uint8)
    items = ImageItems(images, np.arange(13), model)
    assert default_num_workers(items) == 0  # nothing to decode: workers would only ship bytes around
    for workers in (0, 2):
        xs, pos = [], []
        for batch in make_image_loader(items, 5, num_workers=workers):
            p, x, errors = to_model_input(batch, items, "cpu")
            assert errors == []
            xs.append(x), pos.append(p)
        assert torch.equal(torch.cat(pos), torch.arange(13))
        assert torch.equal(torch.cat(xs), images_to_tensor(images, model)), workers


def test_in_memory_source_through_a_dataset_and_item_subset(clip):
    model, _ = clip
    images = np.random.default_rng(1).integers(0, 256, (6, 64, 64, 3), dtype=np.uint8)
    ds = MultiModalDataset("t", ["a"], np.ones((6, 1), np.uint8), ["x"] * 6, SplitDefaults(1, 2, 0), images=images)
    items = ImageItems(ds, [4, 1], model)
    batch = next(iter(make_image_loader(items, 2)))
    _, x, _ = to_model_input(batch, items, "cpu")
    assert torch.equal(x, images_to_tensor(images[[4, 1]], model))
    with pytest.raises(IndexError, match=r"\[6\]"):
        ImageItems(ds, [0, 6], model)
    with pytest.raises(ValueError, match="unknown decoder"):
        ImageItems(ds, None, model, decoder="fast")


# --------------------------------------------------------------------------- train-time crops
@pytest.mark.parametrize("height,width", [(375, 500), (64, 64), (40, 300)])  # (40, 300): the central-crop fallback
def test_random_resized_crop_params_equal_torchvision(height, width):
    from torchvision.transforms import RandomResizedCrop

    for seed in range(20):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            ref = RandomResizedCrop.get_params(torch.zeros(3, height, width), [0.9, 1.0], [3 / 4, 4 / 3])
        assert random_resized_crop_params(height, width, torch.Generator().manual_seed(seed)) == tuple(ref)


def test_train_crops_are_seeded_per_epoch_and_item(tmp_path, clip):
    model, _ = clip
    paths = write_images(tmp_path, 6)
    items = ImageItems(paths, None, model, train=True, seed=3)
    prep = Preprocess.from_model(model)
    loader = make_image_loader(items, 4, num_workers=2, shuffle=True, seed=3)
    seen = {}
    for epoch in (0, 1):
        loader.batch_sampler.set_epoch(epoch)
        for batch in loader:
            for p, pixels in zip(batch.positions.tolist(), batch.pixels):
                # the same crop as computed here, in the main process, from (seed, epoch, item) alone
                expected = train_crop(decode_bytes(paths[p].read_bytes()), prep, 3, epoch, p)
                assert torch.equal(pixels, expected), (epoch, p)
                seen[epoch, p] = pixels
    assert len(seen) == 12
    # A new epoch draws a new crop, except where both epochs' ten draws all miss and torchvision's
    # rule falls back to the central crop (frequent for 4:3 images: the scale range is narrow).
    params = {
        (e, p): random_resized_crop_params(
            *decode_bytes(paths[p].read_bytes()).shape[1:], torch.Generator().manual_seed(crop_seed(3, e, p))
        )
        for e in (0, 1)
        for p in range(6)
    }
    changed = [p for p in range(6) if params[0, p] != params[1, p]]
    assert changed and all(not torch.equal(seen[0, p], seen[1, p]) for p in changed)


def test_epoch_batches_shuffle_and_resume():
    sampler = EpochBatches(10, 3, shuffle=True, seed=5)
    sampler.set_epoch(2)
    full = list(sampler)
    assert [len(b) for b in full] == [3, 3, 3, 1] and all(e == 2 for b in full for e, _ in b)
    assert sorted(p for b in full for _, p in b) == list(range(10))
    order = np.random.default_rng([5, 2]).permutation(10).tolist()
    assert [p for b in full for _, p in b] == order
    sampler.set_epoch(2, start_batch=2)
    assert list(sampler) == full[2:] and len(sampler) == 2
    sampler.set_epoch(3)
    assert [p for b in sampler for _, p in b] != order


# --------------------------------------------------------------------------- sharded extraction
def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_bad_images_reported_together_then_only_their_shards_rerun(tmp_path, clip):
    model, _ = clip
    paths = write_images(tmp_path / "img", 24)
    # the same workers (so the same torch thread count) as below: then the shards match bit for bit
    clean = encode_images_sharded(
        model,
        ImageItems(paths, None, model),
        tmp_path / "clean",
        "k",
        shard_size=4,
        batch_size=3,
        num_workers=2,
        progress=False,
    )
    corrupt, truncated = paths[5], paths[14]  # shard 1 and shard 3 of 6
    good_bytes = {p: p.read_bytes() for p in (corrupt, truncated)}
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    _truncate(truncated)
    # through the real dataset class, with relative paths under an image root
    ds = MultiModalDataset(
        "t",
        ["a"],
        np.ones((24, 1), np.uint8),
        ["x"] * 24,
        SplitDefaults(1, 2, 0),
        image_paths=[p.name for p in paths],
        image_root=tmp_path / "img",
    )
    shards = tmp_path / "shards"
    with pytest.raises(UnreadableImagesError) as exc_info:
        encode_images_sharded(
            model, ImageItems(ds, None, model), shards, "k", shard_size=4, batch_size=3, num_workers=2, progress=False
        )
    err = exc_info.value
    msg = str(err)
    assert isinstance(err, ValueError)
    assert f"item 5: {corrupt}" in msg and f"item 14: {truncated}" in msg
    assert "not an image" in msg and "truncated" in msg and "rerun" in msg
    assert [e.item for e in err.errors] == [5, 14] and err.failed_shards == [1, 3]
    on_disk = sorted(f.name for f in shards.iterdir())
    assert on_disk == sorted([shard_path(shards, "k", s, 6).name for s in (0, 2, 4, 5)] + ["k-unreadable.json"])
    report = json.loads((shards / "k-unreadable.json").read_text())
    assert [r["path"] for r in report["unreadable"]] == [str(corrupt), str(truncated)]

    for p, data in good_bytes.items():
        p.write_bytes(data)
    info = {}
    emb = encode_images_sharded(
        model,
        ImageItems(ds, None, model),
        shards,
        "k",
        shard_size=4,
        batch_size=3,
        num_workers=2,
        progress=False,
        info=info,
    )
    assert info["encoded_items"] == 8 and info["encoded_shards"] == [1, 3] and info["reused_shards"] == [0, 2, 4, 5]
    assert np.array_equal(emb, clean)  # batches never straddle shards: bit-for-bit the clean run
    assert not (shards / "k-unreadable.json").exists()
    assert cleanup_shards(shards, "k") == 6 and list(shards.iterdir()) == []


def test_missing_file_is_reported_with_the_paths_tried(tmp_path, clip):
    model, _ = clip
    paths = write_images(tmp_path / "img", 3)
    ds = MultiModalDataset(
        "t",
        ["a"],
        np.ones((3, 1), np.uint8),
        ["x"] * 3,
        SplitDefaults(1, 1, 0),
        image_paths=[p.name for p in paths],
        image_root=tmp_path / "img",
    )
    paths[1].unlink()
    with pytest.raises(UnreadableImagesError, match=r"item 1: img001\.jpg: .*not found.*tried") as exc_info:
        encode_images_sharded(model, ImageItems(ds, None, model), tmp_path / "s", "k", shard_size=2, progress=False)
    assert exc_info.value.failed_shards == [0]
    assert [f.name for f in (tmp_path / "s").glob("*.pt")] == [shard_path(tmp_path / "s", "k", 1, 2).name]


def test_invalid_shards_are_recomputed(tmp_path, clip, capsys):
    model, _ = clip
    paths = write_images(tmp_path / "img", 9)
    shards = tmp_path / "s"
    run = {"shard_dir": shards, "key": "k", "shard_size": 3, "batch_size": 2, "num_workers": 0, "progress": False}
    clean = encode_images_sharded(model, ImageItems(paths, None, model), **run)
    shard_path(shards, "k", 0, 3).write_bytes(b"not a torch file")
    other = encode_images_sharded(
        model,
        ImageItems(paths, np.arange(9)[::-1], model),
        tmp_path / "o",
        "k",
        shard_size=3,
        num_workers=0,
        progress=False,
    )
    os.replace(shard_path(tmp_path / "o", "k", 1, 3), shard_path(shards, "k", 1, 3))  # same key, other items
    info = {}
    emb = encode_images_sharded(model, ImageItems(paths, None, model), **run, info=info)
    out = capsys.readouterr().out
    assert "not a readable shard" in out and "other items" in out
    assert info["encoded_shards"] == [0, 1] and info["encoded_items"] == 6
    assert np.array_equal(emb, clean) and np.allclose(other[::-1], clean, atol=1e-6)


def test_sharded_argument_errors(tmp_path, clip):
    model, _ = clip
    items = ImageItems(np.zeros((2, 64, 64, 3), np.uint8), None, model)
    with pytest.raises(ValueError, match="shard key"):
        encode_images_sharded(model, items, tmp_path, "a/b", progress=False)
    with pytest.raises(ValueError, match="shard_size"):
        encode_images_sharded(model, items, tmp_path, "k", shard_size=0, progress=False)
    with pytest.raises(ValueError, match="train=False"):
        encode_images_sharded(model, ImageItems(items.array, None, model, train=True), tmp_path, "k", progress=False)
    with pytest.raises(TypeError, match="ImageItems"):
        encode_images_sharded(model, items.array, tmp_path, "k", progress=False)


SIGINT_SCRIPT = """
import signal, sys, time
# a shell that starts jobs in the background (no job control) hands them SIGINT ignored: restore Ctrl-C
signal.signal(signal.SIGINT, signal.default_int_handler)
from pathlib import Path
import torch
from egath_lite.clip.weights import load_clip
from egath_lite.clip.images import ImageItems
from egath_lite.clip.sharded import encode_images_sharded

class SlowItems(ImageItems):
    def load(self, pos, epoch=0):
        # the first two shards finish; later items hang until the interrupt, so it always lands mid-pass
        # (a busy machine could otherwise finish the pass before the test sees the first shard)
        time.sleep(0.2 if pos < 8 else 120)
        return super().load(pos, epoch)

folder, shards = Path(sys.argv[1]), sys.argv[2]
torch.set_num_threads(int(sys.argv[3]))  # the test process's count: same threads, same floating-point sums
model, _, _ = load_clip("egath-tiny-clip", None, "cpu", seed=0)
paths = sorted(folder.iterdir())
print("started", flush=True)
encode_images_sharded(model, SlowItems(paths, None, model), shards, "k", shard_size=4, batch_size=2,
                      num_workers=2, progress=False)
print("finished", flush=True)
"""


def test_sigint_leaves_complete_shards_and_rerun_resumes(tmp_path, clip, repo_root):
    model, _ = clip
    paths = write_images(tmp_path / "img", 24)
    shards = tmp_path / "shards"
    script = tmp_path / "extract.py"
    script.write_text(textwrap.dedent(SIGINT_SCRIPT))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(repo_root), os.environ.get("PYTHONPATH", "")]),
        "HF_HUB_OFFLINE": "1",
    }
    argv = [sys.executable, str(script), str(tmp_path / "img"), str(shards), str(torch.get_num_threads())]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(shards.glob("k-shard*.pt")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no shard appeared within 120 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and "KeyboardInterrupt" in err and "finished" not in out
    leftovers = sorted(f.name for f in shards.iterdir())
    assert all(name.startswith("k-shard") and name.endswith("of6.pt") for name in leftovers), leftovers  # no .tmp
    assert 1 <= len(leftovers) < 6
    info = {}
    emb = encode_images_sharded(
        model,
        ImageItems(paths, None, model),
        shards,
        "k",
        shard_size=4,
        batch_size=2,
        num_workers=2,
        progress=False,
        info=info,
    )
    assert info["reused_items"] == 4 * len(leftovers) and info["encoded_items"] == 24 - 4 * len(leftovers)
    # same workers, so the same torch thread count, as the interrupted run: equal bit for bit
    clean = encode_images_sharded(
        model,
        ImageItems(paths, None, model),
        tmp_path / "clean",
        "k",
        shard_size=4,
        batch_size=2,
        num_workers=2,
        progress=False,
    )
    assert np.array_equal(emb, clean)
