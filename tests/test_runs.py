"""The run configuration: recorded once, inherited by later notebooks, overrides printed; the notebook setup call."""

import json

import pytest

from egath_lite.files import ArtifactError
from egath_lite.pipeline.config import ConfigError
from egath_lite.pipeline.notebook import setup, setup_from
from egath_lite.pipeline.runs import load_results, load_run_config, resolve_run_config, run_config_path, save_results


def test_first_notebook_records_and_later_ones_inherit(tmp_path, capsys):
    root = str(tmp_path)
    cfg, recorded = resolve_run_config("tiny", "r", root, {"clip_pretrained": "random", "seed": 3, "zeta": None})
    assert cfg == recorded and recorded.seed == 3 and recorded.clip_pretrained == "random"
    assert "[run] recorded the configuration of run 'r'" in capsys.readouterr().out
    data = json.loads(run_config_path(cfg).read_text())
    assert data["config"]["seed"] == 3 and data["sections"]["graph"]["zeta"] == 0.3
    # a later notebook gives nothing: it gets the recorded run, not the preset's defaults
    later, _ = resolve_run_config(None, "r", root, {"seed": None, "clip_pretrained": None})
    assert later == recorded and capsys.readouterr().out == ""
    # a differing parameter is printed and applied to this notebook only
    low, rec = resolve_run_config(None, "r", root, {"zeta": 0.1})
    assert low.zeta == 0.1 and rec.zeta == 0.3 and load_run_config(root, "r").zeta == 0.3
    assert "this notebook overrides zeta: 0.3 → 0.1" in capsys.readouterr().out


def test_a_run_keeps_its_preset_and_refuses_bad_names_and_records(tmp_path):
    root = str(tmp_path)
    resolve_run_config("tiny", "r", root, {})
    with pytest.raises(ConfigError, match=r"recorded with preset 'tiny'.*asks for 'default'.*PRESET=None"):
        resolve_run_config("default", "r", root, {})
    with pytest.raises(ConfigError, match="must be one folder name"):
        resolve_run_config("tiny", "../escape", root, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]
    assert load_run_config(root, "never-ran") is None  # a lookup leaves no empty run folder behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]
    path = run_config_path(load_run_config(root, "r"))
    path.write_text("{not json")
    with pytest.raises(ArtifactError, match=f"delete {path} and rerun"):
        resolve_run_config(None, "r", root, {})
    path.unlink()  # the message's fix works: the next notebook records the run again
    cfg, _ = resolve_run_config("tiny", "r", root, {})
    assert cfg.preset == "tiny"


def test_results_are_per_configuration(tmp_path):
    cfg, _ = resolve_run_config("tiny", "r", str(tmp_path), {})
    save_results(cfg, "04_hash_learning", {"map": 1})
    save_results(cfg.replace(variant="gcn"), "04_hash_learning", {"map": 2})
    assert load_results(cfg, "04_hash_learning") == {"map": 1}
    assert load_results(cfg.replace(variant="gcn"), "04_hash_learning") == {"map": 2}
    with pytest.raises(ArtifactError, match="no such file"):
        load_results(cfg.replace(bits=[16]), "04_hash_learning")  # never another configuration's numbers


def test_setup_is_the_one_call_a_notebook_makes(tmp_path, capsys):
    S = setup("03_gat_classification", "tiny", "n", str(tmp_path), {"gat_epochs": 2}, False, zeta=None, seed=1)
    assert S.cfg.gat_epochs == 2 and S.cfg.seed == 1 and S.device.type == "cpu" and not S.force
    assert S.run_dir == tmp_path / "n"
    out = capsys.readouterr().out
    assert "03_gat_classification" in out and "preset tiny" in out
    path = S.save_results({"x": 1})
    assert path.parent.name == "results" and load_results(S.cfg, "03_gat_classification") == {"x": 1}
    with pytest.raises(TypeError, match="FORCE must be True or False"):
        setup("03_gat_classification", None, "n", str(tmp_path), None, "yes")


def test_setup_from_reads_the_parameters_cell_from_the_namespace(tmp_path):
    namespace = {
        "PRESET": "tiny",
        "RUN_NAME": "p",
        "RUNS_ROOT": str(tmp_path),
        "OVERRIDES": {"gat_epochs": 2},
        "FORCE": False,
        "SEED": 5,
        "ZETA": None,  # None: inherit
        "PRETRAINED": "random",  # notebook 01's short name for clip_pretrained
        "BATCH_SIZE": 16,  # ... and for extract_batch_size
        "EMBEDDING_MAP": "pca",  # the notebook's own: no config field
        "np": object(),
    }
    S = setup_from("01_feature_extraction", namespace)
    cfg = S.cfg
    assert (cfg.seed, cfg.gat_epochs, cfg.zeta) == (5, 2, 0.3) and S.run_dir == tmp_path / "p"
    assert cfg.clip_pretrained == "random" and cfg.extract_batch_size == 16
