"""The driver runs notebooks 01-03 once per run folder and stage keys within one invocation (``shared_key``).

A recording fake stands in for papermill (as in tests/test_reproduce.py). With the real notebooks,
tests/test_methods.py::test_driver_all_methods_on_a_real_layout_fixture compares a shared cell's row with the same
method run alone in a fresh runs root.
"""

from __future__ import annotations

from pathlib import Path

from egath_lite.driver import cli as reproduce
from egath_lite.files import read_json
from egath_lite.pipeline.config import get_config

EARLY, LATE = list(reproduce.NOTEBOOKS[:3]), list(reproduce.NOTEBOOKS[3:])
MAP = {"egath": 0.6, "no_gat": 0.5, "gcn": 0.4, "dcmh": 0.3, "djsrh": 0.2}  # what the fake 04/05 report per tag


def fake_notebooks(monkeypatch, calls):
    """Stand-in for papermill: records (notebook, method, variant, zeta, vocab_size, executed folder), writes the
    executed copy, and 04/05 save results for their own configuration."""
    from egath_lite.pipeline.codes import codes_tag
    from egath_lite.pipeline.runs import save_results

    def run(name, executed_dir, parameters, kernel="python3", log_path=None):
        cfg = get_config(
            parameters["PRESET"],
            run_name=parameters["RUN_NAME"],
            runs_root=parameters["RUNS_ROOT"],
            **parameters["OVERRIDES"],
        )
        calls.append((name, cfg.method, cfg.variant, cfg.zeta, cfg.vocab_size, Path(executed_dir)))
        executed_dir.mkdir(parents=True, exist_ok=True)
        (executed_dir / f"{name}.ipynb").write_text("{}")
        tag = codes_tag(cfg)
        if name == "04_hash_learning":
            save_results(cfg, name, {"map": {str(b): {"i2t": MAP[tag], "t2i": MAP[tag]} for b in cfg.bits}})
        if name == "05_pr_curve_evaluation":
            rows = {str(b): {"i2t": MAP[tag] + b / 1000, "t2i": MAP[tag] / 2} for b in cfg.bits}
            save_results(cfg, name, {"map": {tag: rows, "lsh": {str(b): {"i2t": 0.1, "t2i": 0.1} for b in cfg.bits}}})
        return 0.25

    monkeypatch.setattr(reproduce, "run_notebook", run)


def _records(out: str) -> list[dict]:
    """The cell records of the invocation whose output is ``out`` (the timings file lists them)."""
    timings = Path(out.split("\ntimings:")[1].split()[0])
    return [read_json(p)["meta"] for p in read_json(timings)["invocations"][-1]["cells"]]


def _table(out: str) -> str:
    return out.rsplit("mAP@all (Hamming ranking", 1)[1].split("\n\n")[1]


def test_cells_of_one_run_run_01_to_03_once_and_point_to_the_copies_that_ran(tmp_path, monkeypatch, capsys):
    calls: list = []
    fake_notebooks(monkeypatch, calls)
    argv = ["--preset", "tiny", "--runs-root", str(tmp_path / "runs"), "--bits", "16", "--seeds", "0", "1"]
    assert reproduce.main([*argv, "--variants", "egath", "no_gat", "--methods", "egath", "dcmh"]) == 0
    out = capsys.readouterr().out
    # per seed (its own run folder): egath runs all five; no_gat and dcmh only 04 and 05
    names = [c[0] for c in calls]
    assert names == [*EARLY, *LATE, *LATE, *LATE] * 2
    firsts = [calls[0][5], calls[11][5]]  # the executed folders of each seed's egath cell
    assert (
        firsts[0].parent.parent.name == "tiny-toy_nuswide-s0" and firsts[1].parent.parent.name == "tiny-toy_nuswide-s1"
    )
    shared_lines = [line.strip() for line in out.splitlines() if "shared with" in line]
    assert shared_lines == [f"01-03 shared with {firsts[0]}"] * 2 + [f"01-03 shared with {firsts[1]}"] * 2

    records = _records(out)
    assert [(r["seed"], r["method"], r["variant"]) for r in records] == [
        (s, m, v) for s in (0, 1) for m, v in (("egath", "egath"), ("egath", "no_gat"), ("dcmh", "egath"))
    ]
    for i, r in enumerate(records):
        first = firsts[r["seed"]]
        copies = r["executed_notebooks"]
        assert list(copies) == list(reproduce.NOTEBOOKS) and all(Path(p).is_file() for p in copies.values())
        assert [Path(copies[n]).parent for n in LATE] == [Path(r["executed"])] * 2  # 04/05: the cell's own folder
        if i % 3 == 0:  # the first cell of its run ran everything
            assert r["shared_with"] is None and set(r["stage_seconds"]) == set(reproduce.NOTEBOOKS)
            assert Path(r["executed"]) == first
        else:
            assert r["shared_with"] == str(first) and set(r["stage_seconds"]) == set(LATE)
            assert [Path(copies[n]).parent for n in EARLY] == [first] * 3
            pointer = read_json(Path(r["executed"]) / "shared.json")
            assert pointer == {"shared_with": str(first), "notebooks": {n: copies[n] for n in EARLY}}
    timings = read_json(Path(out.split("\ntimings:")[1].split()[0]))["invocations"][-1]
    assert timings["stage_seconds"] == {n: 0.25 * (2 if n in EARLY else 6) for n in reproduce.NOTEBOOKS}


def test_another_zeta_or_vocabulary_runs_its_own_01_to_03(tmp_path, monkeypatch):
    calls: list = []
    fake_notebooks(monkeypatch, calls)
    cfg = get_config("tiny", runs_root=str(tmp_path), run_name="r", bits=(16,))
    shared: dict = {}

    def ran(c):
        calls.clear()
        res = reproduce.run_cell(reproduce.Cell(c), False, log=lambda *a, **k: None, shared=shared)
        return [x[0] for x in calls], res

    assert ran(cfg)[0] == [*EARLY, *LATE]
    names, low_zeta = ran(cfg.replace(zeta=cfg.zeta / 2))  # another graph (and classifiers): 02/03 are not shared
    assert names == [*EARLY, *LATE] and low_zeta["shared_with"] is None
    assert ran(cfg.replace(vocab_size=cfg.vocab_size // 2))[0] == [*EARLY, *LATE]  # other features
    assert ran(cfg.replace(gat_epochs=cfg.gat_epochs + 1))[0] == [*EARLY, *LATE]  # other classifiers
    names, dcmh = ran(cfg.replace(method="dcmh"))
    assert names == LATE and Path(dcmh["shared_with"]).name.startswith("egath-")
    names, no_gat = ran(cfg.replace(zeta=cfg.zeta / 2, variant="no_gat"))  # shares with the low-zeta cell, no other
    assert names == LATE and no_gat["shared_with"] == low_zeta["executed"]
    assert len(shared) == 4
    # without a shared dict (a caller of run_cell on its own) every notebook runs
    calls.clear()
    reproduce.run_cell(reproduce.Cell(cfg.replace(method="djsrh")), False, log=lambda *a, **k: None)
    assert [x[0] for x in calls] == [*EARLY, *LATE]


def test_force_runs_every_notebook_of_every_cell(tmp_path, monkeypatch, capsys):
    calls: list = []
    fake_notebooks(monkeypatch, calls)
    argv = ["--preset", "tiny", "--runs-root", str(tmp_path / "runs"), "--bits", "16", "--variants", "egath", "gcn"]
    assert reproduce.main([*argv, "--force"]) == 0
    assert [c[0] for c in calls] == [*reproduce.NOTEBOOKS] * 2
    assert "shared with" not in capsys.readouterr().out
    # the same grid without --force: its cells are done, nothing runs; a new method shares the run's 01-03 only
    # with a cell that ran them in this invocation, so it runs them itself (they reload the stored artifacts)
    calls.clear()
    assert reproduce.main([*argv, "--methods", "egath", "dcmh"]) == 0
    assert [c[0] for c in calls] == [*reproduce.NOTEBOOKS]


def test_shared_cells_give_the_table_of_cells_run_alone(tmp_path, monkeypatch, capsys):
    calls: list = []
    fake_notebooks(monkeypatch, calls)
    base = ["--preset", "tiny", "--bits", "16", "32"]
    assert (
        reproduce.main(
            [*base, "--runs-root", str(tmp_path / "a"), "--variants", "egath", "gcn", "--methods", "egath", "djsrh"]
        )
        == 0
    )
    together = _table(capsys.readouterr().out)
    assert len(calls) == 5 + 2 + 2
    alone = []
    for extra in (["--variants", "egath"], ["--variants", "gcn"], ["--methods", "djsrh"]):
        assert reproduce.main([*base, "--runs-root", str(tmp_path / "b"), *extra]) == 0
        alone += _table(capsys.readouterr().out).splitlines()[2:]
    assert len(calls) == 9 + 5 + 5 + 5  # each invocation of one cell runs its five notebooks
    rows = together.splitlines()
    assert rows[0].startswith("| dataset | method | I→T 16 | I→T 32")
    # lsh repeats in every single-cell table: the same numbers, one row in the grid's
    assert sorted(rows[2:]) == sorted(dict.fromkeys(alone)) and len(rows) == 2 + 4
    assert "| toy_nuswide | djsrh | 0.2160 | 0.2320 | 0.1000 | 0.1000 |" in rows
