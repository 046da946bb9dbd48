"""Own data from a manifest: a ``.csv`` or ``.jsonl`` file with one row per image-text pair.

Columns (CSV: a header row, UTF-8; JSONL: one JSON object per line):

- ``image``: the image file, relative to the manifest's folder (an absolute path also works);
- ``text``: the item's tags (separated by spaces or commas) or a caption;
- ``labels``: label names separated by ``;`` (JSONL: a ``;``-string or a list of strings); empty
  pieces (``"dog;"``) are ignored, an item needs at least one label;
- ``split`` (optional, on every row or on none): ``query``, ``train`` or ``retrieval``.

Label names are the sorted unique names of the ``labels`` column (Python string order:
``sorted(set(names))``), so label column j is the j-th name in that order. One row per image:
the same image file twice is an error (join its texts and labels in one row). With a ``split``
column, query = the ``query`` rows, train = the ``train`` rows, retrieval = every row that is not a
query (train rows included, as in the benchmarks' GCDH split). Without one, the GCDH-style seeded
split of ``make_split`` (defaults: 10% query, at least 1; train = every other item; seed 0).

``text_kind``: ``"tags"`` (the bag-of-words vocabulary keeps every word), ``"caption"`` (the same
route with English stop words left out of the vocabulary; the CLIP text encoder still reads the whole
caption), or ``"auto"``: caption when more than half of the non-empty texts contain a stop word
(``vocabulary.ENGLISH_STOP_WORDS``), tags otherwise.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from egath_lite.data.dataset import (
    DatasetError,
    DatasetNotFoundError,
    MultiModalDataset,
    Split,
    SplitDefaults,
    check_enough,
)
from egath_lite.data.fingerprint import file_digest
from egath_lite.data.vocabulary import ENGLISH_STOP_WORDS, tokenize

REQUIRED_COLUMNS = ("image", "text", "labels")
OPTIONAL_COLUMNS = ("split",)
SPLIT_VALUES = ("query", "train", "retrieval")
_LISTED = 5  # bad rows named in one error message
_FIX_FORMAT = (
    "a manifest has the columns image (path relative to the manifest's folder), text (tags or a caption), "
    "labels (names separated by ';') and optionally split (query / train / retrieval); see README, "
    "'Your own data'"
)


TEXT_KINDS = ("auto", "tags", "caption")  # how a manifest's text cells are read: tags | caption | detect
MANIFEST_SUFFIXES = (".csv", ".jsonl")  # a data set given as a file: own data


def is_manifest_path(value: Any) -> bool:
    """A data set given as a manifest file (.csv / .jsonl) instead of a registered name, whether or not it exists."""
    return isinstance(value, (str, os.PathLike)) and Path(value).suffix.lower() in MANIFEST_SUFFIXES


def manifest_label(path: str | os.PathLike) -> str:
    """A run-folder-safe name of a manifest: ``<stem>-<8 hex of the absolute path>`` (never the raw path)."""
    import re

    absolute = str(Path(path).expanduser().absolute())
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(absolute).stem).strip("._") or "manifest"
    return f"{stem}-{hashlib.sha256(absolute.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"


@dataclass(frozen=True)
class ManifestRows:
    """A manifest's rows as read, before any check of labels or images."""

    path: Path
    lines: list[int]  # the file line of each row (CSV: where the row ends; JSONL: its line)
    images: list[str]
    texts: list[str]
    labels: list[list[str]]
    splits: list[str] | None


def read_manifest_rows(path: str | os.PathLike) -> ManifestRows:
    """Parse a .csv / .jsonl manifest into rows; format problems raise DatasetError naming the line and the fix."""
    path = Path(path).expanduser().absolute()
    if not is_manifest_path(path):
        raise DatasetError(f"{path}: a manifest must end in .csv or .jsonl (got {path.suffix!r}); {_FIX_FORMAT}")
    if not path.is_file():
        raise DatasetNotFoundError(f"manifest {path} not found; give the path of your .csv / .jsonl file")
    try:
        records = _read_csv(path) if path.suffix.lower() == ".csv" else _read_jsonl(path)
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc}); save the manifest as UTF-8") from exc
    if not records:
        raise DatasetError(f"{path}: the manifest has no rows; {_FIX_FORMAT}")
    columns = set().union(*(r.keys() for _, r in records))
    _check_columns(path, columns, records)
    lines, images, texts, labels, splits = [], [], [], [], []
    for line, rec in records:
        lines.append(line)
        images.append(_cell_str(path, line, rec, "image"))
        texts.append(_cell_str(path, line, rec, "text"))
        labels.append(_cell_labels(path, line, rec["labels"]))
        if "split" in columns:
            splits.append(_cell_split(path, line, rec))
    return ManifestRows(path, lines, images, texts, labels, splits if "split" in columns else None)


def _read_csv(path: Path) -> list[tuple[int, dict[str, Any]]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            return []
        header = [str(h).strip() for h in reader.fieldnames]
        if len(set(header)) != len(header):
            raise DatasetError(f"{path} line 1: the header names a column twice ({header}); {_FIX_FORMAT}")
        reader.fieldnames = header
        out = []
        for rec in reader:
            if None in rec:
                raise DatasetError(
                    f"{path} line {reader.line_num}: more cells than the header's {len(header)} "
                    f'columns ({header}); quote a cell that holds a comma, e.g. "sky, clouds"'
                )
            if all(v is None or not str(v).strip() for v in rec.values()):
                continue  # a blank line
            missing = [k for k, v in rec.items() if v is None]
            if missing:
                raise DatasetError(
                    f"{path} line {reader.line_num}: fewer cells than the header's columns "
                    f"{header} (no value for {missing}); every row needs every column"
                )
            out.append((reader.line_num, rec))
        return out


def _read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    out = []
    with open(path, encoding="utf-8-sig") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as exc:
                raise DatasetError(
                    f"{path} line {line_no}: not valid JSON ({exc}); one JSON object per line, "
                    f'e.g. {{"image": "images/a.jpg", "text": "a dog on grass", "labels": "dog"}}'
                ) from exc
            if not isinstance(rec, dict):
                raise DatasetError(
                    f"{path} line {line_no}: a JSON {type(rec).__name__}, expected an object "
                    f"with the keys {list(REQUIRED_COLUMNS)}"
                )
            out.append((line_no, rec))
    return out


def _check_columns(path: Path, columns: set[str], records: list[tuple[int, dict[str, Any]]]) -> None:
    accepted = list(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
    unknown = sorted(columns - set(accepted))
    if unknown:
        raise DatasetError(
            f"{path}: unknown column(s) {unknown}; the accepted columns are {accepted} "
            f"(rename or remove the others; {_FIX_FORMAT})"
        )
    absent = [c for c in REQUIRED_COLUMNS if c not in columns]
    if absent:
        raise DatasetError(f"{path}: missing column(s) {absent}; found {sorted(columns)}; {_FIX_FORMAT}")
    for column in accepted:  # JSONL rows may lack a key that other rows have
        if column not in columns:
            continue
        without = [line for line, rec in records if column not in rec]
        if without:
            what = "the split column is on some rows only" if column == "split" else f"no {column!r} key"
            raise DatasetError(
                f"{path}: {what}: {len(without)} row(s) lack it (lines {without[:_LISTED]}); "
                f"give {column!r} on every row" + (" or on none" if column == "split" else "")
            )


def _cell_str(path: Path, line: int, rec: dict[str, Any], column: str) -> str:
    value = rec[column]
    if not isinstance(value, str):
        raise DatasetError(f"{path} line {line}: {column!r} must be a string, got {value!r}")
    value = value.strip()
    if column == "image" and not value:
        raise DatasetError(f"{path} line {line}: the image cell is empty; give the image file's path")
    return value


def _cell_labels(path: Path, line: int, value: Any) -> list[str]:
    if isinstance(value, str):
        pieces = value.split(";")
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        pieces = value
    else:
        raise DatasetError(
            f"{path} line {line}: labels must be names separated by ';' (JSONL: or a list of strings), got {value!r}"
        )
    return sorted({p.strip() for p in pieces if p.strip()})


def _cell_split(path: Path, line: int, rec: dict[str, Any]) -> str:
    value = rec["split"]
    value = value.strip().lower() if isinstance(value, str) else value
    if not value:
        raise DatasetError(
            f"{path} line {line}: the split cell is empty, but other rows have one: the split "
            f"column is on some rows only; give query / train / retrieval on every row or drop "
            f"the column (a seeded split is then made)"
        )
    if value not in SPLIT_VALUES:
        raise DatasetError(f"{path} line {line}: split {rec['split']!r} is not one of {list(SPLIT_VALUES)}")
    return value


def resolve_text_kind(texts: list[str], text_kind: str) -> str:
    """'tags' or 'caption': ``text_kind`` itself, or for 'auto' caption when most non-empty texts hold a stop word."""
    if text_kind not in TEXT_KINDS:
        raise DatasetError(f"text_kind must be one of {list(TEXT_KINDS)}, got {text_kind!r}")
    if text_kind != "auto":
        return text_kind
    tokens = [set(tokenize(t)) for t in texts if t.strip()]
    with_stop = sum(bool(t & ENGLISH_STOP_WORDS) for t in tokens)
    return "caption" if tokens and with_stop > len(tokens) / 2 else "tags"


def manifest_image_files(path: Path, images: list[str]) -> list[Path]:
    """Each row's image file: relative paths under the manifest's folder, absolute paths as given (normalised)."""
    folder = path.parent
    return [Path(os.path.normpath(Path(im) if Path(im).is_absolute() else folder / im)) for im in images]


def _check_images(rows: ManifestRows, files: list[Path]) -> None:
    seen: dict[Path, int] = {}
    for line, f in zip(rows.lines, files):
        if f in seen:
            raise DatasetError(
                f"{rows.path} lines {seen[f]} and {line}: both rows name the image {f}; one row per "
                f"image: put all its text in one text cell and all its labels in one labels cell"
            )
        seen[f] = line
    bad = []
    for line, entry, f in zip(rows.lines, rows.images, files):
        try:
            st = f.stat()
            ok = f.is_file() and st.st_size > 0 and os.access(f, os.R_OK)
            why = "" if ok else ("empty file" if f.is_file() and st.st_size == 0 else "not a readable file")
        except OSError:
            why = "missing"
        if why:
            bad.append(f"{entry!r} (line {line}, {why})")
    if bad:
        raise DatasetNotFoundError(
            f"{rows.path}: {len(bad)} of {len(files)} image files are missing or unreadable: "
            f"{', '.join(bad[:_LISTED])}{' ...' if len(bad) > _LISTED else ''}. Image paths are relative to the "
            f"manifest's folder {rows.path.parent}; put the files there or fix the image column"
        )


def load_manifest(
    path: str | os.PathLike,
    text_kind: str = "auto",
    num_query: int | None = None,
    num_train: int | None = None,
    split_seed: int | None = None,
    drop_unlabeled: bool = False,
) -> MultiModalDataset:
    """A dataset from a manifest (module docstring); ``num_query`` / ``num_train`` / ``split_seed`` set the split's
    defaults when the manifest has no split column; ``drop_unlabeled`` drops items without labels instead of refusing."""
    rows = read_manifest_rows(path)
    files = manifest_image_files(rows.path, rows.images)
    unlabeled = [line for line, names in zip(rows.lines, rows.labels) if not names]
    keep = np.array([bool(names) for names in rows.labels])
    if unlabeled and not drop_unlabeled:
        raise DatasetError(
            f"{rows.path}: {len(unlabeled)} item(s) without labels (empty labels cell, lines "
            f"{unlabeled[:_LISTED]}); every item needs at least one label name (separate several with ';'), or pass "
            f"drop_unlabeled=True (config / driver: --set drop_unlabeled=true) to leave them out"
        )
    if not keep.any():
        raise DatasetError(f"{rows.path}: no item has a label; {_FIX_FORMAT}")
    idx = np.flatnonzero(keep)
    files = [files[i] for i in idx]
    kept = ManifestRows(
        rows.path,
        [rows.lines[i] for i in idx],
        [rows.images[i] for i in idx],
        [rows.texts[i] for i in idx],
        [rows.labels[i] for i in idx],
        None if rows.splits is None else [rows.splits[i] for i in idx],
    )
    _check_images(kept, files)
    names = sorted({n for item in kept.labels for n in item})
    column = {n: j for j, n in enumerate(names)}
    labels = np.zeros((len(idx), len(names)), np.uint8)
    for r, item in enumerate(kept.labels):
        labels[r, [column[n] for n in item]] = 1
    check_enough(str(rows.path), labels, names)
    kind = resolve_text_kind(kept.texts, text_kind)
    seed = 0 if split_seed is None else split_seed
    fixed = None if kept.splits is None else _split_of_column(kept, seed)
    if fixed is not None:
        defaults = SplitDefaults(len(fixed.query), len(fixed.train), seed)
    else:
        n = len(idx)
        q = max(1, round(0.1 * n)) if num_query is None else num_query
        if num_train is None and q >= n:
            raise DatasetError(
                f"{rows.path}: num_query ({q}) leaves no training item of the {n} items; ask for fewer query items"
            )
        defaults = SplitDefaults(q, n - q if num_train is None else num_train, seed)
    root = rows.path.parent
    return MultiModalDataset(
        name=manifest_label(rows.path),
        label_names=names,
        labels=labels,
        texts=list(kept.texts),
        split_defaults=defaults,
        image_paths=[str(f) for f in files],
        image_root=root,
        fixed_split=fixed,
        info={
            "source": str(rows.path),
            "layout": "manifest",
            "root": str(root),
            "files": [str(rows.path)],
            "manifest": str(rows.path),
            "text_kind": kind,
            "bow_stop_words": sorted(ENGLISH_STOP_WORDS) if kind == "caption" else [],
            "split_column": kept.splits is not None,
            "dropped_unlabeled": len(unlabeled),
            "manifest_lines": np.array(kept.lines, np.int64),
        },
    )


def _split_of_column(rows: ManifestRows, seed: int) -> Split:
    """The manifest's own split: query / train rows as marked, retrieval = every non-query row (in file order)."""
    marks = np.array(rows.splits)
    for part in ("query", "train"):
        if not (marks == part).any():
            raise DatasetError(
                f"{rows.path}: the split column marks no {part!r} row; mark at least one row "
                f"{part!r}, or drop the column to get a seeded split"
            )
    query = np.flatnonzero(marks == "query").astype(np.int64)
    return Split(
        query=query,
        train=np.flatnonzero(marks == "train").astype(np.int64),
        retrieval=np.flatnonzero(marks != "query").astype(np.int64),
        seed=seed,
        num_items=len(marks),
    )


def manifest_fingerprint(path: str | os.PathLike, images: bool = True) -> list:
    """JSON-able digest of a manifest: its content (sha256) and, with ``images``, the size and mtime of every image
    file it names (stat only, never read); a manifest that cannot be parsed is fingerprinted by its content only."""
    path = Path(path).expanduser().absolute()
    if not path.is_file():
        return [str(path), "missing"]
    content = file_digest(path)
    if not images:
        return [str(path), content]
    try:
        files = manifest_image_files(path, read_manifest_rows(path).images)
    except DatasetError:
        return [str(path), content, "unparsed"]
    h = hashlib.sha256()
    for f in sorted(set(files)):
        try:
            st = f.stat()
            h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
        except OSError:
            h.update(f"{f}\0missing\n".encode("utf-8", "surrogateescape"))
    return [str(path), content, len(files), h.hexdigest()]
