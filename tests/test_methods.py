"""The comparison methods in the pipeline: registry, the ``method`` config field, the codes stage's keys and
file names, the driver's ``--methods``, search and the Milvus export for a non-EGATH method."""

from __future__ import annotations

import importlib.util

import pytest

from egath_lite.core.methods import METHODS, available_methods, get_method
from egath_lite.pipeline.codes import CODES_STAGE, codes_stage, codes_tag, resume_path
from egath_lite.pipeline.config import ConfigError, get_config


def test_registry_lists_the_eight_names_and_refuses_others():
    assert METHODS == ("egath", "dcmh", "gcdh", "dchmt", "dsph", "djsrh", "jdsh", "ucch")
    for name in ("egath", "dcmh", "gcdh", "djsrh", "jdsh"):
        module = get_method(name)
        assert module.NAME == name and module.TEXT_INPUT in ("bow", "clip")
    with pytest.raises(ValueError, match="unknown method 'fancy'; choose one of egath, dcmh"):
        get_method("fancy")
    for name in METHODS:  # a method whose module this version lacks is named, never a bare ImportError
        if importlib.util.find_spec(f"egath_lite.core.methods.{name}") is None:
            with pytest.raises(ValueError, match=f"method '{name}' is not implemented in this version"):
                get_method(name)
            assert name not in available_methods()
        else:
            assert name in available_methods()


def test_method_config_field_and_its_refusals():
    assert get_config("tiny").method == "egath"
    assert get_config("tiny", method="dcmh").method == "dcmh"
    with pytest.raises(
        ConfigError, match="method=.fancy. is not one of egath, dcmh, gcdh, dchmt, dsph, djsrh, jdsh, ucch"
    ):
        get_config("tiny", method="fancy")
    with pytest.raises(
        ConfigError, match="variant='no_gat' is an ablation of EGATH; method='dcmh' takes variant='egath'"
    ):
        get_config("tiny", method="dcmh", variant="no_gat")


def test_codes_stage_keys_on_the_method_and_keeps_egath_names(tmp_path):
    egath = get_config("tiny", runs_root=str(tmp_path))
    dcmh, djsrh = egath.replace(method="dcmh"), egath.replace(method="djsrh")
    assert codes_stage("egath") is CODES_STAGE and codes_tag(egath) == "egath"
    assert codes_tag(egath.replace(variant="no_gat")) == "no_gat" and codes_tag(dcmh) == "dcmh"
    # EGATH's key does not read the new field: existing runs keep their artifacts
    assert "method" not in CODES_STAGE.field_names(egath)
    assert CODES_STAGE.key(egath, variant="egath", bits=16) == CODES_STAGE.key(dcmh, variant="egath", bits=16)
    key_parts = codes_stage("dcmh").key_parts(dcmh, variant="dcmh", bits=16)
    assert key_parts["config"]["method"] == "dcmh" and "egath_lite.core.methods.dcmh" in key_parts["code"]["modules"]
    paths = {
        m: codes_stage(m).path(c, variant=codes_tag(c), bits=16)
        for m, c in (("egath", egath), ("dcmh", dcmh), ("djsrh", djsrh))
    }
    assert [p.name.split("-")[1] for p in paths.values()] == ["egath", "dcmh", "djsrh"]
    assert len({p.name for p in paths.values()}) == 3
    # EGATH's hyperparameters do not key a comparison method (it reads its release's), its own module does
    assert codes_stage("dcmh").key(dcmh.replace(lr=0.5), variant="dcmh", bits=16) == codes_stage("dcmh").key(
        dcmh, variant="dcmh", bits=16
    )
    assert codes_stage("dcmh").key(dcmh.replace(epochs=7), variant="dcmh", bits=16) != codes_stage("dcmh").key(
        dcmh, variant="dcmh", bits=16
    )
    assert resume_path(dcmh, 16).name.startswith("codes-dcmh-16-")
