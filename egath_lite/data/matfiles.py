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


def load_mat(path: Path) -> dict[str, Any]:
    """Variables of a .mat file (v5 through scipy, v7.3 through h5py: numeric arrays, transposed to MATLAB's shape)."""
    from scipy.io import loadmat

    with open(path, "rb") as f:
        head = f.read(520)
    if head[512:520] == _HDF5_SIGNATURE or head.startswith(_HDF5_SIGNATURE):
        try:
            import h5py
        except ImportError as exc:
            raise DatasetError(
                f"{path} is a MATLAB v7.3 (HDF5) file and reading it needs h5py: `pip install h5py` "
                f"(or re-save it in MATLAB with save(..., '-v7'))"
            ) from exc
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
