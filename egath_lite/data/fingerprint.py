"""Cheap digests of a release's input files: content for small files, stat for large ones and for image folders."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

CONTENT_LIMIT = 64 << 20  # files up to 64 MiB are hashed by content; larger ones (AllTags1k.txt, COCO JSON) by stat


def file_digest(path: Path) -> list:
    """[relative name later, size, sha256] for a small file, [size, mtime_ns] for a large one."""
    st = path.stat()
    if st.st_size > CONTENT_LIMIT:
        return ["stat", st.st_size, st.st_mtime_ns]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return ["sha256", st.st_size, h.hexdigest()]


def tree_digest(folder: Path) -> list:
    """[number of files, sha256 of (relative path, size, mtime_ns) of every file below folder]: stat only."""
    h = hashlib.sha256()
    count = 0
    stack = [folder]
    entries = []
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(Path(e.path))
                    elif e.is_file():
                        st = e.stat()
                        entries.append(f"{os.path.relpath(e.path, folder)}\0{st.st_size}\0{st.st_mtime_ns}")
        except OSError:
            continue
    for line in sorted(entries):  # scandir order differs between file systems
        h.update(line.encode("utf-8", "surrogateescape"))
        h.update(b"\n")
        count += 1
    return [count, h.hexdigest()]


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
