"""The image pipeline shared by extraction and fine-tuning: a Dataset of uint8 model inputs and its DataLoader.

``ImageItems(source, idx, model)`` turns items of a dataset (in-memory uint8 (N, H, W, 3)
arrays or image files) into uint8 (3, S, S) tensors through one code path: decode, resize the
shortest side to S with the model's interpolation (bicubic for CLIP, antialiased), centre
crop; or, with ``train=True``, open_clip's RandomResizedCrop (scale (0.9, 1.0)) seeded by
(seed, epoch, item). Workers never raise on a bad file: the item comes back as an
``ImageError`` (item id, path, reason) and the batch keeps it aside. ``to_model_input`` then
moves a batch to the device and normalises it there in float (CLIP mean/std).

Decoders: ``"auto"`` (default) decodes JPEG (RGB/grey) and 8-bit PNG with ``torchvision.io``
and everything else (CMYK, WebP, TIFF, 16-bit, ...) with PIL, converted to RGB like
``MultiModalDataset.get_image``; ``"torchvision"`` and ``"pil"`` force one; ``"cuda"`` leaves
JPEG bytes to ``torchvision.io.decode_jpeg(device="cuda")`` in ``to_model_input``. Resizing is
always torch's antialiased interpolation on the uint8 tensor (PIL's resize is the slowest step
of the old path: 3.0 ms of its 5.3 ms per 500x375 JPEG at 224).

How close this is to open_clip's own PIL preprocess (benchmarks/bench_images.py, 24 JPEGs of
500x375, quality 85): torchvision.io and PIL decode them to identical pixels, and the resize differs
by at most 1 grey level of 255 (torch's and PIL's bicubic round differently; tests/test_images.py).
The cosine distance 1 - cos between the embeddings of the two preprocessings is at most 1.2e-7,
float32 rounding, for both a random-init ViT-B-32 at 224 px (different images: 2.0e-2 apart on
average) and the random-init tiny CLIP at 64 px (3.1e-6 apart: at random init it barely sees
its input). tests/test_images.py holds a small random-init ViT at 64 px to 1e-6, a bound that a
bilinear resize in place of the bicubic one (1.8e-6 on average) already breaks.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

DECODERS = ("auto", "torchvision", "pil", "cuda")
# open_clip's RandomResizedCrop defaults (open_clip.image_transform(..., is_train=True)).
TRAIN_SCALE = (0.9, 1.0)
TRAIN_RATIO = (3.0 / 4.0, 4.0 / 3.0)
# torchvision.io decodes these to the same pixels as PIL's convert("RGB") (checked in tests/test_images.py).
_TORCHVISION_MODES = {"JPEG": ("RGB", "L"), "PNG": ("RGB", "RGBA", "L", "LA", "P")}


class ImageError(NamedTuple):
    """One unreadable image: dataset item id, its position in the ImageItems, the path tried, and why."""

    item: int
    position: int
    path: str
    reason: str


class ImageItem(NamedTuple):
    """What ``ImageItems[key]`` returns: one of ``pixels`` (uint8 (3, S, S)), ``encoded`` (JPEG bytes), ``error``."""

    position: int
    pixels: torch.Tensor | None
    encoded: torch.Tensor | None
    error: ImageError | None


# --------------------------------------------------------------------------- preprocessing
@dataclass(frozen=True)
class Preprocess:
    """A model's input preprocessing: ``size`` (H, W), ``mean``/``std`` per channel, ``interpolation``, ``resize_mode``."""

    size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"

    @classmethod
    def from_model(cls, model: Any) -> Preprocess:
        """From ``open_clip.get_model_preprocess_cfg(model)`` (what open_clip's own transforms use)."""
        if isinstance(model, Preprocess):
            return model
        import dataclasses

        from open_clip.transform import PreprocessCfg

        if not isinstance(model, dict):
            import open_clip

            model = open_clip.get_model_preprocess_cfg(model)
        # open_clip's own defaults (OpenAI mean/std, bicubic, shortest) for what the model does not record
        cfg = {**dataclasses.asdict(PreprocessCfg()), **model}
        size = cfg["size"]
        size = (size, size) if isinstance(size, int) else tuple(int(s) for s in size)
        out = cls(
            size=size,
            mean=tuple(float(v) for v in cfg["mean"]),
            std=tuple(float(v) for v in cfg["std"]),
            interpolation=str(cfg["interpolation"]),
            resize_mode=str(cfg["resize_mode"]),
        )
        out.check()
        return out

    def check(self) -> None:
        """Raise ValueError for what this pipeline does not reproduce."""
        if self.interpolation not in ("bicubic", "bilinear"):
            raise ValueError(f"interpolation {self.interpolation!r} is not supported; use 'bicubic' or 'bilinear'")
        if self.resize_mode not in ("shortest", "squash"):
            raise ValueError(
                f"resize_mode {self.resize_mode!r} is not supported by the uint8 pipeline "
                f"(only 'shortest' and 'squash'); use the model's PIL preprocess for it"
            )
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean/std must be 3 values with std > 0, got {self.mean}, {self.std}")

    def interpolation_mode(self):
        from torchvision.transforms import InterpolationMode

        return InterpolationMode.BICUBIC if self.interpolation == "bicubic" else InterpolationMode.BILINEAR


def eval_resize(pixels: torch.Tensor, prep: Preprocess) -> torch.Tensor:
    """uint8 (3, h, w) -> uint8 (3, H, W): open_clip's eval transform (resize shortest side, centre crop) on a tensor."""
    import torchvision.transforms.v2.functional as F

    H, W = prep.size
    if tuple(pixels.shape[-2:]) == (H, W):
        return pixels  # what PIL's resize does for an image already at size: a copy
    if prep.resize_mode == "shortest" and H == W:
        # torchvision's rule, as open_clip's Resize(int): long side = int(S * long / short)
        pixels = F.resize(pixels, [H], interpolation=prep.interpolation_mode(), antialias=True)
        return F.center_crop(pixels, [H, W])
    # open_clip squashes for a non-square size (Resize((H, W))) and in resize_mode 'squash'
    return F.resize(pixels, [H, W], interpolation=prep.interpolation_mode(), antialias=True)


def random_resized_crop_params(
    height: int,
    width: int,
    generator: torch.Generator,
    scale: tuple[float, float] = TRAIN_SCALE,
    ratio: tuple[float, float] = TRAIN_RATIO,
) -> tuple[int, int, int, int]:
    """``(top, left, h, w)``: torchvision's RandomResizedCrop.get_params, drawing from ``generator``."""
    area = height * width
    log_ratio = torch.log(torch.tensor(ratio))
    for _ in range(10):
        target_area = area * torch.empty(1).uniform_(scale[0], scale[1], generator=generator).item()
        aspect = torch.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1], generator=generator)).item()
        w = round(math.sqrt(target_area * aspect))
        h = round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = torch.randint(0, height - h + 1, size=(1,), generator=generator).item()
            left = torch.randint(0, width - w + 1, size=(1,), generator=generator).item()
            return int(top), int(left), h, w
    in_ratio = width / height  # fallback: the central crop of the closest allowed ratio
    if in_ratio < min(ratio):
        w, h = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        h, w = height, round(height * max(ratio))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def crop_seed(seed: int, epoch: int, item: int) -> int:
    """The random-crop seed of one item in one epoch: independent of workers, batch order and resumption."""
    return int(np.random.SeedSequence([int(seed), int(epoch), int(item)]).generate_state(1, dtype=np.uint64)[0] >> 1)


def train_crop_box(height: int, width: int, seed: int, epoch: int, item: int) -> tuple[int, int, int, int]:
    """``(top, left, h, w)`` of item ``item``'s train crop in epoch ``epoch`` of an image of ``height`` x ``width``."""
    g = torch.Generator().manual_seed(crop_seed(seed, epoch, item))
    return random_resized_crop_params(height, width, g)


def train_crop(pixels: torch.Tensor, prep: Preprocess, seed: int, epoch: int, item: int) -> torch.Tensor:
    """uint8 (3, h, w) -> uint8 (3, H, W): open_clip's train RandomResizedCrop, seeded by (seed, epoch, item)."""
    import torchvision.transforms.v2.functional as F

    top, left, h, w = train_crop_box(pixels.shape[-2], pixels.shape[-1], seed, epoch, item)
    return F.resized_crop(
        pixels, top, left, h, w, list(prep.size), interpolation=prep.interpolation_mode(), antialias=True
    )


def normalize(pixels: torch.Tensor, prep: Preprocess, device: str | torch.device | None = None) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float32 (B, 3, H, W) on ``device``: x/255, then (x - mean)/std (as images_to_tensor)."""
    device = pixels.device if device is None else torch.device(device)
    x = pixels.to(device, non_blocking=True).float().div_(255.0)
    mean = torch.tensor(prep.mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std = torch.tensor(prep.std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    # in place: the same arithmetic as (x - mean) / std, 2.5x faster on the CPU (no fresh 38 MB buffers per batch at 224)
    return x.sub_(mean).div_(std)


# --------------------------------------------------------------------------- decoding
def _clean_reason(exc: BaseException) -> str:
    msg = str(exc).strip() or type(exc).__name__
    if ".cpp:" in msg:  # torchvision: "decode_jpeg, /path/decode_jpeg.cpp:171, Image is incomplete or truncated"
        msg = msg.rsplit(", ", 1)[-1]
    return msg.splitlines()[-1][:300]


def _header(data: bytes) -> tuple[str, str, tuple[int, int]]:
    """(format, mode, (width, height)) from the file header only; raises ValueError for an unknown format."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ValueError("the file is empty (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as img:
            return str(img.format), str(img.mode), img.size
    except UnidentifiedImageError:
        raise ValueError(f"not an image in a format PIL knows (first bytes {data[:8]!r})") from None
    except Image.DecompressionBombError as exc:  # over twice PIL's MAX_IMAGE_PIXELS: refused before decoding
        raise ValueError(f"{exc}; shrink the image, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust it") from None


def _png_bit_depth(data: bytes) -> int:
    return data[24] if len(data) > 24 else 0  # IHDR: 8-byte signature, length, type, width, height, bit depth


def _as_tensor(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def decode_pil(data: bytes) -> torch.Tensor:
    """uint8 (3, h, w) RGB via PIL, 16-bit, integer and float images scaled to 8 bits, not clipped
    (``egath_lite.data.dataset.image_to_rgb``, as MultiModalDataset.get_image)."""
    from PIL import Image

    from egath_lite.data.dataset import image_to_rgb

    with Image.open(io.BytesIO(data)) as img:
        arr = np.asarray(image_to_rgb(img))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def decode_torchvision(data: bytes) -> torch.Tensor:
    """uint8 (3, h, w) RGB via ``torchvision.io.decode_image`` (grey and palette expanded, alpha dropped)."""
    from torchvision.io import ImageReadMode, decode_image

    out = decode_image(_as_tensor(data), mode=ImageReadMode.RGB)
    if out.dtype != torch.uint8:
        raise ValueError(f"torchvision decoded to {out.dtype}, not uint8 (a 16-bit image?); use decoder='pil'")
    return out


def torchvision_decodes(fmt: str, mode: str, data: bytes) -> bool:
    """Whether ``decoder="auto"`` hands this file to torchvision.io (JPEG RGB/grey, 8-bit PNG), else to PIL."""
    if mode not in _TORCHVISION_MODES.get(fmt, ()):
        return False
    return fmt != "PNG" or _png_bit_depth(data) == 8


def max_file_bytes() -> int:
    """The largest image file read: 4 bytes per pixel of PIL's decompression-bomb limit (2 × MAX_IMAGE_PIXELS)."""
    from PIL import Image

    return 8 * int(Image.MAX_IMAGE_PIXELS or 89_478_485)


def check_file_size(path: str | os.PathLike) -> None:
    """ValueError before a file larger than ``max_file_bytes()`` is read whole (no image needs that many bytes)."""
    size = os.stat(path).st_size
    if size > max_file_bytes():
        raise ValueError(
            f"{os.fspath(path)} has {size:,} bytes, more than an image within PIL's pixel limit needs "
            f"({max_file_bytes():,}); is it an image? Shrink it, or raise PIL.Image.MAX_IMAGE_PIXELS"
        )


def decode_bytes(data: bytes, decoder: str = "auto") -> torch.Tensor:
    """An encoded image -> uint8 (3, h, w) RGB with the chosen CPU decoder; raises ValueError naming the problem."""
    from PIL import Image

    fmt, mode, (w, h) = _header(data)
    if w * h > 2 * Image.MAX_IMAGE_PIXELS:  # PIL's own decompression-bomb limit, applied to both decoders
        raise ValueError(f"{w}x{h} pixels exceed PIL's limit of {2 * Image.MAX_IMAGE_PIXELS} (a decompression bomb?)")
    if decoder == "pil" or (decoder in ("auto", "cuda") and not torchvision_decodes(fmt, mode, data)):
        try:
            return decode_pil(data)
        except Exception as exc:
            raise ValueError(f"{fmt} {mode} {w}x{h}: {_clean_reason(exc)}") from exc
    try:
        return decode_torchvision(data)
    except Exception as exc:
        if decoder == "torchvision":
            raise ValueError(f"{fmt} {mode} {w}x{h}: {_clean_reason(exc)}") from exc
        tv_reason = _clean_reason(exc)
    try:  # auto: PIL gets a second chance, and names the problem in its own words
        return decode_pil(data)
    except Exception as exc:
        raise ValueError(f"{fmt} {mode} {w}x{h}: {_clean_reason(exc)} (torchvision: {tv_reason})") from exc


# --------------------------------------------------------------------------- the Dataset
class ImageItems(torch.utils.data.Dataset):
    """Items ``idx`` of an image source as uint8 (3, H, W) model inputs: ``self[pos]``, ``self[(epoch, pos)]`` -> ImageItem.

    ``source``: a dataset with ``images`` (uint8 (N, H, W, 3)) or ``image_path(i)`` (a MultiModalDataset),
    a uint8 array (N, H, W, 3), or a list of image paths. ``model`` gives the preprocessing (an open_clip
    model, its preprocess-cfg dict, or a ``Preprocess``). ``train=True`` applies the seeded random crop.
    """

    def __init__(
        self,
        source: Any,
        idx: Sequence[int] | np.ndarray | None = None,
        model: Any = None,
        *,
        decoder: str = "auto",
        train: bool = False,
        seed: int = 0,
    ):
        if model is None:
            raise ValueError("ImageItems needs the model (or its Preprocess) to know the input size and interpolation")
        if decoder not in DECODERS:
            raise ValueError(f"unknown decoder {decoder!r}; choose one of {DECODERS}")
        self.prep = Preprocess.from_model(model)
        # Import the decoders here, once: forked workers inherit them instead of each paying ~1 s at its first item.
        import torchvision.io
        import torchvision.transforms.v2.functional  # noqa: F401

        self.decoder, self.train, self.seed = decoder, bool(train), int(seed)
        self.array, self.paths, self.ds = _resolve_source(source)
        total = (
            len(self.array) if self.array is not None else (len(self.paths) if self.paths is not None else len(self.ds))
        )
        self.items = np.arange(total, dtype=np.int64) if idx is None else np.asarray(idx, dtype=np.int64).reshape(-1)
        if len(self.items) and (self.items.min() < 0 or self.items.max() >= total):
            bad = self.items[(self.items < 0) | (self.items >= total)][:5].tolist()
            raise IndexError(f"item ids {bad} out of range for a source of {total} images")

    def __len__(self) -> int:
        return len(self.items)

    @property
    def in_memory(self) -> bool:
        """Whether the images are a uint8 array (no decoding)."""
        return self.array is not None

    @property
    def needs_resize(self) -> bool:
        """Whether in-memory images differ from the model size (always True for files: their sizes vary)."""
        return not self.in_memory or self.train or tuple(self.array.shape[1:3]) != self.prep.size

    def path_of(self, pos: int) -> str:
        """The path (or a description) of the image at position ``pos``, for error messages."""
        item = int(self.items[pos])
        if self.in_memory:
            return f"<in-memory image {item}>"
        if self.paths is not None:
            return str(self.paths[item])
        try:
            return str(self.ds.image_path(item))
        except Exception:  # noqa: BLE001 - a missing file: name the entry as written
            entries = getattr(self.ds, "image_paths", None)
            return str(entries[item]) if entries is not None else f"<item {item}>"

    def stamp(self, pos: int) -> str:
        """What identifies the image at ``pos`` without reading it: file size and mtime (in memory: its item id)."""
        item = int(self.items[pos])
        if self.in_memory:
            return f"mem:{item}"
        try:
            path = Path(self.paths[item]) if self.paths is not None else Path(self.ds.image_path(item))
            st = path.stat()
        except Exception:  # noqa: BLE001 - a missing file: it cannot match a stored stamp
            return f"missing:{item}"
        return f"{st.st_size}:{st.st_mtime_ns}"

    def read_bytes(self, pos: int) -> bytes:
        """The encoded file of the image at ``pos`` (raises FileNotFoundError/DatasetError naming the paths tried)."""
        item = int(self.items[pos])
        path = Path(self.paths[item]) if self.paths is not None else self.ds.image_path(item)
        check_file_size(path)
        return Path(path).read_bytes()

    def load(self, pos: int, epoch: int = 0) -> ImageItem:
        """Decode and preprocess one image (raises on a bad file; ``__getitem__`` turns that into an ImageError)."""
        item = int(self.items[pos])
        if self.in_memory:
            pixels = torch.from_numpy(self.array[item]).permute(2, 0, 1)
        else:
            data = self.read_bytes(pos)
            if self.decoder == "cuda" and not self.train:
                fmt, mode, _ = _header(data)
                if fmt == "JPEG" and mode in _TORCHVISION_MODES["JPEG"]:
                    return ImageItem(pos, None, _as_tensor(data), None)  # decoded on the GPU in to_model_input
            pixels = decode_bytes(data, self.decoder)
        if self.train:
            pixels = train_crop(pixels, self.prep, self.seed, epoch, item)
        else:
            pixels = eval_resize(pixels, self.prep)
        return ImageItem(pos, pixels.contiguous(), None, None)

    def __getitem__(self, key: int | tuple[int, int]) -> ImageItem:
        epoch, pos = key if isinstance(key, tuple) else (0, key)
        pos = int(pos)
        try:
            return self.load(pos, int(epoch))
        except Exception as exc:  # noqa: BLE001 - never raise in a worker: one bad file must not end the pass
            reason = _clean_reason(exc) if not isinstance(exc, FileNotFoundError) else f"file not found ({exc})"
            return ImageItem(pos, None, None, ImageError(int(self.items[pos]), pos, self.path_of(pos), reason))


def _resolve_source(source: Any) -> tuple[np.ndarray | None, list | None, Any]:
    """(array, paths, dataset): exactly one is used, in that order of preference."""
    if isinstance(source, np.ndarray):
        array = source
    elif getattr(source, "images", None) is not None:
        array = source.images
    elif hasattr(source, "image_path"):
        return None, None, source
    elif isinstance(source, (list, tuple)) and all(isinstance(p, (str, os.PathLike)) for p in source):
        return None, [os.fspath(p) for p in source], None
    else:
        raise TypeError(
            f"image source must be a uint8 array (N, H, W, 3), a dataset with images or image_path(i), "
            f"or a list of paths; got {type(source).__name__}"
        )
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(
            f"in-memory images must be uint8 (N, H, W, 3), got {array.dtype} {array.shape}; "
            f"convert with np.asarray(img, np.uint8)"
        )
    return array, None, None


# --------------------------------------------------------------------------- batches and the loader
@dataclass
class ImageBatch:
    """A collated batch: ``positions`` int64 (B,) of ``pixels`` uint8 (B, 3, H, W); JPEG bytes for the GPU; errors."""

    positions: torch.Tensor
    pixels: torch.Tensor
    encoded: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    errors: list[ImageError] = field(default_factory=list)

    def pin_memory(self) -> ImageBatch:
        """Called by the DataLoader's pin-memory thread (pin_memory=True)."""
        return ImageBatch(self.positions.pin_memory(), self.pixels.pin_memory(), self.encoded, self.errors)


def collate_images(samples: Sequence[ImageItem]) -> ImageBatch:
    """Stack the decoded images, keep JPEG bytes and errors aside (runs inside the workers)."""
    good = [s for s in samples if s.pixels is not None]
    pixels = torch.stack([s.pixels for s in good]) if good else torch.empty((0, 3, 0, 0), dtype=torch.uint8)
    return ImageBatch(
        torch.tensor([s.position for s in good], dtype=torch.int64),
        pixels,
        [(s.position, s.encoded) for s in samples if s.encoded is not None],
        [s.error for s in samples if s.error is not None],
    )


def to_model_input(
    batch: ImageBatch, items: ImageItems, device: str | torch.device
) -> tuple[torch.Tensor, torch.Tensor, list[ImageError]]:
    """``(positions int64 (B,), normalised float32 (B, 3, H, W) on device, errors)``; decodes JPEG bytes on the GPU."""
    device = torch.device(device)
    positions, pixels, errors = batch.positions, batch.pixels.to(device, non_blocking=True), list(batch.errors)
    if batch.encoded:
        pos_gpu, pix_gpu, err_gpu = _decode_on_device(batch.encoded, items, device)
        errors += err_gpu
        if pix_gpu:
            positions = torch.cat([positions, torch.tensor(pos_gpu, dtype=torch.int64)])
            pixels = torch.cat([pixels.reshape(-1, 3, *items.prep.size), torch.stack(pix_gpu)])
    if len(positions) == 0:
        return positions, torch.empty((0, 3, *items.prep.size), device=device), errors
    return positions, normalize(pixels, items.prep, device), errors


def _decode_on_device(encoded: list[tuple[int, torch.Tensor]], items: ImageItems, device: torch.device):
    """JPEG bytes -> resized uint8 (3, H, W) on ``device`` (nvJPEG); a file nvJPEG refuses goes through the CPU decoders."""
    from torchvision.io import ImageReadMode, decode_jpeg

    datas = [d for _, d in encoded]
    try:
        decoded = decode_jpeg(datas, mode=ImageReadMode.RGB, device=device)
    except RuntimeError:  # one bad file fails the batched call: decode one by one to find it
        decoded = []
        for d in datas:
            try:
                decoded.append(decode_jpeg(d, mode=ImageReadMode.RGB, device=device))
            except RuntimeError:
                decoded.append(None)
    positions, pixels, errors = [], [], []
    for (pos, data), img in zip(encoded, decoded):
        if img is None:
            try:
                img = decode_bytes(data.numpy().tobytes(), "auto").to(device)
            except Exception as exc:  # noqa: BLE001
                errors.append(ImageError(int(items.items[pos]), pos, items.path_of(pos), _clean_reason(exc)))
                continue
        positions.append(pos)
        pixels.append(eval_resize(img, items.prep))
    return positions, pixels, errors


class EpochBatches(torch.utils.data.Sampler):
    """Batches of ``(epoch, position)`` keys: in order, or shuffled by (seed, epoch); ``set_epoch`` before each epoch.

    The epoch travels with every key, so persistent workers (which hold a copy of the dataset)
    crop with the right epoch, and ``start_batch`` resumes an interrupted epoch at the same batch.
    """

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        batches: Sequence[Sequence[int]] | None = None,
    ):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.num_items, self.batch_size, self.drop_last = num_items, batch_size, drop_last
        self.shuffle, self.seed = shuffle, seed
        self.fixed = None if batches is None else [list(map(int, b)) for b in batches]
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """The next iteration yields epoch ``epoch``'s batches from batch ``start_batch`` on."""
        self.epoch, self.start_batch = int(epoch), int(start_batch)

    def batch_positions(self) -> list[list[int]]:
        """This epoch's batches of positions, all of them (before ``start_batch`` is applied)."""
        if self.fixed is not None:
            return self.fixed
        order = np.arange(self.num_items)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.num_items)
        stop = self.num_items - self.num_items % self.batch_size if self.drop_last else self.num_items
        return [order[s : s + self.batch_size].tolist() for s in range(0, stop, self.batch_size)]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for batch in self.batch_positions()[self.start_batch :]:
            yield [(self.epoch, p) for p in batch]

    def __len__(self) -> int:
        return max(0, len(self.batch_positions()) - self.start_batch)


def available_cores() -> int:
    """CPU cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS / Windows
        return os.cpu_count() or 1


def default_num_workers(items: ImageItems) -> int:
    """Available cores; 0 with one core, or for in-memory images already at the model size (nothing to decode).

    Measured (benchmarks/bench_images.py (d), 4,096 in-memory 64x64 items, four runs on 2 busy cores):
    2 workers ran at 0.77x-1.5x the rate of the main process alone (3,300-7,700 img/s), no consistent
    gain, and both far above the tiny CLIP's ~255 img/s; an item is an array slice, so workers would
    add start-up time (and, where processes spawn, a copy of the array each) for nothing.
    """
    cores = available_cores()
    if cores <= 1 or (items.in_memory and not items.needs_resize):
        return 0
    return cores


@contextlib.contextmanager
def main_threads_beside_workers(num_workers: int, device: str | torch.device = "cpu") -> Iterator[None]:
    """On the CPU, the main process gets the cores the decoding workers leave (at least one); restored on exit.

    Measured on 2 busy cores: the tiny CLIP encodes 255 img/s on one thread and 79 img/s on two
    once workers compete for the cores (threads that wait for each other, spinning).
    """
    saved = torch.get_num_threads()
    if torch.device(device).type == "cpu" and num_workers > 0:
        torch.set_num_threads(max(1, min(saved, available_cores() - num_workers)))
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def make_image_loader(
    items: ImageItems,
    batch_size: int,
    num_workers: int | None = None,
    device: str | torch.device = "cpu",
    shuffle: bool = False,
    seed: int = 0,
    drop_last: bool = False,
    batches: Sequence[Sequence[int]] | None = None,
    prefetch_factor: int | None = None,
) -> torch.utils.data.DataLoader:
    """DataLoader of ``ImageBatch`` over ``items``; ``loader.batch_sampler.set_epoch(e)`` before each epoch.

    Workers: ``default_num_workers(items)`` when None; persistent; pinned memory and a deeper prefetch on CUDA.
    ``batches`` fixes the batches (lists of positions), e.g. aligned to extraction shards.
    """
    if not isinstance(items, ImageItems):
        raise TypeError(f"make_image_loader takes an ImageItems, got {type(items).__name__}")
    if num_workers is None:
        num_workers = default_num_workers(items)
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"num_workers must be an int >= 0, got {num_workers!r}")
    on_cuda = torch.device(device).type == "cuda"
    sampler = EpochBatches(len(items), batch_size, shuffle, seed, drop_last, batches)
    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        kwargs = {"persistent_workers": True, "prefetch_factor": prefetch_factor or (4 if on_cuda else 2)}
    return torch.utils.data.DataLoader(
        items, batch_sampler=sampler, num_workers=num_workers, collate_fn=collate_images, pin_memory=on_cuda, **kwargs
    )
