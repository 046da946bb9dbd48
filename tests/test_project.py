"""Repository hygiene: dependency lists agree, notebooks are stripped and follow the template,
the README's test command is the one CI runs."""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("0*.ipynb"))


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_lists_the_same_packages_as_pyproject():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in pyproject["dependencies"]}
    for extra in pyproject["optional-dependencies"].values():
        wanted |= {_name(r) for r in extra}
    env = (REPO / "environment.yml").read_text()
    pip_lines = re.findall(r"^\s+- ([A-Za-z][^\s#]*)\s*$", env.split("- pip:")[1], flags=re.M)
    listed = {_name(x) for x in pip_lines if not x.startswith("-e")}
    assert listed == wanted, f"only in pyproject: {wanted - listed}; only in environment.yml: {listed - wanted}"


def test_constraints_pin_torch_pair_that_imports_here():
    pins = dict(
        line.split("==")
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    # torch 2.13.0 with PyPI's torchvision 0.28.0 fails on import ("torchvision::nms does not exist").
    assert (pins["torch"], pins["torchvision"]) == ("2.14.1", "0.29.1")
    import torch
    import torchvision

    assert torch.__version__.split("+")[0] == pins["torch"]
    assert torchvision.__version__.split("+")[0] == pins["torchvision"]


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in readme and "bash scripts/test.sh" in ci
    assert "bash scripts/run.sh" in readme


def test_there_are_six_numbered_notebooks():
    assert [p.stem[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06"], NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stripped_and_follows_the_template(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    for c in code:
        assert c.get("outputs") == [] and c.get("execution_count") is None, (
            f"{path.name} has outputs: strip them (nbstripout or jupyter nbconvert --clear-output)"
        )
    params = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, f"{path.name}: exactly one cell must be tagged 'parameters'"
    src = "".join(params[0]["source"])
    for name in ("PRESET", "RUN_NAME", "RUNS_ROOT", "DATASET", "DEVICE", "SEED"):
        assert re.search(rf"^{name}\s*=", src, flags=re.M), f"{path.name}: parameters cell lacks {name}"
    for line in src.splitlines():  # literals only: papermill replaces this cell wholesale
        if line.strip() and not line.lstrip().startswith("#"):
            value = line.split("=", 1)[1].split("#")[0].strip()
            compile(value, path.name, "eval")
            assert "(" not in value or value.startswith("("), f"{path.name}: non-literal parameter {line!r}"
    md = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert md.lstrip().startswith(f"# {path.stem[:2]} ·"), f"{path.name}: H1 must be '# {path.stem[:2]} · Title'"
    assert "colab-badge.svg" in md and "## Summary" in md and "## Exercises" in md
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


def test_architecture_doc_holds_the_current_stage_table(repo_root):
    from egath_lite.pipeline.table import stage_table_markdown

    assert stage_table_markdown() in (repo_root / "docs" / "architecture.md").read_text()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_opens_with_one_setup_call_and_the_one_repository_url(path):
    from egath_lite.pipeline.notebook import REPOSITORY_URL

    cells = ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    colab = [c for c in cells if "google.colab" in c]
    assert len(colab) == 1 and REPOSITORY_URL in colab[0]
    assert cells[0] == colab[0], f"{path.name}: the install cell must be the first code cell"
    setups = [c for c in cells if re.search(r"^S = setup(_from)?\(", c, flags=re.M)]
    assert len(setups) == 1 and re.search(rf'setup(_from)?\(\s*"{path.stem}"', setups[0])
    assert not any("get_config(" in c or "seed_everything(" in c or "write_json(" in c for c in cells)


def test_ruff_checks_every_tracked_python_file():
    """`ruff check` covers every .py/.ipynb file git tracks (an over-broad exclude once hid egath_lite/data/)."""
    import shutil
    import subprocess
    import sys

    pytest.importorskip("ruff")
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    shown = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--show-files", "."], cwd=REPO, capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    root = REPO.resolve()
    checked = {
        Path(line).resolve().relative_to(root).as_posix()
        for line in shown.stdout.splitlines()
        if line.endswith((".py", ".ipynb"))
    }
    listed = subprocess.run(
        ["git", "ls-files", "*.py", "*.ipynb"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    tracked = {f for f in listed if (REPO / f).exists()}
    missing = sorted(tracked - checked)
    assert not missing, (
        f"ruff checks {len(checked)} files, git tracks {len(tracked)}; ruff skips these tracked files "
        f"(an exclude pattern in pyproject.toml matches them?): {missing}"
    )


def test_readme_core_example_runs_and_its_loss_falls():
    """The README's `core` example (the block under <!-- core-example -->) runs as printed, offline, on the CPU."""
    text = (REPO / "README.md").read_text()
    block = text.split("<!-- core-example -->", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    out = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, check=True, cwd=REPO).stdout
    rows = [ast.literal_eval(line.split(" ", 1)[1]) for line in out.strip().splitlines()]
    assert len(rows) == 3 and set(rows[0]) == {"cosine", "triplet", "cls", "quant", "total"}
    totals = [r["total"] for r in rows]
    assert totals[0] > totals[1] > totals[2]
    assert f"the total falls: {totals[0]:.2f}, {totals[1]:.2f}, {totals[2]:.2f}" in text
