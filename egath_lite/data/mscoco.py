"""MS-COCO (80 labels): the .mat layout, or the official 2014 / 2017 JSON annotations (captions + instances) with images.

JSON selection (the literature's, e.g. DCMH / DCHMT / GCDH): every image of the year's train
and val sets that carries at least one of the 80 categories (2014: 123,287 images, 122,218
with a label); the excluded images are counted in ``ds.info["excluded_without_label"]``.
Text = the image's captions joined by spaces, in caption-id order. Items: train images by
id, then val images by id.

The annotation files are read as a stream (1 MiB at a time, one array entry decoded at a time),
keeping only the ids, file names, category ids and captions: the first load of the 2014 set peaks
at the data set's own size (about 240 MB) where ``json.load`` of the files took about 1.1 GB.
"""

from __future__ import annotations

import codecs
import json
import re
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from egath_lite.data.dataset import DatasetError, DatasetNotFoundError, MultiModalDataset
from egath_lite.data.layouts import HOW_TO, Layout, Requirement, image_folder_mistake, resolve_layout
from egath_lite.data.reference import MSCOCO_LABELS, MSCOCO_LABELS_BY_ID
from egath_lite.data.release import MAT_LAYOUT, MAT_REQUIREMENTS, existing, finish_dataset, read_mat_triple

YEARS = (2014, 2017)
SPLIT_NAMES = ("train", "val")
LABEL_ORDERS = {"category_id": MSCOCO_LABELS_BY_ID, "alphabetical": MSCOCO_LABELS}


def _json_path(root: Path, kind: str, split: str, year: int) -> Path | None:
    for folder in (root / "annotations", root):
        if (folder / f"{kind}_{split}{year}.json").is_file():
            return folder / f"{kind}_{split}{year}.json"
    return None


def _year(root: Path) -> int | None:
    return next((y for y in YEARS if _json_path(root, "instances", "train", y) is not None), None)


def _json_files(root: Path, year: int) -> list[Path]:
    return [
        p
        for kind in ("instances", "captions")
        for s in SPLIT_NAMES
        if (p := _json_path(root, kind, s, year)) is not None
    ]


def _json_inputs(root: Path) -> tuple[list[Path], list[Path]]:
    year = _year(root)
    if year is None:
        return [], []
    return _json_files(root, year), existing([root / f"{s}{year}" for s in SPLIT_NAMES])


def _mat_inputs(root: Path) -> tuple[list[Path], list[Path]]:
    return existing([root / n for n in MAT_LAYOUT]), existing([root / f"{s}{y}" for y in YEARS for s in SPLIT_NAMES])


_JSON_NAMES = tuple(f"{folder}instances_train{y}.json" for y in YEARS for folder in ("annotations/", ""))
LAYOUTS = (
    Layout("mat", "index.mat / caption.mat / label.mat", MAT_REQUIREMENTS, _mat_inputs),
    Layout(
        "json",
        "the official annotations/instances_*.json + captions_*.json (2014 or 2017)",
        (
            Requirement(
                "the instances annotations",
                _JSON_NAMES,
                "extract annotations_trainval2014.zip (or 2017) into the root: it makes annotations/",
            ),
            Requirement(
                "the captions annotations",
                tuple(n.replace("instances", "captions") for n in _JSON_NAMES),
                "extract annotations_trainval2014.zip (or 2017) into the root: it makes annotations/",
            ),
        ),
        _json_inputs,
    ),
)
MISTAKES = (
    image_folder_mistake(
        tuple(f"{s}{y}" for y in YEARS for s in SPLIT_NAMES),
        "annotations/ and the other image folder (train2014/ + val2014/, or 2017)",
    ),
)


def load_mscoco(
    root: str | Path,
    layout: str = "auto",
    label_order: str | None = None,
    year: int | str = "auto",
    image_dir: str | Path | None = None,
    drop_unlabeled: bool = False,
    check_images: bool = True,
) -> MultiModalDataset:
    """MS-COCO (80 labels); layout "mat", "json" or "auto"; ``label_order`` "category_id" / "alphabetical".

    ``label_order``: for the .mat layout the column order of label.mat (default "category_id",
    as most preparation scripts write it); for the JSON layout the order to produce (default
    "alphabetical", the row order of the reference files ``coco_glove.mat`` / ``coco_adj.mat``).
    """
    if label_order is not None and label_order not in LABEL_ORDERS:
        raise DatasetError(f"mscoco: unknown label_order {label_order!r}; use one of {sorted(LABEL_ORDERS)}")
    root = Path(root)
    lay = resolve_layout("mscoco", root, LAYOUTS, layout, MISTAKES)
    if lay.name == "json":
        return _mscoco_json(root, label_order or "alphabetical", year, image_dir, drop_unlabeled, check_images)
    order = label_order or "category_id"
    paths, texts, labels, files = read_mat_triple("mscoco", root)
    return finish_dataset(
        "mscoco",
        "mat",
        root,
        LABEL_ORDERS[order],
        labels,
        texts,
        paths,
        Path(image_dir) if image_dir else root,
        drop_unlabeled,
        check_images,
        files,
        {"label_order": order},
    )


# --------------------------------------------------------------------------------------
# Streaming JSON: the annotation files are read a chunk at a time and decoded one array entry at
# a time (json.JSONDecoder's C scanner), so that only the fields the loader keeps are held; json.load
# of the four files peaked at 1.1 GB at the 2014 set's size (benchmarks/RESULTS.md, bench_scale).
# --------------------------------------------------------------------------------------
_CHUNK = 1 << 20  # bytes read at a time
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_AFTER_ENTRY = re.compile(r"[ \t\n\r]*([,\]])[ \t\n\r]*")
_DECODER = json.JSONDecoder()


class _TextStream:
    """A JSON text read in chunks: skip whitespace, look at the next character, decode the next value."""

    def __init__(self, f: BinaryIO, chunk: int) -> None:
        head = f.read(4)
        self.f, self.chunk = f, chunk
        self.decoder = codecs.getincrementaldecoder(json.detect_encoding(head))("surrogatepass")
        self.buf, self.pos, self.eof = self.decoder.decode(head, final=not head), 0, not head
        self.offset = 0  # characters dropped from the front of the buffer

    def _more(self, at_least: int = 0) -> bool:
        """Append the next chunk (at least ``at_least`` bytes); False at the end of the file."""
        if self.eof:
            return False
        data = self.f.read(max(self.chunk, at_least))
        self.eof = not data
        self.offset += self.pos
        self.buf = self.buf[self.pos :] + self.decoder.decode(data, final=self.eof)
        self.pos = 0
        return True

    def peek(self) -> str:
        """The next non-whitespace character ("" at the end of the file), not consumed."""
        while True:
            self.pos = _WHITESPACE.match(self.buf, self.pos).end()
            if self.pos < len(self.buf) or not self._more():
                return self.buf[self.pos : self.pos + 1]

    def expect(self, chars: str) -> str:
        c = self.peek()
        if not c or c not in chars:
            raise json.JSONDecodeError(f"Expecting one of {chars!r}", self.buf, self.pos)
        self.pos += 1
        return c

    def value(self) -> Any:
        """The next JSON value; a value that ends at the buffer's end is decoded again with more text
        (a number cut by the chunk boundary decodes as a shorter number). Each retry reads at least
        what is buffered, so a long value costs linear time."""
        self.peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError:
                if not self._more(len(self.buf) - self.pos):
                    raise
                continue
            if end < len(self.buf) or not self._more(len(self.buf) - self.pos):
                self.pos = end
                return value

    def entries(self, handle: Callable[[Any], None] | None) -> int:
        """The entries of the array whose ``[`` was just read, each passed to ``handle`` (None: dropped),
        through its ``]``; returns their count. The tight loop of the reader: the C scanner, one regex for
        the separator; text is read on when an entry or its separator runs past the buffer."""
        if self.peek() == "]":
            self.pos += 1
            return 0
        scan, after, count = _DECODER.scan_once, _AFTER_ENTRY.match, 0
        buf, pos = self.buf, self.pos
        while True:
            try:
                entry, end = scan(buf, pos)
            except StopIteration as exc:  # no value starts at pos: invalid, or the buffer ends first
                m, problem = None, ("Expecting value", exc.value)
            except json.JSONDecodeError as exc:  # a value cut by the buffer's end, or invalid
                m, problem = None, (exc.msg, exc.pos)
            else:
                m, problem = after(buf, end), ("Expecting one of ',]'", end)
            if m is None:
                self.pos = pos
                if not self._more(len(buf) - pos):
                    raise json.JSONDecodeError(problem[0], buf, problem[1])
                buf, pos = self.buf, _WHITESPACE.match(self.buf, 0).end()
                continue
            count += 1
            if handle is not None:
                handle(entry)
            pos = m.end()
            if m.group(1) == "]":
                self.pos = pos
                return count


def _stream_json(path: Path, on_item: dict[str, Callable[[Any], None]], chunk: int = _CHUNK) -> dict[str, Any]:
    """Read a JSON object file, calling ``on_item[key](entry)`` for each entry of its top-level arrays under
    ``key``; returns the other top-level members (arrays as their entry counts, ``len``-able: ``range``).

    DatasetError naming the file on invalid JSON (as json.load would reject it), a top level that is not an
    object, or a top-level key given twice (json.load would keep the last silently).
    """
    out: dict[str, Any] = {}
    s = None
    try:
        with open(path, "rb") as f:
            s = _TextStream(f, chunk)
            s.expect("{")
            if s.peek() == "}":
                s.pos += 1
            else:
                while True:
                    key = s.value()
                    if not isinstance(key, str):
                        raise json.JSONDecodeError("Expecting property name enclosed in double quotes", s.buf, s.pos)
                    if key in out:
                        raise DatasetError(f"{path}: the key {key!r} appears twice; re-download or re-extract it")
                    s.expect(":")
                    if s.peek() == "[":
                        s.pos += 1
                        out[key] = range(s.entries(on_item.get(key)))
                    else:
                        out[key] = s.value()
                    if s.expect(",}") == "}":
                        break
            if s.peek():
                raise json.JSONDecodeError("Extra data", s.buf, s.pos)
    except json.JSONDecodeError as exc:
        where = f"{exc.msg} at character {s.offset + exc.pos:,}" if s is not None else exc.msg
        raise DatasetError(f"{path} is not valid JSON ({where}); re-download or re-extract the annotations") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path} is not valid JSON ({exc}); re-download or re-extract the annotations") from exc
    if not isinstance(out.get("annotations"), range):
        raise DatasetError(f"{path} has no 'annotations' list; is it a COCO annotation file?")
    return out


def _field(path: Path, entry, name: str, kind: type):
    """``entry[name]`` as ``kind``, or DatasetError naming the file, the entry and the field."""
    try:
        return kind(entry[name])
    except (KeyError, TypeError, ValueError, OverflowError):
        what = entry.get("id", "?") if isinstance(entry, dict) else repr(entry)[:60]
        raise DatasetError(
            f"{path}: entry {what} has no valid {name!r} ({kind.__name__}); fix or re-download the annotations"
        ) from None


def _int64(values: array) -> np.ndarray:
    return np.frombuffer(values, np.int64) if len(values) else np.zeros(0, np.int64)


def _too_large(path: Path, entry) -> DatasetError:
    return DatasetError(f"{path}: entry {entry!r:.80} has an id beyond 64 bits; fix or re-download the annotations")


def _read_instances(path: Path, split: str, earlier: dict[str, dict[int, Any]]):
    """One instances file, streamed: its images (id -> file name), the category id -> name map, and the
    (image id, category id) of every annotation. DatasetError naming the image ids listed twice (in this
    file or in ``earlier`` splits'), categories that are not COCO's 80, or an annotation whose category
    is not one of the file's."""
    file_name: dict[int, Any] = {}  # image id -> file_name of its first entry (_ABSENT: none)
    repeated: dict[int, list[str]] = {}
    categories: list[Any] = []
    ann_image, ann_cat = array("q"), array("q")  # 8 bytes an annotation, not a Python int object each
    first_of_cat: dict[int, tuple[int, Any, Any]] = {}  # category id -> (index, id, image_id) of its first annotation
    splits = {**earlier, split: file_name}

    def image(im) -> None:
        i = _field(path, im, "id", int)
        where = f"{split}: {im.get('file_name', '?')}"
        first = next((s for s, names in splits.items() if i in names), None)
        if first is None:
            file_name[i] = im.get("file_name", _ABSENT)
        else:
            repeated.setdefault(i, [f"{first}: {_or_mark(splits[first][i])}"]).append(where)

    def annotation(a) -> None:
        try:
            cat, image_id = int(a["category_id"]), int(a["image_id"])
        except (KeyError, TypeError, ValueError, OverflowError):
            _field(path, a, "category_id", int)  # raises, naming the field
            _field(path, a, "image_id", int)
            raise
        if cat not in first_of_cat:
            first_of_cat[cat] = (len(ann_cat), a.get("id", "?"), a.get("image_id", "?"))
        try:
            ann_image.append(image_id)
            ann_cat.append(cat)
        except OverflowError:
            raise _too_large(path, a) from None

    top = _stream_json(path, {"images": image, "annotations": annotation, "categories": categories.append})
    for key in ("images", "categories"):
        if key in top and not isinstance(top[key], range):
            raise DatasetError(f"{path}: its {key!r} is not a list; is it a COCO instances file?")
    try:
        cat_name = {int(c["id"]): c["name"] for c in categories}
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{path}: a category without an integer 'id' and a 'name' ({exc!r})") from None
    if sorted(cat_name.values()) != sorted(MSCOCO_LABELS):
        raise DatasetError(
            f"{path}: its categories are not COCO's 80 ({len(cat_name)} found: "
            f"{sorted(cat_name.values())[:5]}...); is it an instances_*.json file?"
        )
    if repeated:
        listed = "; ".join(f"id {i}: {', '.join(w)}" for i, w in sorted(repeated.items())[:5])
        raise DatasetError(
            f"{path}: {len(repeated)} image id(s) listed more than once ({listed}{'; ...' if len(repeated) > 5 else ''}); "
            f"an id names one image: its labels and captions would go to the wrong item. Remove the duplicate "
            f"entries or re-download the annotations"
        )
    unknown = sorted((first, cat) for cat, first in first_of_cat.items() if cat not in cat_name)
    if unknown:
        (_, ann, image_id), cat = unknown[0]
        raise DatasetError(
            f"{path}: annotation {ann} (image {image_id}) has category_id {cat}, which is not one of its "
            f"'categories' ({sorted(cat_name)[:5]}...); fix or re-download the annotations"
        )
    return file_name, cat_name, _int64(ann_image), _int64(ann_cat)


_ABSENT = object()  # an image entry without a 'file_name'


def _or_mark(name: Any) -> Any:
    return "?" if name is _ABSENT else name


def _read_captions(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One captions file, streamed: (image id, caption id, stripped text) of every caption."""
    image_ids, caption_ids, texts = array("q"), array("q"), []

    def caption(a) -> None:
        try:
            text, image_id, caption_id = a["caption"], int(a["image_id"]), int(a.get("id", 0))
            text = text.strip()
        except (KeyError, TypeError, ValueError, OverflowError, AttributeError):
            _refuse_caption(path, a)
            raise
        if type(text) is not str:
            _refuse_caption(path, a)
        try:
            image_ids.append(image_id)
            caption_ids.append(caption_id)
        except OverflowError:
            raise _too_large(path, a) from None
        texts.append(text)

    _stream_json(path, {"annotations": caption})
    return _int64(image_ids), _int64(caption_ids), texts


def _refuse_caption(path: Path, a) -> None:
    """Raise the DatasetError that names what is wrong with caption annotation ``a``."""
    text = a.get("caption") if isinstance(a, dict) else None
    if not isinstance(text, str):
        raise DatasetError(
            f"{path}: caption annotation {a.get('id', '?') if isinstance(a, dict) else a!r} "
            f"(image {a.get('image_id', '?') if isinstance(a, dict) else '?'}) has no 'caption' text; "
            f"is it a captions_*.json file? Fix or re-download the annotations"
        )
    _field(path, a, "image_id", int)
    raise DatasetError(
        f"{path}: caption annotation {a.get('id')!r} (image {a.get('image_id')}) has no integer 'id'; "
        f"fix or re-download the annotations"
    )


def _joined_captions(ids: np.ndarray, image_ids: np.ndarray, caption_ids: np.ndarray, texts: list[str]) -> list[str]:
    """For each id of ``ids`` (sorted), its captions joined by spaces in (caption id, text) order."""
    order = np.lexsort((caption_ids, image_ids))
    img, cid = image_ids[order], caption_ids[order]
    tied = np.zeros(len(order), bool)  # in a run of equal (image id, caption id): sorted by text too
    same = (img[1:] == img[:-1]) & (cid[1:] == cid[:-1])
    tied[1:] |= same
    tied[:-1] |= same
    lo, hi = np.searchsorted(img, ids, "left"), np.searchsorted(img, ids, "right")
    out = []
    for a, b in zip(lo.tolist(), hi.tolist()):
        rows = order[a:b].tolist()
        if tied[a:b].any():
            out.append(" ".join(t for _, t in sorted((int(caption_ids[r]), texts[r]) for r in rows)))
        else:
            out.append(" ".join(texts[r] for r in rows))
    return out


def _mscoco_json(
    root: Path, label_order: str, year, image_dir, drop_unlabeled: bool, check_images: bool
) -> MultiModalDataset:
    if year == "auto":
        year = _year(root)
    if year not in YEARS:
        raise DatasetError(f"mscoco: year must be 'auto' or one of {YEARS}, got {year!r}")
    need = [(kind, s) for s in SPLIT_NAMES for kind in ("instances", "captions")]
    absent = [f"annotations/{k}_{s}{year}.json" for k, s in need if _json_path(root, k, s, year) is None]
    if absent:
        raise DatasetNotFoundError(
            f"mscoco (json layout, {year}): missing {absent} in {root}; the benchmark uses the train and val "
            f"images of one year (extract annotations_trainval{year}.zip into the root). {HOW_TO}"
        )
    names = LABEL_ORDERS[label_order]
    column = {n: j for j, n in enumerate(names)}
    labels, texts, paths, ids, splits = [], [], [], [], []
    excluded = no_caption = 0
    files = []
    images: dict[str, dict[int, Any]] = {}  # split -> image id -> file_name
    for split in SPLIT_NAMES:
        inst_path, cap_path = _json_path(root, "instances", split, year), _json_path(root, "captions", split, year)
        files += [inst_path, cap_path]
        file_name, cat_name, ann_image, ann_cat = _read_instances(inst_path, split, images)
        images[split] = file_name
        split_ids = np.array(sorted(file_name), np.int64)
        # labels: one row per image (sorted by id), set from each annotation; annotations of ids that
        # are not among the images are left out
        cats = np.array(sorted(cat_name), np.int64)
        col = np.array([column[cat_name[int(c)]] for c in cats], np.int64)
        rows = np.searchsorted(split_ids, ann_image)
        known = rows < len(split_ids)
        known[known] = split_ids[rows[known]] == ann_image[known]
        Y = np.zeros((len(split_ids), len(names)), np.uint8)
        Y[rows[known], col[np.searchsorted(cats, ann_cat[known])]] = 1
        del rows, known, ann_image, ann_cat
        keep = Y.any(axis=1)  # the literature keeps only images with at least one of the 80 labels
        excluded += int((~keep).sum())
        kept = split_ids[keep]
        captions = _joined_captions(kept, *_read_captions(cap_path))
        no_caption += sum(c == "" for c in captions)
        labels.append(Y[keep]), texts.extend(captions), ids.append(kept), splits.extend([split] * len(kept))
        for i in kept.tolist():
            entry = {"id": i} if file_name[i] is _ABSENT else {"id": i, "file_name": file_name[i]}
            paths.append(f"{split}{year}/{_field(inst_path, entry, 'file_name', str)}")
    if not len(texts):
        raise DatasetError(f"mscoco (json layout): no image with a label in {files}")
    return finish_dataset(
        "mscoco",
        "json",
        root,
        names,
        np.concatenate(labels),
        texts,
        paths,
        Path(image_dir) if image_dir else root,
        drop_unlabeled,
        check_images,
        files,
        {
            "label_order": label_order,
            "year": year,
            "image_ids": np.concatenate(ids),
            "image_split": splits,
            "excluded_without_label": excluded,
            "items_without_caption": int(no_caption),
            "selection": "train + val images with >= 1 of the 80 categories",
        },
    )
