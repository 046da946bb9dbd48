"""The Colab route, as a test: the wheel with NO extras in an environment outside the checkout, every notebook run
with papermill from another folder, the way a Colab cell runs them.

Colab has its own torch and its own Jupyter stack, and the notebooks' first cell runs ``pip install`` of the
package with no extras. So here:

- the kernel's environment (``colab``) is a fresh venv that sees this project's ``.venv`` site-packages through a
  symlink farm from which every package that only an extra provides (faiss, h5py, pymilvus, papermill, nbformat,
  JupyterLab, ipywidgets, the docs and test stacks) and the editable checkout install are left out; ipykernel stays,
  as on Colab, because the kernel runs there. No torch download: the farm links the installed one;
- the wheel is installed into it with ``pip install --no-index`` (dependencies NOT skipped): a hard dependency that
  is missing there fails the install, and a notebook importing what only an extra provides fails its cell;
- papermill runs in a separate runner (this interpreter), as Colab's Jupyter runs apart from the package;
- the notebooks are copies in a folder outside the checkout, the kernel's working folder, as ``/content`` is.

A second check: installing the wheel into an environment that already has the whole Jupyter stack would install
the package and nothing else (``pip install --dry-run --report``).
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("0[1-5]_*.ipynb"))
# Distributions that only an extra (or the development environment) brings; none may be needed by a notebook.
EXTRA_ONLY = {
    "faiss-cpu",
    "h5py",
    "pymilvus",
    "milvus-lite",
    "papermill",
    "nbformat",
    "nbclient",
    "jupyterlab",
    "jupyter-server",
    "notebook",
    "ipywidgets",
    "widgetsnbextension",
    "jupyterlab-widgets",
    "sphinx",
    "myst-nb",
    "myst-parser",
    "sphinx-book-theme",
    "pydata-sphinx-theme",
    "sphinx-mathjax-offline",
    "selenium",
    "pytest",
    "pytest-xdist",
    "ruff",
}
EXTRA_MODULES = ("faiss", "h5py", "pymilvus", "milvus_lite", "papermill", "nbformat", "jupyterlab", "ipywidgets")
JUPYTER_STACK = ("ipykernel", "jupyter-client", "jupyter-core", "ipython", "traitlets", "tornado", "pyzmq")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _copy_sources(dst: Path) -> Path:
    dst.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, dst / name)
    shutil.copytree(
        REPO / "egath_lite", dst / "egath_lite", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    )
    return dst


def build_wheel(tmp_path: Path) -> Path:
    src = _copy_sources(tmp_path / "src")
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(src)],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("egath_lite-*.whl")
    return wheel


def hard_requirements(wheel: Path) -> list[str]:
    """The wheel's Requires-Dist lines that hold without any extra."""
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().splitlines()
    return [
        line.split(":", 1)[1].strip() for line in lines if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]


def symlink_farm(site: Path, farm: Path, leave_out: set[str]) -> list[str]:
    """Link every top-level entry of ``site`` into ``farm`` except the files of the ``leave_out`` distributions and
    of the editable egath_lite install; returns the distribution names left out."""
    farm.mkdir()
    dropped_entries: set[str] = set()
    kept_entries: set[str] = set()
    dropped = []
    for dist in md.distributions(path=[str(site)]):
        name = _norm(dist.metadata["Name"])
        tops = {Path(str(f)).parts[0] for f in (dist.files or []) if not str(f).startswith("..")}
        info = getattr(dist, "_path", None)  # the .dist-info folder (RECORD lists it too, as a rule)
        if info is not None:
            tops.add(Path(info).name)
        if name in leave_out or name == "egath-lite":
            dropped_entries |= tops
            dropped.append(name)
        else:
            kept_entries |= tops
    for entry in site.iterdir():
        editable = entry.name.startswith("__editable__") or entry.name.startswith("__editable___")
        if editable or (entry.name in dropped_entries and entry.name not in kept_entries):
            continue
        if entry.name == "__pycache__":
            continue
        (farm / entry.name).symlink_to(entry)
    return sorted(dropped)


def make_env(tmp_path: Path, name: str, leave_out: set[str]) -> tuple[Path, list[str]]:
    """A venv whose site-packages adds the farm of this interpreter's site-packages (``.pth`` files there run too)."""
    env = tmp_path / name
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    python = env / "bin" / "python"
    env_site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    dropped = symlink_farm(Path(sysconfig.get_paths()["purelib"]), tmp_path / f"{name}-farm", leave_out)
    (env_site / "_farm.pth").write_text(f"import site; site.addsitedir({str(tmp_path / f'{name}-farm')!r})\n")
    return python, dropped


def clean_env(**extra: str) -> dict[str, str]:
    drop = ("PYTHONPATH", "EGATH_RUNS", "EGATH_DATA", "EGATH_PROGRESS", "VIRTUAL_ENV", "JPY_SESSION_NAME")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(HF_HUB_OFFLINE="1", MPLBACKEND="Agg", PYTHONHASHSEED="0", **extra)
    return env


def pip(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", *args],
        cwd=cwd,
        env=clean_env(PIP_NO_INDEX="1"),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.skipif(os.name != "posix", reason="the symlink farm and the venv layout are POSIX")
def test_wheel_hard_dependencies_are_what_the_notebooks_need(tmp_path):
    """Fast half: the wheel's metadata names no Jupyter, papermill or docs package (they went to extras)."""
    wheel = build_wheel(tmp_path)
    hard = {_norm(re.split(r"[ ;<>=!~\[]", r, maxsplit=1)[0]) for r in hard_requirements(wheel)}
    assert not hard & EXTRA_ONLY, f"hard dependencies that only extras should bring: {sorted(hard & EXTRA_ONLY)}"
    assert "ipykernel" not in hard  # Colab's own; the driver's extra brings it elsewhere
    assert {"torch", "torchvision", "open-clip-torch", "torch-geometric", "numpy"} <= hard, hard


def test_driver_without_papermill_names_the_extra_in_one_line(monkeypatch, tmp_path, capsys):
    import importlib.util

    from egath_lite.driver import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "papermill" else real(name, *a))
    assert cli.missing_driver_packages() == ["papermill"]
    assert cli.main(["--preset", "tiny", "--runs-root", str(tmp_path / "runs")]) == 2
    out, err = capsys.readouterr()
    assert err.strip().splitlines() == [
        "egath_lite.driver.cli: the driver executes the notebooks with papermill, which this environment lacks: "
        "pip install 'egath_lite[driver]'"
    ]
    assert not (tmp_path / "runs").exists()  # said before anything was written


@pytest.mark.slow
@pytest.mark.notebooks
@pytest.mark.skipif(os.name != "posix", reason="the symlink farm and the venv layout are POSIX")
def test_colab_route_every_notebook_runs_from_the_wheel_without_extras(tmp_path):
    start = time.perf_counter()
    wheel = build_wheel(tmp_path)

    # 1. Installing into an environment with the whole Jupyter stack installs the package and nothing else.
    full, _ = make_env(tmp_path, "jupyter", leave_out=set())
    report = tmp_path / "report.json"
    proc = pip(full, "install", "--dry-run", "--report", str(report), str(wheel), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    would_install = [_norm(item["metadata"]["name"]) for item in json.loads(report.read_text())["install"]]
    assert would_install == ["egath-lite"], would_install
    listed = json.loads(pip(full, "list", "--format", "json", cwd=tmp_path).stdout)
    jupyter_before = {_norm(p["name"]): p["version"] for p in listed if _norm(p["name"]) in JUPYTER_STACK}
    assert set(jupyter_before) == set(JUPYTER_STACK), jupyter_before

    # 2. The Colab-like kernel environment: no extras; the wheel installed WITH its dependency check, no index.
    python, dropped = make_env(tmp_path, "colab", leave_out=EXTRA_ONLY)
    assert {"faiss-cpu", "papermill", "jupyterlab", "ipywidgets", "egath-lite"} <= set(dropped), dropped
    found = subprocess.run(
        [str(python), "-c", f"import importlib.util as u; print([m for m in {EXTRA_MODULES!r} if u.find_spec(m)])"],
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert found == "[]", f"the Colab environment still sees {found}"
    proc = pip(python, "install", str(wheel), cwd=tmp_path)
    assert proc.returncode == 0, (
        f"the wheel's dependencies are not all in a no-extras environment:\n{proc.stderr[-3000:]}"
    )
    listed = json.loads(pip(python, "list", "--format", "json", cwd=tmp_path).stdout)
    versions = {_norm(p["name"]): p["version"] for p in listed}
    assert {k: versions.get(k) for k in jupyter_before} == jupyter_before  # the kernel's Jupyter stack untouched

    # the driver is an extra's job there: one line naming it, exit code 2
    proc = subprocess.run(
        [str(python), "-m", "egath_lite.reproduce", "--preset", "tiny"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and "pip install 'egath_lite[driver]'" in proc.stderr, proc.stderr[-3000:]
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr

    # 3. The kernel: that environment's python, registered for the runner only (JUPYTER_PATH).
    kernels = tmp_path / "jupyter" / "kernels" / "colab"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Colab-like (egath_lite wheel, no extras)",
                "language": "python",
            }
        )
    )
    content = tmp_path / "content"  # Colab's working folder: no checkout above it
    content.mkdir()
    executed = tmp_path / "executed"
    executed.mkdir()
    times = {}
    for nb in NOTEBOOKS:
        shutil.copy2(nb, content / nb.name)
        t0 = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,  # the runner: papermill lives here, not in the kernel's environment
                "-m",
                "papermill",
                nb.name,
                str(executed / nb.name),
                "-k",
                "colab",
                "-p",
                "PRESET",
                "tiny",
                "--cwd",
                str(content),
                "--no-progress-bar",
            ],
            cwd=content,
            env=clean_env(JUPYTER_PATH=str(tmp_path / "jupyter")),
            capture_output=True,
            text=True,
            timeout=1800,
        )
        times[nb.stem] = time.perf_counter() - t0
        assert proc.returncode == 0, f"{nb.name} failed on the Colab route:\n{proc.stderr[-4000:]}"
    print(
        f"Colab route: {', '.join(f'{k} {v:.0f} s' for k, v in times.items())}; total {time.perf_counter() - start:.0f} s"
    )

    # 4. What it ran and where it wrote: the installed package, runs in ./runs of the working folder.
    run = content / "runs" / "tiny-toy_nuswide-s0"
    for nb in NOTEBOOKS:
        assert list((run / "results").glob(f"results-{nb.stem}-*.json")), f"{nb.stem} wrote no results under {run}"
    assert sorted(p.name for p in content.iterdir() if p.suffix != ".ipynb") == ["runs"]
    first = json.loads((executed / NOTEBOOKS[0].name).read_text())
    text = "".join("".join(o.get("text", "")) for c in first["cells"] for o in c.get("outputs", []))
    assert f"run 'tiny-toy_nuswide-s0' in {content / 'runs'}" in text, text[:3000]
    # quiet: no red stderr output and no widget (saved without state) in any executed notebook
    noise = []
    for nb in NOTEBOOKS:
        cells = json.loads((executed / nb.name).read_text())["cells"]
        for i, cell in enumerate(cells):
            for o in cell.get("outputs", []):
                if o.get("name") == "stderr" or "application/vnd.jupyter.widget-view+json" in o.get("data", {}):
                    noise.append(f"{nb.stem} cell {i}: {''.join(o.get('text', ''))[:300]!r}")
    assert not noise, "\n".join(noise)
    where = subprocess.run(
        [str(python), "-c", "import egath_lite; print(egath_lite.__file__)"],
        cwd=content,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(tmp_path / "colab") and not Path(where).is_relative_to(REPO), where
