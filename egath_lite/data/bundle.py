"""A byte-deterministic container for named numpy arrays (the toy_nuswide cache).

Layout: magic line, 8-byte little-endian header length, a JSON header (meta, and per array
its dtype, shape, offset, size and sha256), then the raw C-order bytes. The same arrays
always give the same file bytes (no timestamps, unlike .npz), written atomically; a read
checks every size and checksum, so a truncated or edited cache is caught, never used.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from egath_lite.data.dataset import DatasetError
from egath_lite.files import atomic_write_bytes

MAGIC = b"EGATH-BUNDLE/1\n"
_ALLOWED = {"uint8", "int8", "int16", "int32", "int64", "float32", "float64", "bool"}


class BundleError(DatasetError):
    """A bundle file is truncated, corrupt or not a bundle."""


def write_bundle(path: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Atomically write ``arrays`` (plain dtypes only) and JSON-able ``meta`` to ``path``."""
    entries, offset, blobs = [], 0, []
    for name, arr in arrays.items():
        arr = np.ascontiguousarray(arr)
        if arr.dtype.name not in _ALLOWED:
            raise TypeError(f"bundle array {name!r} has dtype {arr.dtype}; allowed: {sorted(_ALLOWED)}")
        data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        entries.append(
            {
                "name": name,
                "dtype": arr.dtype.name,
                "shape": list(arr.shape),
                "offset": offset,
                "nbytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
        offset += len(data)
        blobs.append(data)
    header = json.dumps({"meta": meta, "arrays": entries}, sort_keys=True).encode()

    def write(f) -> None:
        f.write(MAGIC)
        f.write(len(header).to_bytes(8, "little"))
        f.write(header)
        for blob in blobs:
            f.write(blob)

    atomic_write_bytes(path, write)
    return Path(path)


def read_bundle(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, meta) from a bundle; BundleError naming the file and the defect when it is not intact."""
    path = Path(path)
    raw = path.read_bytes()
    fix = "it is a cache: the next load regenerates it"
    if not raw.startswith(MAGIC):
        raise BundleError(f"{path} is not an egath_lite bundle (bad magic); {fix}")
    start = len(MAGIC) + 8
    if len(raw) < start:
        raise BundleError(f"{path} is truncated (no header); {fix}")
    hlen = int.from_bytes(raw[len(MAGIC) : start], "little")
    try:
        header = json.loads(raw[start : start + hlen])
        meta, entries = header["meta"], header["arrays"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"{path} has a corrupt header ({exc}); {fix}") from exc
    body = memoryview(raw)[start + hlen :]
    arrays = {}
    for e in entries:
        lo, hi = e["offset"], e["offset"] + e["nbytes"]
        if hi > len(body):
            raise BundleError(
                f"{path} is truncated: array {e['name']!r} needs bytes up to {hi}, file body has {len(body)}; {fix}"
            )
        chunk = body[lo:hi]
        if hashlib.sha256(chunk).hexdigest() != e["sha256"]:
            raise BundleError(f"{path}: checksum mismatch in array {e['name']!r} (the file was altered); {fix}")
        dtype = np.dtype(e["dtype"]).newbyteorder("<")
        expected = int(np.prod(e["shape"], dtype=np.int64)) * dtype.itemsize
        if expected != e["nbytes"]:
            raise BundleError(
                f"{path}: array {e['name']!r} shape {e['shape']} does not match its {e['nbytes']} bytes; {fix}"
            )
        arrays[e["name"]] = np.frombuffer(chunk, dtype=dtype).reshape(e["shape"]).astype(dtype.newbyteorder("="))
    if hi_total := sum(e["nbytes"] for e in entries):
        if hi_total != len(body):
            raise BundleError(f"{path} has {len(body) - hi_total} unexpected trailing bytes; {fix}")
    return arrays, meta
