"""Fine-tuning decodes each image once (egath_lite.clip.decode_cache): the same batches as decoding every time, and
the decoder called once per image, not per epoch.

Bound on the pixels (``images.train_crop`` from the file vs ``DecodedImages.crop_pixels`` from the cache):
images whose shortest side is at most ``cache_side`` are kept as decoded and give equal pixels; larger ones
are resampled twice (to the cache side, then the crop): on the fixtures' smooth real-size JPEGs at most
2 grey levels of 255 per pixel and 0.3 on average; on hard-edged 4-pixel noise blocks (a worst case) up to
34 and 4.3 on average (measured at 224 and 64 px, seeds below).
"""

import numpy as np
import pytest
import torch

from egath_lite.clip import images as images_mod
from egath_lite.clip.decode_cache import cache_side, cached_size, decode_images, map_box, resample_crop
from egath_lite.clip.images import ImageItems, Preprocess, crop_seed, random_resized_crop_params
from egath_lite.core.models import CLIPImageBackbone
from egath_lite.pipeline.config import get_config
from egath_lite.pipeline.engine import HashData, StreamedImages, train_egath, validation_items
from egath_lite.testing.fixtures import IMAGE_SIZES, write_jpeg


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory):
    """16 real-size JPEGs, 4 of each common Flickr size (500x375, 375x500, 640x480, 320x240)."""
    folder = tmp_path_factory.mktemp("jpegs")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(16):
        path = folder / f"im{i}.jpg"
        write_jpeg(path, IMAGE_SIZES[i % 4], rng)
        paths.append(str(path))
    return paths


class CountDecodes:
    """Counts the calls of ``images.decode_bytes`` (every JPEG decode of both paths goes through it)."""

    def __init__(self, monkeypatch):
        self.calls = 0
        real = images_mod.decode_bytes

        def counted(*args, **kwargs):
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(images_mod, "decode_bytes", counted)


def test_cache_side_keeps_every_train_crop_at_least_model_size():
    assert cache_side(Preprocess((224, 224), (0.5,) * 3, (0.5,) * 3)) == 273  # ceil(224 / sqrt(0.9 * 3 / 4))
    assert cache_side(Preprocess((64, 64), (0.5,) * 3, (0.5,) * 3)) == 78
    assert cached_size(375, 500, 273) == (273, 364) and cached_size(500, 375, 273) == (364, 273)
    assert cached_size(240, 320, 273) == (240, 320)  # never enlarged
    g = torch.Generator().manual_seed(0)
    for _ in range(300):  # the smallest side of any crop of a 273 x 364 cache image
        _, _, h, w = random_resized_crop_params(273, 364, g)
        assert min(h, w) >= 224
    # a fractional box on a constant image is that constant; the filter matches torch's resize of the whole image
    flat = torch.full((3, 30, 40), 77, dtype=torch.uint8)
    assert torch.equal(resample_crop(flat, (2.3, 4.7, 20.5, 25.1), (8, 8), "bicubic"), torch.full((3, 8, 8), 77))
    import torchvision.transforms.v2.functional as F

    src = torch.from_numpy(np.random.default_rng(1).integers(60, 200, (3, 90, 120), dtype=np.uint8))
    src = F.gaussian_blur(src, [9, 9], [3.0, 3.0])
    ref = F.resize(src, [30, 40], interpolation=F.InterpolationMode.BICUBIC, antialias=True).int()
    mine = resample_crop(src, (0.0, 0.0, 90.0, 120.0), (30, 40), "bicubic").int()
    assert (ref - mine).abs().max() <= 1  # torch rounds its fixed-point weights; same filter otherwise


@pytest.mark.parametrize(("size", "epoch"), [(224, 0), (64, 3)])
def test_decoded_once_gives_the_batches_of_decoding_each_time(jpegs, size, epoch):
    prep = Preprocess((size, size), (0.48, 0.45, 0.4), (0.27, 0.26, 0.28))
    ids = np.arange(len(jpegs))
    cache = decode_images(jpegs, ids, [], prep, seed=5, num_workers=0)
    every_time = ImageItems(jpegs, ids, prep, train=True, seed=5)
    stream = StreamedImages(jpegs, prep, 5, 0, "cpu")
    order = np.random.default_rng(epoch).permutation(len(jpegs))
    batches = [order[:7].tolist(), order[7:].tolist()]
    for want, x_stream in zip(batches, stream.iter_batches(7, epoch, True, batches)):
        x_cache = cache.crop_batch(want, epoch)
        assert x_cache.shape == x_stream.shape == (len(want), 3, size, size)
        for row, item in enumerate(want):
            # the same crop box as images.train_crop draws (its own generator, seeded by (seed, epoch, item))
            H, W = IMAGE_SIZES[item % 4][::-1]
            g = torch.Generator().manual_seed(crop_seed(5, epoch, item))
            box, scaled = cache.crop_box(item, epoch)
            assert box == random_resized_crop_params(H, W, g)
            assert scaled == pytest.approx(map_box(box, (H, W), cached_size(H, W, cache_side(prep))))
            a = every_time[(epoch, item)].pixels.int()
            b = cache.crop_pixels([item], epoch)[0].int()
            diff = (a - b).abs()
            if min(H, W) <= cache_side(prep):
                assert torch.equal(a, b)  # kept as decoded: the same call on the same pixels
                assert torch.equal(x_cache[row], x_stream[row])  # and the same normalised row, same order
            else:
                assert diff.max() <= 2 and diff.float().mean() <= 0.3, (item, diff.max(), diff.float().mean())
                # the normalised rows: the same item in the same place (other items differ by far more)
                std = torch.tensor(prep.std).view(3, 1, 1)
                assert ((x_cache[row] - x_stream[row]).abs() * std * 255).max() <= 2.01
    # the eval inputs decoded once are exactly the eval preprocessing of the file
    cache = decode_images(jpegs, [], ids[:5], prep, seed=5, num_workers=0)
    for item in range(5):
        assert torch.equal(cache.eval_pixels([item])[0], ImageItems(jpegs, [item], prep)[0].pixels)


def _training_inputs(jpegs, S=16):
    """HashData over the 16 JPEGs (train 10, val 3, query 3) and a stand-in tower (Flatten + Linear)."""
    g = torch.Generator().manual_seed(0)
    n, C = len(jpegs), 4
    Y = (torch.rand(n, C, generator=g) < 0.4).float()
    Y[Y.sum(1) == 0, 0] = 1
    split = {
        "train": torch.arange(0, 10),
        "val": torch.arange(10, 13),
        "query": torch.arange(13, 16),
        "retrieval": torch.arange(0, 13),
    }
    prep = Preprocess((S, S), (0.5,) * 3, (0.25,) * 3)
    graph = {"label_emb": torch.randn(C, 6, generator=g), "edge_index": torch.zeros(2, 0, dtype=torch.long)}
    text = (torch.rand(n, 64, generator=g) < 0.2).float()  # the tiny preset's text input: a 0/1 bag of words
    return prep, Y, split, graph, text


def _backbone(prep, D=8):
    torch.manual_seed(0)
    return CLIPImageBackbone(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, D)), prep)


def test_finetuning_decodes_each_image_once_and_reuses_the_cache(jpegs, tmp_path, monkeypatch):
    prep, Y, split, graph, text = _training_inputs(jpegs)
    cfg = get_config(
        "tiny",
        runs_root=str(tmp_path),
        device="cpu",
        epochs=3,
        hash_batch_size=4,
        num_workers=0,
        finetune_clip=True,
        val_sample_size=6,
        early_stop_patience=5,
    )
    val_retrieval = validation_items(split["train"], 6, cfg.seed)
    assert len(val_retrieval) == 6 and set(val_retrieval.tolist()) <= set(range(10))
    assert torch.equal(val_retrieval, validation_items(split["train"], 6, cfg.seed))  # fixed by the seed
    assert torch.equal(validation_items(split["train"], 0, cfg.seed), split["train"])  # 0: all of them

    counter = CountDecodes(monkeypatch)
    # the counter sees the path that decodes each time: one decode per image per pass
    list(StreamedImages(jpegs, prep, 0, 0, "cpu").iter_batches(4, 0, True, [[0, 1, 2, 3], [4, 5]]))
    assert counter.calls == 6

    def run(cache_dir):
        data = HashData(
            StreamedImages(jpegs, prep, cfg.seed, 0, "cpu", cache_dir=cache_dir, cache_key="k"), text, Y, split
        )
        counter.calls, per_epoch = 0, []
        model, hist = train_egath(
            cfg, 8, data, graph, _backbone(prep), progress=False, on_epoch=lambda e, h: per_epoch.append(counter.calls)
        )
        return model, hist, np.diff([0, *per_epoch]).tolist()

    model, hist, decodes = run(tmp_path / "run")
    # the first epoch decodes the 10 training and 3 validation images, once; the next epochs decode nothing
    # (decoding each time: 10 crops + 3 val + 10 train for validation = 23 per epoch)
    assert decodes == [13, 0, 0]
    assert len(list((tmp_path / "run").glob("decoded-*.u8"))) == 1
    again, hist2, decodes2 = run(tmp_path / "run")  # a second run (e.g. another bit length): the keyed file
    assert decodes2 == [0, 0, 0]
    memory, hist3, decodes3 = run(None)  # in memory only: the same training, bit for bit
    assert decodes3 == [13, 0, 0]
    for other, h in ((again, hist2), (memory, hist3)):
        assert h["loss"] == hist["loss"] and h["val_map_i2t"] == hist["val_map_i2t"]
        for k, v in model.state_dict().items():
            assert torch.equal(v, other.state_dict()[k]), k


def test_a_damaged_cache_index_is_rebuilt_not_trusted(jpegs, tmp_path, monkeypatch):
    prep = Preprocess((16, 16), (0.5,) * 3, (0.25,) * 3)
    first = decode_images(jpegs[:4], [0, 1, 2, 3], [0], prep, seed=0, num_workers=0, folder=tmp_path, key="k")
    data_file = next(tmp_path.glob("decoded-*.u8"))
    with open(data_file, "ab") as f:  # a file that no longer matches its index
        f.write(b"\0")
    counter = CountDecodes(monkeypatch)
    second = decode_images(jpegs[:4], [0, 1, 2, 3], [0], prep, seed=0, num_workers=0, folder=tmp_path, key="k")
    assert counter.calls == 4
    assert torch.equal(first.crop_pixels([0, 3], 2), second.crop_pixels([0, 3], 2))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=r"1 image\(s\) cannot be read during fine-tuning .*bad.jpg"):
        decode_images([*jpegs[:2], str(bad)], [0, 1, 2], [], prep, seed=0, num_workers=0, folder=tmp_path, key="k2")
    assert len(list(tmp_path.glob("decoded-*.u8"))) == 1  # nothing written for the failed one
