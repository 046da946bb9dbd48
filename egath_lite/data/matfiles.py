"""Reading the benchmark release files: MATLAB .mat (v5 via scipy; v7.3/HDF5 via h5py) and plain text.

The files come from many preparation scripts, so the same field shows up as a char matrix
padded with spaces, a cell array (object array of 1-element arrays) or a 1-D string array,
in (1, N), (N, 1) or (N,) shape. These helpers turn each into one canonical form and raise
DatasetError naming the file, the key and what was expected otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from egath_lite.data.dataset import DatasetError, DatasetNotFoundError

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def require_files(root: Path, names: Sequence[str], dataset: str, layout: str, how_to: str) -> list[Path]:
    """Paths root/name for every name; DatasetNotFoundError listing the missing ones (and what is present)."""
    if not root.is_dir():
        raise DatasetNotFoundError(f"{dataset}: data folder {root} does not exist. {how_to}")
    paths = [root / n for n in names]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        present = sorted(p.name for p in root.iterdir())[:12]
        raise DatasetNotFoundError(
            f"{dataset} ({layout} layout): missing {missing} in {root} (found: {present}). "
            f"The layout needs all of {list(names)}. {how_to}"
        )
    return paths


def _h5py(path: Path):
    try:
        import h5py
    except ImportError as exc:
        raise DatasetError(
            f"{path} is a MATLAB v7.3 (HDF5) file and reading it needs h5py: `pip install h5py` "
            f"(or re-save it in MATLAB with save(..., '-v7'))"
        ) from exc
    return h5py


def load_mat(path: Path) -> dict[str, Any]:
    """Variables of a .mat file (v5 through scipy, v7.3 through h5py: numeric arrays, transposed to MATLAB's shape)."""
    from scipy.io import loadmat

    if _is_hdf5(path):
        h5py = _h5py(path)
        try:
            with h5py.File(path, "r") as f:
                # MATLAB stores column-major: h5py sees the transpose of the MATLAB matrix.
                return {
                    k: np.asarray(v).T for k, v in f.items() if isinstance(v, h5py.Dataset) and v.dtype.kind in "biuf"
                }
        except (OSError, KeyError, ValueError, RuntimeError) as exc:  # h5py: a truncated or damaged HDF5 file
            raise DatasetError(
                f"{path} is a MATLAB v7.3 (HDF5) file that cannot be read ({type(exc).__name__}: "
                f"{' '.join(str(exc).split())[:200]}): truncated or damaged; re-download or re-create it"
            ) from None
    try:
        return loadmat(path)
    except Exception as exc:  # noqa: BLE001 - scipy raises several types for corrupt files
        raise DatasetError(
            f"{path} is not a readable .mat file ({type(exc).__name__}: {exc}); re-download or re-create it"
        ) from exc


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(520)
    return head[512:520] == _HDF5_SIGNATURE or head.startswith(_HDF5_SIGNATURE)


def load_mat_binary(path: Path, keys: Sequence[str], chunk_bytes: int = 32 << 20) -> np.ndarray:
    """The first of ``keys`` in a .mat file as a 0/1 matrix, uint8 (N, C) in MATLAB's shape; never a float64 copy.

    v7.3 (HDF5) files are read in slabs of about ``chunk_bytes`` along the item axis (aligned to the
    file's own chunks), each checked to hold only 0 and 1 and narrowed to uint8 before the next is read:
    a 186,577 x 1,000 tag matrix costs its 187 MB, not the 1.5 GB of a float64 copy. v5 files are read by
    scipy whole (the format has no partial reads), then narrowed. DatasetError names the first non-0/1 value.
    """
    if not _is_hdf5(path):
        arr = mat_matrix(mat_field(load_mat(path), keys, path), path, keys[0])
        return _binary(arr, path, keys[0], 0)
    h5py = _h5py(path)
    try:
        with h5py.File(path, "r") as f:
            present = {k: v for k, v in f.items() if isinstance(v, h5py.Dataset) and v.dtype.kind in "biuf"}
            ds = mat_field(present, keys, path)
            if ds.ndim != 2:
                raise DatasetError(f"{path}: {keys[0]!r} should be a numeric 2-D matrix, got {ds.dtype} {ds.shape}")
            cols, rows = ds.shape  # h5py sees MATLAB's transpose: (C, N)
            step = max(1, chunk_bytes // max(1, cols * ds.dtype.itemsize))
            if ds.chunks is not None:  # whole HDF5 chunks per slab: each is decompressed once
                step = max(ds.chunks[1], step // ds.chunks[1] * ds.chunks[1])
            out = np.empty((rows, cols), np.uint8)
            for lo in range(0, rows, step):
                hi = min(rows, lo + step)
                out[lo:hi] = _binary(ds[:, lo:hi], path, keys[0], lo, transposed=True).T
            return out
    except (OSError, KeyError, RuntimeError) as exc:  # h5py: a truncated or damaged HDF5 file
        raise DatasetError(
            f"{path} is a MATLAB v7.3 (HDF5) file that cannot be read ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:200]}): truncated or damaged; re-download or re-create it"
        ) from None


def _binary(block: np.ndarray, path: Path, key: str, row0: int, transposed: bool = False) -> np.ndarray:
    """``block`` as uint8 after checking it holds only 0 and 1 (``row0``: its first item, for the message)."""
    block = np.asarray(block)
    if block.dtype == np.uint8 or block.dtype == bool:
        bad = block > 1 if block.dtype == np.uint8 else None
    else:
        bad = (block != 0) & (block != 1)  # NaN compares unequal to both
    if bad is not None and bad.any():
        r, c = np.argwhere(bad)[0]
        item, col = (c, r) if transposed else (r, c)
        raise DatasetError(
            f"{path}: {key!r} must hold only 0 and 1, found {block[r, c].item()!r} at item {row0 + item}, "
            f"column {col}; is it the right file (a 0/1 matrix, not counts or scores)?"
        )
    return block.astype(np.uint8, copy=False)


def mat_field(mat: dict[str, Any], keys: Sequence[str], path: Path) -> np.ndarray:
    """The first of ``keys`` present in a loaded .mat; DatasetError listing the keys the file has otherwise."""
    for k in keys:
        if k in mat:
            return mat[k]
    found = sorted(k for k in mat if not k.startswith("__"))
    raise DatasetError(
        f"{path} has no variable {' or '.join(map(repr, keys))} (it has {found}); wrong file for this layout?"
    )


def mat_strings(arr: np.ndarray, path: Path, key: str) -> list[str]:
    """Char matrix / cell array / string array, any of (1,N) (N,1) (N,) -> N stripped Python strings."""
    arr = np.asarray(arr)
    if arr.dtype.kind == "U":
        if arr.ndim == 2 and 1 in arr.shape:
            arr = arr.ravel()
        if arr.ndim != 1:
            raise DatasetError(f"{path}: {key!r} is a {arr.shape} char array; expected one string per item")
        return [str(s).strip() for s in arr]
    if arr.dtype == object:
        if arr.ndim == 2 and 1 in arr.shape:
            arr = arr.ravel()
        if arr.ndim != 1:
            raise DatasetError(f"{path}: {key!r} is a {arr.shape} cell array; expected one string per item")
        out = []
        for i, cell in enumerate(arr):
            cell = np.asarray(cell)
            while cell.dtype == object and cell.size == 1:  # nested cells: {{'text'}}
                cell = np.asarray(cell.ravel()[0])
            if cell.size == 0:
                out.append("")
            elif cell.dtype.kind == "U":
                out.append(" ".join(str(s).strip() for s in cell.ravel()).strip())
            else:
                raise DatasetError(f"{path}: {key!r} entry {i} is not text (dtype {cell.dtype})")
        return out
    raise DatasetError(f"{path}: {key!r} holds {arr.dtype} values; expected strings (char or cell array)")


def mat_matrix(arr: np.ndarray, path: Path, key: str) -> np.ndarray:
    """A numeric 2-D matrix (sparse matrices densified)."""
    if hasattr(arr, "toarray"):
        arr = arr.toarray()
    arr = np.asarray(arr)
    if arr.ndim != 2 or arr.dtype.kind not in "biuf":
        raise DatasetError(f"{path}: {key!r} should be a numeric 2-D matrix, got {arr.dtype} {arr.shape}")
    return arr


def read_lines(path: Path) -> list[str]:
    """Non-empty stripped lines of a UTF-8 text file (undecodable bytes replaced, never fatal)."""
    return [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
