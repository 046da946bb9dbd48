"""The real-data route as a researcher runs it: the driver on fixtures in the release layouts of all three
benchmarks (real JPEGs of varied sizes), with CLIP weights loaded from a checkpoint file by path."""

import time
from pathlib import Path

import pytest
import scipy.io
from conftest import readme_command, replace_option

from egath_lite.driver import cli as reproduce
from egath_lite.pipeline.runs import load_results
from egath_lite.testing.fixtures import write_mirflickr_raw, write_mscoco_json, write_nuswide_gcdh_mat

pytestmark = [pytest.mark.notebooks, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[1]
DATASETS = ("mirflickr25k", "nuswide_tc10", "mscoco")
SIZES = [
    "--set",
    "num_query=60",
    "--set",
    "num_train=200",
    "--set",
    "vocab_size=128",
    "--set",
    "gat_epochs=2",
    "--epochs",
    "2",
    "--bits",
    "16",
]


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory):
    """The README command, pointed at fixtures of all three sets and a random-init tiny CLIP checkpoint file."""
    from egath_lite.clip.weights import load_clip, save_clip_checkpoint

    tmp = tmp_path_factory.mktemp("real")
    data = tmp / "data"
    t0 = time.perf_counter()
    infos = {
        "mirflickr25k": write_mirflickr_raw(data / "mirflickr25k", 400, seed=0),
        "nuswide_tc10": write_nuswide_gcdh_mat(data / "nuswide_tc10", 400, seed=1),
        "mscoco": write_mscoco_json(data / "mscoco", 400, seed=2, year=2014),
    }
    print(f"fixtures written in {time.perf_counter() - t0:.1f} s")
    model, _, _ = load_clip("egath-tiny-clip", None, "cpu", seed=0)
    ckpt = save_clip_checkpoint(model, tmp / "weights" / "clip_random_init.pt")
    argv = readme_command("real-benchmarks-command")
    argv = replace_option(argv, "--preset", ["tiny"])
    argv = replace_option(argv, "--datasets", list(DATASETS))
    argv = replace_option(argv, "--data-root", [str(data)])
    argv = replace_option(argv, "--clip-model", ["egath-tiny-clip"])  # a small open_clip model: CPU-sized
    argv = replace_option(argv, "--clip-pretrained", [str(ckpt)])
    argv = replace_option(argv, "--variants", ["egath"])
    argv = replace_option(argv, "--seeds", ["0"])
    argv = replace_option(argv, "--device", ["cpu"])
    runs = tmp / "runs"
    argv += ["--runs-root", str(runs), *SIZES]
    t0 = time.perf_counter()
    assert reproduce.main(argv) == 0
    print(f"driver on three real-layout fixtures: {time.perf_counter() - t0:.0f} s")
    return {"runs": runs, "data": data, "ckpt": ckpt, "argv": argv, "infos": infos}


def _cfg(real_runs, dataset):
    opts = {
        "data_root": str(real_runs["data"]),
        "device": "cpu",
        "clip_model": "egath-tiny-clip",
        "clip_pretrained": str(real_runs["ckpt"]),
        "num_query": 60,
        "num_train": 200,
        "vocab_size": 128,
        "gat_epochs": 2,
        "epochs": 2,
        "bits": [16],
    }
    return reproduce.cell_configs("tiny", list(DATASETS), [0], ["egath"], real_runs["runs"], opts)[
        DATASETS.index(dataset)
    ].cfg


def test_the_table_lists_every_data_set(real_runs):
    table = next((real_runs["runs"] / "reproduce-tiny").glob("results-*.md")).read_text()
    for dataset in DATASETS:
        assert f"| {dataset} | egath |" in table and f"| {dataset} | lsh |" in table


@pytest.mark.parametrize("dataset, num_labels", [("mirflickr25k", 24), ("nuswide_tc10", 10), ("mscoco", 80)])
def test_each_set_ran_every_notebook_with_the_weights_from_the_file(real_runs, dataset, num_labels):
    cfg = _cfg(real_runs, dataset)
    r1 = load_results(cfg, "01_feature_extraction")
    assert r1["dataset"] == dataset and r1["clip_pretrained"] == str(real_runs["ckpt"])
    assert r1["weights"].startswith("file:") and r1["split_sizes"]["query_idx"] == 60
    r2 = load_results(cfg, "02_label_graph")
    assert r2["num_labels"] == num_labels and r2["released_file_facts"]["dataset"] == dataset
    r5 = load_results(cfg, "05_pr_curve_evaluation")
    got = r5["map"]["egath"]["16"]
    assert 0.0 < got["i2t"] <= 1.0 and 0.0 < got["t2i"] <= 1.0


def test_editing_a_label_file_recomputes_the_features_and_changes_the_table(real_runs, capsys):
    cfg = _cfg(real_runs, "mirflickr25k")
    before = load_results(cfg, "05_pr_curve_evaluation")["map"]
    # reverse the label columns of one annotation file pair: swap which items are "dog" and which "sky"
    ann = real_runs["data"] / "mirflickr25k" / "mirflickr25k_annotations_v080"
    dog, sky = (ann / "dog.txt").read_text(), (ann / "sky.txt").read_text()
    (ann / "dog.txt").write_text(sky)
    (ann / "sky.txt").write_text(dog)
    argv = replace_option(real_runs["argv"], "--datasets", ["mirflickr25k"])
    argv = replace_option(argv, "--data-root", [str(real_runs["data"] / "mirflickr25k")])
    assert reproduce.main(argv) == 0
    out = capsys.readouterr().out
    assert "done before" not in out  # the cell is not reused: its key follows the edited file
    # the same configuration; the data set's fingerprint (hence every key) follows the edited file
    assert load_results(cfg, "01_feature_extraction")["features_cache_hit"] is False  # notebook 01 recomputed
    after = load_results(cfg, "05_pr_curve_evaluation")["map"]
    assert after != before
    feats = sorted((real_runs["runs"] / cfg.run_name).glob("features-*.pt"))
    assert len(feats) == 2  # the old features stay, keyed by the old files; the new ones beside them


def test_the_nuswide_fixture_is_matlab_v73(real_runs):
    # GCDH's tagList.mat is MATLAB v7.3 (HDF5), which scipy cannot read: the route went through h5py
    with pytest.raises(NotImplementedError):
        scipy.io.loadmat(real_runs["data"] / "nuswide_tc10" / "tagList.mat")
