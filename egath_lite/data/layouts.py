"""Which release layout a data folder holds, and, when it holds none, what it holds instead and how to fix it.

One mechanism for the three benchmarks: each layout lists its requirements (each one a set
of alternative relative paths or glob patterns, any one of which suffices). ``resolve_layout``
picks the first layout whose requirements are all met. When none is, the error lists what
the folder holds (top entries, .jpg counts, .mat / .json / .txt names), the dataset's known
placement mistakes that match (image folder given as root, a preprocessed single-file
release, ...), a release one or two levels down (double nesting) or one level up (a
subfolder given as root), and the layout the folder most resembles with what it lacks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from egath_lite.data.dataset import DatasetError, DatasetNotFoundError

HOW_TO = "See data/README.md for where to download it and how to lay the files out."
_MAX_LISTED = 12  # top entries named in an error message
_MAX_SCANNED_DIRS = 4_000  # directories visited when counting images in an error path (a whole NUS-WIDE tree is fine)


@dataclass(frozen=True)
class Requirement:
    """One thing a layout needs: ``what`` it is, relative paths / glob patterns (any one suffices), the fix."""

    what: str
    patterns: tuple[str, ...]
    fix: str = ""

    def found(self, root: Path) -> str | None:
        """The first pattern that exists under root (globs: the first match), else None."""
        for pattern in self.patterns:
            if any(ch in pattern for ch in "*?["):
                hit = next(iter(sorted(root.glob(pattern))), None)
                if hit is not None:
                    return str(hit.relative_to(root))
            elif (root / pattern).exists():
                return pattern
        return None


@dataclass(frozen=True)
class Layout:
    """A release layout of one dataset: its name (the ``layout=`` option), a one-line description, requirements."""

    name: str
    description: str
    requires: tuple[Requirement, ...]
    # root -> (files the loader reads, folders whose files it reads: images, per-item tag files); for the fingerprint
    inputs: Callable[[Path], tuple[list[Path], list[Path]]] | None = None

    def missing(self, root: Path) -> list[Requirement]:
        """Requirements not met under root."""
        return [r for r in self.requires if r.found(root) is None]

    def matches(self, root: Path) -> bool:
        """All requirements met."""
        return root.is_dir() and not self.missing(root)


# A placement mistake: (root, scan) -> a message naming what was found and the fix, or None.
Mistake = Callable[[Path, "FolderScan"], "str | None"]


@dataclass
class FolderScan:
    """What a folder holds, for error messages: top entries and counts, found without reading any file."""

    root: Path
    entries: list[str]  # top-level names, folders with a trailing "/"
    jpg_top: int  # .jpg / .jpeg files directly in root
    jpg_below: int  # below root (up to depth 3)
    jpg_dirs: list[str] = field(default_factory=list)  # subfolders (relative) holding the most .jpg files
    mat_files: list[str] = field(default_factory=list)  # relative paths of .mat files (depth <= 2)
    json_files: list[str] = field(default_factory=list)
    txt_top: int = 0

    def describe(self) -> str:
        """One sentence: entries, image counts, .mat and .json names."""
        listed = self.entries[:_MAX_LISTED]
        more = f" and {len(self.entries) - len(listed)} more" if len(self.entries) > len(listed) else ""
        parts = [
            f"{len(self.entries)} entries ({', '.join(listed) if listed else 'empty'}{more})",
            f"{self.jpg_top:,} .jpg files directly in it, {self.jpg_below:,} below it"
            + (f" (mostly in {', '.join(self.jpg_dirs)})" if self.jpg_dirs else ""),
        ]
        if self.mat_files:
            parts.append(f".mat files: {self.mat_files[:_MAX_LISTED]}")
        if self.json_files:
            parts.append(f".json files: {self.json_files[:_MAX_LISTED]}")
        if self.txt_top:
            parts.append(f"{self.txt_top} .txt files directly in it")
        return "; ".join(parts)


def _is_jpg(name: str) -> bool:
    return name.lower().endswith((".jpg", ".jpeg"))


def scan_folder(root: Path, depth: int = 3) -> FolderScan:
    """Entries, .jpg counts (directly and below, up to ``depth``), .mat and .json names (depth <= 2) of root."""
    with os.scandir(root) as it:
        top = sorted(it, key=lambda e: e.name)
    entries = [e.name + ("/" if e.is_dir() else "") for e in top]
    jpg_top = sum(1 for e in top if e.is_file() and _is_jpg(e.name))
    txt_top = sum(1 for e in top if e.is_file() and e.name.lower().endswith(".txt"))
    mats, jsons, per_dir = [], [], {}
    visited = 0
    stack = [(root, 0)]
    while stack and visited < _MAX_SCANNED_DIRS:
        folder, level = stack.pop()
        visited += 1
        try:
            with os.scandir(folder) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        if level + 1 <= depth:
                            stack.append((Path(e.path), level + 1))
                        continue
                    rel = os.path.relpath(e.path, root)
                    if level >= 1 and _is_jpg(e.name):  # counted per top-level subfolder
                        top_dir = rel.split(os.sep, 1)[0]
                        per_dir[top_dir] = per_dir.get(top_dir, 0) + 1
                    if level <= 2 and e.name.lower().endswith(".mat"):
                        mats.append(rel)
                    if level <= 2 and e.name.lower().endswith(".json"):
                        jsons.append(rel)
        except OSError:
            continue
    top_dirs = sorted(per_dir, key=lambda d: -per_dir[d])[:3]
    return FolderScan(
        root=root,
        entries=entries,
        jpg_top=jpg_top,
        jpg_below=sum(per_dir.values()),
        jpg_dirs=[f"{d}/ ({per_dir[d]:,})" for d in top_dirs],
        mat_files=sorted(mats),
        json_files=sorted(jsons),
        txt_top=txt_top,
    )


def _subfolders(root: Path, limit: int = 40) -> list[Path]:
    try:
        return sorted(p for p in root.iterdir() if p.is_dir())[:limit]
    except OSError:
        return []


def _nested_release(root: Path, layouts: Sequence[Layout]) -> tuple[Path, Layout] | None:
    """A layout matched one or two folder levels below root (double nesting), else None."""
    for sub in _subfolders(root):
        for lay in layouts:
            if lay.matches(sub):
                return sub, lay
    for sub in _subfolders(root, 10):
        for sub2 in _subfolders(sub, 10):
            for lay in layouts:
                if lay.matches(sub2):
                    return sub2, lay
    return None


def resemblance(root: Path, layouts: Sequence[Layout]) -> tuple[Layout, list[Requirement], list[Requirement]]:
    """(the layout with the most requirements met, met, missing); ties go to the earlier layout."""
    best = max(layouts, key=lambda lay: (len(lay.requires) - len(lay.missing(root))) / len(lay.requires))
    missing = best.missing(root)
    return best, [r for r in best.requires if r not in missing], missing


def diagnose(dataset: str, root: Path, layouts: Sequence[Layout], mistakes: Sequence[Mistake] = ()) -> str:
    """Why ``root`` matches none of ``layouts``: what it holds, the likely mistake, the fix."""
    scan = scan_folder(root)
    lines = [
        f"{dataset}: {root} matches none of its layouts ({', '.join(lay.name for lay in layouts)}).",
        f"Found there: {scan.describe()}.",
    ]
    fixes = [msg for m in mistakes if (msg := m(root, scan))]
    nested = _nested_release(root, layouts)
    if nested is not None:
        sub, lay = nested
        depth = len(sub.relative_to(root).parts)
        kind = (
            "double nesting"
            if depth == 1 and sub.name == root.name
            else f"the release is {depth} folder level{'s' if depth > 1 else ''} down"
        )
        fixes.append(f"{kind}: {sub} holds the {lay.name} layout ({lay.description}); set the root to {sub}")
    parent = root.parent
    if parent != root:
        for lay in layouts:
            if lay.matches(parent):
                fixes.append(
                    f"the root is a subfolder of the release: {parent} holds the {lay.name} layout "
                    f"({lay.description}); set the root to {parent}"
                )
                break
    best, met, missing = resemblance(root, layouts)
    if met:
        have = "; ".join(f"has {r.what}" + (f" ({r.found(root)})" if r.found(root) != r.what else "") for r in met)
        lack = "; ".join(
            f"lacks {r.what} ({' or '.join(r.patterns)})" + (f": {r.fix}" if r.fix else "") for r in missing
        )
        lines.append(f"It most resembles the {best.name} layout ({best.description}): {have}; {lack}.")
    elif not fixes:
        needs = " | ".join(f"{lay.name}: {', '.join(r.patterns[0] for r in lay.requires)}" for lay in layouts)
        lines.append(f"No file of any layout is there: wrong folder? The layouts need {needs}.")
    if fixes:
        lines.append("Likely fix: " + " | ".join(fixes) + ".")
    lines.append(HOW_TO)
    return " ".join(lines)


def resolve_layout(
    dataset: str, root: Path, layouts: Sequence[Layout], layout: str = "auto", mistakes: Sequence[Mistake] = ()
) -> Layout:
    """The layout to load root with: ``layout`` by name, or (``"auto"``) the first whose requirements are met."""
    names = [lay.name for lay in layouts]
    if layout != "auto" and layout not in names:
        raise DatasetError(f"{dataset}: unknown layout {layout!r}; use 'auto' or one of {names}")
    if not root.is_dir():
        near = ""
        if root.parent.is_dir():
            near = f" (its parent {root.parent} holds: {', '.join(scan_folder(root.parent, depth=0).entries[:12])})"
        raise DatasetNotFoundError(f"{dataset}: data folder {root} does not exist{near}. {HOW_TO}")
    if layout != "auto":
        return layouts[names.index(layout)]
    for lay in layouts:
        if lay.matches(root):
            return lay
    raise DatasetNotFoundError(diagnose(dataset, root, layouts, mistakes))


# ----------------------------------------------------------------------------- shared placement mistakes
def image_folder_mistake(folder_names: Sequence[str], parent_should_hold: str) -> Mistake:
    """Root is the image folder itself: .jpg files directly in it (or named like the image folder)."""

    def check(root: Path, scan: FolderScan) -> str | None:
        if scan.jpg_top == 0 and root.name not in folder_names:
            return None
        if scan.jpg_top == 0 and scan.jpg_below == 0:
            return None
        where = f"{scan.jpg_top:,} .jpg files directly in it" if scan.jpg_top else f"it is named {root.name}/"
        return (
            f"the root is the image folder ({where}): set the root to its parent {root.parent}, "
            f"which should also hold {parent_should_hold}"
        )

    return check


def file_mistake(names: Sequence[str], message: str) -> Mistake:
    """Any of ``names`` (relative paths) present under root -> ``message`` (formatted with {found}, {root})."""

    def check(root: Path, scan: FolderScan) -> str | None:
        found = [n for n in names if (root / n).exists()]
        return message.format(found=", ".join(found), root=root) if found else None

    return check
