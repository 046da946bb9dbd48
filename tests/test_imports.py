"""Imports flow one way (docs/architecture.md, "Folders"): the module graph of egath_lite, read with ast.

Every import counts, at module level and inside functions (a lazy import still ties two modules together),
relative or absolute. A module is one file; a package's ``__init__.py`` is its own module (``egath_lite.pipeline``),
reached by ``from egath_lite.pipeline import name`` when ``name`` is not a submodule. Checked:
(a) ``egath_lite.core`` imports only torch, numpy, torch_geometric, the standard library and ``egath_lite.core``;
(b) ``core``, ``data`` and ``metrics`` import nothing from ``pipeline``, ``driver`` or ``serve``;
(c) no import cycle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "egath_lite"

CORE_MAY_IMPORT = {"torch", "numpy", "torch_geometric"}
LOWER = ("egath_lite.core", "egath_lite.data", "egath_lite.metrics")
UPPER = ("egath_lite.pipeline", "egath_lite.driver", "egath_lite.serve")


def module_name(path: Path) -> str:
    """``egath_lite/pipeline/config.py`` -> ``egath_lite.pipeline.config``; ``.../__init__.py`` -> the package."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def imports_of(name: str) -> list[tuple[str, int]]:
    """(imported module, line) for every import statement in module ``name`` of the package."""
    path = modules()[name]
    return imports_in(path.read_text(), name, path.name == "__init__.py", modules())


def imports_in(source: str, name: str, is_package: bool, known) -> list[tuple[str, int]]:
    """(imported module, line) for every import in ``source`` (module ``name``), relative ones made absolute.

    For a name inside the package the target is the deepest module in ``known`` (``from egath_lite.core import
    models`` -> ``egath_lite.core.models``; ``from egath_lite.pipeline.config import Config`` -> its module)."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(_deepest(alias.name, known), node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source_module = ".".join(base + ([node.module] if node.module else []))
            else:
                source_module = node.module
            for alias in node.names:
                sub = f"{source_module}.{alias.name}"
                out.append((sub if sub in known else _deepest(source_module, known), node.lineno))
    return out


def _deepest(dotted: str, known: dict[str, Path]) -> str:
    """The longest prefix of ``dotted`` that is a module of the package, else ``dotted`` itself (external)."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in known:
            return ".".join(parts[:n])
    return dotted


@cache
def graph() -> dict[str, dict[str, int]]:
    """Module -> {imported egath_lite module: first line importing it} (self-imports dropped)."""
    out: dict[str, dict[str, int]] = {}
    for name in modules():
        edges: dict[str, int] = {}
        for target, line in imports_of(name):
            if _within(target, "egath_lite") and target != name:
                edges.setdefault(target, line)
        out[name] = edges
    return out


def _where(src: str, line: int) -> str:
    return f"{modules()[src].relative_to(REPO).as_posix()}:{line}"


def find_cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """One shortest cycle through each strongly connected component of more than one module (Tarjan, then BFS)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(sorted(comp))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for v in sorted(edges):
        if v not in index:
            visit(v)

    cycles = []
    for comp in components:
        members = set(comp)
        start = comp[0]
        # Shortest path start -> ... -> start inside the component.
        parents: dict[str, str] = {}
        frontier = [start]
        found = None
        while frontier and found is None:
            nxt = []
            for v in frontier:
                for w in sorted(edges.get(v, {})):
                    if w not in members:
                        continue
                    if w == start:
                        found = v
                        break
                    if w not in parents:
                        parents[w] = v
                        nxt.append(w)
                if found is not None:
                    break
            frontier = nxt
        chain = [found]
        while chain[-1] != start:
            chain.append(parents[chain[-1]])
        cycles.append(chain[::-1])
    return cycles


def describe_chain(chain: list[str]) -> str:
    """``a -> b (a.py:12) -> a (b.py:3)``: each step with the line that imports."""
    steps = [chain[0]]
    loop = [*chain, chain[0]]
    for src, dst in zip(loop, loop[1:]):
        steps.append(f"-> {dst} ({_where(src, graph()[src][dst])})")
    return " ".join(steps)


def test_the_graph_sees_the_package():
    names = modules()
    assert "egath_lite.core.models" in names and "egath_lite.pipeline" in names
    assert "egath_lite.core.models" in graph()["egath_lite.pipeline.classifier"] or any(
        _within(t, "egath_lite.core") for t in graph()["egath_lite.pipeline.classifier"]
    )


def test_relative_and_lazy_imports_resolve_to_modules():
    known = {"p", "p.a", "p.b", "p.sub", "p.sub.c"}
    src = "from . import b\nfrom .sub import c\nfrom ..x import y\ndef f():\n    from .sub import name\n    import os.path\n"
    got = imports_in(src, "p.a", False, known)
    assert sorted(got, key=lambda t: t[1]) == [("p.b", 1), ("p.sub.c", 2), ("x", 3), ("p.sub", 5), ("os.path", 6)]
    assert imports_in("from . import a\nfrom .c import z\n", "p.sub", True, known) == [("p.sub", 1), ("p.sub.c", 2)]


def test_the_cycle_finder_finds_a_planted_cycle():
    edges = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1, "d": 1}, "d": {}}
    assert find_cycles(edges) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b": 1}, "b": {}}) == []


def test_core_imports_only_torch_numpy_torch_geometric_and_the_standard_library():
    allowed = CORE_MAY_IMPORT | set(sys.stdlib_module_names)
    bad = []
    for name in modules():
        if not _within(name, "egath_lite.core"):
            continue
        for target, line in imports_of(name):
            ok = (
                _within(target, "egath_lite.core") if _within(target, "egath_lite") else target.split(".")[0] in allowed
            )
            if not ok:
                bad.append(f"{_where(name, line)}: {name} imports {target}")
    assert not bad, "egath_lite.core may import only torch, numpy, torch_geometric, stdlib, egath_lite.core:\n" + (
        "\n".join(bad)
    )


def test_core_data_metrics_import_nothing_from_pipeline_driver_serve():
    bad = [
        f"{_where(src, line)}: {src} imports {dst}"
        for src, edges in graph().items()
        if any(_within(src, low) for low in LOWER)
        for dst, line in edges.items()
        if any(_within(dst, up) for up in UPPER)
    ]
    assert not bad, "imports flow downward; these go up:\n" + "\n".join(bad)


def test_the_package_has_no_import_cycle():
    cycles = find_cycles(graph())
    assert not cycles, f"{len(cycles)} import cycle(s), module-level and lazy imports counted:\n" + "\n".join(
        describe_chain(c) for c in cycles
    )


def test_importing_core_loads_no_pipeline():
    code = (
        "import sys, egath_lite.core, egath_lite.core.models, egath_lite.core.train, egath_lite.core.losses, "
        "egath_lite.core.label_graph, egath_lite.core.label_embeddings, egath_lite.core.lsh\n"
        "up = sorted(m for m in sys.modules if m.startswith(('egath_lite.pipeline', 'egath_lite.driver', "
        "'egath_lite.serve', 'egath_lite.clip', 'egath_lite.data')))\n"
        "print(','.join(up))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"import egath_lite.core loaded: {done.stdout.strip()}"
