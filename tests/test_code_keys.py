"""Caches that notice code: a stage's key digests the source of the ``egath_lite.core`` modules it runs and of
a ``loss_fn``/``model_fn`` passed in, and an edit recomputes with a message naming what changed.

The end-to-end test edits ``core/losses.py`` on a copy of the package and runs the real pipeline (toy data,
random tiny CLIP, one epoch) in subprocesses that import that copy; the others run in-process on the
synthetic inputs of ``test_training``.
"""

import functools
import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from test_training import small_cfg, synthetic_inputs

from egath_lite.core.losses import egath_loss, quantization_loss, triplet_loss
from egath_lite.files import ArtifactError
from egath_lite.pipeline import code_digest, stages
from egath_lite.pipeline import codes as codes_mod
from egath_lite.pipeline.classifier import CLASSIFIER_STAGE
from egath_lite.pipeline.code_digest import CodeKeyError, callable_fingerprint, module_digest, normalised_source
from egath_lite.pipeline.codes import CODES_STAGE, codes_in_run, ensure_codes, load_run_codes, resume_path
from egath_lite.pipeline.config import get_config
from egath_lite.pipeline.graph import GRAPH_STAGE
from egath_lite.pipeline.runs import CELL_STAGE
from egath_lite.pipeline.stages import Stage, read_index
from egath_lite.plots.training import plot_hash_history

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOSSES = "egath_lite.core.losses"

# --------------------------------------------------------------------------- an edit to core/ on a copy
RUN = """
import sys
from egath_lite import get_config
from egath_lite.pipeline.codes import ensure_codes
cfg = get_config("tiny", runs_root=sys.argv[1], run_name="r", device="cpu", toy_size=120, image_size=32,
                 num_query=20, num_train=80, vocab_size=32, clip_pretrained="random", epochs=1, bits=(8,),
                 hidden_dim=16, gat_hidden=16, trans_width=16, trans_heads=2, trans_tokens=2, num_workers=0)
p = ensure_codes(cfg, 8, progress=False)
import egath_lite
print("RESULT", p["cache_hit"], p["path"], egath_lite.__file__)
"""


def _copy_package(dest):
    shutil.copytree(os.path.join(REPO, "egath_lite"), dest / "egath_lite")  # with its .pyc: valid while unedited
    return dest


def _edit(root, old, new):
    path = root / "egath_lite" / "core" / "losses.py"
    text = path.read_text()
    assert text.count(old) == 1, f"core/losses.py no longer holds {old!r}: update this test's edit"
    path.write_text(text.replace(old, new))


def _run(package_root, runs_root):
    env = {**os.environ, "PYTHONPATH": str(package_root), "HF_HUB_OFFLINE": "1", "PYTHONHASHSEED": "0"}
    proc = subprocess.run(  # cwd: `python -c` puts it first on sys.path, before the copy
        [sys.executable, "-c", RUN, str(runs_root)],
        env=env,
        cwd=package_root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = [line.split() for line in proc.stdout.splitlines() if line.startswith("RESULT ")][-1]
    assert result[3] == str(package_root / "egath_lite" / "__init__.py")  # the copy ran, not the checkout
    return proc.stdout, result[1] == "True", result[2]


def test_an_edit_to_core_losses_recomputes_the_codes_and_says_so(tmp_path):
    start = time.perf_counter()
    runs = tmp_path / "runs"
    plain = _copy_package(tmp_path / "plain")
    edited = _copy_package(tmp_path / "edited")
    # one statement of egath_loss: the quantisation term weighs twice as much
    _edit(edited, '+ cfg.w_quant * terms["quant"]', '+ 2 * cfg.w_quant * terms["quant"]')

    out, hit, first = _run(plain, runs)  # features, graph, codes: everything computed once
    assert not hit and "recomputing" not in out
    before = open(first, "rb").read()

    out, hit, path = _run(edited, runs)
    assert "[codes] recomputing: the code of egath_lite.core.losses changed" in out, out
    assert not hit and path != first and os.path.dirname(path) == os.path.dirname(first)
    assert "[features] reusing" in out and "[graph] reusing" in out  # only the stage that runs core.losses
    assert open(first, "rb").read() == before  # the old artifact is kept, untouched

    out, hit, path = _run(plain, runs)  # the unedited package still finds its own artifact
    assert hit and path == first and f"[codes] reusing {first}" in out and "recomputing" not in out
    entries = [e for e in read_index(runs / "r").values() if e["stage"] == "codes"]
    assert len(entries) == 2 and len({e["code"]["modules"][LOSSES] for e in entries}) == 2
    assert len({e["code"]["modules"]["egath_lite.core.train"] for e in entries}) == 1
    print(f"edit to core/losses.py on a copy, three subprocess runs: {time.perf_counter() - start:.1f} s")


def test_comments_docstrings_and_layout_in_core_losses_keep_the_key(tmp_path):
    """What was designed: the digest is of the module's ast without docstrings, so these edits reuse artifacts."""
    cosmetic = _copy_package(tmp_path / "cosmetic")
    _edit(
        cosmetic, "    cfg = cfg or LossConfig()\n", "    # a comment\n\n    cfg = (cfg\n           or LossConfig())\n"
    )
    _edit(cosmetic, "EGATH's objective on one batch", "EGATH's objective (reworded) on one batch")
    real = open(os.path.join(REPO, "egath_lite", "core", "losses.py")).read()
    copy = (cosmetic / "egath_lite" / "core" / "losses.py").read_text()
    assert copy != real and normalised_source(copy) == normalised_source(real)
    _edit(cosmetic, "_EPS = 1e-12", "_EPS = 1e-11")  # one constant: another digest
    assert normalised_source((cosmetic / "egath_lite" / "core" / "losses.py").read_text()) != normalised_source(real)


# --------------------------------------------------------------------------- the keys of graph, classifier, codes
def test_each_stage_key_follows_the_digests_of_its_core_modules(tmp_path, monkeypatch):
    cfg = get_config("tiny", runs_root=str(tmp_path), run_name="r", clip_pretrained="random")
    real = stages.module_digest

    def keys():
        return {
            "graph": GRAPH_STAGE.key(cfg),
            "classifier": CLASSIFIER_STAGE.key(cfg, kind="gat"),
            "codes": CODES_STAGE.key(cfg, variant="egath", bits=16),
            "cell": CELL_STAGE.key(cfg, variant="egath"),
        }

    base = keys()
    assert set(GRAPH_STAGE.key_parts(cfg)["code"]["modules"]) == {
        "egath_lite.core.label_graph",
        "egath_lite.core.label_embeddings",
    }
    for module, moved in (
        ("egath_lite.core.label_graph", {"graph", "classifier", "codes", "cell"}),  # downstream through the graph key
        ("egath_lite.core.label_embeddings", {"graph", "classifier", "codes", "cell"}),
        ("egath_lite.core.losses", {"classifier", "codes", "cell"}),
        ("egath_lite.core.models", {"classifier", "codes", "cell"}),
        ("egath_lite.core.train", {"classifier", "codes", "cell"}),
        ("egath_lite.core.lsh", {"cell"}),
    ):
        monkeypatch.setattr(stages, "module_digest", lambda m, module=module: "edited" if m == module else real(m))
        now = keys()
        assert {s for s in base if now[s] != base[s]} == moved, module
    monkeypatch.setattr(stages, "module_digest", real)
    assert keys() == base


def test_the_message_names_the_modules_that_changed(tmp_path, monkeypatch, capsys):
    digests = {"egath_lite.core.losses": "a", "egath_lite.core.train": "b", "egath_lite.core.models": "c"}
    monkeypatch.setattr(stages, "module_digest", lambda m: digests[m])
    stage = Stage("demo", fields=("seed",), params=("bits",), tensors=("v",), code=tuple(digests))
    cfg = get_config("tiny", runs_root=str(tmp_path), run_name="r")

    def run(c=cfg):
        return stage.run(c, lambda: ({"v": torch.ones(1)}, {}), bits=8)

    first = run()
    assert read_index(tmp_path / "r")[os.path.basename(first["path"])]["code"]["modules"] == digests
    assert first["code"]["modules"] == digests  # the payload records them too
    digests["egath_lite.core.losses"] = "a2"
    assert not run()["cache_hit"]
    assert "[demo] recomputing: the code of egath_lite.core.losses changed\n" in capsys.readouterr().out
    digests.update({"egath_lite.core.losses": "a3", "egath_lite.core.train": "b2"})
    run()
    assert "the code of egath_lite.core.losses and egath_lite.core.train changed" in capsys.readouterr().out
    digests.update({"egath_lite.core.losses": "a4", "egath_lite.core.train": "b3", "egath_lite.core.models": "c2"})
    run()
    out = capsys.readouterr().out
    assert "the code of egath_lite.core.losses, egath_lite.core.train and egath_lite.core.models changed" in out
    # another configuration is new, not changed code: no code message; back to old code: its artifact is reused
    run(cfg.replace(seed=5))
    assert "recomputing" not in capsys.readouterr().out
    digests.update({"egath_lite.core.losses": "a", "egath_lite.core.train": "b", "egath_lite.core.models": "c"})
    assert run()["cache_hit"]


def test_normalised_source_ignores_comments_docstrings_and_layout_only():
    src = 'def f(x, m=0.3):\n    """Doc."""\n    # why\n    return max(x + m, 0)\n'
    assert normalised_source(src) == normalised_source("def f(x, m=0.3):\n\n    return max(x+m,\n               0)\n")
    assert normalised_source(src) == normalised_source(
        "def f(x, m=0.3):\n    '''Other doc.'''\n    return max(x + m, 0)"
    )
    assert normalised_source(src) != normalised_source('def f(x, m=0.5):\n    """Doc."""\n    return max(x + m, 0)\n')
    assert normalised_source(src) != normalised_source('def f(x, m=0.3):\n    """Doc."""\n    return max(x - m, 0)\n')
    assert normalised_source('def g():\n    """Only a docstring."""\n') == "def g():\n    pass"


def test_a_module_edited_after_import_keeps_the_key_of_the_code_that_runs(tmp_path, monkeypatch, capsys):
    pkg = tmp_path / "editpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    mod = pkg / "lossy.py"
    mod.write_text("MARGIN = 0.3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("editpkg.lossy")
    try:
        first = module_digest("editpkg.lossy")
        mod.write_text("MARGIN = 0.5\n")
        os.utime(mod, ns=(time.time_ns() + 10**9,) * 2)
        assert module_digest("editpkg.lossy") == first  # the running module still has 0.3
        assert "editpkg.lossy was edited after it was imported" in capsys.readouterr().out
        importlib.reload(module)
        assert module.MARGIN == 0.5 and module_digest("editpkg.lossy") != first
    finally:
        for name in ("editpkg.lossy", "editpkg"):
            sys.modules.pop(name, None)
            code_digest._SNAPSHOTS.pop(name, None)


# --------------------------------------------------------------------------- a loss passed in
def raw_triplet_loss(out, Y, B):
    """Exercise 4 of notebook 04: the triplet term on raw tanh outputs, plus quantisation (other term names)."""
    h_i, h_t = out["h_image"], out["h_text"]
    terms = {
        "raw_triplet": triplet_loss(h_i, h_t, Y, Y, margin=0.3 * h_i.shape[1], normalize=False),
        "quant": (quantization_loss(h_i, B) + quantization_loss(h_t, B)) / 2,
    }
    terms["total"] = terms["raw_triplet"] + 0.1 * terms["quant"]
    return terms


def raw_triplet_loss_wider(out, Y, B):
    """The same with another margin: another source, another key."""
    h_i, h_t = out["h_image"], out["h_text"]
    terms = {"raw_triplet": triplet_loss(h_i, h_t, Y, Y, margin=0.5 * h_i.shape[1], normalize=False)}
    terms["total"] = terms["raw_triplet"]
    return terms


@pytest.fixture
def inputs(monkeypatch):
    features, graph = synthetic_inputs()
    monkeypatch.setattr(codes_mod, "ensure_features", lambda cfg, **kw: features)
    monkeypatch.setattr(codes_mod, "ensure_graph", lambda cfg, **kw: graph)
    return features, graph


def test_a_loss_passed_in_gets_its_own_artifact_and_never_overwrites_the_default(inputs, tmp_path, capsys):
    cfg = small_cfg(tmp_path, epochs=1)
    default = ensure_codes(cfg, 8, progress=False)
    before = open(default["path"], "rb").read()

    custom = ensure_codes(cfg, 8, progress=False, loss_fn=raw_triplet_loss)
    assert not custom["cache_hit"] and custom["path"] != default["path"]
    assert os.path.dirname(custom["path"]) == os.path.dirname(default["path"])
    assert os.path.basename(custom["path"]).startswith("codes-egath-8-") and custom["key"] != default["key"]
    assert open(default["path"], "rb").read() == before
    fp = custom["meta"]["custom"]["loss_fn"]
    assert fp == callable_fingerprint(raw_triplet_loss, "loss_fn") and fp["name"] == "raw_triplet_loss"
    assert default["meta"]["custom"] == {}
    # the history holds the terms the loss returned, and the plot draws them
    t = custom["tensors"]
    assert "history_loss_raw_triplet" in t and "history_loss_cosine" not in t and len(t["history_loss"]) == 1
    assert "history_loss_cosine" in default["tensors"]
    hist = {k[len("history_") :]: v for k, v in t.items() if k.startswith("history_")}
    assert "raw_triplet" in [line.get_label() for line in plot_hash_history({8: hist}).axes[0].get_lines()]
    # the same loss again: its own artifact is reused; the default's still is the default's
    capsys.readouterr()
    again = ensure_codes(cfg, 8, progress=False, loss_fn=raw_triplet_loss)
    assert again["cache_hit"] and again["path"] == custom["path"]
    assert f"[codes] reusing {custom['path']}" in capsys.readouterr().out
    assert ensure_codes(cfg, 8, progress=False)["path"] == default["path"]
    # another source: a third key
    wider = ensure_codes(cfg, 8, progress=False, loss_fn=raw_triplet_loss_wider)
    assert not wider["cache_hit"] and len({default["key"], custom["key"], wider["key"]}) == 3
    # the resume state of a custom loss is named by its key, never by the default's
    assert resume_path(cfg, 8, loss_fn=raw_triplet_loss).name == os.path.basename(custom["path"])[:-3] + ".resume.pt"
    assert resume_path(cfg, 8).name == os.path.basename(default["path"])[:-3] + ".resume.pt"
    # notebook 05 and the search app list what the run's configuration alone can load
    assert [e["file"] for e in codes_in_run(tmp_path / "t")] == [os.path.basename(default["path"])]


def test_a_run_whose_codes_were_trained_by_other_code_says_which(inputs, tmp_path, monkeypatch):
    cfg = small_cfg(tmp_path, epochs=1)
    ensure_codes(cfg, 8, progress=False)
    assert load_run_codes(cfg, "egath", 8)[1]["cache_hit"]
    real = stages.module_digest
    monkeypatch.setattr(stages, "module_digest", lambda m: "edited" if m == LOSSES else real(m))
    with pytest.raises(ArtifactError, match="the code of egath_lite.core.losses changed since notebook 04 trained"):
        load_run_codes(cfg, "egath", 8)


def test_an_edited_loss_passed_in_recomputes_and_says_so(inputs, tmp_path, capsys):
    cfg = small_cfg(tmp_path, epochs=1)

    def load(folder, margin):
        folder.mkdir()
        source = f"""
            from egath_lite.core.losses import triplet_loss

            def my_loss(out, Y, B):
                h_i, h_t = out["h_image"], out["h_text"]
                terms = {{"triplet": triplet_loss(h_i, h_t, Y, Y, margin={margin})}}
                terms["total"] = terms["triplet"]
                return terms
            """
        (folder / "exercise.py").write_text(textwrap.dedent(source))
        spec = importlib.util.spec_from_file_location(f"exercise_{folder.name}", folder / "exercise.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.my_loss

    first = ensure_codes(cfg, 8, progress=False, loss_fn=load(tmp_path / "a", 0.3))
    capsys.readouterr()
    second = ensure_codes(cfg, 8, progress=False, loss_fn=load(tmp_path / "b", 0.6))
    assert not second["cache_hit"] and second["path"] != first["path"]
    assert "[codes] recomputing: the code of loss_fn my_loss changed" in capsys.readouterr().out


def test_callables_that_cannot_be_keyed_are_refused_and_partials_key_their_arguments(inputs, tmp_path):
    cfg = small_cfg(tmp_path, epochs=1)
    with pytest.raises(CodeKeyError, match="lambda.*define it with `def`"):
        ensure_codes(cfg, 8, progress=False, loss_fn=lambda out, Y, B: egath_loss(out, Y, B))
    scope: dict = {}
    exec("def made_by_exec(out, Y, B):\n    return egath_loss(out, Y, B)\n", {"egath_loss": egath_loss}, scope)
    with pytest.raises(CodeKeyError, match="made_by_exec: its source cannot be read.*`def`"):
        ensure_codes(cfg, 8, progress=False, loss_fn=scope["made_by_exec"])
    assert not list((tmp_path / "t").glob("codes-*.pt"))  # refused before any training
    from egath_lite.core.losses import LossConfig

    a = callable_fingerprint(functools.partial(egath_loss, cfg=LossConfig(alpha=0.3)))
    b = callable_fingerprint(functools.partial(egath_loss, cfg=LossConfig(alpha=0.6)))
    assert a["name"] == "partial(egath_loss)" and a["digest"] != b["digest"]
    assert a == callable_fingerprint(functools.partial(egath_loss, cfg=LossConfig(alpha=0.3)))


class ScaledLoss:
    """A callable object: its class source and its state key it."""

    def __init__(self, scale):
        self.scale = scale

    def __call__(self, out, Y, B):
        terms = egath_loss(out, Y, B)
        terms["total"] = self.scale * terms["total"]
        return terms


MARGIN = 0.3


def loss_reading_a_global(out, Y, B):
    return {"total": triplet_loss(out["h_image"], out["h_text"], Y, Y, margin=MARGIN)}


def test_callable_objects_and_globals_a_loss_reads_reach_its_digest(monkeypatch):
    assert callable_fingerprint(ScaledLoss(1.0)) == callable_fingerprint(ScaledLoss(1.0))
    assert callable_fingerprint(ScaledLoss(1.0)) != callable_fingerprint(ScaledLoss(2.0))
    assert callable_fingerprint(ScaledLoss(1.0))["name"] == "ScaledLoss()"
    before = callable_fingerprint(loss_reading_a_global)
    monkeypatch.setattr(sys.modules[__name__], "MARGIN", 0.5)  # a notebook cell that sets MARGIN = 0.5
    assert callable_fingerprint(loss_reading_a_global) != before
