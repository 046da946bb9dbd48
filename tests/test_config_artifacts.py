"""Config presets/keys and the artifact cache: atomic writes, keys, validation of untrusted files."""
import json

import pytest
import torch

from egath_lite.artifacts import (
    ArtifactError,
    cached_artifact,
    load_artifact,
    read_json,
    save_artifact,
    write_json,
)
from egath_lite.config import Config, get_config


def test_presets_and_overrides():
    tiny = get_config("tiny")
    assert tiny.preset == "tiny" and tiny.run_name == "tiny" and tiny.toy_size == 1_200
    cfg = get_config("default", run_name="x", bits=[16])
    assert cfg.bits == (16,) and cfg.run_name == "x"
    assert get_config("paper").dataset == "mirflickr25k"
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        get_config("huge")
    with pytest.raises(ValueError, match=r"unknown config field\(s\) \['bitz'\]"):
        get_config("tiny", bitz=16)


def test_key_depends_only_on_named_fields():
    a = get_config("tiny")
    fields = ["dataset", "seed", "toy_size"]
    assert a.key(fields) == a.replace(bits=(64,), lr=0.5).key(fields)
    assert a.key(fields) != a.replace(seed=1).key(fields)
    assert len(a.key(fields)) == 16
    with pytest.raises(KeyError):
        a.key(["nope"])
    # round trip through a plain dict (papermill parameters are plain dicts)
    assert Config.from_dict(a.to_dict()) == a


def test_save_load_roundtrip_and_key_check(tmp_path):
    p = tmp_path / "a.pt"
    save_artifact(p, "features", "k1", {"x": torch.arange(6.0).reshape(2, 3)}, {"names": ["a", "b"]})
    payload = load_artifact(p, "features", "k1", required=["x"])
    assert torch.equal(payload["tensors"]["x"], torch.arange(6.0).reshape(2, 3))
    assert payload["meta"] == {"names": ["a", "b"]}
    assert payload["versions"]["torch"] == torch.__version__
    with pytest.raises(ArtifactError, match="another configuration"):
        load_artifact(p, "features", "k2")
    with pytest.raises(ArtifactError, match="holds a 'features' artifact, expected 'graph'"):
        load_artifact(p, "graph")
    with pytest.raises(ArtifactError, match=r"lacks tensor\(s\) \['y'\]"):
        load_artifact(p, "features", required=["y"])
    assert [f.name for f in tmp_path.iterdir()] == ["a.pt"]  # no temp files left behind


def test_corrupt_and_malicious_files_are_refused(tmp_path):
    p = tmp_path / "bad.pt"
    p.write_bytes(b"not a torch file")
    with pytest.raises(ArtifactError, match="not a readable features artifact"):
        load_artifact(p, "features")

    class Evil:  # a pickle that would run code under weights_only=False
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format": "egath_lite.artifact/1", "evil": Evil()}, p)
    with pytest.raises(ArtifactError, match="not a readable"):
        load_artifact(p, "features")
    torch.save({"format": "egath_lite.artifact/1", "kind": "features", "key": "k", "tensors":
                {"x": torch.tensor([1.0, float("nan")])}}, p)
    with pytest.raises(ArtifactError, match="NaN or Inf"):
        load_artifact(p, "features")
    with pytest.raises(ArtifactError, match="no features artifact"):
        load_artifact(tmp_path / "missing.pt", "features")


def test_cached_artifact_hits_misses_and_recovers(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"v": torch.tensor([len(calls)])}, {}

    p = tmp_path / "c.pt"
    first = cached_artifact(p, "graph", "k", compute, verbose=False)
    again = cached_artifact(p, "graph", "k", compute, verbose=False)
    assert (first["cache_hit"], again["cache_hit"]) == (False, True)
    assert again["tensors"]["v"].item() == 1 and len(calls) == 1
    other = cached_artifact(p, "graph", "k2", compute, verbose=False)  # key changed -> recompute
    assert other["cache_hit"] is False and other["tensors"]["v"].item() == 2
    p.write_bytes(b"\x00garbage")  # corrupt cache -> recompute, never crash
    fixed = cached_artifact(p, "graph", "k2", compute, verbose=False)
    assert fixed["cache_hit"] is False and fixed["tensors"]["v"].item() == 3


def test_failed_write_keeps_previous_artifact(tmp_path):
    p = tmp_path / "c.pt"
    save_artifact(p, "graph", "k", {"v": torch.tensor([1])})
    with pytest.raises(TypeError, match="not a torch.Tensor"):
        save_artifact(p, "graph", "k", {"v": [1, 2]})
    assert load_artifact(p, "graph", "k")["tensors"]["v"].item() == 1


def test_json_roundtrip(tmp_path):
    import numpy as np

    p = write_json(tmp_path / "r.json", {"map": np.float64(0.5), "v": np.arange(3)})
    assert read_json(p) == {"map": 0.5, "v": [0, 1, 2]}
    p.write_text("{broken")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        read_json(p)
