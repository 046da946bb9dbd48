"""Assemble the Sphinx source tree of the documentation site from the repository and a driver run.

    python docs/assemble.py --runs-root runs/docs-tiny --out build/docs-tiny/src

The site mirrors the repository's layout (``README.md`` at the root, ``docs/``, ``notebooks/``,
``benchmarks/``, ``data/``) so that the README's relative links resolve to pages unchanged. The
notebooks are the driver's executed copies (outputs included, never executed again here). Remote
badge images are replaced by a copy served from the site itself, so that every page renders offline.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_NUMBERS = ("01", "02", "03", "04", "05", "06")
# 04 and 05 run once per variant; the site shows the method itself.
PREFERRED_VARIANT = "egath"
PAGES = (
    "README.md",
    "docs/paper_map.md",
    "docs/architecture.md",
    "docs/serving.md",
    "benchmarks/RESULTS.md",
    "data/README.md",
    "CHANGELOG.md",
)
DOWNLOADS = ("LICENSE",)  # linked from the README; the site offers them as files
SITE_FILES = ("docs/index.md", "docs/api.md")  # written for the site; land at the source root
COLAB_BADGE_URL = "https://colab.research.google.com/assets/colab-badge.svg"
LOCAL_BADGE = "_static/colab-badge.svg"  # relative to the source root


def _stem_tokens(path: Path) -> set[str]:
    """Name parts of an executed copy and of its cell folder, e.g. ``executed/egath-3f2a/04_hash_learning.ipynb``
    or ``04_hash_learning.egath-3f2a.ipynb`` -> {"egath", "3f2a", ...}."""
    tokens = set(re.split(r"[.\-]", path.name[: -len(".ipynb")]))
    if path.parent.name != "executed":  # the driver writes one folder per grid cell: <variant>-<key>/
        tokens |= set(re.split(r"[.\-]", path.parent.name))
    return tokens


def pick_executed(runs_root: Path) -> dict[str, Path]:
    """One executed notebook per number 01-06 under ``runs_root/**/executed/``: sorted, egath variant first."""
    runs_root = Path(runs_root)
    found = sorted(
        set(runs_root.glob("**/executed/0[1-6]_*.ipynb")) | set(runs_root.glob("**/executed/*/0[1-6]_*.ipynb"))
    )
    chosen: dict[str, Path] = {}
    for number in NOTEBOOK_NUMBERS:
        candidates = [p for p in found if p.name.startswith(number + "_")]
        preferred = [p for p in candidates if PREFERRED_VARIANT in _stem_tokens(p)]
        pool = preferred or candidates
        if pool:
            chosen[number] = pool[0]
    # 06 is not a driver cell: scripts/docs.sh runs it beside the driver, so a driver-only runs root lacks it
    missing = [n for n in NOTEBOOK_NUMBERS if n not in chosen and n != "06"]
    if missing:
        raise FileNotFoundError(
            f"no executed copy of notebook(s) {', '.join(missing)} under {runs_root}/**/executed/; "
            f"run the driver first: python -m egath_lite.reproduce --preset tiny --runs-root {runs_root}"
        )
    return chosen


def site_name(number: str, repo: Path = REPO) -> str:
    """The repository's file name of notebook ``number``, so the README's links find the page."""
    names = sorted(p.name for p in (repo / "notebooks").glob(f"{number}_*.ipynb"))
    if len(names) != 1:
        raise FileNotFoundError(f"expected one notebooks/{number}_*.ipynb in {repo}, found {names or 'none'}")
    return names[0]


def localise_badges(text: str, depth: int) -> str:
    """Point the Colab badge image at the site's own copy; ``depth`` = folders between the page and the root."""
    return text.replace(COLAB_BADGE_URL, "../" * depth + LOCAL_BADGE)


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def progress_line(state: dict, model_id: str, width: int = 10) -> str | None:
    """The text of a tqdm.auto bar (HBox of HTML, FloatProgress, HTML) as its widget state last showed it."""
    box = state.get(model_id, {})
    if box.get("model_name") != "HBoxModel":
        return None
    parts = [state.get(c.removeprefix("IPY_MODEL_"), {}) for c in box.get("state", {}).get("children", [])]
    if [p.get("model_name") for p in parts] != ["HTMLModel", "FloatProgressModel", "HTMLModel"]:
        return None
    left, bar, right = (p.get("state", {}) for p in parts)
    total = bar.get("max") or 0
    filled = round(width * min(max(bar.get("value", 0) / total, 0.0), 1.0)) if total else 0
    text = f"{left.get('value', '')}|{'█' * filled}{' ' * (width - filled)}|{right.get('value', '')}"
    return html.unescape(text).replace("\u2007", " ")


def freeze_widgets(nb: dict) -> dict:
    """Replace ipywidgets outputs by text: a static page cannot run them (their JS would come from a CDN)."""
    state = nb.get("metadata", {}).pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW in data:
                line = progress_line(state, data.pop(WIDGET_VIEW).get("model_id", ""))
                if line is not None:
                    data["text/plain"] = line
    return nb


def assemble(runs_root: Path, out: Path, repo: Path = REPO) -> list[Path]:
    """Write the source tree into ``out`` (stale pages removed); return the notebook pages written."""
    out = Path(out)
    for sub in ("notebooks", "docs", "benchmarks", "data"):
        shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(repo / "docs" / "_static", out / "_static", dirs_exist_ok=True)
    for rel in SITE_FILES:
        shutil.copy2(repo / rel, out / Path(rel).name)
    for rel in PAGES:
        src = repo / rel
        if not src.is_file():
            raise FileNotFoundError(f"{src} is missing; the site includes it (see PAGES in {__file__})")
        dst = out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(localise_badges(src.read_text(encoding="utf-8"), rel.count("/")), encoding="utf-8")
    for rel in DOWNLOADS:
        shutil.copy2(repo / rel, out / rel)
    written = []
    for number, executed in pick_executed(runs_root).items():
        dst = out / "notebooks" / site_name(number, repo)
        dst.parent.mkdir(parents=True, exist_ok=True)
        nb = freeze_widgets(json.loads(localise_badges(executed.read_text(encoding="utf-8"), 1)))
        dst.write_text(json.dumps(nb, ensure_ascii=False, indent=1), encoding="utf-8")
        written.append(dst)
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs-root", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    for page in assemble(args.runs_root, args.out):
        print(f"[docs] notebook page {page.relative_to(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
