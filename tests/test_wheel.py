"""The installed package works: build the wheel, install it outside the checkout, use it from another folder.

This is what each notebook's Colab cell does (``pip install git+...``): no checkout, so the
reference files must ship as package data and no default path may point into the checkout
or into site-packages.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REFERENCE = (
    "mir_glove.mat",
    "nus_glove.mat",
    "coco_glove.mat",
    "mir_adj.mat",
    "nus_adj.mat",
    "coco_adj.mat",
    "nus_tc10_labels.mat",
    "reported_mAP_DCHMT_table1.csv",
    "README.md",
)

CHECK = r"""
import json, os, sys
from pathlib import Path
import numpy as np
import egath_lite
from egath_lite.data import default_data_root, load_dataset
from egath_lite.data.reference import load_glove, load_nus_tc10_labels, load_released_adjacency, reference_file
site = Path(sys.argv[1]).resolve()
out = {"package": str(Path(egath_lite.__file__).resolve()), "cwd": os.getcwd()}
out["glove"] = {d: list(load_glove(d).shape) for d in ("mirflickr25k", "nuswide_tc10", "mscoco")}
out["adj"] = {d: [list(a.shape), int(n.sum())] for d, (a, n) in
              ((d, load_released_adjacency(d)) for d in ("mirflickr25k", "nuswide_tc10", "mscoco"))}
out["nus_labels"] = list(load_nus_tc10_labels().shape)
out["csv_head"] = reference_file("reported_mAP_DCHMT_table1.csv").read_text().splitlines()[0]
ds = load_dataset("toy_nuswide", size=20, seed=0, cache_dir=False, progress=False)
out["toy"] = [len(ds), ds.num_labels, list(ds.images.shape[1:])]
out["data_root"] = str(default_data_root("mscoco"))
try:
    load_dataset("mirflickr25k")
except FileNotFoundError as exc:
    out["no_root_error"] = str(exc)
print("RESULT " + json.dumps(out))
"""


def _copy_sources(dst: Path) -> Path:
    """The files a wheel is built from (pyproject, README, the package), without build leftovers."""
    dst.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dst / name)
    shutil.copytree(
        REPO / "egath_lite", dst / "egath_lite", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    )
    return dst


@pytest.mark.slow
def test_wheel_installs_and_works_outside_the_checkout(tmp_path):
    src = _copy_sources(tmp_path / "src")
    wheels, site, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(src)],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("egath_lite-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    missing = [f for f in REFERENCE if f"egath_lite/data/reference_files/{f}" not in names]
    assert not missing, f"reference files not packaged: {missing}"
    assert "egath_lite/clip/model_configs/egath-tiny-clip.json" in names or any(
        n.startswith("egath_lite/clip/model_configs/") for n in names
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True,
        cwd=tmp_path,
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "EGATH_DATA")}
    # the installed copy first on the path: the checkout and the venv's editable install must not be used
    env.update(PYTHONPATH=str(site), EGATH_CACHE=str(tmp_path / "cache"), HF_HUB_OFFLINE="1", MPLBACKEND="Agg")
    proc = subprocess.run(
        [sys.executable, "-c", CHECK, str(site)], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT ", 1)[1])
    assert Path(out["package"]).is_relative_to(site.resolve()), out["package"]
    assert out["glove"] == {"mirflickr25k": [24, 300], "nuswide_tc10": [10, 300], "mscoco": [80, 300]}
    assert out["adj"] == {
        "mirflickr25k": [[24, 24], 75_640],
        "nuswide_tc10": [[10, 10], 332_189],
        "mscoco": [[80, 80], 241_035],
    }
    assert out["nus_labels"] == [186_577, 10] and out["csv_head"].startswith("# mAP@all as REPORTED")
    assert out["toy"] == [20, 10, [64, 64, 3]]
    # the default data root is ./data of the working directory, never inside site-packages
    assert out["data_root"] == str((elsewhere / "data" / "mscoco").resolve())
    assert str(site) not in out["data_root"]
    assert f"looked for in {elsewhere.resolve() / 'data' / 'mirflickr25k'}" in out["no_root_error"]
