"""Every notebook through papermill, as users run them: the driver on the tiny preset, a rerun with other
options, two drivers side by side, one notebook's weights reaching the next ones, and a refused run name."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from egath_lite.driver import cli as reproduce
from egath_lite.pipeline.graph import GRAPH_STAGE
from egath_lite.pipeline.runs import load_results
from egath_lite.pipeline.stages import read_index

pytestmark = [pytest.mark.notebooks, pytest.mark.slow]
RUN = "tiny-toy_nuswide-s0"
# A smaller tiny run for the tests that run the pipeline more than once.
SMALL = dict(toy_size=400, num_query=60, num_train=200, vocab_size=128, clip_epochs=1, gat_epochs=2, epochs=2)


def _table(out: str) -> str:
    """The driver's closing results table (notebook output streamed before it also mentions mAP@all)."""
    return out.rsplit("mAP@all (Hamming ranking", 1)[1]


def _cfg(runs: Path, variant: str = "egath", **options):
    return reproduce.cell_configs("tiny", ["toy_nuswide"], [0], [variant], runs, {"device": "auto", **options})[0].cfg


def test_driver_writes_executed_notebooks_and_tables(tiny_runs):
    # other tests share tiny_runs (notebook 06's "comparison", other methods' cells): this driver's egath cell
    cells = [p for p in (tiny_runs / RUN / "executed").iterdir() if p.name.startswith("egath-")]
    assert len(cells) == 1
    assert sorted(p.name for p in cells[0].glob("*.ipynb")) == [f"{n}.ipynb" for n in reproduce.NOTEBOOKS]
    for p in cells[0].glob("*.ipynb"):
        nb = json.loads(p.read_text())
        errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{p.name} recorded an error output"
    csv_lines = next((tiny_runs / "reproduce-tiny").glob("results-egath-*.csv")).read_text().splitlines()
    assert csv_lines[0].startswith("dataset,method,bits")
    methods = {line.split(",")[1] for line in csv_lines[1:]}
    assert "egath" in methods and len(csv_lines) - 1 >= 3  # 16/32/64 bits at least
    log = (tiny_runs / RUN / "driver.log").read_text()  # every notebook's output streamed to the run's log
    assert all(name in log for name in reproduce.NOTEBOOKS) and "tiny CLIP: " in log and "trained in" in log
    stages = {e["stage"] for e in read_index(tiny_runs / RUN).values()}
    assert {"tiny_clip", "features", "graph", "classifier", "codes"} <= stages


def test_02_label_graph_numbers(tiny_runs):
    r = load_results(_cfg(tiny_runs), "02_label_graph")
    assert r["graph_cache_hit"] is False and r["num_labels"] == 10
    assert r["num_graph_rows"] == 600 and r["zeta"] == 0.3
    assert 5 <= r["num_edges"] <= 30  # the NUS TC-10 statistics give 12-16 edges at 0.3


def test_03_gat_classification_numbers(tiny_runs):
    r = load_results(_cfg(tiny_runs), "03_gat_classification")
    assert r["gat_attention_check_max_abs_diff"] < 1e-4  # the hand-written attention step equals GATConv
    for name, value in r["map_image"].items():
        assert 0.0 < value <= 1.0, name
    assert r["features_cache_hit"] is True and r["graph_cache_hit"] is True  # made by 01 and 02


def test_04_and_05_agree_on_map(tiny_runs):
    r4 = load_results(_cfg(tiny_runs), "04_hash_learning")
    r5 = load_results(_cfg(tiny_runs), "05_pr_curve_evaluation")
    assert r4["selected_on"] == "validation" and sorted(r4["map"]) == ["16", "32", "64"]
    for bits, vals in r4["map"].items():
        got = r5["map"]["egath"][bits]
        assert got["i2t"] == pytest.approx(vals["i2t"], abs=1e-12)
        assert got["t2i"] == pytest.approx(vals["t2i"], abs=1e-12)
    assert all(hit is True for hit in r5["codes_cache_hit"].values())  # 05 reused 04's codes


def test_bits_16_after_a_full_run_reuses_artifacts_and_prints_only_its_own_numbers(tiny_runs, capsys):
    full = load_results(_cfg(tiny_runs), "04_hash_learning")["map"]
    assert reproduce.main(["--preset", "tiny", "--runs-root", str(tiny_runs), "--bits", "16"]) == 0
    out = capsys.readouterr().out
    table = _table(out)
    assert "I→T 16" in table and "I→T 32" not in table and "I→T 64" not in table
    timings_file = out.split("\ntimings: ")[1].split()[0]  # the invocation's own file: its entry is the last
    timings = json.loads(open(timings_file).read())["invocations"][-1]
    assert timings["cells_run"] == 1 and set(timings["stage_seconds"]) == set(reproduce.NOTEBOOKS)
    cfg16 = _cfg(tiny_runs, bits=[16])
    r1 = load_results(cfg16, "01_feature_extraction")
    r3, r4 = load_results(cfg16, "03_gat_classification"), load_results(cfg16, "04_hash_learning")
    assert r1["features_cache_hit"] and r3["gat_cache_hit"] and r4["codes_cache_hit"] == {"16": True}
    assert r4["map"]["16"] == full["16"]  # the same 16-bit model as the full run, not retrained
    # and the same invocation again is a reused cell: no notebook runs, no stage time is reported
    assert reproduce.main(["--preset", "tiny", "--runs-root", str(tiny_runs), "--bits", "16"]) == 0
    assert "no notebook ran in this invocation" in capsys.readouterr().out


def _driver(runs: Path, *args: str) -> subprocess.Popen:
    sets = [x for k, v in SMALL.items() for x in ("--set", f"{k}={v}")]
    cmd = [
        sys.executable,
        "-m",
        "egath_lite.reproduce",
        "--preset",
        "tiny",
        "--runs-root",
        str(runs),
        "--bits",
        "16",
        *sets,
        *args,
    ]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONHASHSEED": "0"}
    )


def test_two_drivers_side_by_side_each_print_their_own_table(tmp_path):
    runs = tmp_path / "runs"
    a, b = _driver(runs, "--variants", "no_gat"), _driver(runs, "--variants", "gcn")
    out_a, out_b = a.communicate(timeout=1500)[0], b.communicate(timeout=1500)[0]
    assert a.returncode == 0, out_a[-3000:]
    assert b.returncode == 0, out_b[-3000:]
    for out, mine, other in ((out_a, "no_gat", "gcn"), (out_b, "gcn", "no_gat")):
        table = _table(out)
        assert f"| toy_nuswide | {mine} |" in table and f"| {other} |" not in table
        cfg = _cfg(runs, mine, bits=[16], **SMALL)
        want = load_results(cfg, "05_pr_curve_evaluation")["map"][mine]["16"]
        row = re.search(rf"\| toy_nuswide \| {mine} \| ([0-9.]+) \| ([0-9.]+) \|", table)
        assert (float(row[1]), float(row[2])) == (round(want["i2t"], 4), round(want["t2i"], 4))
    index = read_index(runs / RUN)
    assert sum(e["stage"] == "features" for e in index.values()) == 1  # made once, waited for, reused
    assert sum(e["stage"] == "codes" for e in index.values()) == 2
    assert "[lock] waiting" in out_a + out_b or "[features] reusing" in out_a + out_b


def _papermill(name: str, runs: Path, run_name: str, out_dir: Path, **params):
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{name}-{len(list(out_dir.iterdir()))}.ipynb"
    pm.execute_notebook(
        str(reproduce.NOTEBOOK_DIR / f"{name}.ipynb"),
        str(out),
        kernel_name="python3",
        parameters={"RUN_NAME": run_name, "RUNS_ROOT": str(runs), **params},
        cwd=str(reproduce.NOTEBOOK_DIR),
        progress_bar=False,
    )
    return out


def test_weights_given_to_01_reach_02_to_05_and_a_new_zeta_in_03_builds_its_own_graph(tmp_path):
    from egath_lite.clip.weights import load_clip, save_clip_checkpoint
    from egath_lite.pipeline.runs import load_run_config

    runs = tmp_path / "runs"
    model, _, _ = load_clip("egath-tiny-clip", None, "cpu", seed=3)  # random init, saved as a checkpoint file
    ckpt = save_clip_checkpoint(model, tmp_path / "weights" / "tiny_random.pt")
    _papermill(
        "01_feature_extraction",
        runs,
        "w",
        tmp_path / "nb",
        PRESET="tiny",
        MODEL="egath-tiny-clip",
        PRETRAINED=str(ckpt),
        OVERRIDES={**SMALL, "bits": [16]},
    )
    recorded = load_run_config(str(runs), "w")
    assert recorded.clip_pretrained == str(ckpt) and recorded.toy_size == 400
    features_files = sorted(p.name for p in (runs / "w").glob("features-*.pt"))
    assert len(features_files) == 1 and not list((runs / "w").glob("tiny_clip-*"))  # no tiny CLIP was trained
    for name in ("02_label_graph", "03_gat_classification", "04_hash_learning", "05_pr_curve_evaluation"):
        _papermill(name, runs, "w", tmp_path / "nb")  # no model parameter: inherited from the run
    assert sorted(p.name for p in (runs / "w").glob("features-*.pt")) == features_files  # reused, not recomputed
    r1 = load_results(recorded, "01_feature_extraction")
    r3 = load_results(recorded, "03_gat_classification")
    r5 = load_results(recorded, "05_pr_curve_evaluation")
    assert r1["clip_pretrained"] == str(ckpt) and r1["weights"].startswith("file:")
    assert r3["features_cache_hit"] is True and all(r5["codes_cache_hit"].values())
    # notebook 02's exercise: a new zeta in 03 makes a second graph and leaves the first untouched
    first_graph = GRAPH_STAGE.path(recorded)
    before = (first_graph.read_bytes(), first_graph.stat().st_mtime_ns)
    executed = _papermill("03_gat_classification", runs, "w", tmp_path / "nb", ZETA=0.1)
    assert "this notebook overrides zeta: 0.3 → 0.1" in executed.read_text()
    graphs = sorted((runs / "w").glob("graph-*.pt"))
    assert len(graphs) == 2 and (first_graph.read_bytes(), first_graph.stat().st_mtime_ns) == before
    r3_low = load_results(recorded.replace(zeta=0.1), "03_gat_classification")
    assert r3_low["zeta"] == 0.1 and r3_low["num_edges"] > r3["num_edges"]
    other = torch.load(GRAPH_STAGE.path(recorded.replace(zeta=0.1)), weights_only=True)
    assert other["config"]["zeta"] == 0.1


def test_a_run_name_that_leaves_the_runs_root_is_refused(tmp_path):
    import papermill as pm

    runs = tmp_path / "inside" / "runs"
    runs.mkdir(parents=True)
    with pytest.raises(pm.PapermillExecutionError, match=r"run_name='\.\./escape' must be one folder name"):
        _papermill("02_label_graph", runs, "../escape", tmp_path / "nb", PRESET="tiny")
    assert sorted(p.name for p in (tmp_path / "inside").iterdir()) == ["runs"] and not list(runs.iterdir())
    assert not (tmp_path / "inside" / "escape").exists()
