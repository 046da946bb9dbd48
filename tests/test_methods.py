"""The comparison methods in the pipeline: registry, the ``method`` config field, the codes stage's keys and
file names, the driver's ``--methods``, search and the Milvus export for a non-EGATH method."""

from __future__ import annotations

import importlib.util

import pytest
import torch

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


def test_driver_grid_runs_variants_for_egath_and_each_method_once(tmp_path):
    from egath_lite.driver import cli as reproduce

    cells = reproduce.cell_configs(
        "tiny", ["toy_nuswide"], [0, 1], ["egath", "no_gat"], tmp_path, {}, methods=["egath", "djsrh", "dcmh"]
    )
    got = [(c.cfg.seed, c.cfg.method, c.cfg.variant) for c in cells]
    want = [(s, m, v) for s in (0, 1) for m, v in (("egath", "egath"), ("egath", "no_gat"), ("djsrh", "egath"))]
    want = [w for s in (0, 1) for w in [*(x for x in want if x[0] == s), (s, "dcmh", "egath")]]
    assert got == want
    assert cells[2].label == "toy_nuswide seed 0 method djsrh" and cells[1].label.endswith("variant no_gat")
    assert {c.cfg.run_name for c in cells} == {"tiny-toy_nuswide-s0", "tiny-toy_nuswide-s1"}  # one run per seed


def test_driver_refuses_an_unknown_method_and_method_via_set(tmp_path, capsys):
    from egath_lite.driver import cli as reproduce

    try:  # argparse's own exit, which the error boundary returns as the exit code
        rc = reproduce.main(["--preset", "tiny", "--runs-root", str(tmp_path), "--methods", "fancy"])
    except SystemExit as exc:
        rc = exc.code
    assert rc == 2 and "invalid choice: 'fancy'" in capsys.readouterr().err
    rc = reproduce.main(["--preset", "tiny", "--runs-root", str(tmp_path), "--set", "method=dcmh"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "use the driver's own option for method" in err and "--methods" in err and "\n" not in err


# --------------------------------------------------------------------------- slow: real training and notebooks
SMALL = dict(toy_size=400, num_query=60, num_train=200, vocab_size=128, clip_epochs=1, gat_epochs=2, epochs=2)


@pytest.mark.slow
def test_search_and_milvus_export_for_a_comparison_method(tmp_path):
    """DJSRH trained through the codes stage: Searcher.from_run(method=...) encodes the stored query codes, its
    ranking is the Hamming ranking of the stored retrieval codes, and Milvus Lite returns the same neighbours."""
    import numpy as np

    from egath_lite.pipeline.codes import codes_in_run, ensure_codes
    from egath_lite.pipeline.runs import record_run_config
    from egath_lite.serve import milvus_export as mx
    from egath_lite.serve.index import HammingIndex
    from egath_lite.serve.search import Searcher

    cfg = get_config("tiny", runs_root=str(tmp_path), run_name="m", device="cpu", bits=(16,), **SMALL)
    record_run_config(cfg)
    codes = ensure_codes(cfg.replace(method="djsrh"), 16, progress=False)
    assert codes["path"].endswith(".pt") and "/codes-djsrh-16-" in codes["path"]
    assert [(e["variant"], e["bits"]) for e in codes_in_run(tmp_path / "m")] == [("djsrh", 16)]
    with pytest.raises(Exception, match="no trained 'egath' codes"):
        Searcher.from_run("m", runs_root=tmp_path)
    s = Searcher.from_run("m", runs_root=tmp_path, method="djsrh", bits=16)
    assert s.variant == "djsrh" and s.text_input == "bow"
    ds = s.dataset
    for j in range(3):  # a query item's text and image encode to the codes the stage stored for it
        item = int(s.query_idx[j])
        assert torch.equal(s.encode_text(str(ds.texts[item])), codes.query_text_codes[j])
    hits = s.search_text(str(ds.texts[int(s.query_idx[0])]), k=10)
    index = HammingIndex(16).add(codes.retrieval_image_codes)
    dist, pos = index.search(codes.query_text_codes[:1], 10)
    assert [h.distance for h in hits] == dist[0].tolist() and [h.position for h in hits] == pos[0].tolist()
    client = mx.milvus_client(str(tmp_path / "codes.db"))
    try:
        n = mx.export_codes(client, "djsrh", codes.retrieval_image_codes, vector="float", overwrite=True)
        assert n == len(codes.retrieval_image_codes)
        d, i = mx.search_codes(client, "djsrh", codes.query_text_codes[:5].numpy(), 10)
    finally:
        client.close()
    d_ref, _ = index.search(codes.query_text_codes[:5], 10)
    np.testing.assert_array_equal(d, d_ref)  # equal distances (Milvus orders ties its own way)


@pytest.mark.slow
@pytest.mark.notebooks
def test_driver_methods_give_one_row_each_on_the_tiny_preset(tiny_runs, capsys):
    from egath_lite.driver import cli as reproduce

    methods = [m for m in available_methods()]
    rc = reproduce.main(["--preset", "tiny", "--runs-root", str(tiny_runs), "--bits", "16", "--methods", *methods])
    out = capsys.readouterr().out
    assert rc == 0
    table = out.rsplit("mAP@all (Hamming ranking", 1)[1]
    rows = [line.split("|")[2].strip() for line in table.splitlines() if line.startswith("| toy_nuswide")]
    assert sorted(rows) == sorted([*methods, "lsh", "clip_cosine"])
    nums = [
        float(x.split("±")[0])
        for line in table.splitlines()
        if line.startswith("| toy_nuswide")
        for x in line.split("|")[3:5]
    ]
    assert all(0.0 < x <= 1.0 for x in nums)
    # EGATH's cell (16 bits: not tiny_runs' cell) runs 01-03, reloading tiny_runs' artifacts; every comparison method
    # shares them; notebook 04 writes EGATH out for EGATH only
    from pathlib import Path

    from egath_lite.files import read_json

    cells = read_json(Path(out.split("\ntimings:")[1].split()[0]))["invocations"][-1]["cells"]
    records = {r["method"]: r for r in (read_json(p)["meta"] for p in cells)}
    assert [m for m, r in records.items() if r["shared_with"]] == methods[1:]
    assert {r["shared_with"] for r in records.values()} == {None, records["egath"]["executed"]}
    assert {m: r["notebook_results"]["04"]["egath_by_hand"] for m, r in records.items()} == {
        m: m == "egath" for m in methods
    }


@pytest.mark.slow
@pytest.mark.notebooks
def test_notebook_06_on_the_tiny_run(tiny_runs, tmp_path):
    import papermill as pm

    from egath_lite.driver import cli as reproduce
    from egath_lite.pipeline.runs import load_results, load_run_config

    out = tmp_path / "06.ipynb"
    pm.execute_notebook(
        str(reproduce.NOTEBOOK_DIR / "06_comparison.ipynb"),
        str(out),
        kernel_name="python3",
        parameters={"RUN_NAME": "tiny-toy_nuswide-s0", "RUNS_ROOT": str(tiny_runs), "SEEDS": [0], "BITS": [16]},
        cwd=str(reproduce.NOTEBOOK_DIR),
        progress_bar=False,
    )
    cfg = load_run_config(str(tiny_runs), "tiny-toy_nuswide-s0").replace(bits=(16,))
    r = load_results(cfg, "06_comparison")
    assert r["methods"] == list(available_methods()) and r["by_hand_check"] < 1e-6 and r["map_check"] < 1e-6
    table_rows = [line.split("|")[1].strip() for line in r["table"].splitlines()[2:]]
    assert table_rows == [*available_methods(), "lsh", "clip_cosine"]
    assert "has a higher mean mAP than every other trained method" in r["paragraph"]


def methods_covering_every_input() -> list[str]:
    """EGATH and the fewest comparison methods that, with it, read every kind of input a method reads: CLIP image
    vectors (all of them), the bag of words (EGATH), the label graph through the comparison methods' route (the first
    method with ``NEEDS_GRAPH``) and CLIP text vectors (the first with ``TEXT_INPUT = "clip"``)."""
    mods = {m: get_method(m) for m in available_methods()}
    graph = next(m for m, mod in mods.items() if m != "egath" and getattr(mod, "NEEDS_GRAPH", False))
    clip_text = next(m for m, mod in mods.items() if mod.TEXT_INPUT == "clip")
    return ["egath", graph, clip_text]


def test_the_covering_methods_read_every_kind_of_input():
    mods = {m: get_method(m) for m in methods_covering_every_input()}
    assert list(mods) == ["egath", "gcdh", "dchmt"]
    assert {mod.TEXT_INPUT for mod in mods.values()} == {"bow", "clip"}  # CLIP image vectors: every method
    assert [m for m, mod in mods.items() if getattr(mod, "NEEDS_GRAPH", False)] == ["egath", "gcdh"]


@pytest.mark.slow
@pytest.mark.notebooks
def test_driver_all_methods_on_a_real_layout_fixture(tmp_path, random_clip_checkpoint, capsys):
    """MIRFlickr-25K's release layout (real JPEGs), CLIP weights from a file, through the driver: EGATH and the
    comparison methods that read, with it, every kind of input (``methods_covering_every_input``: CLIP image vectors,
    bag of words, the label graph, CLIP text vectors) give their rows; every method's own code runs on the tiny preset
    (test_driver_methods_give_one_row_each_on_the_tiny_preset). The later cells share notebooks 01-03 with EGATH's;
    the graph method run alone in a fresh runs root (all five notebooks) gives the same row."""
    from egath_lite.driver import cli as reproduce
    from egath_lite.testing.fixtures import write_mirflickr_raw

    info = write_mirflickr_raw(tmp_path / "mir", 120, seed=0, min_label_count=2)
    methods = methods_covering_every_input()
    argv = ["--preset", "tiny", "--datasets", "mirflickr25k", "--data-root", str(info.root), "--device", "cpu"]
    argv += ["--clip-model", "egath-tiny-clip", "--clip-pretrained", str(random_clip_checkpoint)]
    argv += ["--bits", "16", "--epochs", "2"]
    argv += ["--set", "num_query=20", "--set", "num_train=60", "--set", "vocab_size=64", "--set", "gat_epochs=2"]
    argv += ["--set", "num_workers=0"]
    assert reproduce.main([*argv, "--runs-root", str(tmp_path / "runs"), "--methods", *methods]) == 0
    out = capsys.readouterr().out
    assert out.count("01-03 shared with") == len(methods) - 1
    table = out.rsplit("mAP@all (Hamming ranking", 1)[1]
    rows = {line.split("|")[2].strip(): line for line in table.splitlines() if line.startswith("| mirflickr25k")}
    assert sorted(rows) == sorted([*methods, "lsh", "clip_cosine"]), table
    assert reproduce.main([*argv, "--runs-root", str(tmp_path / "alone"), "--methods", methods[1]]) == 0
    out = capsys.readouterr().out
    assert "shared with" not in out
    alone = [
        line for line in out.rsplit("mAP@all", 1)[1].splitlines() if line.startswith(f"| mirflickr25k | {methods[1]} |")
    ]
    assert alone == [rows[methods[1]]]


def test_train_method_resumes_to_the_same_model(tmp_path, monkeypatch):
    """A run killed after its second epoch continues from the resume file to the uninterrupted run's weights."""
    from egath_lite.core.methods import djsrh
    from egath_lite.pipeline.engine import HashData
    from egath_lite.pipeline.methods import train_method

    g = torch.Generator().manual_seed(0)
    n = 64
    labels = (torch.rand(n, 4, generator=g) < 0.4).float()
    labels[torch.arange(n), torch.randint(0, 4, (n,), generator=g)] = 1.0
    data = HashData(
        image=torch.randn(n, 16, generator=g) + 2 * labels @ torch.randn(4, 16, generator=g),
        text=(torch.rand(n, 20, generator=g) < 0.3).float(),
        labels=labels,
        split={
            "train": torch.arange(0, 40),
            "val": torch.arange(40, 48),
            "query": torch.arange(48, 64),
            "retrieval": torch.arange(0, 48),
        },  # fmt: skip
    )
    cfg = get_config("tiny", runs_root=str(tmp_path), method="djsrh", epochs=3, early_stop_patience=5, device="cpu")
    full, hist = train_method(cfg, 8, data, {}, djsrh, progress=False)
    calls, real_epoch = [], djsrh.epoch

    def dies_in_third_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    resume = tmp_path / "r.pt"
    monkeypatch.setattr(djsrh, "epoch", dies_in_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        train_method(cfg, 8, data, {}, djsrh, progress=False, resume_path=resume, resume_key="k")
    monkeypatch.setattr(djsrh, "epoch", real_epoch)
    resumed, hist2 = train_method(cfg, 8, data, {}, djsrh, progress=False, resume_path=resume, resume_key="k")
    assert hist2["resumed_after_epoch"] == 2 and hist2["epochs_run"] == hist["epochs_run"] == 3
    assert hist2["loss"] == hist["loss"] and hist2["best_epoch"] == hist["best_epoch"]
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


def test_egath_adapter_is_the_package_loss_and_epoch():
    """``core.methods.egath`` adds no second EGATH: its loss is ``egath_loss`` on the batch's shared codes, its
    epoch ``egath_epoch``'s (the same B after the discrete step from the same start)."""
    import copy

    from egath_lite.core.losses import egath_loss
    from egath_lite.core.methods import egath
    from egath_lite.core.train import DiscreteCodes, egath_epoch

    g = torch.Generator().manual_seed(0)
    n, C = 24, 4
    Y = (torch.rand(n, C, generator=g) < 0.4).float()
    Y[torch.arange(n), torch.randint(0, C, (n,), generator=g)] = 1.0
    graph = {"label_emb": torch.randn(C, 12, generator=g), "edge_index": torch.tensor([[0, 1], [1, 0]])}
    cfg = egath.Config()
    cfg.hash = type(cfg.hash)(hidden_dim=16)
    cfg.gat = type(cfg.gat)(hidden=16)
    image, text = torch.randn(n, 16, generator=g), (torch.rand(n, 20, generator=g) < 0.3).float()
    torch.manual_seed(0)
    model = egath.build(16, 20, C, 8, cfg, graph=graph)
    twin = copy.deepcopy(model)
    state = egath.init_state(Y, 8, cfg, torch.Generator().manual_seed(1))
    pos = torch.tensor([3, 1, 7, 0])
    out = model(image[pos], text[pos])
    got = egath.loss(out, pos, Y[pos], state, cfg)
    want = egath_loss(out, Y[pos], state["B"][pos], cfg.loss)
    assert all(torch.equal(got[k], want[k]) for k in want)
    batches = [(p, image[p], text[p]) for p in torch.arange(n).split(8)]
    codes = DiscreteCodes(state["B"].clone(), state["H_image"].clone(), state["H_text"].clone())
    torch.manual_seed(5)
    egath.epoch(model, egath.loss, batches, Y, state, egath.optimizer(model, cfg), cfg)
    torch.manual_seed(5)
    fn = lambda o, y, b: egath_loss(o, y, b, cfg.loss)  # noqa: E731
    egath_epoch(twin, fn, batches, Y, codes, egath.optimizer(twin, cfg), cfg.mu)
    assert torch.equal(state["B"], codes.B) and torch.equal(state["H_text"], codes.H_text)


def test_driver_runs_comparison_methods_on_frozen_features_under_the_paper_preset(tmp_path):
    from egath_lite.driver import cli as reproduce
    from egath_lite.pipeline.methods import check_method

    opts = {"data_root": str(tmp_path), "clip_model": "ViT-B-32", "clip_pretrained": "openai"}
    cells = reproduce.cell_configs("paper", ["mirflickr25k"], [0], ["egath"], tmp_path, opts, methods=["egath", "jdsh"])
    assert [(c.cfg.method, c.cfg.finetune_clip) for c in cells] == [("egath", True), ("jdsh", False)]
    with pytest.raises(ValueError, match="method 'jdsh' runs on frozen CLIP features only; set finetune_clip=False"):
        check_method(cells[1].cfg.replace(finetune_clip=True))
