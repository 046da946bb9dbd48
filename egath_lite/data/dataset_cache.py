"""A real data set loaded once: its compact form (labels, texts, image paths) cached as one bundle per fingerprint.

Loading NUS-WIDE or MS-COCO from their release files takes a minute or more (``.mat`` / JSON parsing,
a stat of every image); every stage of every notebook needs the same object. The first load writes
``<runs_root>/shared-cache/dataset-<name>-<key>.bundle``: uint8 labels, the texts and image paths as
UTF-8 blobs with offsets, and the provenance (``ds.info``); later loads open it in well under a
second. The key digests the data set's fingerprint (every input file's content or stat, every image
file's size and mtime: ``egath_lite.data.fingerprint``) and the source of the loaders, so a changed
file, a replaced image or an edit of a loader loads the release again. The bundle is checksummed per
array (``egath_lite.data.bundle``) and written under a lock; a damaged one is reloaded, never used.
Only data sets with image files are cached (the toy set has its own cache, manifests load fast).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from egath_lite.data.bundle import BundleError, read_bundle, write_bundle
from egath_lite.data.dataset import MultiModalDataset, SplitDefaults
from egath_lite.files import file_lock, plain

CACHE_FORMAT = "egath_lite.dataset_bundle/1"
SHARED_DIR = "shared-cache"
# the modules whose code decides what a real data set's loader returns
LOADER_MODULES = (
    "dataset.py",
    "release.py",
    "matfiles.py",
    "layouts.py",
    "reference.py",
    "benchmarks.py",
    "nuswide.py",
    "mscoco.py",
    "mirflickr.py",
)


def loader_digest() -> str:
    """16 hex digits of the loaders' source: an edit of a loader reloads every cached data set."""
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in LOADER_MODULES:
        h.update(name.encode() + b"\0" + (here / name).read_bytes())
    return h.hexdigest()[:16]


def bundle_path(cache_dir: str | Path, name: str, fingerprint: str) -> Path:
    """``<cache_dir>/shared-cache/dataset-<name>-<key>.bundle``; the key digests fingerprint, format and loaders."""
    parts = {"format": CACHE_FORMAT, "name": name, "fingerprint": fingerprint, "loaders": loader_digest()}
    key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir).resolve() / SHARED_DIR / f"dataset-{name}-{key}.bundle"


def _pack(strings: list[str]) -> tuple[np.ndarray, np.ndarray]:
    encoded = [s.encode("utf-8", "surrogatepass") for s in strings]
    offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), np.uint8), offsets


def _unpack(blob: np.ndarray, offsets: np.ndarray) -> list[str]:
    raw = blob.tobytes()
    bounds = offsets.tolist()
    return [raw[a:b].decode("utf-8", "surrogatepass") for a, b in zip(bounds[:-1], bounds[1:])]


def to_bundle(ds: MultiModalDataset) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, meta) of a data set with image files: what ``from_bundle`` rebuilds it from."""
    texts, text_offsets = _pack(ds.texts)
    paths, path_offsets = _pack(list(ds.image_paths or []))
    arrays = {"labels": ds.labels, "texts": texts, "text_offsets": text_offsets}
    arrays |= {"image_paths": paths, "image_path_offsets": path_offsets}
    info, info_arrays = {}, []
    for k, v in ds.info.items():
        if isinstance(v, np.ndarray):
            arrays[f"info.{k}"] = v
            info_arrays.append(k)
        else:
            info[k] = v
    meta = {
        "format": CACHE_FORMAT,
        "name": ds.name,
        "label_names": list(ds.label_names),
        "split_defaults": dataclasses.asdict(ds.split_defaults),
        "image_root": None if ds.image_root is None else str(ds.image_root),
        "info": plain(info),
        "info_arrays": info_arrays,
    }
    return arrays, meta


def from_bundle(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> MultiModalDataset:
    """The data set ``to_bundle`` stored (validated again on construction)."""
    info = dict(meta["info"])
    for k in meta["info_arrays"]:
        info[k] = arrays[f"info.{k}"]
    return MultiModalDataset(
        name=meta["name"],
        label_names=list(meta["label_names"]),
        labels=arrays["labels"],
        texts=_unpack(arrays["texts"], arrays["text_offsets"]),
        split_defaults=SplitDefaults(**meta["split_defaults"]),
        image_paths=_unpack(arrays["image_paths"], arrays["image_path_offsets"]),
        image_root=None if meta["image_root"] is None else Path(meta["image_root"]),
        info=info,
    )


def load_cached(
    name: str, fingerprint: str, cache_dir: str | Path, load: Callable[[], MultiModalDataset], log=print
) -> MultiModalDataset:
    """The data set of ``fingerprint`` from its bundle under ``cache_dir``, else ``load()`` and write the bundle."""
    path = bundle_path(cache_dir, name, fingerprint)
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path, f"{name} data set bundle {path.name}", log):
        if path.is_file():
            try:
                arrays, meta = read_bundle(path)
                if meta.get("format") != CACHE_FORMAT or meta.get("name") != name:
                    raise BundleError(f"{path.name} is not a {name} data set bundle")
                ds = from_bundle(arrays, meta)
                log(f"[{name}] reusing the loaded data set {path}")
                return ds
            except (BundleError, KeyError, TypeError, ValueError) as exc:
                log(f"[{name}] reloading the release files: {exc}")
        start = time.perf_counter()
        ds = load()
        if ds.images is not None or ds.image_paths is None or ds.fixed_split is not None:
            return ds  # not a release with image files: nothing worth caching
        arrays, meta = to_bundle(ds)
        meta["load_seconds"] = round(time.perf_counter() - start, 3)
        write_bundle(path, arrays, meta)
        return ds
