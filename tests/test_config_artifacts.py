"""Config validation and presets, and the one stage mechanism: keys, names, validation, locks, temp files."""

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from egath_lite.files import ArtifactError, atomic_write_bytes, file_lock, read_json, write_json
from egath_lite.pipeline.artifacts import run_dir
from egath_lite.pipeline.config import Config, ConfigError, get_config, parse_value
from egath_lite.pipeline.stages import FORMAT, Stage, checksum, read_index, shape_problems


# --------------------------------------------------------------------------- config
def test_presets_and_overrides():
    tiny = get_config("tiny")
    assert tiny.preset == "tiny" and tiny.run_name == "tiny" and tiny.toy_size == 1_200
    cfg = get_config("default", run_name="x", bits=[16])
    assert cfg.bits == (16,) and cfg.run_name == "x"
    assert cfg.graph.zeta == cfg.zeta == 0.3  # sections and the flat view agree
    assert get_config("paper").dataset == "mirflickr25k"
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        get_config("huge")
    with pytest.raises(ConfigError, match=r"unknown config field\(s\) \{'bitz': \['bits'\]\}"):
        get_config("tiny", bitz=16)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("bits", "32", r"bits must be a list of integers, e.g\. bits=\(16, 32, 64\).*got the string '32'"),
        ("bits", 0, r"bits must be >= 1, got 0"),
        ("bits", [16.7], r"bits must hold integers.*16\.7 \(float\)"),
        ("bits", True, r"bits must be a non-empty list of integers"),
        ("bits", [16, 16], r"bits lists a value twice"),
        ("epochs", "2", r"epochs must be an integer, e.g\. epochs=30; got '2' \(str\)"),
        ("epochs", 0, r"epochs must be >= 1, got 0"),
        ("seed", "0", r"seed must be an integer.*got '0' \(str\)"),
        ("val_fraction", 1.0, r"val_fraction must be < 1\.0"),
        ("zeta", 0, r"zeta must be > 0\.0"),
        ("variant", "egath2", r"variant='egath2' is not one of egath, no_gat"),
        ("label_fusion", "add", r"label_fusion='add' is not one of concat"),
        ("device", "gpu", r"device='gpu' is not auto, cpu, cuda, cuda:N or mps"),
        ("finetune_clip", 1, r"finetune_clip must be True or False"),
        ("lr", "1e-3", r"lr must be a number"),
        ("run_name", "../escape", r"run_name='\.\./escape' must be one folder name"),
        ("run_name", "/abs/path", r"must be one folder name"),
        ("run_name", "..", r"must be one folder name"),
    ],
)
def test_config_refuses_bad_values_at_construction(field, value, message):
    with pytest.raises(ConfigError, match=message):
        get_config("tiny", **{field: value})


def test_config_cross_checks_and_per_dataset_presets():
    with pytest.raises(ConfigError, match=r"lr_min \(0\.1\) must not exceed lr"):
        get_config("tiny", lr=0.01, lr_min=0.1)
    with pytest.raises(ConfigError, match=r"clip_pretrained='train'.*toy_nuswide.*mirflickr25k.*--clip-pretrained"):
        get_config("default", dataset="mirflickr25k")
    assert get_config("paper", dataset="nuswide_tc10").zeta == 0.01  # GCDH's released NUS-WIDE threshold
    assert get_config("paper", dataset="mirflickr25k").zeta == 0.3
    assert get_config("paper", dataset="nuswide_tc10", zeta=0.2).zeta == 0.2  # an override still wins
    assert get_config("paper").finetune_clip is True and get_config("default").finetune_clip is False
    assert get_config("tiny", bits=32).bits == (32,)  # a single int is one length


def test_key_depends_only_on_named_fields_and_round_trips():
    a = get_config("tiny")
    fields = ["dataset", "seed", "toy_size"]
    assert a.key(fields) == a.replace(bits=(64,), lr=0.5).key(fields)
    assert a.key(fields) != a.replace(seed=1).key(fields)
    assert len(a.key(fields)) == 16
    with pytest.raises(KeyError):
        a.key(["nope"])
    assert Config.from_dict(a.to_dict()) == a  # papermill parameters are plain dicts
    assert Config.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    assert a.digest() == a.replace(run_name="elsewhere", runs_root="/tmp/x").digest()  # location is not content
    assert a.differences(a.replace(zeta=0.1)) == {"zeta": (0.1, 0.3)}
    assert set(a.sections()) == {"run", "data", "features", "graph", "classifier", "hashing", "evaluation"}
    assert "zeta" in a.sections()["graph"] and "bits" in a.sections()["hashing"]


def test_parse_value_uses_the_field_type():
    assert parse_value("bits", "16,32") == (16, 32) and parse_value("bits", "[64]") == (64,)
    assert parse_value("zeta", "0.1") == 0.1 and parse_value("epochs", "3") == 3
    assert parse_value("drop_unlabeled", "true") is True and parse_value("data_root", "none") is None
    assert parse_value("label_fusion", "none") == "none"  # a str field keeps the word
    with pytest.raises(ConfigError, match=r"--set epochs='x': not a valid int"):
        parse_value("epochs", "x")
    with pytest.raises(ConfigError, match="unknown config field"):
        parse_value("zetta", "1")


# --------------------------------------------------------------------------- the stage mechanism
def _stage(**kw):
    spec = dict(name="demo", fields=("seed", "zeta"), params=("bits",), tensors=("v",))
    spec.update(kw)
    return Stage(**spec)


def test_file_names_carry_the_key_and_configurations_never_overwrite(tmp_path):
    stage = _stage()
    cfg = get_config("tiny", runs_root=str(tmp_path), run_name="r")
    calls = []

    def compute(value):
        def run():
            calls.append(value)
            return {"v": torch.tensor([value])}, {"value": value}

        return run

    a = stage.run(cfg, compute(1), bits=16)
    b = stage.run(cfg.replace(zeta=0.1), compute(2), bits=16)
    c = stage.run(cfg, compute(3), bits=32)
    assert a["path"] != b["path"] != c["path"] and len(calls) == 3
    assert os.path.basename(a["path"]) == f"demo-16-{stage.key(cfg, bits=16)}.pt"
    again = stage.run(cfg, compute(9), bits=16)  # the first configuration's artifact is untouched
    assert again["cache_hit"] and again["tensors"]["v"].item() == 1 and len(calls) == 3
    assert stage.run(cfg.replace(bits=[64], lr=0.5), compute(9), bits=16)["cache_hit"]  # unread fields: same key
    index = read_index(tmp_path / "r")
    assert {e["params"]["bits"] for e in index.values()} == {16, 32}
    assert index[os.path.basename(b["path"])]["config"] == {"seed": 0, "zeta": 0.1}


def test_upstream_keys_and_extra_inputs_reach_the_key(tmp_path):
    inputs = {"data": "v1"}
    up = Stage("up", fields=("seed",), extra=lambda cfg: inputs["data"])
    down = Stage("down", fields=("zeta",), upstream=(up,))
    cfg = get_config("tiny", runs_root=str(tmp_path))
    key = down.key(cfg)
    assert down.key(cfg.replace(seed=1)) != key  # an upstream field
    inputs["data"] = "v2"  # e.g. a label file of the data set was edited
    assert down.key(cfg) != key
    assert json.loads(down.explain(cfg))["upstream"]["up"] == up.key(cfg)


def test_validation_on_load_recomputes_with_a_reason(tmp_path, capsys):
    def expect(cfg, params, payload):
        return shape_problems(payload["tensors"], {"v": ((params["bits"],), torch.float32)})

    stage = _stage(expect=expect)
    cfg = get_config("tiny", runs_root=str(tmp_path), run_name="r")
    first = stage.run(cfg, lambda: ({"v": torch.zeros(8)}, {}), bits=8)
    path = first["path"]
    # a payload that the key does not promise (here: 50 rows for 8 bits) is refused, never a hit
    payload = torch.load(path, weights_only=True)
    payload["tensors"]["v"] = torch.zeros(50)
    payload["checksum"] = checksum(payload)
    torch.save(payload, path)
    redone = stage.run(cfg, lambda: ({"v": torch.ones(8)}, {}), bits=8)
    out = capsys.readouterr().out
    assert not redone["cache_hit"] and f"[demo] recomputing: {os.path.basename(path)}: v has shape (50,)" in out
    # an edit that keeps shapes is caught by the checksum
    payload = torch.load(path, weights_only=True)
    payload["tensors"]["v"][0] = 7.0
    torch.save(payload, path)
    assert not stage.run(cfg, lambda: ({"v": torch.ones(8)}, {}), bits=8)["cache_hit"]
    assert "checksum mismatch" in capsys.readouterr().out
    # random bytes where the artifact was: recomputed with the reason
    with open(path, "wb") as f:
        f.write(os.urandom(300))
    assert not stage.run(cfg, lambda: ({"v": torch.ones(8)}, {}), bits=8)["cache_hit"]
    assert "unreadable" in capsys.readouterr().out
    with pytest.raises(ArtifactError, match="refusing to write.*NaN"):
        stage.run(cfg.replace(seed=3), lambda: ({"v": torch.full((8,), float("nan"))}, {}), bits=8)
    with pytest.raises(ArtifactError, match="refusing to write.*v has shape"):
        stage.run(cfg.replace(seed=4), lambda: ({"v": torch.ones(3)}, {}), bits=8)


def test_untrusted_pickles_are_refused(tmp_path, capsys):
    stage = _stage()
    cfg = get_config("tiny", runs_root=str(tmp_path), run_name="r")

    class Evil:  # a pickle that would run code under weights_only=False
        def __reduce__(self):
            return (print, ("pwned",))

    path = stage.path(cfg, bits=8)
    torch.save({"format": FORMAT, "evil": Evil()}, path)
    out = stage.run(cfg, lambda: ({"v": torch.ones(1)}, {}), bits=8)
    printed = capsys.readouterr().out
    assert not out["cache_hit"] and "pwned" not in printed and "not a plain tensor file" in printed


def test_force_recomputes_and_the_index_follows(tmp_path, capsys):
    stage = _stage()
    cfg = get_config("tiny", runs_root=str(tmp_path), run_name="r")
    stage.run(cfg, lambda: ({"v": torch.ones(1)}, {}), bits=8)
    forced = stage.run(cfg, lambda: ({"v": torch.zeros(1)}, {}), force=True, bits=8)
    assert not forced["cache_hit"] and forced["tensors"]["v"].item() == 0
    assert ": forced" in capsys.readouterr().out
    assert len(read_index(tmp_path / "r")) == 1  # the same file, rewritten


def _hold_lock(path, started, seconds):
    with file_lock(path, "test artifact"):
        started.set()
        time.sleep(seconds)


def test_a_second_process_waits_for_the_lock(tmp_path):
    target = tmp_path / "x.pt"
    started = multiprocessing.get_context("fork").Event()
    proc = multiprocessing.get_context("fork").Process(target=_hold_lock, args=(target, started, 1.5))
    proc.start()
    assert started.wait(20)
    lines = []
    t0 = time.perf_counter()
    with file_lock(target, "test artifact", log=lines.append):
        waited = time.perf_counter() - t0
    proc.join()
    assert waited > 0.5 and lines[0].startswith("[lock] waiting: test artifact is being made by another process (pid")
    assert str(proc.pid) in lines[0]


def test_orphan_temp_files_are_removed_and_files_respect_the_umask(tmp_path):
    target = tmp_path / "a.json"
    # a write killed with SIGKILL leaves its temp file behind
    code = (
        "import os, sys; from egath_lite.files import atomic_write_bytes\n"
        "atomic_write_bytes(sys.argv[1], lambda f: (f.write(b'half'), f.flush(), os.kill(os.getpid(), 9)))"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(target)], check=False)
    assert proc.returncode == -signal.SIGKILL
    orphans = list(tmp_path.glob(".a.json.*.tmp"))
    assert len(orphans) == 1 and not target.exists()
    old = os.umask(0o022)
    try:
        write_json(target, {"x": 1})
    finally:
        os.umask(old)
    assert not list(tmp_path.glob(".a.json.*.tmp")) and read_json(target) == {"x": 1}
    assert (target.stat().st_mode & 0o777) == 0o644  # not mkstemp's 0600


def test_failed_write_keeps_previous_file(tmp_path):
    target = tmp_path / "c.bin"
    atomic_write_bytes(target, lambda f: f.write(b"one"))

    def boom(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write_bytes(target, boom)
    assert target.read_bytes() == b"one" and not list(tmp_path.glob(".c.bin.*"))
    stage = _stage()
    cfg = get_config("tiny", runs_root=str(tmp_path), run_name="r")
    with pytest.raises(TypeError, match="not a torch.Tensor"):
        stage.run(cfg, lambda: ({"v": [1, 2]}, {}), bits=8)


def test_run_dir_stays_under_the_runs_root(tmp_path):
    cfg = get_config("tiny", runs_root=str(tmp_path), run_name="ok-1.x")
    assert run_dir(cfg) == tmp_path / "ok-1.x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok-1.x"]


def test_json_roundtrip_and_clear_errors(tmp_path):
    import numpy as np

    p = write_json(tmp_path / "r.json", {"map": np.float64(0.5), "v": np.arange(3)})
    assert read_json(p) == {"map": 0.5, "v": [0, 1, 2]}
    p.write_text("{broken")
    with pytest.raises(ArtifactError, match=f"delete {p} and rerun"):
        read_json(p)
