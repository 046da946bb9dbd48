"""Validation of codes and labels, and packing them into 64-bit machine words.

Every public metric goes through ``prepare_inputs``: it accepts numpy arrays, torch
tensors or nested lists, checks them, and returns the packed form the kernels use.
A bad input raises ``ValueError`` naming the problem and the fix; nothing is coerced
silently (e.g. a code 0.3 is not rounded, a label 2 is not clipped).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PackedInputs:
    """Packed query/retrieval codes and label bitmasks, ready for a kernel."""

    query_codes: np.ndarray  # uint64 (n_query, code_words)
    retrieval_codes: np.ndarray  # uint64 (n_retrieval, code_words)
    query_labels: np.ndarray  # uint64 (n_query, label_words)
    retrieval_labels: np.ndarray  # uint64 (n_retrieval, label_words)
    num_bits: int

    @property
    def num_query(self) -> int:
        return self.query_codes.shape[0]

    @property
    def num_retrieval(self) -> int:
        return self.retrieval_codes.shape[0]


def to_numpy(x: Any, name: str) -> np.ndarray:
    """A torch tensor, numpy array or list as a numpy array (no copy when possible)."""
    if x is None:
        raise ValueError(f"{name} is None; pass a 2-D array")
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor without importing torch
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":
            x = x.float()
        x = x.numpy()
    arr = np.asarray(x)
    if arr.dtype == object:
        raise ValueError(f"{name} has dtype object (ragged rows?); pass a rectangular numeric array")
    return arr


def _check_2d(arr: np.ndarray, name: str) -> None:
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (items × columns), got shape {arr.shape}; for a single item use x[None, :]"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); evaluation needs at least one item and one column")


def _check_finite(arr: np.ndarray, name: str) -> None:
    if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
        bad = int(np.size(arr) - np.isfinite(arr).sum())
        raise ValueError(f"{name} contains {bad} NaN/Inf value(s); fix the model output before evaluating")


def _numeric_2d(x: Any, name: str, dtype_hint: str) -> np.ndarray:
    """``x`` as a 2-D numpy array of bool, or of finite numbers; ``dtype_hint`` ends the dtype error."""
    arr = to_numpy(x, name)
    _check_2d(arr, name)
    if arr.dtype == np.bool_:
        return arr
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{name} has dtype {arr.dtype}; {dtype_hint}")
    _check_finite(arr, name)
    return arr


def code_bits(codes: Any, name: str) -> np.ndarray:
    """Codes in {-1,+1} or {0,1} (any numeric dtype or bool) as a bool array (n, bits): True = bit set."""
    arr = _numeric_2d(codes, name, "codes must be numeric or bool")
    if arr.dtype == np.bool_:
        return arr
    if arr.dtype.kind in "iu":  # integers: two reductions settle the common case (3 passes fewer than below)
        lo, hi = arr.min(), arr.max()
        if lo >= -1 and hi <= 1 and not (lo == -1 and np.count_nonzero(arr) != arr.size):  # no temporary array
            return arr > 0
    # Elementwise tests, not np.unique: a sort would cost more than the whole evaluation.
    is_zero = arr == 0
    is_minus = arr == -1
    valid = is_zero | is_minus | (arr == 1)
    if not valid.all():
        odd = np.unique(arr[~valid])[:3].tolist()
        raise ValueError(
            f"{name} holds values such as {odd}; codes must be in {{-1,+1}} or {{0,1}}. "
            f"Binarise first, e.g. torch.where(h >= 0, 1, -1)"
        )
    if is_zero.any() and is_minus.any():
        raise ValueError(
            f"{name} mixes -1, 0 and +1; codes must be in {{-1,+1}} or {{0,1}}. "
            f"sign() maps exact zeros to 0: use torch.where(h >= 0, 1, -1) instead"
        )
    return arr > 0


def label_bits(labels: Any, name: str) -> np.ndarray:
    """Multi-hot labels (0/1, any numeric dtype or bool) as a bool array (n, num_labels)."""
    arr = _numeric_2d(labels, name, "labels must be numeric or bool multi-hot")
    if arr.dtype == np.bool_:
        return arr
    if arr.dtype.kind in "iu" and arr.min() >= 0 and arr.max() <= 1:  # integers: two reductions suffice
        return arr > 0
    valid = (arr == 0) | (arr == 1)
    if not valid.all():
        odd = np.unique(arr[~valid])[:3].tolist()
        raise ValueError(
            f"{name} holds values such as {odd}; labels must be multi-hot 0/1 "
            f"(threshold scores first, e.g. labels > 0.5)"
        )
    return arr > 0


def pack_code_bytes(bits: np.ndarray) -> np.ndarray:
    """Bool (n, b) -> uint8 (n, ceil(b / 8)): bit j of a row is bit j % 8 of byte j // 8 (LSB first), padding zero.

    The one bit order of egath_lite (docs/serving.md): the metrics' 64-bit words below, faiss and Milvus all
    read these bytes, so all three give the same distance for the same two codes.
    """
    return np.packbits(bits, axis=1, bitorder="little")


def pack_codes(codes: Any, name: str = "codes", pad: bool = False) -> np.ndarray:
    """Codes (n, bits) in {-1,+1} or {0,1} -> uint8 (n, bits / 8): +1 (or 1) is bit 1, code bit j is bit j % 8 of byte j // 8.

    ``pad=True`` accepts any bit count and zero-pads the last byte (zero padding adds nothing to a distance).
    """
    bits = code_bits(codes, name)
    if bits.shape[1] % 8 and not pad:
        raise ValueError(
            f"{name} have {bits.shape[1]} bits, not a multiple of 8; byte-packed stores (faiss, Milvus "
            f"BINARY_VECTOR) need whole bytes: train 8k-bit codes or pass pad=True to zero-pad"
        )
    return pack_code_bytes(bits)


_BYTE_POPCOUNT = np.array([bin(b).count("1") for b in range(256)], dtype=np.uint8)  # set bits per byte value


def popcount(words: np.ndarray) -> np.ndarray:
    """Set bits of each element of an unsigned-integer array (uint8 per element, same shape).

    numpy >= 2.0 counts in place (``np.bitwise_count``); older numpy looks each byte up in a table.
    """
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(words)
    as_bytes = np.ascontiguousarray(words).view(np.uint8).reshape(*words.shape, words.dtype.itemsize)
    return _BYTE_POPCOUNT[as_bytes].sum(axis=-1, dtype=np.uint8)


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Bool (n, b) -> uint64 (n, ceil(b / 64)); bit i of a row is bit i % 64 of word i // 64, padding zero."""
    n, b = bits.shape
    words = (b + 63) // 64
    nbytes = (b + 7) // 8
    if b % 8 or not bits.flags.c_contiguous:  # whole bytes per row, so that one flat packbits packs every row
        whole = np.zeros((n, nbytes * 8), dtype=bool)
        whole[:, :b] = bits
        bits = whole
    # uint8 (n, ceil(b / 8)), as pack_code_bytes gives (a flat packbits is several times faster than per row)
    packed = np.packbits(bits.reshape(-1), bitorder="little").reshape(n, nbytes)
    if nbytes < words * 8:
        padded = np.zeros((n, words * 8), dtype=np.uint8)
        padded[:, :nbytes] = packed
        packed = padded
    return packed.view("<u8").astype(np.uint64, copy=False).reshape(n, words)  # little-endian: same bit order


def prepare_inputs(query_codes: Any, retrieval_codes: Any, query_labels: Any, retrieval_labels: Any) -> PackedInputs:
    """Validate the four arrays of a retrieval evaluation and pack them into machine words."""
    qb = code_bits(query_codes, "query_codes")
    rb = code_bits(retrieval_codes, "retrieval_codes")
    ql = label_bits(query_labels, "query_labels")
    rl = label_bits(retrieval_labels, "retrieval_labels")
    if qb.shape[1] != rb.shape[1]:
        raise ValueError(
            f"query_codes have {qb.shape[1]} bits but retrieval_codes have {rb.shape[1]}; "
            f"both sides must come from hash heads of the same length"
        )
    check_label_pairing(qb, rb, ql, rl, "codes")
    return PackedInputs(pack_bits(qb), pack_bits(rb), pack_bits(ql), pack_bits(rl), int(qb.shape[1]))


def check_label_pairing(q: np.ndarray, r: np.ndarray, ql: np.ndarray, rl: np.ndarray, what: str) -> None:
    """Labels of both sides share one vocabulary, and every query/retrieval row (codes or embeddings) has a label row."""
    if ql.shape[1] != rl.shape[1]:
        raise ValueError(
            f"query_labels have {ql.shape[1]} columns but retrieval_labels have {rl.shape[1]}; "
            f"both must use the same label vocabulary"
        )
    if q.shape[0] != ql.shape[0]:
        raise ValueError(f"{q.shape[0]} query {what} but {ql.shape[0]} query label rows; they must pair up")
    if r.shape[0] != rl.shape[0]:
        raise ValueError(f"{r.shape[0]} retrieval {what} but {rl.shape[0]} retrieval label rows; they must pair up")


def check_topk(topk: Any) -> int | None:
    """``None`` (all) or a positive int."""
    if topk is None:
        return None
    if isinstance(topk, bool) or not isinstance(topk, (int, np.integer)) or topk < 1:
        raise ValueError(f"topk must be None (mAP@all) or a positive integer, got {topk!r}")
    return int(topk)


def check_ks(ks: Any) -> np.ndarray:
    """A non-empty sequence of positive ints as int64 (len(ks),), order kept."""
    arr = np.atleast_1d(np.asarray(ks))
    if arr.size == 0 or arr.ndim != 1:
        raise ValueError(f"ks must be a non-empty 1-D sequence of positive integers, got {ks!r}")
    if arr.dtype.kind not in "iu" or (arr < 1).any():
        raise ValueError(f"ks must hold positive integers (cut-offs K), got {arr.tolist()}")
    return arr.astype(np.int64)
