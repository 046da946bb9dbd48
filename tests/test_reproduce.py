"""The papermill driver: tables, resume, and clear failures (fast; the full run is in test_notebooks)."""
import json

import nbformat
import pytest

from egath_lite import reproduce


def _rows(seed, variant, i2t):
    return {"seed": seed, "variant": variant, "rows": [
        {"dataset": "toy_nuswide", "seed": seed, "method": variant, "bits": 16, "i2t": i2t, "t2i": i2t / 2},
        {"dataset": "toy_nuswide", "seed": seed, "method": "lsh", "bits": 16, "i2t": 0.3, "t2i": 0.2},
    ]}


def test_summarize_mean_and_sample_std_over_seeds():
    table = reproduce.summarize([_rows(0, "egath", 0.5), _rows(1, "egath", 0.7), _rows(0, "no_gat", 0.4)])
    by = {(r["method"], r["bits"]): r for r in table}
    assert by[("egath", 16)]["i2t_mean"] == pytest.approx(0.6)
    assert by[("egath", 16)]["i2t_std"] == pytest.approx(0.1414213562, rel=1e-9)  # sample std of 0.5, 0.7
    assert by[("egath", 16)]["t2i_mean"] == pytest.approx(0.3)
    assert by[("no_gat", 16)]["seeds"] == 1 and by[("no_gat", 16)]["i2t_std"] == 0.0
    # LSH appears in both variants' runs of seed 0: counted once per seed, not twice.
    assert by[("lsh", 16)]["seeds"] == 2 and by[("lsh", 16)]["i2t_mean"] == pytest.approx(0.3)
    md = reproduce.format_markdown(table)
    assert "| toy_nuswide | egath | 0.6000 ± 0.1414 | 0.3000 ± 0.0707 |" in md


def test_write_tables(tmp_path):
    table = reproduce.summarize([_rows(0, "egath", 0.5)])
    csv_path, md_path = reproduce.write_tables(table, tmp_path)
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "dataset,method,bits,seeds,i2t_mean,i2t_std,t2i_mean,t2i_std"
    assert len(lines) == 3 and md_path.read_text().startswith("| dataset | method | I→T 16 | T→I 16 |")


def test_failing_notebook_names_notebook_cell_and_error(tmp_path, monkeypatch):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("X = 1")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("y = X + 1"),
                nbformat.v4.new_code_cell("raise ValueError(f'boom {X}')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "09_broken.ipynb")
    monkeypatch.setattr(reproduce, "NOTEBOOK_DIR", tmp_path)
    with pytest.raises(reproduce.NotebookFailed, match=r"09_broken failed in cell 2 \(counting from 0; starts \"raise ValueError.*ValueError: boom 7"):
        reproduce.run_notebook("09_broken", tmp_path / "out", {"X": 7})
    assert (tmp_path / "out" / "09_broken.ipynb").is_file()  # the executed copy keeps the traceback
    with pytest.raises(FileNotFoundError, match="not found; run the driver from a clone"):
        reproduce.run_notebook("99_missing", tmp_path / "out", {})


def test_finished_cells_are_not_rerun(tmp_path, monkeypatch, capsys):
    runs = tmp_path / "runs"
    done = runs / "tiny-toy_nuswide-s0" / "results" / "egath.json"
    done.parent.mkdir(parents=True)
    done.write_text(json.dumps(dict(_rows(0, "egath", 0.5), stage_seconds={"04_hash_learning": 1.0})))

    def must_not_run(*a, **k):
        raise AssertionError("a finished cell was run again")

    monkeypatch.setattr(reproduce, "run_cell", must_not_run)
    assert reproduce.main(["--preset", "tiny", "--runs-root", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "done before, reusing" in out and "| toy_nuswide | egath | 0.5000 |" in out
    # the data set is summarised first (1,200 tiny items), with an example grid written beside the run
    assert "1200" in out.replace(",", "") and "sky" in out
    png = runs / "tiny-toy_nuswide-s0" / "data_examples.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (runs / "reproduce-tiny" / "results.csv").is_file()
