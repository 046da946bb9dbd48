"""Notebooks teach, the package does the work: plumbing stays a small share of each notebook's code, and
every code pointer (``# canonical: path (names)``, a backticked ``egath_lite.…`` name) resolves."""

import ast
import importlib
import importlib.util
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("0*.ipynb"))
MAX_PLUMBING_SHARE = 0.15


def _code_cells(path: Path) -> list[dict]:
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def _code_lines(cell: dict) -> int:
    """Non-blank lines that are not only a comment."""
    lines = "".join(cell["source"]).splitlines()
    return sum(1 for line in lines if line.strip() and not line.lstrip().startswith("#"))


def _is_setup(cell: dict) -> bool:
    return re.search(r"(?<![\w.])setup(_from)?\(", "".join(cell["source"])) is not None


def plumbing_share(path: Path) -> tuple[int, int]:
    """(plumbing lines, all code lines): plumbing is the install cell (the first code cell), the ``parameters``
    cell, the setup cell (the first that calls ``setup_from(`` or ``setup(``) and the results cell (the last)."""
    cells = _code_cells(path)
    plumbing = {0, len(cells) - 1}
    plumbing |= {i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])}
    plumbing |= {next(i for i, c in enumerate(cells) if _is_setup(c))}
    return sum(_code_lines(cells[i]) for i in plumbing), sum(_code_lines(c) for c in cells)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_plumbing_is_under_15_percent_of_the_code(path):
    plumbing, total = plumbing_share(path)
    share = plumbing / total
    print(f"{path.stem}: plumbing {plumbing} of {total} code lines = {share:.1%}")
    assert share < MAX_PLUMBING_SHARE, (
        f"{path.name}: install, parameters, setup and results cells hold {plumbing} of {total} code lines "
        f"({share:.1%} ≥ {MAX_PLUMBING_SHARE:.0%}); move plumbing into egath_lite.pipeline"
    )


def _defined_names(path: Path) -> set[str]:
    """Top-level functions, classes and assigned names of a module, and ``Class.method`` for its classes."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            if isinstance(node, ast.ClassDef):
                names |= {
                    f"{node.name}.{m.name}"
                    for m in node.body
                    if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                }
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


POINTER = re.compile(r"#\s*canonical:\s*(.*)$", flags=re.M)
POINTER_ENTRY = re.compile(r"\s*([\w./-]+)\s*(?:\(([^)]*)\))?\s*(?:,|$)")


def _pointer_entries(text: str) -> list[tuple[str, list[str]]] | None:
    """``path (a, B.c), path2`` → [(path, [a, B.c]), (path2, [])]; None for anything else."""
    entries, pos = [], 0
    while pos < len(text.rstrip()):
        m = POINTER_ENTRY.match(text, pos)
        if not m or m.end() == pos:
            return None
        names = [n.strip() for n in (m[2] or "").split(",") if n.strip()]
        entries.append((m[1], names))
        pos = m.end()
    return entries


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_canonical_pointers_name_files_and_names_that_exist(path):
    pointers = [m[1] for c in _code_cells(path) for m in POINTER.finditer("".join(c["source"]))]
    bad = []
    for text in pointers:
        entries = _pointer_entries(text)
        if entries is None:
            bad.append(f"not of the form 'path (name, Class.method), path': {text!r}")
        for file, names in entries or []:
            target = REPO / file
            if not target.is_file() or target.suffix != ".py":
                bad.append(f"{file}: no such Python file")
                continue
            missing = [n for n in names if n not in _defined_names(target)]
            if not names:
                bad.append(f"{file}: name the functions or classes, e.g. {file} (name, Class.method)")
            elif missing:
                bad.append(f"{file} defines no {missing}")
    assert pointers, f"{path.name} has no '# canonical:' pointer"
    assert not bad, f"{path.name}: stale pointers: {bad}"


def _resolve(dotted: str) -> bool:
    """An importable module, or a module and attributes of it."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_backticked_package_names_and_repository_paths_in_the_prose_exist(path):
    cells = json.loads(path.read_text())["cells"]
    md = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    spans = re.findall(r"`([^`\n]+)`", md)
    dotted = {m[1] for s in spans if (m := re.fullmatch(r"(egath_lite(?:\.\w+)+)(?:\(.*\))?", s.strip()))}
    modules = {m[1] for s in spans for m in re.finditer(r"python -m (egath_lite(?:\.\w+)+)", s)}
    files = {
        s.strip()
        for s in spans
        if re.fullmatch(r"(egath_lite|benchmarks|tests|docs|scripts)/[\w./-]+", s.strip()) and "<" not in s
    }
    unresolved = sorted(d for d in dotted if not _resolve(d))
    unresolved += sorted(m for m in modules if importlib.util.find_spec(m) is None)
    missing = sorted(f for f in files if not (REPO / f).exists())
    assert not unresolved and not missing, f"{path.name}: unresolved {unresolved}, missing files {missing}"
