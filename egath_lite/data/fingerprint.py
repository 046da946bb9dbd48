"""Cheap digests of a release's input files: content for small files, stat for large ones and for image folders.

Computed once, not once per stage key. Two memos make every key after the first cost milliseconds:

* **files**: a file's digest is kept with its ``(inode, size, mtime_ns, ctime_ns)`` and reused while those are
  unchanged. The ctime is set by the kernel on every write, rename or ``utime`` and cannot be set back, so even
  a rewrite that restores size and mtime is seen. A file changed in the last ``RACY_SECONDS`` is never memoised
  (a write in the same clock tick as the digest would keep the ctime: git's "racy" rule).
* **image folders** (``tree_digest``): one stat pass of every file below the folder, reused only inside a
  *fingerprint session* and only while every directory of the tree keeps its inode and mtime (adding, removing
  or renaming-over a file changes its directory's mtime). A session is one notebook run (``begin_session``,
  called by the notebook's setup cell: running that cell again starts a new one) or one driver invocation,
  which hands its digests to each notebook it runs (``export_session`` / ``ENV_VAR``; the notebook checks them
  against the directories' mtimes before using them). Outside a session (library calls, tests) every call does
  the full stat pass. An image overwritten in place (same name) during a session is seen by the next session.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CONTENT_LIMIT = 64 << 20  # files up to 64 MiB are hashed by content; larger ones (AllTags1k.txt, COCO JSON) by stat
RACY_SECONDS = 2.0  # files or folders changed this recently are digested again next time, never memoised
ENV_VAR = "EGATH_TREE_DIGESTS"  # the driver's tree digests, handed to the notebooks it runs (JSON)

_scandir = os.scandir  # the one entry point of a stat pass (tests count its calls)
_FILE_MEMO: dict[str, tuple[tuple[int, int, int, int], list]] = {}
_TREE_MEMO: dict[str, dict[str, Any]] = {}
_SESSION = {"active": False}


def _stat_id(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _settled(*times_ns: int) -> bool:
    """True when every time is at least RACY_SECONDS in the past (safe to memoise what was read)."""
    now = time.time_ns()
    return all(now - t >= RACY_SECONDS * 1e9 for t in times_ns)


def file_digest(path: Path) -> list:
    """``["sha256", size, hex]`` for a small file, ``["stat", size, mtime_ns]`` for a large one (memoised by stat)."""
    st = path.stat()
    if st.st_size > CONTENT_LIMIT:
        return ["stat", st.st_size, st.st_mtime_ns]
    key = str(Path(path).absolute())
    hit = _FILE_MEMO.get(key)
    if hit is not None and hit[0] == _stat_id(st):
        return list(hit[1])
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    out = ["sha256", st.st_size, h.hexdigest()]
    after = path.stat()
    if _stat_id(after) == _stat_id(st) and _settled(st.st_mtime_ns, st.st_ctime_ns):
        _FILE_MEMO[key] = (_stat_id(st), out)
    return out


def _tree_pass(folder: Path) -> dict[str, Any]:
    """The full stat pass: {"count", "digest", "dirs": [[relative dir, inode, mtime_ns], ...]}."""
    h = hashlib.sha256()
    stack = [folder]
    entries, dirs = [], []
    while stack:
        d = stack.pop()
        try:
            st = d.stat()  # before listing: a change made during the pass leaves a newer mtime than recorded
            dirs.append([os.path.relpath(d, folder), st.st_ino, st.st_mtime_ns])
            with _scandir(d) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(Path(e.path))
                    elif e.is_file():
                        fst = e.stat()
                        entries.append(f"{os.path.relpath(e.path, folder)}\0{fst.st_size}\0{fst.st_mtime_ns}")
        except OSError:
            continue
    entries.sort()  # scandir order differs between file systems
    for line in entries:
        h.update(line.encode("utf-8", "surrogateescape"))
        h.update(b"\n")
    return {"count": len(entries), "digest": h.hexdigest(), "dirs": sorted(dirs)}


def _dirs_unchanged(folder: Path, dirs: list) -> bool:
    """Every recorded directory still has its inode and mtime, and none changed too recently to trust."""
    for rel, ino, mtime in dirs:
        try:
            st = (folder / rel).stat()
        except OSError:
            return False
        if st.st_ino != ino or st.st_mtime_ns != mtime or not _settled(st.st_mtime_ns):
            return False
    return True


def tree_digest(folder: Path) -> list:
    """[number of files, sha256 of (relative path, size, mtime_ns) of every file below folder]: stat only.

    Inside a fingerprint session the pass runs once per folder; later calls stat only the folder's directories.
    """
    folder = Path(folder)
    key = str(folder.absolute())
    if _SESSION["active"]:
        hit = _TREE_MEMO.get(key)
        if hit is not None and _dirs_unchanged(folder, hit["dirs"]):
            return [hit["count"], hit["digest"]]
    record = _tree_pass(folder)
    if _SESSION["active"]:
        _TREE_MEMO[key] = record
    return [record["count"], record["digest"]]


def begin_session(inherit: bool = True) -> None:
    """Start a fingerprint session (one notebook run or one driver invocation): image folders are stat'ed once.

    Drops the digests of an earlier session; with ``inherit``, takes the ones a driver handed down in
    ``$EGATH_TREE_DIGESTS`` (each is used only while its folder's directories keep their mtimes).
    """
    _TREE_MEMO.clear()
    _SESSION["active"] = True
    text = os.environ.get(ENV_VAR) if inherit else None
    if text:
        try:
            handed = json.loads(text)
        except ValueError:
            return  # a garbled hand-over costs one stat pass, never a wrong key
        if isinstance(handed, dict):
            for key, rec in handed.items():
                if _valid_record(rec):
                    _TREE_MEMO[str(key)] = rec


def _valid_record(rec: Any) -> bool:
    return (
        isinstance(rec, dict)
        and isinstance(rec.get("count"), int)
        and isinstance(rec.get("digest"), str)
        and isinstance(rec.get("dirs"), list)
        and all(
            isinstance(d, list) and len(d) == 3 and isinstance(d[0], str) and all(isinstance(x, int) for x in d[1:])
            for d in rec["dirs"]
        )
    )


def end_session() -> None:
    """Leave the session: every later call does its full stat pass again."""
    _TREE_MEMO.clear()
    _SESSION["active"] = False


def export_session() -> str:
    """The session's tree digests as JSON, for ``$EGATH_TREE_DIGESTS`` of a notebook the driver runs."""
    return json.dumps(_TREE_MEMO)


def inputs_digest(root: Path, files: Sequence[Path], trees: Sequence[Path]) -> list:
    """JSON-able description of a layout's inputs: each file's digest and each folder's tree digest, by relative path."""

    def rel(p: Path) -> str:
        try:
            return str(p.relative_to(root))
        except ValueError:
            return str(p)

    return [
        [[rel(f), *file_digest(f)] for f in sorted(set(files)) if f.is_file()],
        [[rel(t), *tree_digest(t)] for t in sorted(set(trees)) if t.is_dir()],
    ]
