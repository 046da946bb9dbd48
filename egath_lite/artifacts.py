"""Run folders and cached artifacts: atomic writes, configuration keys, validated loads.

An artifact is one ``.pt`` file holding ``{"format": FORMAT, "kind", "key", "config",
"versions", "meta", "tensors"}``. It is written to a temporary file in the same folder and
renamed into place, so a crash never leaves half an artifact, and it is read with
``torch.load(weights_only=True)`` because a cache is untrusted input.
"""
from __future__ import annotations

import os
import platform
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from .config import Config

FORMAT = "egath_lite.artifact/1"


class ArtifactError(RuntimeError):
    """A cached artifact is missing, corrupt, or was made by another configuration."""


def run_dir(cfg: Config) -> Path:
    """``<runs_root>/<run_name>``, created if needed."""
    path = Path(cfg.runs_root) / cfg.run_name
    path.mkdir(parents=True, exist_ok=True)
    return path


def versions() -> dict[str, str]:
    """Versions of the packages that shape an artifact's numbers."""
    out = {"python": platform.python_version(), "torch": str(torch.__version__)}
    import sys

    # Only modules already imported: importing open_clip just to read its version costs seconds.
    for mod in ("numpy", "open_clip", "torch_geometric", "numba"):
        if mod in sys.modules:
            out[mod] = str(getattr(sys.modules[mod], "__version__", "?"))
    from . import __version__

    out["egath_lite"] = __version__
    return out


def atomic_write_bytes(path: str | os.PathLike, write: Callable[[Any], None]) -> None:
    """Call ``write(fileobj)`` on a temp file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def save_artifact(
    path: str | os.PathLike,
    kind: str,
    key: str,
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any] | None = None,
    cfg: Config | None = None,
) -> Path:
    """Atomically write an artifact; ``meta`` must hold only str/int/float/bool/None/list/dict."""
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"artifact tensor {name!r} is a {type(t).__name__}, not a torch.Tensor")
    payload = {
        "format": FORMAT,
        "kind": kind,
        "key": key,
        "config": cfg.to_dict() if cfg is not None else {},
        "versions": versions(),
        "meta": _plain(meta or {}),
        "tensors": {k: v.detach().cpu().contiguous() for k, v in tensors.items()},
    }
    atomic_write_bytes(path, lambda f: torch.save(payload, f))
    return Path(path)


def load_artifact(
    path: str | os.PathLike,
    kind: str,
    key: str | None = None,
    required: Iterable[str] = (),
) -> dict[str, Any]:
    """Load and validate an artifact; raise ArtifactError naming the problem and the fix."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"no {kind} artifact at {path}; run the stage that writes it")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means corrupt
        raise ArtifactError(
            f"{path} is not a readable {kind} artifact ({type(exc).__name__}: {exc}); "
            f"delete it and rerun the stage to rebuild it"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ArtifactError(f"{path} is not an egath_lite artifact (format mismatch); delete it and rerun")
    if payload.get("kind") != kind:
        raise ArtifactError(f"{path} holds a {payload.get('kind')!r} artifact, expected {kind!r}")
    if key is not None and payload.get("key") != key:
        raise ArtifactError(
            f"{path} was made by another configuration (key {payload.get('key')} != {key}); "
            f"rerun the stage (it recomputes on a key mismatch)"
        )
    tensors = payload.get("tensors")
    if not isinstance(tensors, dict):
        raise ArtifactError(f"{path} has no tensors; delete it and rerun")
    missing = [r for r in required if r not in tensors]
    if missing:
        raise ArtifactError(f"{path} lacks tensor(s) {missing}; delete it and rerun")
    for name, t in tensors.items():
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not torch.isfinite(t).all():
            raise ArtifactError(f"{path}: tensor {name!r} contains NaN or Inf; delete it and rerun")
    return payload


def cached_artifact(
    path: str | os.PathLike,
    kind: str,
    key: str,
    compute: Callable[[], tuple[dict[str, torch.Tensor], dict[str, Any]]],
    cfg: Config | None = None,
    required: Iterable[str] = (),
    force: bool = False,
    verbose: bool = True,
) -> dict[str, Any]:
    """Load the artifact when its key matches; otherwise ``compute()`` it, save it, return it.

    The returned payload has ``payload["cache_hit"]`` True when it was loaded.
    """
    path = Path(path)
    if path.is_file() and not force:
        try:
            payload = load_artifact(path, kind, key, required)
            payload["cache_hit"] = True
            if verbose:
                print(f"[cache] reusing {kind} artifact {path} (key {key})")
            return payload
        except ArtifactError as exc:
            if verbose:
                print(f"[cache] recomputing {kind}: {exc}")
    tensors, meta = compute()
    save_artifact(path, kind, key, tensors, meta, cfg)
    payload = load_artifact(path, kind, key, required)
    payload["cache_hit"] = False
    return payload


def write_json(path: str | os.PathLike, data: dict[str, Any]) -> Path:
    """Atomically write ``data`` as indented JSON (results, metrics)."""
    import json

    text = json.dumps(data, indent=2, sort_keys=True, default=_json_default).encode()
    atomic_write_bytes(path, lambda f: f.write(text))
    return Path(path)


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """Read a JSON file written by ``write_json``; clear error when missing or corrupt."""
    import json

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"no results file at {path}; run the notebook or stage that writes it")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path} is not valid JSON ({exc}); delete it and rerun") from exc


def _plain(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` as plain JSON types (numpy scalars, paths -> lists, str) so weights_only can read it."""
    import json

    return json.loads(json.dumps(meta, default=_json_default))


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")
