"""The graph study (benchmarks/bench_graph_study.py): shared cells really are shared, the scarcity path reproduces
the cached stages at full size, the tables compute what they say, and the attention / scarcity helpers."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_graph_study as study  # noqa: E402

from egath_lite import get_config  # noqa: E402
from egath_lite.plots import training as tplots  # noqa: E402

BITS = 16
# the tiny preset, smaller still: features (toy data, tiny CLIP) for 300 items; 200 labelled training items
SMALL = dict(toy_size=300, num_query=50, num_train=200, clip_epochs=1)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    """A runs root whose tiny seed-0 run has its features (tiny CLIP included) computed once."""
    from egath_lite.pipeline.features import ensure_features

    root = tmp_path_factory.mktemp("graph_study_runs")
    ensure_features(_cfg(root), progress=False)
    return root


def _cfg(root, **kw):
    return study.bv._cfg("tiny", str(root), 0, "toy_nuswide", "cpu", **{**SMALL, **kw})


def _codes(root, **kw):
    from egath_lite.pipeline.codes import ensure_codes

    return ensure_codes(_cfg(root, epochs=2, **kw), BITS, progress=False)["tensors"]


def _same_codes(a, b) -> bool:
    return all(torch.equal(a[k], b[k]) for k in ("query_image_codes", "query_text_codes", "retrieval_text_codes"))


# ----------------------------------------------------------------------------- the knobs a variant ignores
def test_no_gat_ignores_zeta_and_dropout_gcn_ignores_dropout_egath_reads_both(tiny_root):
    """The study trains no_gat once per seed and gcn once per (seed, ζ): their codes must not move with those knobs."""
    no_gat = [_codes(tiny_root, variant="no_gat", zeta=z, gat_dropout=p) for z, p in ((0.3, 0.2), (0.01, 0.0))]
    assert _same_codes(*no_gat)
    gcn = [_codes(tiny_root, variant="gcn", zeta=0.3, gat_dropout=p) for p in (0.2, 0.0)]
    assert _same_codes(*gcn)
    # the controls: the knobs do reach the variants that read them (else the checks above prove nothing)
    assert not _same_codes(gcn[0], _codes(tiny_root, variant="gcn", zeta=0.01, gat_dropout=0.2))
    egath = [_codes(tiny_root, variant="egath", zeta=0.3, gat_dropout=p) for p in (0.2, 0.0)]
    assert not _same_codes(*egath)
    assert study.IGNORES == {"egath": (), "no_gat": ("zeta", "gat_dropout"), "gcn": ("gat_dropout",)}


def test_scarce_training_at_the_preset_size_reproduces_ensure_codes(tiny_root):
    cfg = _cfg(tiny_root, epochs=2, variant="egath")
    _, _, tensors = study.train_scarce(cfg, cfg.num_train, BITS)
    assert _same_codes(tensors, _codes(tiny_root, variant="egath"))


def test_scarce_split_keeps_query_and_retrieval_and_shrinks_train_and_val(tiny_root):
    from egath_lite.pipeline.features import ensure_features

    cfg = _cfg(tiny_root)
    features = ensure_features(cfg, progress=False)
    data = study.scarce_data(cfg.replace(num_train=100), features)
    t = features["tensors"]
    assert torch.equal(data.split["query"], t["query_idx"].long())
    assert torch.equal(data.split["retrieval"], t["retrieval_idx"].long())
    assert len(data.split["train"]) == 90 and len(data.split["val"]) == 10  # val_fraction 0.1 of 100
    labelled = set(t["train_idx"].tolist()) | set(t["val_idx"].tolist())
    kept = set(data.split["train"].tolist()) | set(data.split["val"].tolist())
    assert kept <= labelled and not kept & set(t["query_idx"].tolist())
    # GCDH's split puts the training items right after the queries: 100 items are the first 100 of 200
    from egath_lite.data import dataset_from_config, split_from_config

    ds = dataset_from_config(cfg)
    _, train200, val200, _ = split_from_config(ds, cfg)
    perm_train = np.random.RandomState(ds.split_defaults.seed if cfg.split_seed is None else cfg.split_seed)
    full = perm_train.permutation(len(ds))[cfg.num_query : cfg.num_query + 200]
    assert set(np.concatenate([train200, val200]).tolist()) == set(full.tolist())
    assert kept == set(full[:100].tolist())


def test_scarcity_curve_at_full_size_reproduces_the_cached_classifiers(tiny_root):
    from egath_lite.pipeline.classifier import ensure_label_classifier
    from egath_lite.pipeline.features import ensure_features
    from egath_lite.pipeline.graph import ensure_graph
    from egath_lite.pipeline.results import training_split
    from egath_lite.studies.scarcity import scarcity_curve

    cfg = _cfg(tiny_root)
    features, graph = ensure_features(cfg, progress=False), ensure_graph(cfg)
    n_full = len(training_split(features)["train"])
    curve = scarcity_curve(cfg, features, graph, [60, n_full], kinds=("gat", "independent"))
    for kind in ("gat", "independent"):
        cached = ensure_label_classifier(cfg, kind, progress=False)["meta"]
        assert curve[kind]["sizes"] == [60, n_full]
        assert curve[kind]["map_image"][1] == pytest.approx(cached["map_image"], abs=1e-6)
        assert curve[kind]["map_text"][1] == pytest.approx(cached["map_text"], abs=1e-6)
        assert curve[kind]["num_edges"][1] == graph["meta"]["num_edges"]
    assert curve["gat"]["num_edges"][0] == curve["independent"]["num_edges"][0]  # one graph per size
    with pytest.raises(ValueError, match="unknown classifier"):
        scarcity_curve(cfg, features, graph, [60], kinds=("gta",))


def test_scarce_subsets_are_nested_seeded_and_keep_order():
    from egath_lite.studies.scarcity import scarce_subsets

    train, val = torch.arange(100, 200), torch.arange(300, 320)
    t10, v10 = scarce_subsets(train, val, 10, seed=3)
    t50, v50 = scarce_subsets(train, val, 50, seed=3)
    assert len(t10) == 10 and len(v10) == 2 and len(t50) == 50 and len(v50) == 10  # 20/100 of the size
    assert set(t10.tolist()) <= set(t50.tolist()) and set(v10.tolist()) <= set(v50.tolist())
    assert torch.equal(t50, t50.sort().values)
    assert torch.equal(scarce_subsets(train, val, 100, seed=3)[0], train)
    assert torch.equal(scarce_subsets(train, val, 10, seed=3)[0], t10)
    with pytest.raises(ValueError, match="size must be"):
        scarce_subsets(train, val, 101, seed=0)


# ----------------------------------------------------------------------------- grid and tables
def test_grid_has_the_shared_cells_once():
    cfg = get_config("default")
    cells = study.grid_cells(["ablation"], [0], cfg)
    # egath 2 ζ × 2 dropouts, no_gat once, gcn once per ζ
    assert len(cells) == 7
    assert sum(c[1] == "no_gat" for c in cells) == 1 and sum(c[1] == "gcn" for c in cells) == 2
    both = study.grid_cells(["ablation", "scarcity"], [0, 1, 2], cfg)
    assert len(both) == 3 * (7 + 3 * 3)  # the 5,000-item scarcity cell is the ablation cell
    assert [c[0] for c in both] == sorted(c[0] for c in both)  # seed-major: seed 0 finishes first


def _row(seed, method, zeta, drop, n, i2t, t2i):
    return dict(seed=seed, method=method, zeta=zeta, gat_dropout=drop, num_train=n, i2t=i2t, t2i=t2i, bits=32)


def test_tables_mean_std_and_paired_differences_by_hand():
    cfg = get_config("default")
    rows = []
    for s, (e, g, c) in enumerate([(0.60, 0.58, 0.59), (0.64, 0.61, 0.60), (0.62, 0.63, 0.65)]):
        rows += [
            _row(s, "egath", 0.3, 0.2, 5000, e, e),
            _row(s, "no_gat", 0.3, 0.2, 5000, g, g),
            _row(s, "gcn", 0.3, 0.2, 5000, c, c),
        ]
    table = study.scarcity_table(rows, cfg, [0, 1, 2])
    egath_line = next(line for line in table.splitlines() if line.startswith("| egath | I→T"))
    assert egath_line.endswith("| — | — | — | 0.6200 ± 0.0200 |")  # mean 0.62, std 0.02
    # egath − no_gat per seed: +0.02, +0.03, −0.01 → mean +0.0133, std 0.0208, 2 of 3 > 0
    diff = next(line for line in table.splitlines() if line.startswith("| egath − no_gat | I→T"))
    assert diff.endswith("| +0.0133 ± 0.0208 (2/3 > 0) |")
    # no_gat is shared across ζ and dropout: its one cell fills all four ablation columns
    abl = study.ablation_table(rows, cfg, [0, 1, 2])
    no_gat_line = next(line for line in abl.splitlines() if line.startswith("| no_gat ¹ | I→T"))
    assert no_gat_line.count("0.6067 ± 0.0252") == 4
    gcn_line = next(line for line in abl.splitlines() if line.startswith("| gcn ² | I→T"))
    assert gcn_line.count("—") == 2 and gcn_line.count("0.6133 ± 0.0321") == 2  # ζ 0.3 columns only


# ----------------------------------------------------------------------------- attention against D
def test_attention_edges_by_hand():
    # 3 labels; edges (source → target): 1→0, 2→0, 0→1 and the self-loops; α as GATConv lists them
    edge_index = torch.tensor([[1, 2, 0, 0, 1, 2], [0, 0, 1, 0, 1, 2]])
    alpha = torch.tensor([[0.3], [0.2], [0.4], [0.5], [0.6], [1.0]])
    D = np.array([[1.0, 0.5, 0.25], [0.8, 1.0, 0.1], [0.0, 0.0, 1.0]])
    e = tplots.attention_edges(edge_index, alpha, D)
    got = {
        (int(t), int(s)): (a, dn)
        for t, s, a, dn in zip(e["target"], e["source"], e["alpha"], e["cond_prob_normalised"])
    }
    # row 0: neighbourhood {0, 1, 2}, D = 1, .5, .25 → D̃ = 4/7, 2/7, 1/7; row 1: {0, 1}: .8, 1 → 4/9, 5/9
    expected = {
        (0, 0): (0.5, 4 / 7),
        (0, 1): (0.3, 2 / 7),
        (0, 2): (0.2, 1 / 7),
        (1, 0): (0.4, 4 / 9),
        (1, 1): (0.6, 5 / 9),
        (2, 2): (1.0, 1.0),
    }
    assert set(got) == set(expected)
    for k, (a, dn) in expected.items():
        assert got[k][0] == pytest.approx(a) and got[k][1] == pytest.approx(dn)
    assert e["self_loop"].tolist() == [t == s for t, s in zip(e["target"], e["source"])]
    assert e["cond_prob"][e["self_loop"]].tolist() == [1.0, 1.0, 1.0]


# ----------------------------------------------------------------------------- the fair grid (issue 20)
def _fair_row(seed, cell, i2t, level=0.0, n=5000, **diag):
    base = dict(h0_rank=1.0, h_rank=2.0, h0_max_cos=1.0, h_max_cos=0.5, h0_norm=8.0, share_cls=0.5, share_quant=0.1)
    return dict(seed=seed, cell=cell, label_dependence=level, num_train=n, i2t=i2t, t2i=i2t, bits=32, epochs=6,
                num_edges=15, **{**base, **diag})  # fmt: skip


def test_fair_grid_cells_and_tables_by_hand():
    cfg = get_config("default")
    cells = study.fair_cells([0, 1, 2], cfg)
    # 13 controls at dependence 0 + 3 arms × 2 more levels + 3 arms × 2 levels at 500 items, per seed
    assert len(cells) == 3 * (13 + 6 + 6) and len(set(cells)) == len(cells)
    assert cells[0] == (0, 0.0, 5000, "egath") and cells[1] == (0, 0.0, 5000, "no_gat")
    rows = []
    for s, (e, g) in enumerate([(0.50, 0.52), (0.55, 0.54), (0.60, 0.63)]):
        rows += [_fair_row(s, "egath", e, h_rank=1.0 + s), _fair_row(s, "no_gat", g)]
    pairs = study.fair_pairs_table(rows, cfg, [0, 1, 2])
    # egath − no_gat per seed: −0.02, +0.01, −0.03 → mean −0.0133, std 0.0208, 1 of 3 > 0
    line = next(x for x in pairs.splitlines() if x.startswith("| egath − no_gat |"))
    assert line == "| egath − no_gat | -0.0133 ± 0.0208 (1/3 > 0) | -0.0133 ± 0.0208 (1/3 > 0) |"
    controls = study.fair_controls_table(rows, cfg, [0, 1, 2])
    egath = next(x for x in controls.splitlines() if x.startswith("| egath |"))
    assert "| 0.5500 ± 0.0500 |" in egath and "| 1.00 → 2.00 |" in egath  # h_rank 1, 2, 3 → mean 2
    # a cell without rows is left out; a pair with one side missing shows a dash
    assert not any(x.startswith("| gcn |") for x in controls.splitlines())
    assert "| egath, w_cls 0.1 − no_gat, w_cls 0.1 | — | — |" in pairs
    knob = study.knob_table([_fair_row(0, "egath, unit scale", 0.4, level=1.0)], cfg, [0])
    assert "| egath, unit scale | I→T | — | — | 0.4000 (n=1) | — | — |" in knob
