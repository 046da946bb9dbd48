"""Every notebook through papermill with the tiny preset, in order, via the reproduce driver;
then a second pass that must reuse the cached artifacts, and the results table it prints."""
import json
import time
from pathlib import Path

import pytest

from egath_lite import reproduce
from egath_lite.artifacts import read_json

pytestmark = pytest.mark.notebooks
RUN = "tiny-toy_nuswide-s0"


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """Run the driver once on the tiny preset (all five notebooks); return the runs root."""
    runs = tmp_path_factory.mktemp("runs")
    start = time.perf_counter()
    assert reproduce.main(["--preset", "tiny", "--runs-root", str(runs)]) == 0
    print(f"tiny preset, five notebooks: {time.perf_counter() - start:.0f} s")
    return runs


def _results(runs: Path, stem: str) -> dict:
    return read_json(runs / RUN / f"{stem}.json")


def test_driver_writes_executed_notebooks_and_tables(tiny_runs):
    executed = sorted(p.name for p in (tiny_runs / RUN / "executed").glob("*.ipynb"))
    assert executed == ["01_feature_extraction.ipynb", "02_label_graph.ipynb",
                        "03_gat_classification.ipynb", "04_hash_learning.egath.ipynb",
                        "05_pr_curve_evaluation.egath.ipynb"]
    for p in (tiny_runs / RUN / "executed").glob("*.ipynb"):
        nb = json.loads(p.read_text())
        errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{p.name} recorded an error output"
    csv_lines = (tiny_runs / "reproduce-tiny" / "results.csv").read_text().splitlines()
    assert csv_lines[0].startswith("dataset,method,bits")
    methods = {l.split(",")[1] for l in csv_lines[1:]}
    assert "egath" in methods and len(csv_lines) - 1 >= 3  # 16/32/64 bits at least


def test_02_label_graph_numbers(tiny_runs):
    r = _results(tiny_runs, "02_label_graph")
    assert r["graph_cache_hit"] is False and r["num_labels"] == 10
    assert r["num_graph_rows"] == 600 and r["zeta"] == 0.3
    assert 5 <= r["num_edges"] <= 30  # the NUS TC-10 statistics give 12-16 edges at 0.3


def test_03_gat_classification_numbers(tiny_runs):
    r = _results(tiny_runs, "03_gat_classification")
    assert r["gat_attention_check_max_abs_diff"] < 1e-4  # the hand-written attention step equals GATConv
    for name, value in r["map_image"].items():
        assert 0.0 < value <= 1.0, name
    assert r["features_cache_hit"] is True and r["graph_cache_hit"] is True  # made by 01 and 02


def test_04_and_05_agree_on_map(tiny_runs):
    r4 = _results(tiny_runs, "04_hash_learning")
    r5 = _results(tiny_runs, "05_pr_curve_evaluation")
    assert r4["selected_on"] == "validation" and sorted(r4["map"]) == ["16", "32", "64"]
    for bits, vals in r4["map"].items():
        got = r5["map"]["egath"][bits]
        assert got["i2t"] == pytest.approx(vals["i2t"], abs=1e-12)
        assert got["t2i"] == pytest.approx(vals["t2i"], abs=1e-12)
    assert all(hit is True for hit in r5["codes_cache_hit"].values())  # 05 reused 04's codes


def test_second_run_reuses_every_artifact(tiny_runs):
    """Re-executing all notebooks on the same run folder hits every cache and gives the same numbers."""
    first = {s: _results(tiny_runs, s) for s in ("02_label_graph", "04_hash_learning")}
    start = time.perf_counter()
    assert reproduce.main(["--preset", "tiny", "--runs-root", str(tiny_runs), "--force"]) == 0
    print(f"second pass: {time.perf_counter() - start:.0f} s")
    assert _results(tiny_runs, "01_feature_extraction")["features_cache_hit"] is True
    assert _results(tiny_runs, "02_label_graph")["graph_cache_hit"] is True
    assert _results(tiny_runs, "03_gat_classification")["gat_cache_hit"] is True
    r4 = _results(tiny_runs, "04_hash_learning")
    assert all(r4["codes_cache_hit"].values()) and r4["map"] == first["04_hash_learning"]["map"]
    assert _results(tiny_runs, "02_label_graph")["num_edges"] == first["02_label_graph"]["num_edges"]
