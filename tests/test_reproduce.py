"""The papermill driver: tables, resume, and clear failures (fast; the full run is in test_notebooks)."""

import json

import nbformat
import pytest

from egath_lite.driver import cli as reproduce


def _rows(seed, variant, i2t):
    return {
        "seed": seed,
        "variant": variant,
        "rows": [
            {"dataset": "toy_nuswide", "seed": seed, "method": variant, "bits": 16, "i2t": i2t, "t2i": i2t / 2},
            {"dataset": "toy_nuswide", "seed": seed, "method": "lsh", "bits": 16, "i2t": 0.3, "t2i": 0.2},
        ],
    }


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
    nb.cells = [
        params,
        nbformat.v4.new_code_cell("y = X + 1"),
        nbformat.v4.new_code_cell("raise ValueError(f'boom {X}')"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "09_broken.ipynb")
    monkeypatch.setattr(reproduce, "NOTEBOOK_DIR", tmp_path)
    with pytest.raises(
        reproduce.NotebookFailed,
        match=r"09_broken failed in cell 2 \(counting from 0; starts \"raise ValueError.*ValueError: boom 7",
    ):
        reproduce.run_notebook("09_broken", tmp_path / "out", {"X": 7})
    assert (tmp_path / "out" / "09_broken.ipynb").is_file()  # the executed copy keeps the traceback
    with pytest.raises(FileNotFoundError, match="not found; run the driver from a clone"):
        reproduce.run_notebook("99_missing", tmp_path / "out", {})


def fake_notebooks(monkeypatch, calls):
    """Stand-in for papermill: each notebook records its call and 04/05 write results for their own config."""
    from egath_lite.pipeline.config import get_config
    from egath_lite.pipeline.runs import save_results

    def run(name, executed_dir, parameters, kernel="python3", log_path=None):
        cfg = get_config(
            parameters["PRESET"],
            run_name=parameters["RUN_NAME"],
            runs_root=parameters["RUNS_ROOT"],
            **parameters["OVERRIDES"],
        )
        calls.append((name, cfg.variant, tuple(cfg.bits), parameters["FORCE"]))
        base = {"egath": 0.6, "no_gat": 0.5, "gcn": 0.4}[cfg.variant]
        if name == "04_hash_learning":
            save_results(cfg, name, {"map": {str(b): {"i2t": base, "t2i": base} for b in cfg.bits}})
        if name == "05_pr_curve_evaluation":
            save_results(
                cfg, name, {"map": {cfg.variant: {str(b): {"i2t": base + b / 1000, "t2i": base} for b in cfg.bits}}}
            )
        return 0.25

    monkeypatch.setattr(reproduce, "run_notebook", run)


def _printed_path(out, what):
    """The path the driver printed after ``<what>:`` (results: the .csv)."""
    from pathlib import Path

    return Path(out.split(f"\n{what}")[1].split(":", 1)[1].split()[0])


def test_finished_cells_are_reused_only_for_the_same_configuration(tmp_path, monkeypatch, capsys):
    runs = tmp_path / "runs"
    calls = []
    fake_notebooks(monkeypatch, calls)
    assert reproduce.main(["--preset", "tiny", "--runs-root", str(runs)]) == 0
    assert [c[0] for c in calls] == list(reproduce.NOTEBOOKS)
    out = capsys.readouterr().out
    assert "| toy_nuswide | egath | 0.6160 | 0.6320 | 0.6640 |" in out
    # the data set is summarised first (1,200 tiny items), with an example grid written beside the run
    assert "1200" in out.replace(",", "") and "sky" in out
    png = runs / "tiny-toy_nuswide-s0" / "data_examples.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((runs / "reproduce-tiny").glob("results-egath-*.csv"))) == 1
    assert json.loads((runs / "tiny-toy_nuswide-s0" / "run_config.json").read_text())["config"]["preset"] == "tiny"

    # the same configuration again: reused, nothing runs, and no stage time is reported as this invocation's
    calls.clear()
    assert reproduce.main(["--preset", "tiny", "--runs-root", str(runs)]) == 0
    out = capsys.readouterr().out
    assert calls == [] and "done before" in out and "no notebook ran in this invocation" in out
    assert "| toy_nuswide | egath | 0.6160 | 0.6320 | 0.6640 |" in out

    # --bits 16 is another configuration: it runs, and prints only its own numbers and times
    assert reproduce.main(["--preset", "tiny", "--runs-root", str(runs), "--bits", "16"]) == 0
    out = capsys.readouterr().out
    assert len(calls) == 5 and all(c[2] == (16,) for c in calls)
    assert (
        "| toy_nuswide | egath | 0.6160 | 0.6000 |" in out
        and "0.6320" not in out
        and "32" not in out.split("mAP@all")[1].split("\n")[2]
    )
    assert len(list((runs / "reproduce-tiny").glob("timings-*.json"))) == 2  # its own file beside the first run's
    timings = json.loads(_printed_path(out, "timings").read_text())["invocations"][-1]
    assert timings["cells_run"] == 1 and timings["stage_seconds"]["04_hash_learning"] == 0.25

    # --force reaches every notebook (each recomputes its own stages)
    calls.clear()
    assert reproduce.main(["--preset", "tiny", "--runs-root", str(runs), "--force"]) == 0
    assert len(calls) == 5 and all(c[3] is True for c in calls)


def test_every_option_reaches_every_notebook(tmp_path, monkeypatch, capsys):
    calls, seen = [], []
    fake_notebooks(monkeypatch, calls)
    real = reproduce.run_notebook
    monkeypatch.setattr(reproduce, "run_notebook", lambda n, e, p, **k: (seen.append(p), real(n, e, p, **k))[1])
    ckpt = tmp_path / "w.pt"
    ckpt.write_bytes(b"x")
    argv = [
        "--preset",
        "tiny",
        "--runs-root",
        str(tmp_path / "runs"),
        "--epochs",
        "2",
        "--set",
        "zeta=0.1",
        "--set",
        "drop_unlabeled=true",
        "--clip-model",
        "egath-tiny-clip",
        "--clip-pretrained",
        str(ckpt),
        "--variants",
        "no_gat",
        "gcn",
    ]
    assert reproduce.main(argv) == 0
    assert len(seen) == 7  # 01-03 once (the two variants share them: tests/test_driver_share.py), 04-05 per variant
    for params in seen:
        o = params["OVERRIDES"]
        assert (o["epochs"], o["zeta"], o["drop_unlabeled"], o["clip_model"]) == (2, 0.1, True, "egath-tiny-clip")
        assert o["clip_pretrained"] == str(ckpt.resolve())
    assert {p["OVERRIDES"]["variant"] for p in seen} == {"no_gat", "gcn"}
    out = capsys.readouterr().out
    assert "| toy_nuswide | gcn |" in out and "| toy_nuswide | no_gat |" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--epochs", "0"], "epochs must be >= 1"),
        (["--set", "bits=abc"], "--set bits='abc'"),
        (["--set", "zetta=0.1"], "unknown config field"),
        (["--set", "zeta"], "use KEY=VALUE"),
        (["--set", "seed=3"], "use the driver's own option for seed"),
    ],
)
def test_bad_options_fail_before_anything_runs(tmp_path, monkeypatch, capsys, argv, message):
    calls = []
    fake_notebooks(monkeypatch, calls)
    assert reproduce.main(["--preset", "tiny", "--runs-root", str(tmp_path / "runs"), *argv]) == 2
    assert message in capsys.readouterr().err and calls == [] and not (tmp_path / "runs").exists()
