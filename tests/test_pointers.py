"""Every code pointer resolves: the notebooks' ``# canonical:`` comments and the docs' backticked names and paths.

- A notebook's code comment ``# canonical: egath_lite/<path>.py (name, Class.method), egath_lite/<other>.py``
  names files (or package folders) that exist and, in parentheses, attributes of that module. Prose may
  follow the pointers after ``;`` or `` — ``.
- In README.md, docs/*.md, benchmarks/RESULTS.md, data/README.md and the notebooks' markdown cells, every
  backticked ``egath_lite.<dotted>`` imports as a module or resolves by getattr from its longest importable
  prefix, and every backticked ``egath_lite/<path>`` exists (``egath_lite/x.py::name`` also names an attribute),
  as does every backticked ``tests/``, ``benchmarks/``, ``scripts/``, ``docs/`` or ``notebooks/`` file.
  A short ``models.binarize`` whose first word is a module's name must resolve in a module of that name.
  A backticked artifact file name (``…-<key>.pt``) must be one a stage writes (or the toy bundle), and a
  backticked notebook name (``02_label_graph``) one of the notebooks.
  Fenced code blocks count too (``from egath_lite.x import a, b`` checks ``a`` and ``b``).
CHANGELOG.md is history and is not checked. All failures are reported at once, with file and line.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("0*.ipynb"))
MARKDOWN = [
    REPO / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
    REPO / "benchmarks" / "RESULTS.md",
    REPO / "data" / "README.md",
]

NAME = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
PATH = r"egath_lite(?:/[\w.-]+)*/?"
POINTER = re.compile(rf"^(?P<path>{PATH})(?: \((?P<names>{NAME}(?:, {NAME})*)\))?$")
DOTTED = re.compile(r"\begath_lite(?:\.[A-Za-z_]\w*)+")
SLASHED = re.compile(r"\begath_lite/[\w./-]*[\w/](?:::" + NAME + ")?")
REPO_FILE = re.compile(
    r"(?<![\w/.])(?:tests|benchmarks|scripts|docs|notebooks)/[\w.-]+(?:/[\w.-]+)*\.(?:py|md|sh|ipynb)\b"
)
SHORT = re.compile(r"^([a-z_]\w*)((?:\.[A-Za-z_]\w*)+)(?:\(.*\))?$")
FILE_SUFFIXES = {
    "py",
    "pt",
    "json",
    "jsonl",
    "csv",
    "mat",
    "npy",
    "png",
    "md",
    "txt",
    "bundle",
    "ipynb",
    "log",
    "bin",
    "html",
    "db",
}
FROM_IMPORT = re.compile(r"^\s*from (egath_lite[\w.]*) import \(?([\w, ]+)\)?\s*$")


NOTEBOOK_STEM = re.compile(r"(?<![\w-])0\d_[a-z][a-z_]*[a-z](?![\w-]*<)")
ARTIFACT = re.compile(r"[\w.<>-]*<key>[\w.]*")


def artifact_names() -> list[re.Pattern]:
    """The file name of every stage's artifact (the stage table's last column) and of the toy data's bundle, as
    patterns: ``codes-<variant>-<bits>-<key>.pt`` matches itself and ``codes-egath-32-<key>.pt``."""
    from egath_lite.data.toy_cache import cache_path
    from egath_lite.pipeline.config import get_config
    from egath_lite.pipeline.stages import stage_table
    from egath_lite.pipeline.table import STAGES

    names = [row["artifact"] for row in stage_table(STAGES, get_config("default"))]
    names.append(cache_path(".", 10, 0, 8).name.rsplit("-", 1)[0] + "-<key>.bundle")
    from egath_lite.data.dataset_cache import bundle_path  # a real data set, loaded once: dataset-<name>-<key>.bundle

    names.append(bundle_path(".", "<name>", "").name.rsplit("-", 1)[0] + "-<key>.bundle")
    out = []
    for name in names:
        parts = re.split(r"(<\w+>)", name)
        out.append(
            re.compile(
                "".join(
                    re.escape(p) if not p.startswith("<") else (r"(?:<\w+>|[\w.]+)" if p != "<key>" else "<key>")
                    for p in parts
                )
            )
        )
    return out


def check_artifact_name(text: str) -> list[str]:
    """A backticked ``runs/<run>/graph-<key>.pt``: the file name is one a stage writes."""
    problems = []
    for token in ARTIFACT.findall(text):
        name = token.rsplit("/", 1)[-1]
        if name == "<key>" or name.startswith("-"):  # `<key>` alone; the generic `<stage>[-<params>]-<key>.pt`
            continue
        if not any(p.fullmatch(name) for p in ARTIFACT_NAMES):
            problems.append(f"`{token}`: no stage writes such a file (docs/architecture.md, the stage table)")
    return problems


def _module_of_path(path: str) -> str | None:
    """``egath_lite/core/models.py`` -> ``egath_lite.core.models``; a package folder -> the package; else None."""
    target = REPO / path.rstrip("/")
    if target.is_file() and target.suffix == ".py":
        parts = target.relative_to(REPO).with_suffix("").parts
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    if target.is_dir() and (target / "__init__.py").is_file():
        return ".".join(target.relative_to(REPO).parts)
    return None


def _basenames() -> dict[str, list[str]]:
    """Last component of every module of the package -> the modules of that name (``graph`` -> two)."""
    out: dict[str, list[str]] = {}
    for path in sorted((REPO / "egath_lite").rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        out.setdefault(parts[-1], []).append(".".join(parts))
    return out


BASENAMES = _basenames()
ARTIFACT_NAMES = artifact_names()


def check_short_name(text: str) -> str | None:
    """A backticked ``models.binarize`` or ``train.ensure_codes``: a module's short name and an attribute. When the
    first word is the name of a module of the package, some module of that name must hold the rest."""
    m = SHORT.match(text)
    if m is None or m[1] not in BASENAMES or m[1] == "egath_lite":
        return None
    rest = m[2][1:]
    if rest.split(".")[-1] in FILE_SUFFIXES:
        return None  # a file name: `features.pt`, `graph.py`
    whys = [resolve(f"{module}.{rest}") for module in BASENAMES[m[1]]]
    if all(whys):
        where = " or ".join(BASENAMES[m[1]])
        return f"`{text}`: {rest} is in no module named {m[1]!r} ({where})"
    return None


def resolve(dotted: str) -> str | None:
    """None when ``dotted`` imports as a module or resolves by getattr from its longest importable prefix;
    else why not."""
    try:
        if importlib.util.find_spec(dotted) is not None:
            return None  # a module: found without running it (the shims warn when imported)
    except (ImportError, ValueError):
        pass
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        name = ".".join(parts[:n])
        try:
            obj = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name is not None and (name == e.name or name.startswith(e.name + ".")):
                continue  # not a module: try a shorter prefix and getattr from there
            return f"importing {name} fails: {e!r}"
        except Exception as e:  # a module that exists but does not import is a failure, not a fallback
            return f"importing {name} fails: {e!r}"
        for i, attr in enumerate(parts[n:], start=n):
            try:
                obj = getattr(obj, attr)
            except AttributeError:
                return f"{'.'.join(parts[:i])} has no attribute {attr!r}"
        return None
    return "no importable prefix"


def check_pointer_comment(text: str) -> list[str]:
    """Problems of one ``# canonical:`` comment's text (what follows the colon)."""
    depth, cut = 0, len(text)
    for i, ch in enumerate(text):  # prose starts at the first top-level ';' or ' — '
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and (ch == ";" or text.startswith(" — ", i)):
            cut = i
            break
    entries, depth, start = [], 0, 0
    head = text[:cut].strip()
    for i, ch in enumerate(head):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            entries.append(head[start:i].strip())
            start = i + 1
    entries.append(head[start:].strip())
    problems = []
    for entry in entries:
        m = POINTER.match(entry)
        if m is None:
            problems.append(
                f"unreadable pointer {entry!r}: write 'egath_lite/<path>.py (name, Class.method)', prose after ';'"
            )
            continue
        module = _module_of_path(m["path"])
        if module is None:
            problems.append(f"{m['path']} does not exist (a .py file or a package folder)")
            continue
        for name in (m["names"] or "").split(", ") if m["names"] else []:
            why = resolve(f"{module}.{name}")
            if why:
                problems.append(f"{m['path']} ({name}): {why}")
    return problems


def check_code_text(text: str, fenced: bool) -> list[str]:
    """Problems of the ``egath_lite.…`` names and ``egath_lite/…`` paths in one code span or code line."""
    problems = []
    for dotted in DOTTED.findall(text):
        why = resolve(dotted)
        if why:
            problems.append(f"`{dotted}`: {why}")
    for path in SLASHED.findall(text):
        file, _, attr = path.partition("::")
        module = _module_of_path(file) if file.endswith(".py") or (REPO / file).is_dir() else None
        if not (REPO / file.rstrip("/")).exists():
            problems.append(f"`{path}`: {file} does not exist")
        elif attr and module is not None:
            why = resolve(f"{module}.{attr}")
            if why:
                problems.append(f"`{path}`: {why}")
    problems += check_artifact_name(text)
    for stem in NOTEBOOK_STEM.findall(text):
        if stem not in {nb.stem for nb in NOTEBOOKS}:
            problems.append(f"`{stem}`: no such notebook")
    for path in REPO_FILE.findall(text):
        if not (REPO / path).is_file():
            problems.append(f"`{path}` does not exist")
    m = FROM_IMPORT.match(text) if fenced else None
    if m and resolve(m[1]) is None:
        for name in (n.split(" as ")[0].strip() for n in m[2].split(",")):
            if name and name != "*":
                why = resolve(f"{m[1]}.{name}")
                if why:
                    problems.append(f"from {m[1]} import {name}: {why}")
    return problems


def check_markdown(text: str) -> list[tuple[int, str]]:
    """(line, problem) for the code pointers of one markdown text: inline code spans and fenced blocks."""
    out = []
    fence = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.lstrip()
        if fence is None and (stripped.startswith("```") or stripped.startswith("~~~")):
            fence = stripped[:3]
            continue
        if fence is not None:
            if stripped.startswith(fence):
                fence = None
            else:
                out += [(lineno, p) for p in check_code_text(line, fenced=True)]
            continue
        for span in re.findall(r"(`+)(.+?)\1", line):
            out += [(lineno, p) for p in check_code_text(span[1], fenced=False)]
            why = check_short_name(span[1].strip())
            if why:
                out.append((lineno, why))
    return out


def notebook_problems(path: Path) -> list[str]:
    """Every failing pointer of one notebook, as 'notebooks/x.ipynb cell N line M: problem'."""
    out = []
    rel = path.relative_to(REPO).as_posix()
    for i, cell in enumerate(json.loads(path.read_text())["cells"]):
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            out += [f"{rel} cell {i} line {n}: {p}" for n, p in check_markdown(source)]
        elif cell["cell_type"] == "code":
            for n, line in enumerate(source.splitlines(), start=1):
                m = re.search(r"#\s*canonical:\s*(.*)$", line)
                if m:
                    out += [f"{rel} cell {i} line {n}: {p}" for p in check_pointer_comment(m[1].strip())]
    return out


def markdown_problems(path: Path) -> list[str]:
    rel = path.relative_to(REPO).as_posix()
    return [f"{rel}:{n}: {p}" for n, p in check_markdown(path.read_text())]


def test_the_checker_catches_what_it_should():
    assert check_pointer_comment("egath_lite/core/models.py (GATClassifier, EGATH.image_branch)") == []
    assert check_pointer_comment("egath_lite/metrics (pr_curve); prose (with parentheses) follows") == []
    assert check_pointer_comment("egath_lite/core/models.py, egath_lite/core/losses.py — the two halves") == []
    assert len(check_pointer_comment("egath_lite/features.py (ClipLoss)")) == 1  # no such file
    assert len(check_pointer_comment("egath_lite/core/models.py (NoSuchThing, GATClassifier.nope)")) == 2
    assert len(check_pointer_comment("egath_lite/core/models.py (load: a sentence)")) == 1  # unreadable
    assert check_markdown("`egath_lite.core.models.GATClassifier` and `egath_lite.pipeline`") == []
    assert [p for _, p in check_markdown("see `egath_lite.core.nothing_here` and `egath_lite/graph.py`")] == [
        "`egath_lite.core.nothing_here`: egath_lite.core has no attribute 'nothing_here'",
        "`egath_lite/graph.py`: egath_lite/graph.py does not exist",
    ]
    assert check_markdown("`runs/<run>/codes-<variant>-<bits>-<key>.pt`, `results/results-05_x-<key>.json`") == []
    assert len(check_markdown("`02_label_graph` feeds `06_reproduce`")) == 1
    assert len(check_markdown("`tiny_clip_<key>.pt` and `results/05_pr_curve_evaluation-<key>.json`")) == 2
    assert [
        p for _, p in check_markdown("run `python benchmarks/bench_nothing.py --x` or `tests/test_project.py`")
    ] == ["`benchmarks/bench_nothing.py` does not exist"]
    assert [n for n, _ in check_markdown("a\n```python\nfrom egath_lite.core.models import EGATH, Nope\n```\n")] == [3]
    assert check_markdown("```python\nfrom egath_lite.serve import search as s\n```") == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_pointers_resolve(path):
    problems = notebook_problems(path)
    assert not problems, f"{len(problems)} stale pointer(s):\n" + "\n".join(problems)


def test_markdown_pointers_resolve():
    problems = [p for path in MARKDOWN for p in markdown_problems(path)]
    assert not problems, f"{len(problems)} stale pointer(s):\n" + "\n".join(problems)
