"""Loading open_clip models: a pretrained tag (through the hub), a local checkpoint file, or random init.

Weights are an experiment's input: ``weights_fingerprint`` says what identifies them (a tag, or
a content digest of a checkpoint file) so every stage that reads CLIP features keys on it. A
checkpoint file is untrusted input: it is opened with ``weights_only=True`` and checked before
open_clip sees it, so a file that is not a checkpoint gets this project's message.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from egath_lite.errors import EgathError
from egath_lite.utils import resolve_device

MODEL_CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"
TINY_CLIP = "egath-tiny-clip"
RANDOM_INIT = (None, "", "none", "random")


class ClipWeightsError(EgathError, RuntimeError):
    """Pretrained CLIP weights cannot be had here (offline, unknown tag, missing or unfit file)."""


# --------------------------------------------------------------------------- loading
def register_model_configs() -> None:
    """Register the model configs shipped in egath_lite/clip/model_configs with open_clip (idempotent)."""
    import open_clip
    from open_clip import factory

    if MODEL_CONFIG_DIR not in factory._MODEL_CONFIG_PATHS:
        open_clip.add_model_config(MODEL_CONFIG_DIR)


def _check_model_name(model_name: str) -> None:
    import open_clip

    register_model_configs()
    if model_name.startswith(("hf-hub:", "local-dir:")) or model_name in open_clip.list_models():
        return
    close = difflib.get_close_matches(model_name, open_clip.list_models(), n=5)
    raise ValueError(
        f"unknown open_clip model {model_name!r}; close names: {close or 'none'}. "
        f"Use {TINY_CLIP!r} offline or e.g. 'ViT-B-32' (see open_clip.list_models())"
    )


def hub_cache_dir() -> str:
    """Where open_clip's Hugging Face downloads are cached (HF_HUB_CACHE / HF_HOME)."""
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def _hub_reachable(timeout: float = 3.0) -> bool:
    """One TCP connect to the hub: a closed network answers in seconds, not after minute-long retries."""
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _hub_offline_unless_reachable():
    """Inside the block the hub serves cached files only, unless it is reachable and offline mode is not set.

    huggingface_hub reads HF_HUB_OFFLINE once at import, so the flag is set on its constants module;
    every open_clip tag is fetched through the hub, so a missing weight then fails at once.
    """
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE
    offline = bool(saved) or os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0") or not _hub_reachable()
    constants.HF_HUB_OFFLINE = offline
    try:
        yield offline
    finally:
        constants.HF_HUB_OFFLINE = saved


def _weights_help(model_name: str, pretrained: str) -> str:
    return (
        f"How to provide them: (1) on a connected machine or Colab run "
        f"`python -c \"import open_clip; open_clip.create_model_and_transforms('{model_name}', pretrained='{pretrained}')\"` "
        f"and copy the Hugging Face cache folder {hub_cache_dir()} (set HF_HOME/HF_HUB_CACHE to move it) to this machine; "
        f"(2) or pass a local checkpoint file as PRETRAINED='/path/to/open_clip_pytorch_model.bin' "
        f"(OpenAI weights from a file need the '-quickgelu' model name, e.g. 'ViT-B-32-quickgelu'); "
        f"(3) or, on the embedded toy data only, train the offline tiny CLIP: MODEL='{TINY_CLIP}', PRETRAINED='train'. "
        f"Through the driver: --clip-model {model_name} --clip-pretrained /path/to/checkpoint."
    )


def load_clip(
    model_name: str,
    pretrained: str | os.PathLike | None,
    device: str | torch.device = "auto",
    seed: int | None = None,
) -> tuple[torch.nn.Module, Callable, Callable]:
    """``(model in eval mode, PIL preprocess, tokenizer)``; ``pretrained`` is a tag, a checkpoint path, or None (random init)."""
    import open_clip

    _check_model_name(model_name)
    device = resolve_device(device) if not isinstance(device, torch.device) else device
    # hf-hub: models fetch their config and tokenizer from the hub too
    offline_ctx = _hub_offline_unless_reachable() if model_name.startswith("hf-hub:") else contextlib.nullcontext(False)
    if isinstance(pretrained, os.PathLike):
        pretrained = os.fspath(pretrained)
    if pretrained in RANDOM_INIT:
        pretrained = None
    elif pretrained == "train":
        raise ValueError(
            "pretrained='train' means 'train the tiny CLIP first'; load_clip needs a tag or a file. "
            "Use ensure_tiny_clip(cfg) (or ensure_features(cfg)), which trains it and loads it by path"
        )
    elif open_clip.get_pretrained_cfg(model_name, pretrained):
        offline_ctx = _hub_offline_unless_reachable()
    elif _looks_like_path(pretrained):
        check_not_folder(pretrained)
        if not Path(pretrained).is_file():
            raise ClipWeightsError(
                f"CLIP checkpoint file {pretrained!r} does not exist; pass an existing open_clip checkpoint "
                f"(.pt/.bin/.safetensors) or a pretrained tag of {model_name!r}: "
                f"{open_clip.list_pretrained_tags_by_model(model_name)}"
            )
        check_checkpoint_file(pretrained)
    else:
        raise ClipWeightsError(
            f"{pretrained!r} is neither a pretrained tag of {model_name!r} nor a file. Tags: "
            f"{open_clip.list_pretrained_tags_by_model(model_name) or 'none (a custom config)'}; "
            f"or pass a checkpoint path, or None for random initialisation"
        )
    with offline_ctx as offline:
        try:
            rng = torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext()
            with rng:
                if seed is not None:
                    torch.manual_seed(seed)  # random init is part of the experiment: make it repeatable
                with _without_random_init_notice(pretrained is None):
                    model, _, preprocess = open_clip.create_model_and_transforms(
                        model_name, pretrained=pretrained, device=device
                    )
            tokenizer = open_clip.get_tokenizer(model_name)
        except (RuntimeError, AssertionError, KeyError) as exc:
            msg = str(exc)
            if pretrained is None:
                raise
            if isinstance(exc, RuntimeError) and "download" in msg.lower():
                state = "the hub is unreachable / HF_HUB_OFFLINE is set" if offline else "the download failed"
                raise ClipWeightsError(
                    f"pretrained weights {pretrained!r} for {model_name!r} are not in the local cache and "
                    f"{state} ({msg[:200]}). {_weights_help(model_name, pretrained)}"
                ) from exc
            if Path(pretrained).is_file():  # open_clip raises RuntimeError/AssertionError/KeyError on a misfit
                raise ClipWeightsError(
                    f"checkpoint {pretrained!r} does not fit model {model_name!r} ({type(exc).__name__}: {msg[:300]}); "
                    f"pass the model name the checkpoint was trained with"
                ) from exc
            raise
    model.eval()
    return model, preprocess, tokenizer


class _DropRandomInitNotice(logging.Filter):
    """Drops open_clip's "No pretrained weights loaded for model ..." record."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("No pretrained weights loaded")


@contextlib.contextmanager
def _without_random_init_notice(active: bool):
    """open_clip logs a WARNING on the root logger whenever a model starts from random weights; here that is
    what was asked for (``pretrained`` None or "random": the tiny CLIP trained offline, a random baseline), and a
    student reads the red line as an error. Only that record, only during this call, and only when asked."""
    if not active:
        yield
        return
    notice = _DropRandomInitNotice()
    root = logging.getLogger()
    root.addFilter(notice)
    try:
        yield
    finally:
        root.removeFilter(notice)


def check_not_folder(path: str | os.PathLike) -> None:
    """ClipWeightsError when ``path`` (clip_pretrained) is a folder: name the checkpoint files inside it."""
    p = Path(path)
    if not p.is_dir():
        return
    inside = sorted(
        str(f) for f in p.rglob("*") if f.suffix in (".pt", ".pth", ".bin", ".safetensors") and f.is_file()
    )[:5]
    raise ClipWeightsError(
        f"CLIP weights {os.fspath(path)!r} (clip_pretrained, --clip-pretrained) is a folder, not a checkpoint file; "
        f"pass the file itself"
        + (f", e.g. {inside[0]!r} (checkpoint files there: {', '.join(inside)})" if inside else " (none is in it)")
    )


def _looks_like_path(value: str) -> bool:
    return os.sep in value or value.endswith((".pt", ".pth", ".bin", ".safetensors", ".npz")) or Path(value).exists()


def check_checkpoint_file(path: str | os.PathLike) -> None:
    """Raise ClipWeightsError unless ``path`` holds a state dict (torch ``weights_only`` or safetensors)."""
    path = Path(path)
    head = path.read_bytes()[:8] if path.stat().st_size >= 8 else path.read_bytes()
    what = (
        "an open_clip checkpoint: a file written by torch.save(model.state_dict()) (optionally inside "
        "{'state_dict': ...}), or a .safetensors file, e.g. open_clip_pytorch_model.bin from the hub"
    )
    if path.suffix == ".safetensors":
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                if not list(f.keys()):
                    raise ValueError("no tensors")
            return
        except Exception as exc:  # noqa: BLE001 - any failure means this is no safetensors file
            raise ClipWeightsError(
                f"{path} is not a readable safetensors file ({type(exc).__name__}); expected {what}"
            ) from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=head[:2] == b"PK")
    except Exception as exc:  # noqa: BLE001 - unpickling errors, zip errors, truncation
        kind = (
            "a zip archive that torch cannot read"
            if head[:2] == b"PK"
            else (
                "an old-style pickle with non-weight objects"
                if head[:1] == b"\x80"
                else f"not a torch file (starts {head!r})"
            )
        )
        raise ClipWeightsError(
            f"{path} is not a checkpoint: {kind} ({type(exc).__name__}). Expected {what}. "
            f"Re-download or re-export the weights"
        ) from None
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ClipWeightsError(
            f"{path} holds a {type(obj).__name__} that is not a state dict of tensors; expected {what}"
        )


_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | os.PathLike) -> str:
    """16-hex sha256 of a file's bytes; a large checkpoint's is remembered per (path, size, mtime) and read once."""
    st = os.stat(path)
    memo = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
    # small files are hashed every time: two writes within one mtime tick must not share a digest
    if memo not in _FILE_DIGESTS or st.st_size < (1 << 24):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        _FILE_DIGESTS[memo] = h.hexdigest()[:16]
    return _FILE_DIGESTS[memo]


def weights_fingerprint(cfg: Any) -> str:
    """What identifies the weights: a content digest of a checkpoint file, the tag, or random init by seed.

    'train' (the tiny CLIP) is identified by its own stage's key, an upstream of every stage that reads it.
    """
    p = cfg.clip_pretrained
    if p == "train":
        return "train"
    if p in RANDOM_INIT:
        return f"random:{cfg.seed}"
    if Path(p).is_file():  # a file can change in place: hash its bytes
        return f"file:{file_digest(p)}"
    check_not_folder(p)
    if _looks_like_path(p):
        raise ClipWeightsError(
            f"CLIP checkpoint file {p!r} does not exist (clip_pretrained); pass an existing file "
            f"or a pretrained tag such as 'openai'"
        )
    return f"tag:{p}"


def save_clip_checkpoint(model: torch.nn.Module, path: str | os.PathLike) -> Path:
    """Atomically write ``{"state_dict": ...}`` of an open_clip model: a file ``load_clip(name, path)`` loads."""
    from egath_lite.files import atomic_write_bytes

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_write_bytes(path, lambda f: torch.save({"state_dict": state}, f))
    return Path(path)
