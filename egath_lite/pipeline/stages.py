"""The one mechanism behind every cached step: a ``Stage`` declares what it reads, and this module
keys, names, locks, validates, reuses or recomputes, and indexes its artifact.

A stage's key digests: its name and format version, the config fields it reads (their values),
its call parameters (e.g. ``bits``), the keys of its upstream stages, extra inputs that live
outside the config (the data set's fingerprint, a weights file's digest), and the code it runs:
one digest per ``egath_lite.core`` module it declares (``code``) and of any callable a caller passes
in its place (``custom``; ``egath_lite.pipeline.code_digest``). The artifact's file
name carries the key — ``<stage>[-<params>]-<key>.pt`` — so two configurations never overwrite
each other. Loading checks the format, the key, a sha256 checksum of the payload and what the
key promises about the tensors (row counts, widths, dtypes); any mismatch prints
``[<stage>] recomputing: <file>: <reason>`` and recomputes: never a silent hit. A per-artifact
lock file makes a second process wait for the first instead of computing the same thing twice
or mixing results. Each run folder holds ``index.json``: what it contains (stage, key, params,
config subset, code digests, time). An artifact missing for its key while the index holds one of the
same stage, params and config made by other code prints ``[<stage>] recomputing: the code of <module>
changed``: a code change never recomputes silently.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from egath_lite.files import ArtifactError, atomic_write_bytes, file_lock, plain, read_json, versions, write_json
from egath_lite.pipeline.artifacts import run_dir
from egath_lite.pipeline.code_digest import callable_fingerprint, module_digest
from egath_lite.pipeline.config import Config, digest

FORMAT = "egath_lite.artifact/2"
SHARED_DIR = "shared-cache"  # under the runs root: artifacts that do not belong to one run (the toy data)


def shared_folder(cfg: Config) -> Path:
    """``<runs_root>/shared-cache``: where artifacts shared by every run of a runs root live."""
    return Path(cfg.runs_root).resolve() / SHARED_DIR


@dataclass(frozen=True)
class Stage:
    """One cached step: what it reads (config fields, params, upstream stages, extra inputs) and how it is stored.

    ``expect(cfg, params, payload)`` returns a list of problems (empty when the payload is what the
    key promises). ``code`` names the ``egath_lite.core`` modules the stage runs: each one's digest is
    part of the key. ``codec`` is ``"torch"`` (tensors + meta in one ``torch.save`` file), ``"json"``
    (meta only), or a ``(save, load)`` pair for formats other tools must read (the tiny CLIP
    checkpoint, which open_clip loads by path).
    """

    name: str
    fields: Any  # tuple[str, ...] or cfg -> tuple[str, ...]
    version: str = "1"
    params: tuple[str, ...] = ()
    upstream: Any = ()  # tuple[Stage, ...] or cfg -> tuple[Stage, ...]
    extra: Callable[[Config], Any] | None = None
    tensors: tuple[str, ...] = ()
    expect: Callable[[Config, dict[str, Any], dict[str, Any]], list[str]] | None = None
    codec: Any = "torch"
    suffix: str = ".pt"
    location: Callable[[Config], Path] | None = None  # folder of the artifacts; None: the run folder
    description: str = ""
    code: tuple[str, ...] = ()  # the egath_lite.core modules it runs (their source digests key it)

    # ------------------------------------------------------------------ keys and paths
    def field_names(self, cfg: Config) -> tuple[str, ...]:
        """The config fields this stage reads for ``cfg``."""
        return tuple(self.fields(cfg) if callable(self.fields) else self.fields)

    def upstream_stages(self, cfg: Config) -> tuple[Stage, ...]:
        """The stages whose artifacts this one reads, for ``cfg``."""
        return tuple(self.upstream(cfg) if callable(self.upstream) else self.upstream)

    def code_record(self, custom: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """``{"modules": {module: digest}, "custom": {role: {name, digest}}}`` of the code this stage runs.

        ``custom``: callables a caller passes in place of the paper's code (``{"loss_fn": my_loss}``), or
        their ``callable_fingerprint`` records; None values are dropped. None when the stage runs no declared code.
        """
        fingerprints = {
            role: fn if isinstance(fn, Mapping) else callable_fingerprint(fn, role)
            for role, fn in sorted((custom or {}).items())
            if fn is not None
        }
        if not self.code and not fingerprints:
            return None
        return {"modules": {m: module_digest(m) for m in self.code}, "custom": fingerprints}

    def key_parts(self, cfg: Config, custom: Mapping[str, Any] | None = None, **params: Any) -> dict[str, Any]:
        """Everything the key digests, as a JSON-able dict (printed by ``explain``)."""
        self._check_params(params)
        values = cfg.to_dict()
        code = self.code_record(custom)
        return {
            "stage": self.name,
            "version": self.version,
            "format": FORMAT,
            "config": {f: values[f] for f in sorted(self.field_names(cfg))},
            "params": {p: params[p] for p in self.params},
            "upstream": {
                u.name: u.key(cfg, **{p: params[p] for p in u.params if p in params}) for u in self.upstream_stages(cfg)
            },
            "extra": self.extra(cfg) if self.extra is not None else None,
            **({"code": code} if code is not None else {}),  # stages that run no core code keep their keys
        }

    def key(self, cfg: Config, custom: Mapping[str, Any] | None = None, **params: Any) -> str:
        """16-hex key of this stage's artifact for ``cfg`` and ``params`` (and ``custom`` code passed in)."""
        return digest(self.key_parts(cfg, custom, **params))

    def folder(self, cfg: Config) -> Path:
        """Where this stage's artifacts live: the run folder unless the stage says otherwise."""
        if self.location is None:
            return run_dir(cfg)
        path = self.location(cfg)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def path(self, cfg: Config, key: str | None = None, custom: Mapping[str, Any] | None = None, **params: Any) -> Path:
        """``<folder>/<stage>[-<param values>]-<key><suffix>``."""
        key = key or self.key(cfg, custom, **params)
        tag = "".join(f"-{params[p]}" for p in self.params)
        return self.folder(cfg) / f"{self.name}{tag}-{key}{self.suffix}"

    def _check_params(self, params: dict[str, Any]) -> None:
        missing, unknown = set(self.params) - set(params), set(params) - set(self.params)
        if missing or unknown:
            raise TypeError(
                f"stage {self.name!r} takes params {self.params}; missing {sorted(missing)}, unknown {sorted(unknown)}"
            )

    # ------------------------------------------------------------------ load / save / run
    def load(self, cfg: Config, custom: Mapping[str, Any] | None = None, **params: Any) -> dict[str, Any]:
        """The valid artifact of ``cfg``/``params``, or ArtifactError saying why it cannot be used."""
        key = self.key(cfg, custom, **params)
        return self._load_valid(self.path(cfg, key, **params), cfg, key, params)

    def try_load(
        self,
        cfg: Config,
        log: Callable[[str], None] = print,
        custom: Mapping[str, Any] | None = None,
        **params: Any,
    ) -> dict[str, Any] | None:
        """The valid artifact, or None (printing why an existing file is not used)."""
        key = self.key(cfg, custom, **params)
        path = self.path(cfg, key, **params)
        if not path.is_file():
            return None
        try:
            return self._load_valid(path, cfg, key, params)
        except ArtifactError as exc:
            log(f"[{self.name}] recomputing: {exc}")
            return None

    def save(
        self,
        cfg: Config,
        tensors: dict[str, Any] | None,
        meta: dict[str, Any],
        compute_seconds: float | None = None,
        custom: Mapping[str, Any] | None = None,
        **params: Any,
    ) -> dict[str, Any]:
        """Validate and atomically write an artifact; returns its payload (``cache_hit`` False)."""
        code = self.code_record(custom)
        key = digest(self.key_parts(cfg, (code or {}).get("custom"), **params))
        path = self.path(cfg, key, **params)
        payload = self._payload(cfg, key, params, tensors or {}, meta)
        payload["code"] = code  # outside the checksum, as the config: the key (in the file name) digests both
        payload["compute_seconds"] = compute_seconds  # outside the checksum: how long it took is not content
        problems = self._problems(cfg, params, payload)
        if problems:  # a bug in the stage's computation: never write what a later load would refuse
            raise ArtifactError(f"[{self.name}] refusing to write {path.name}: " + "; ".join(problems))
        self._writer()(path, payload)
        _index_add(self, cfg, path, payload)
        return {**payload, "path": str(path), "cache_hit": False}

    def run(
        self,
        cfg: Config,
        compute: Callable[[], tuple[dict[str, Any] | None, dict[str, Any]]],
        force: bool = False,
        log: Callable[[str], None] = print,
        custom: Mapping[str, Any] | None = None,
        **params: Any,
    ) -> dict[str, Any]:
        """Reuse the valid artifact of this key, else ``compute()`` → ``(tensors, meta)``, save, return the payload.

        The check and the computation run under the artifact's lock: a second process asking for
        the same artifact waits, then reuses it. ``force`` recomputes even a valid artifact.
        ``custom``: callables passed in place of the paper's code (``{"loss_fn": fn}``), keyed by their source.
        When no file has this key but the folder's index holds one of the same params and config made by
        other code, prints which code changed (``[codes] recomputing: the code of egath_lite.core.losses changed``).
        """
        code = self.code_record(custom)  # digested once: the key written is the key looked up
        custom = (code or {}).get("custom")
        key = self.key(cfg, custom, **params)
        path = self.path(cfg, key, **params)
        with file_lock(path, f"{self.name} artifact {path.name}", log):
            if not path.is_file() and not force:
                reason = self.code_change(cfg, code, **params)
                if reason:
                    log(f"[{self.name}] recomputing: {reason}")
            if path.is_file():
                if force:
                    log(f"[{self.name}] recomputing: {path.name}: forced")
                else:
                    try:
                        payload = self._load_valid(path, cfg, key, params)
                        log(f"[{self.name}] reusing {path}")
                        return payload
                    except ArtifactError as exc:
                        log(f"[{self.name}] recomputing: {exc}")
            start = time.perf_counter()
            tensors, meta = compute()
            return self.save(cfg, tensors, meta, compute_seconds=time.perf_counter() - start, custom=custom, **params)

    def code_change(self, cfg: Config, code: dict[str, Any] | None = None, **params: Any) -> str | None:
        """Why this folder lacks an artifact of ``cfg``/``params`` when its index names the code: ``"the code of
        egath_lite.core.losses changed"`` (None when no indexed artifact of the same params and config was made
        by other code of this stage). ``code``: this call's ``code_record`` (default: the stage's own)."""
        code = self.code_record() if code is None else code
        if code is None:
            return None
        values = cfg.to_dict()
        config = plain({f: values[f] for f in sorted(self.field_names(cfg))})
        try:
            entries = read_index(self.folder(cfg))
        except ArtifactError:
            return None
        same = [
            e
            for e in entries.values()
            if e.get("stage") == self.name and e.get("params") == plain(params) and e.get("config") == config
        ]
        if not same:
            return None
        same.sort(key=lambda e: str(e.get("created", "")), reverse=True)
        recorded = [e for e in same if isinstance(e.get("code"), dict)]
        if not recorded:
            return "the artifact of this configuration was made before artifacts were keyed by their code"
        # the newest artifact made with the same callables passed in (or, when none, the newest at all)
        entry = ([e for e in recorded if _roles(e["code"]) == _roles(code)] or recorded)[0]
        changed = code_changes(entry["code"], code)
        return f"the code of {_join(changed)} changed" if changed else None

    def explain(self, cfg: Config, **params: Any) -> str:
        """Human-readable account of the key: fields, params, upstream keys, extra inputs."""
        return json.dumps(self.key_parts(cfg, **params), indent=2, sort_keys=True, default=str)

    # ------------------------------------------------------------------ internals
    def _payload(
        self, cfg: Config, key: str, params: dict[str, Any], tensors: dict[str, Any], meta: dict[str, Any]
    ) -> dict[str, Any]:
        import torch

        clean = {}
        for name, t in tensors.items():
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"[{self.name}] tensor {name!r} is a {type(t).__name__}, not a torch.Tensor")
            clean[name] = t.detach().cpu().contiguous()
        values = cfg.to_dict()
        payload = {
            "format": FORMAT,
            "stage": self.name,
            "key": key,
            "params": plain(params),
            "config": {f: values[f] for f in sorted(self.field_names(cfg))},
            "versions": versions(),
            "created": time.strftime("%Y-%m-%d %H:%M:%S"),
            "meta": plain(meta),
            "tensors": clean,
        }
        payload["checksum"] = checksum(payload, _default_hash())
        return payload

    def _writer(self) -> Callable[[Path, dict[str, Any]], None]:
        if self.codec == "torch":
            import torch

            return lambda path, payload: atomic_write_bytes(path, lambda f: torch.save(payload, f))
        if self.codec == "json":
            return lambda path, payload: write_json(path, {k: v for k, v in payload.items() if k != "tensors"})
        return self.codec[0]

    def _reader(self) -> Callable[[Path], dict[str, Any]]:
        if self.codec == "torch":
            return _read_torch
        if self.codec == "json":
            return lambda path: {**read_json(path), "tensors": {}}
        return self.codec[1]

    def _load_valid(self, path: Path, cfg: Config, key: str, params: dict[str, Any]) -> dict[str, Any]:
        if not path.is_file():
            raise ArtifactError(f"{path.name}: no such file in {path.parent}")
        try:
            payload = self._reader()(path)
        except ArtifactError as exc:
            raise ArtifactError(f"{path.name}: {exc}") from None
        except pickle.UnpicklingError as exc:
            reason = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).split())
            if "Unsupported global" not in reason and "GLOBAL " not in reason:  # damaged bytes, not a refused object
                raise ArtifactError(f"{path.name}: unreadable (UnpicklingError: {reason[:300]})") from None
            # torch's weights_only refusal: keep its meaning, whole (its advice to load fully is not ours to cut)
            raise ArtifactError(
                f"{path}: not a plain tensor file: it carries pickled Python objects, and torch.load(weights_only=True) "
                f"refused it, since loading it fully could execute code it holds; it was not loaded. Delete it and "
                f"rerun the stage that writes it (torch said: {reason})"
            ) from None
        except Exception as exc:  # noqa: BLE001 - any failure to read means a corrupt file
            raise ArtifactError(f"{path.name}: unreadable ({type(exc).__name__}: {str(exc)[:200]})") from None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ArtifactError(
                f"{path.name}: not an egath_lite {self.name} artifact (format "
                f"{payload.get('format') if isinstance(payload, dict) else type(payload).__name__!r})"
            )
        if payload.get("stage") != self.name:
            raise ArtifactError(f"{path.name}: holds a {payload.get('stage')!r} artifact, not {self.name!r}")
        if payload.get("key") != key:
            raise ArtifactError(f"{path.name}: made by another configuration (key {payload.get('key')} != {key})")
        digest_, not_finite = verify(payload)  # one pass over the mapped bytes: checksum and finiteness
        if payload.get("checksum") != digest_:
            raise ArtifactError(f"{path.name}: checksum mismatch (the file was altered or damaged)")
        problems = self._problems(cfg, params, payload, not_finite)
        if problems:
            raise ArtifactError(f"{path.name}: " + "; ".join(problems))
        return {**payload, "path": str(path), "cache_hit": True}

    def _problems(
        self, cfg: Config, params: dict[str, Any], payload: dict[str, Any], not_finite: list[str] | None = None
    ) -> list[str]:
        """What is wrong with ``payload``; ``not_finite``: the tensors ``verify`` found NaN/Inf in (None: check)."""
        import torch

        tensors = payload.get("tensors")
        if not isinstance(tensors, dict):
            return ["no tensors"]
        problems = [f"lacks tensor {name!r}" for name in self.tensors if name not in tensors]
        if not_finite is None:
            not_finite = [
                name
                for name, t in tensors.items()
                if isinstance(t, torch.Tensor) and t.is_floating_point() and not _all_finite(t)
            ]
        problems += [f"tensor {name!r} contains NaN or Inf" for name in not_finite]
        if not problems and self.expect is not None:
            problems += self.expect(cfg, params, payload)
        return problems


CHUNK_BYTES = 64 << 20  # verify reads a tensor in slices this size: each page is read once, while it is cached


FAST_HASH = "xxh3_128"  # the checksum of new artifacts where xxhash is installed (torch_geometric needs it)


def _hasher(name: str):
    if name == FAST_HASH:
        import xxhash

        return xxhash.xxh3_128()
    return hashlib.sha256()


def _default_hash() -> str:
    try:
        import xxhash  # noqa: F401
    except ImportError:
        return "sha256"
    return FAST_HASH


def checksum(payload: dict[str, Any], algorithm: str | None = None) -> str:
    """A digest of the meta (as JSON) and every tensor's name, dtype, shape and bytes.

    ``"xxh3_128:<hex>"`` (xxhash: 725 MB/s on the busy 2-core machine where sha256 ran at 81 MB/s, so a
    915 MiB features artifact verifies in about a second, not eleven) or, without xxhash, a plain sha256 hex
    digest, which artifacts written before keep and are verified with. It guards against damage, not tampering
    (the file holds its own checksum either way).
    """
    return verify(payload, finite=False, algorithm=algorithm)[0]


def verify(payload: dict[str, Any], finite: bool = True, algorithm: str | None = None) -> tuple[str, list[str]]:
    """(``checksum``, names of floating tensors holding NaN/Inf) in one pass over each tensor's bytes.

    A memory-mapped artifact is read from disk once: each slice is hashed and checked while its pages are in memory.
    ``algorithm`` None: the one the payload's recorded checksum names (``sha256`` for a plain hex digest), else the
    default for new artifacts.
    """
    import torch

    if algorithm is None:
        recorded = payload.get("checksum")
        if isinstance(recorded, str):
            algorithm = recorded.split(":", 1)[0] if ":" in recorded else "sha256"
        else:
            algorithm = _default_hash()
    if algorithm not in ("sha256", FAST_HASH):
        return f"unknown checksum algorithm {algorithm!r}", []
    h = _hasher(algorithm)
    h.update(json.dumps(payload.get("meta"), sort_keys=True).encode())
    bad = []
    for name in sorted(payload.get("tensors") or {}):
        t = payload["tensors"][name]
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        flat = t.detach().cpu().contiguous().reshape(-1)
        check = finite and flat.is_floating_point()
        step = max(1, CHUNK_BYTES // max(1, flat.element_size()))
        ok = True
        for lo in range(0, flat.numel(), step):
            part = flat[lo : lo + step]
            h.update(part.view(torch.uint8).numpy())  # the bytes, without a copy
            if check and ok and not _finite_slice(part):
                ok = False
        if not ok:
            bad.append(name)
    return (h.hexdigest() if algorithm == "sha256" else f"{algorithm}:{h.hexdigest()}"), bad


def _all_finite(t: Any) -> bool:
    flat = t.detach().cpu().contiguous().reshape(-1)
    step = max(1, CHUNK_BYTES // max(1, flat.element_size()))
    return all(_finite_slice(flat[lo : lo + step]) for lo in range(0, flat.numel(), step))


def _finite_slice(part: Any) -> bool:
    """No NaN/Inf in a 1-D CPU slice. A float64 sum is finite exactly when every element is (a NaN or Inf makes
    it NaN or Inf; only an overflow makes it so without one, and then the element-wise check decides). One
    thread and no (n,) bool temporary: torch.isfinite on a busy 2-core machine spent 6 s on 390 MB."""
    import numpy as np
    import torch

    if part.dtype in (torch.float16, torch.float32, torch.float64):
        a = part.numpy()
        with np.errstate(over="ignore", invalid="ignore"):
            if np.isfinite(np.sum(a, dtype=np.float64)):
                return True
        return bool(np.isfinite(a).all())
    return bool(torch.isfinite(part).all())


def _read_torch(path: Path) -> dict[str, Any]:
    """The payload with its tensors memory-mapped from the file (``mmap=True``): opened, not copied."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


# --------------------------------------------------------------------------- expectations
def shape_problems(tensors: dict[str, Any], spec: dict[str, tuple]) -> list[str]:
    """Compare tensors with ``{name: (shape, dtype)}``; ``None`` in a shape or dtype matches anything."""
    out = []
    for name, (shape, dtype) in spec.items():
        t = tensors.get(name)
        if t is None:
            out.append(f"lacks tensor {name!r}")
            continue
        if len(shape) != t.dim() or any(s is not None and s != d for s, d in zip(shape, t.shape)):
            out.append(
                f"{name} has shape {tuple(t.shape)}, the key promises {tuple('*' if s is None else s for s in shape)}"
            )
        if dtype is not None and t.dtype != dtype:
            out.append(f"{name} has dtype {t.dtype}, the key promises {dtype}")
    return out


# --------------------------------------------------------------------------- the run folder's index
INDEX_NAME = "index.json"


def _index_add(stage: Stage, cfg: Config, path: Path, payload: dict[str, Any]) -> None:
    index = path.parent / INDEX_NAME
    with file_lock(index, INDEX_NAME, log=lambda s: None):
        entries = _stored_index(path.parent)
        if entries is None:  # missing or damaged: rebuilt from the artifacts on disk (they stay valid)
            entries = scan_artifacts(path.parent)
        entries = {k: v for k, v in entries.items() if (path.parent / k).is_file()}
        entries[path.name] = _index_entry(payload, path)
        write_json(index, {"artifacts": entries})


def _index_entry(payload: Mapping[str, Any], path: Path) -> dict[str, Any]:
    return {
        "stage": payload["stage"],
        "key": payload["key"],
        "params": payload["params"],
        "config": payload["config"],
        "code": payload.get("code"),
        "created": payload["created"],
        "bytes": os.path.getsize(path),
    }


def _stored_index(folder: Path) -> dict[str, dict[str, Any]] | None:
    """The index file's entries, or None when it is missing or damaged."""
    index = folder / INDEX_NAME
    if not index.is_file():
        return None
    try:
        entries = read_json(index).get("artifacts")
    except ArtifactError:
        return None
    if not isinstance(entries, dict) or not all(isinstance(v, dict) for v in entries.values()):
        return None
    return entries


def scan_artifacts(folder: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Index entries read from the artifacts themselves (``<stage>...-<16 hex>.pt`` / ``.json`` of this format).

    Only each file's header is used (tensors are memory-mapped, not read); files that are not artifacts of
    this format, or cannot be read, are left out (their own load says why)."""
    import torch

    folder = Path(folder)
    out: dict[str, dict[str, Any]] = {}
    if not folder.is_dir():
        return out
    for path in sorted(folder.iterdir()):
        if not re.fullmatch(r"[A-Za-z0-9_]+(-[^/]+)?-[0-9a-f]{16}\.(pt|json)", path.name) or not path.is_file():
            continue
        try:
            if path.suffix == ".json":
                payload = read_json(path)
            else:
                payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            if isinstance(payload, dict) and payload.get("format") == FORMAT:
                out[path.name] = _index_entry(payload, path)
        except Exception:  # noqa: BLE001, S112 - not an artifact of this format: its own load will say why
            continue
    return out


def read_index(folder: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """``{file name: {stage, key, params, config, code, created, bytes}}`` of a run folder (empty when none).

    A missing or damaged ``index.json`` is rebuilt from the artifacts on disk (and written back where the
    folder is writable): deleting it loses nothing."""
    folder = Path(folder)
    entries = _stored_index(folder)
    if entries is not None:
        return entries
    entries = scan_artifacts(folder)
    if entries:
        try:
            with file_lock(folder / INDEX_NAME, INDEX_NAME, log=lambda s: None):
                if _stored_index(folder) is None:
                    write_json(folder / INDEX_NAME, {"artifacts": entries})
        except OSError:
            pass  # a read-only folder: the rebuilt index serves this call
    return entries


# --------------------------------------------------------------------------- which code changed
def code_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What differs between two code records: module names, then ``loss_fn my_loss`` for a callable passed in
    under the same role and name whose source changed (a callable passed in instead of another is no change)."""
    old_modules, new_modules = old.get("modules") or {}, new.get("modules") or {}
    changed = [m for m in new_modules if m in old_modules and old_modules[m] != new_modules[m]]
    old_custom, new_custom = old.get("custom") or {}, new.get("custom") or {}
    for role, fp in new_custom.items():
        before = old_custom.get(role)
        if isinstance(before, Mapping) and before.get("name") == fp["name"] and before.get("digest") != fp["digest"]:
            changed.append(f"{role} {fp['name']}")
    return changed


def _roles(code: Mapping[str, Any] | None) -> dict[str, Any]:
    custom = (code or {}).get("custom") or {}
    return {role: fp.get("name") for role, fp in custom.items() if isinstance(fp, Mapping)}


def _join(names: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def stage_table(stages: Sequence[Stage], cfg: Config) -> list[dict[str, Any]]:
    """One row per stage: name, config fields it reads, upstream stages, artifact name pattern."""
    rows = []
    for s in stages:
        tag = "".join(f"-<{p}>" for p in s.params)
        rows.append(
            {
                "stage": s.name,
                "fields": s.field_names(cfg),
                "upstream": [u.name for u in s.upstream_stages(cfg)],
                "extra": (s.extra.__doc__ or s.extra.__name__).strip() if s.extra else "",
                "code": s.code,
                "artifact": f"{s.name}{tag}-<key>{s.suffix}",
                "description": s.description,
            }
        )
    return rows
