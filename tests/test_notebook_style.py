"""Notebooks teach, the package does the work: plumbing stays a small share of each notebook's code.

(That every code pointer resolves is tests/test_pointers.py.)"""

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
