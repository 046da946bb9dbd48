"""The dataset registry: ``load_dataset(name, root=None, **options)`` and the config entry points."""

from __future__ import annotations

import difflib
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from egath_lite.data.benchmarks import LAYOUTS, load_mirflickr25k, load_mscoco, load_nuswide_tc10
from egath_lite.data.dataset import DatasetError, DatasetNotFoundError, MultiModalDataset
from egath_lite.data.fingerprint import inputs_digest
from egath_lite.data.layouts import HOW_TO, Layout
from egath_lite.data.manifest import is_manifest_path, load_manifest, manifest_fingerprint, manifest_label
from egath_lite.data.toy_cache import load_toy_nuswide


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: its loader, whether it is generated (no root) and a one-line description."""

    name: str
    loader: Callable[..., MultiModalDataset]
    generated: bool
    description: str


_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(
    name: str, loader: Callable[..., MultiModalDataset], description: str, generated: bool = False
) -> None:
    """Add a loader under ``name`` (generated sets take options only; the others take ``root`` first)."""
    if name in _REGISTRY:
        raise DatasetError(f"dataset {name!r} is already registered")
    _REGISTRY[name] = DatasetSpec(name, loader, generated, description)


def available_datasets() -> list[str]:
    """Names accepted by ``load_dataset``, the embedded default first."""
    return list(_REGISTRY)


def describe_datasets() -> dict[str, str]:
    """name -> one-line description."""
    return {n: s.description for n, s in _REGISTRY.items()}


def default_data_root(name: str) -> Path:
    """Where a real benchmark is looked for when no root is given: ``$EGATH_DATA/<name>``, else ``./data/<name>``.

    ``./data`` is relative to the current working directory (never to the installed package,
    which may sit in site-packages); the result is absolute.
    """
    env = os.environ.get("EGATH_DATA")
    return ((Path(env).expanduser() if env else Path.cwd() / "data") / name).absolute()


def _default_root_explained(name: str) -> str:
    env = os.environ.get("EGATH_DATA")
    why = (
        f"EGATH_DATA={env}" if env else f"EGATH_DATA is not set, so ./data/{name} of the working directory {Path.cwd()}"
    )
    return (
        f"{name}: no root was given, so it was looked for in {default_data_root(name)} ({why}), which does not "
        f"exist. Pass root=<folder> (config: data_root, driver: --set data_root=...), or set EGATH_DATA to the "
        f"folder that holds {name}/. {HOW_TO}"
    )


def load_dataset(name: str, root: str | os.PathLike | None = None, **options: Any) -> MultiModalDataset:
    """The dataset called ``name`` (see ``available_datasets()``) or, for a path ending in .csv / .jsonl, the
    manifest there (``manifest.load_manifest``: text_kind, num_query, num_train, split_seed, drop_unlabeled);
    unknown names and options raise DatasetError."""
    if is_manifest_path(name):
        accepted = [p for p in inspect.signature(load_manifest).parameters if p != "path"]
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise DatasetError(f"manifest {name}: unknown option(s) {unknown}; accepted: {accepted}")
        if root is not None:
            raise DatasetError(
                f"manifest {name}: takes no root (got {root!r}); image paths are relative to the manifest's own folder"
            )
        return load_manifest(name, **options)
    spec = _REGISTRY.get(name)
    if spec is None:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DatasetError(
            f"unknown dataset {name!r}{hint}; available: {available_datasets()}, or the path of "
            f"your own manifest (.csv / .jsonl)"
        )
    params = inspect.signature(spec.loader).parameters
    accepted = [p for p in params if p != "root"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise DatasetError(f"{name}: unknown option(s) {unknown}; accepted: {accepted}")
    if spec.generated:
        if root is not None:
            raise DatasetError(f"{name} is generated and takes no root (got {root!r}); use cache_dir= for its cache")
        return spec.loader(**options)
    if root is None:
        root = default_data_root(name)
        if not root.is_dir():
            raise DatasetNotFoundError(_default_root_explained(name))
    return spec.loader(Path(root), **options)


def _loader_options(cfg) -> dict[str, Any]:
    """The config's loader options for a real set: layout and drop_unlabeled."""
    return {"layout": getattr(cfg, "layout", "auto"), "drop_unlabeled": bool(getattr(cfg, "drop_unlabeled", False))}


def dataset_from_config(cfg) -> MultiModalDataset:
    """The dataset a run uses: cfg.dataset with cfg.data_root, cfg.layout, cfg.drop_unlabeled (real sets) or
    toy_size / seed / image_size (toy)."""
    if is_manifest_path(cfg.dataset):
        return load_manifest(cfg.dataset, text_kind=cfg.text_kind, drop_unlabeled=bool(cfg.drop_unlabeled))
    if cfg.dataset == "toy_nuswide":
        # the toy bundle is cached in the runs root's shared cache: nothing is written outside the runs root
        return load_dataset(
            "toy_nuswide",
            size=cfg.toy_size,
            seed=cfg.seed,
            image_size=cfg.image_size,
            cache_dir=cfg.runs_root,
            label_dependence=getattr(cfg, "label_dependence", 0.0),
        )
    # a real set is loaded once per fingerprint into <runs_root>/shared-cache (egath_lite.data.dataset_cache)
    from egath_lite.data.dataset_cache import load_cached

    return load_cached(
        cfg.dataset,
        dataset_fingerprint(cfg),
        cfg.runs_root,
        lambda: load_dataset(cfg.dataset, root=cfg.data_root, **_loader_options(cfg)),
    )


def _layout_for_fingerprint(name: str, root: Path, layout: str) -> Layout | None:
    layouts = LAYOUTS[name]
    if layout != "auto":
        return next((lay for lay in layouts if lay.name == layout), None)
    return next((lay for lay in layouts if lay.matches(root)), None)


def dataset_label(name: str) -> str:
    """A data set's short name for run folders and tables: the registered name, or ``<stem>-<8 hex>`` of a manifest."""
    return manifest_label(name) if is_manifest_path(name) else name


def dataset_fingerprint(cfg, images: bool = True) -> str:
    """16-hex digest of what the run's data is made of, without loading it: add it to artifact keys.

    toy_nuswide: generator version and source fingerprint, size, seed, image size (a change
    of the generator's code changes it). A manifest: its path and content (SHA-256), the size and mtime of
    every image file it names, text_kind and drop_unlabeled. Real sets: name, root, the loader options, and every
    file the resolved layout reads: label / tag / list / .mat / .json files by content
    (SHA-256; size and mtime_ns for files over 64 MiB), image and per-item tag folders by
    file count and a digest of relative paths, sizes and mtimes (stat only, never read).
    A root that matches no layout is fingerprinted by its top-level entries (loading it fails anyway).
    ``images=False`` leaves the image and per-item folders out: what the image-shard key of an extraction
    uses, so that replacing a broken image invalidates only the shard that holds it (each shard checks its
    own files' sizes and mtimes).
    """
    import hashlib
    import json

    if is_manifest_path(cfg.dataset):
        parts = ["manifest", manifest_fingerprint(cfg.dataset, images=images), cfg.text_kind, bool(cfg.drop_unlabeled)]
    elif cfg.dataset == "toy_nuswide":
        from egath_lite.data.toy_nuswide import GENERATOR_VERSION, generator_fingerprint

        parts: Any = ["toy_nuswide", GENERATOR_VERSION, generator_fingerprint(), cfg.toy_size, cfg.seed, cfg.image_size]
        if getattr(cfg, "label_dependence", 0.0):  # level 0: the independent generator's fingerprint
            parts.append(float(cfg.label_dependence))
    else:
        if cfg.dataset not in _REGISTRY or _REGISTRY[cfg.dataset].generated:
            raise DatasetError(f"unknown dataset {cfg.dataset!r}; available: {available_datasets()}")
        root = Path(cfg.data_root) if cfg.data_root is not None else default_data_root(cfg.dataset)
        options = _loader_options(cfg)
        lay = _layout_for_fingerprint(cfg.dataset, root, options["layout"]) if root.is_dir() else None
        if lay is not None and lay.inputs is not None:
            files, trees = lay.inputs(root)
            content = [lay.name, inputs_digest(root, files, trees if images else [])]
        else:
            content = [
                "no layout",
                sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in root.iterdir())
                if root.is_dir()
                else [],
            ]
        parts = [cfg.dataset, str(root.resolve()), options, content]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def split_from_config(ds: MultiModalDataset, cfg) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(query, train, val, retrieval) int64 indices from cfg.num_query / num_train / split_seed / val_fraction.

    A manifest with a split column keeps its own query / train / retrieval (validation is carved from its
    train rows as for every set); sizes that differ from it raise (``MultiModalDataset.split``).
    """
    from egath_lite.data.dataset import check_enough

    check_enough(ds.info.get("source", ds.name), np.asarray(ds.labels), ds.label_names, split=True)
    split = ds.split(cfg.num_query, cfg.num_train, cfg.split_seed)
    train, val = split.carve_validation(cfg.val_fraction)
    return split.query, train, val, split.retrieval


register_dataset(
    "toy_nuswide",
    load_toy_nuswide,
    generated=True,
    description="embedded default: real NUS-WIDE TC-10 label rows, procedural 64x64 images, noisy tags",
)
register_dataset(
    "mirflickr25k",
    load_mirflickr25k,
    description="MIRFlickr-25K: 20,015 Flickr images, tags, 24 labels (raw release or .mat layout)",
)
register_dataset(
    "nuswide_tc10",
    load_nuswide_tc10,
    description="NUS-WIDE TC-10: 186,577 Flickr images, 1,000 tags, 10 labels (GCDH .mat or official files)",
)
register_dataset(
    "mscoco", load_mscoco, description="MS-COCO: 122,218 images, captions, 80 labels (.mat layout or official JSON)"
)
