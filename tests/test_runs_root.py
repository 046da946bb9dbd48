"""Where runs go and what they are called, one rule for the notebooks, the driver and search.

Runs root: ``$EGATH_RUNS`` if set, else the checkout's ``runs/`` when the working folder (a kernel runs in its
notebook's folder) sits in a checkout, else ``./runs`` of the working folder (Colab: ``/content/runs``).
Run name: a notebook's default is the driver's name for the same configuration, so a notebook opened after
``bash scripts/run.sh`` continues the driver's run instead of recomputing it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from egath_lite.pipeline.runs import RUN_CONFIG, checkout_of, default_runs_root

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("0[1-5]_*.ipynb"))


@pytest.fixture
def no_runs_env(monkeypatch):
    monkeypatch.delenv("EGATH_RUNS", raising=False)


def test_inside_the_checkout_runs_go_to_its_runs_folder(no_runs_env, monkeypatch):
    # a kernel started by JupyterLab runs in the notebook's folder: notebooks/ of the checkout
    monkeypatch.chdir(REPO / "notebooks")
    assert checkout_of(Path.cwd()) == REPO
    assert default_runs_root() == REPO / "runs"
    monkeypatch.chdir(REPO)  # the driver, started from the checkout's root: the same folder
    assert default_runs_root() == REPO / "runs"
    assert default_runs_root(REPO / "egath_lite" / "pipeline") == REPO / "runs"


def test_outside_a_checkout_runs_go_to_runs_of_the_working_folder(no_runs_env, monkeypatch, tmp_path):
    content = tmp_path / "content"  # Colab's working folder
    content.mkdir()
    monkeypatch.chdir(content)
    assert checkout_of(content) is None
    assert default_runs_root() == content / "runs"
    # a folder holding a pyproject.toml of another project is no checkout of this one
    (content / "pyproject.toml").write_text('[project]\nname = "other"\n')
    (content / "notebooks").mkdir()
    assert default_runs_root() == content / "runs"


def test_a_copy_of_the_checkout_elsewhere_is_a_checkout(no_runs_env, tmp_path):
    clone = tmp_path / "clone"
    (clone / "notebooks").mkdir(parents=True)
    (clone / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())
    assert default_runs_root(clone / "notebooks") == clone / "runs"


def test_egath_runs_wins_everywhere(monkeypatch, tmp_path):
    monkeypatch.setenv("EGATH_RUNS", str(tmp_path / "mine"))
    for where in (REPO / "notebooks", tmp_path):
        monkeypatch.chdir(where)
        assert default_runs_root() == tmp_path / "mine"


def test_notebook_setup_from_a_folder_outside_the_checkout_writes_under_its_runs(no_runs_env, monkeypatch, tmp_path):
    from egath_lite.pipeline.notebook import setup

    monkeypatch.chdir(tmp_path)  # as on Colab: the kernel in /content, the package installed
    s = setup("01_feature_extraction", "tiny", device="cpu")  # RUN_NAME and RUNS_ROOT: the notebooks' None
    assert Path(s.cfg.runs_root) == tmp_path / "runs"
    assert s.cfg.run_name == "tiny-toy_nuswide-s0"
    recorded = json.loads((tmp_path / "runs" / "tiny-toy_nuswide-s0" / RUN_CONFIG).read_text())
    assert recorded["config"]["preset"] == "tiny" and recorded["config"]["seed"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # nothing else written in the working folder


def test_notebook_setup_honours_egath_runs_and_a_given_seed(monkeypatch, tmp_path):
    from egath_lite.pipeline.notebook import setup

    monkeypatch.setenv("EGATH_RUNS", str(tmp_path / "elsewhere"))
    monkeypatch.chdir(REPO / "notebooks")
    s = setup("02_label_graph", "tiny", seed=3, device="cpu")
    assert Path(s.cfg.runs_root) == tmp_path / "elsewhere" and s.cfg.run_name == "tiny-toy_nuswide-s3"
    assert (tmp_path / "elsewhere" / "tiny-toy_nuswide-s3" / RUN_CONFIG).is_file()


@pytest.mark.parametrize("preset", ["tiny", "default"])
def test_notebook_default_run_name_is_the_drivers_name(preset, tmp_path):
    from egath_lite.driver.cli import cell_configs
    from egath_lite.pipeline.notebook import default_run_name

    cells = cell_configs(preset, ["toy_nuswide"], [0, 2], ["egath", "no_gat"], tmp_path, {"device": "cpu"})
    driver_names = {(c.cfg.seed, c.cfg.run_name) for c in cells}
    assert driver_names == {(0, f"{preset}-toy_nuswide-s0"), (2, f"{preset}-toy_nuswide-s2")}
    for seed, name in driver_names:
        assert default_run_name(preset, {"seed": seed}) == name
        assert default_run_name(preset, {"seed": seed, "variant": "no_gat"}) == name  # one run, every variant
    if preset == "default":  # PRESET = None in a notebook is the default preset: what `bash scripts/run.sh` runs
        assert default_run_name(None, {}) == "default-toy_nuswide-s0"


def test_notebook_default_run_name_of_a_manifest_is_the_drivers(tmp_path, monkeypatch):
    from egath_lite.driver.cli import cell_configs
    from egath_lite.pipeline.notebook import default_run_name
    from egath_lite.testing.fixtures import write_manifest

    write_manifest(tmp_path / "own" / "manifest.csv", 24, seed=0, min_label_count=2)
    monkeypatch.chdir(tmp_path)  # a relative path, as typed: both resolve it from the working folder
    (cell,) = cell_configs(
        "tiny", ["own/manifest.csv"], [0], ["egath"], tmp_path / "runs", {"device": "cpu", "clip_pretrained": "random"}
    )
    assert default_run_name("tiny", {"dataset": "own/manifest.csv"}) == cell.cfg.run_name
    assert re.fullmatch(r"tiny-manifest-[0-9a-f]{8}-s0", cell.cfg.run_name), cell.cfg.run_name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_leave_run_name_and_runs_root_to_the_rule(path):
    nb = json.loads(path.read_text())
    (params,) = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    src = "".join(params["source"])
    assert re.search(r"^RUN_NAME = None\b", src, flags=re.M), src
    assert re.search(r"^RUNS_ROOT = None\b", src, flags=re.M), src
    intro = "".join(nb["cells"][0]["source"])
    assert "**Preset.**" in intro and "$EGATH_RUNS" in intro and "/content/runs" in intro


def test_search_looks_for_a_run_name_under_the_same_root(monkeypatch, tmp_path):
    from egath_lite.serve.search import SearchError, _locate_run

    monkeypatch.setenv("EGATH_RUNS", str(tmp_path / "r"))
    (tmp_path / "r" / "default-toy_nuswide-s0").mkdir(parents=True)
    (tmp_path / "r" / "default-toy_nuswide-s0" / RUN_CONFIG).write_text("{}")
    assert _locate_run("default-toy_nuswide-s0", None) == (tmp_path / "r", "default-toy_nuswide-s0")
    with pytest.raises(SearchError, match=re.escape(str(tmp_path / "r"))):
        _locate_run("nope", None)


def test_driver_prints_the_split_the_run_uses(tmp_path, capsys):
    from egath_lite.data import dataset_from_config, split_from_config
    from egath_lite.driver.cli import describe_dataset
    from egath_lite.pipeline.config import get_config

    cfg = get_config("tiny", runs_root=str(tmp_path), run_name="t", device="cpu")
    describe_dataset(cfg, tmp_path / "examples.png")
    out = capsys.readouterr().out
    query, train, val, retrieval = split_from_config(dataset_from_config(cfg), cfg)
    # the tiny preset: 200 queries; 600 training items of which val_fraction 0.1 (60) are set aside
    assert (len(query), len(train), len(val)) == (200, 540, 60)
    assert "this run's split: query 200, train 540 + validation 60, retrieval 1,000" in out, out
    assert "benchmark split" not in out  # the data set's default (query 120, train 600) is not what the run uses
