"""Label graph: hand-computed statistics, PyG direction, the released files' mod-256 fact, no query leakage."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from egath_lite.core import label_graph as LG
from egath_lite.data import make_split
from egath_lite.data.reference import NUS_TC10_LABELS, load_glove, load_nus_tc10_labels, load_released_adjacency
from egath_lite.pipeline import graph as G
from egath_lite.pipeline.config import get_config
from egath_lite.studies import released as R

# Five items, three labels. By hand: N = (4, 3, 2); C01 = 2 (rows 0, 2), C02 = 2 (rows 2, 4),
# C12 = 1 (row 2); D = [[1, 1/2, 1/2], [2/3, 1, 1/3], [1, 1/2, 1]].
Y_HAND = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 1, 0], [1, 0, 1]], dtype=np.uint8)
C_HAND = np.array([[4, 2, 2], [2, 3, 1], [2, 1, 2]])
D_HAND = np.array([[1, 1 / 2, 1 / 2], [2 / 3, 1, 1 / 3], [1, 1 / 2, 1]])


@pytest.fixture(scope="module")
def nus_labels():
    return load_nus_tc10_labels()


# ----------------------------------------------------------------------------- statistics
def test_cooccurrence_and_conditional_probabilities_by_hand():
    C, N = LG.cooccurrence(Y_HAND)
    np.testing.assert_array_equal(C, C_HAND)
    np.testing.assert_array_equal(N, [4, 3, 2])
    assert C.dtype == np.int64
    np.testing.assert_allclose(LG.conditional_probabilities(C, N), D_HAND, rtol=0, atol=1e-15)


def test_cooccurrence_matches_a_plain_loop():
    rng = np.random.default_rng(3)
    Y = (rng.random((60, 7)) < 0.3).astype(np.uint8)
    Y[Y.sum(1) == 0, 0] = 1
    C, N = LG.cooccurrence(Y)
    for i in range(7):
        assert N[i] == sum(int(row[i]) for row in Y)
        for j in range(7):
            assert C[i, j] == sum(1 for row in Y if row[i] and row[j])


@pytest.mark.parametrize(
    "zeta, expected_edges",
    # off-diagonal D values: .5 .5 | .667 .333 | 1 .5  → count those ≥ ζ (inclusive)
    [(1 / 3, 6), (0.4, 5), (0.5, 5), (0.6, 2), (1.0, 1)],
)
def test_adjacency_threshold_is_inclusive_and_counts_edges(zeta, expected_edges):
    A = LG.adjacency(D_HAND, zeta)
    assert int(A.sum() - np.trace(A)) == expected_edges
    np.testing.assert_array_equal(np.diag(A), 1)
    assert LG.edges_vs_zeta(D_HAND, [zeta])[0] == expected_edges
    np.testing.assert_array_equal(np.diag(LG.adjacency(D_HAND, zeta, self_loops=False)), 0)


def test_adjacency_by_hand_is_directed():
    # ζ = 0.6 keeps only 1→0 (2/3) and 2→0 (1): labels 1 and 2 listen to label 0, not back.
    expected = np.array([[1, 0, 0], [1, 1, 0], [1, 0, 1]], dtype=np.float32)
    np.testing.assert_array_equal(LG.adjacency(D_HAND, 0.6), expected)


def test_edges_vs_zeta_never_rises(nus_labels):
    D = LG.conditional_probabilities(*LG.cooccurrence(nus_labels[:5000]))
    counts = LG.edges_vs_zeta(D, np.linspace(0.05, 1.0, 20))
    assert (np.diff(counts) <= 0).all() and counts[0] > counts[-1]


def test_to_edge_index_by_hand():
    edge_index, edge_weight = LG.to_edge_index(LG.adjacency(D_HAND, 0.6))
    # A's non-zeros (row i = target, column j = source), ordered by target then source
    assert edge_index.dtype == torch.int64
    assert edge_index.tolist() == [[0, 0, 1, 0, 2], [0, 1, 1, 2, 2]]
    assert edge_weight.dtype == torch.float32 and edge_weight.tolist() == [1.0] * 5


def test_pyg_message_passing_computes_A_times_X():
    """PyG sends along edge_index[0] → edge_index[1]: summing weighted messages must give A @ X."""
    from torch_geometric.nn import MessagePassing

    class WeightedSum(MessagePassing):
        def __init__(self):
            super().__init__(aggr="add")  # default flow: source_to_target

        def forward(self, x, edge_index, edge_weight):
            return self.propagate(edge_index, x=x, edge_weight=edge_weight)

        def message(self, x_j, edge_weight):
            return edge_weight[:, None] * x_j

    A = LG.reweight_adjacency(LG.adjacency(D_HAND, 0.5), 0.2)
    X = torch.tensor([[1.0, 10.0], [100.0, 1000.0], [1e4, 1e5]])
    out = WeightedSum()(X, *LG.to_edge_index(A))
    torch.testing.assert_close(out, torch.from_numpy(A) @ X)
    # ζ = 0.6: label 1 listens to label 0 only; label 0 hears nobody but itself
    out = WeightedSum()(X, *LG.to_edge_index(LG.adjacency(D_HAND, 0.6, self_loops=False)))
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.0], [1.0, 10.0], [1.0, 10.0]]))


def test_reweight_by_hand():
    # ζ = 0.5: node 0 → {1, 2}, node 1 → {0}, node 2 → {0, 1}; p = 0.2 shared among neighbours.
    expected = np.array([[0.8, 0.1, 0.1], [0.2, 0.8, 0.0], [0.1, 0.1, 0.8]], dtype=np.float32)
    A = LG.reweight_adjacency(LG.adjacency(D_HAND, 0.5), 0.2)
    np.testing.assert_allclose(A, expected, atol=1e-7)
    # ζ = 0.6: node 0 has no neighbour and keeps weight 1 on itself
    A = LG.reweight_adjacency(LG.adjacency(D_HAND, 0.6), 0.2)
    np.testing.assert_allclose(A, [[1.0, 0, 0], [0.2, 0.8, 0], [0.2, 0, 0.8]], atol=1e-7)
    np.testing.assert_allclose(A.sum(1), 1.0, atol=1e-6)


def test_build_label_graph_fields():
    g = LG.build_label_graph(Y_HAND, 0.5, ["a", "b", "c"])
    assert g.num_labels == 3 and g.num_edges == 5 and g.num_items == 5
    assert g.num_mutual_pairs == 2  # a↔b, a↔c; b→c missing (1/3 < 0.5)
    assert g.edge_index.shape == (2, 8)  # 5 edges + 3 self-loops
    assert g.isolated_labels == []
    assert LG.build_label_graph(Y_HAND, 0.6, ["a", "b", "c"]).isolated_labels == []
    with pytest.warns(UserWarning, match="never occur"):
        assert LG.build_label_graph(Y_HAND[:2], 0.5, ["a", "b", "c"]).isolated_labels == ["c"]
    assert ("b", "c") in g.edge_list() and ("c", "b") not in g.edge_list()  # c listens to b: D[c,b] = 1/2


def test_label_absent_from_training_gets_zero_row_and_warning():
    Y = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0]])
    C, N = LG.cooccurrence(Y)
    D = LG.conditional_probabilities(C, N)
    assert np.isfinite(D).all()
    np.testing.assert_array_equal(D[2], 0)
    with pytest.warns(UserWarning, match=r"\['z'\] never occur"):
        g = LG.build_label_graph(Y, 0.4, ["x", "y", "z"])
    assert g.adjacency[2].tolist() == [0, 0, 1] and g.adjacency[:, 2].tolist() == [0, 0, 1]


@pytest.mark.parametrize(
    "Y, match",
    [
        (np.array([1, 0, 1]), "2-D"),
        (np.zeros((0, 3)), "empty"),
        (np.array([[1.0, np.nan]]), "NaN"),
        (np.array([[1, 2]]), "multi-hot"),
        (np.array([[1, 0], [0, 0]]), "empty"),
    ],
)
def test_bad_label_matrices_raise(Y, match):
    with pytest.raises(ValueError, match=match):
        LG.cooccurrence(Y)


def test_bad_graph_arguments_raise():
    with pytest.raises(ValueError, match="zeta"):
        LG.adjacency(D_HAND, 0.0)
    with pytest.raises(ValueError, match="zeta"):
        LG.adjacency(D_HAND, 1.5)
    with pytest.raises(ValueError, match="square"):
        LG.adjacency(D_HAND[:2], 0.4)
    with pytest.raises(ValueError, match="inconsistent counts"):
        LG.conditional_probabilities(np.array([[1, 5], [5, 9]]), np.array([1, 9]))
    with pytest.raises(ValueError, match="binary"):
        LG.reweight_adjacency(np.full((2, 2), 0.5), 0.2)
    with pytest.raises(ValueError, match="label names"):
        LG.build_label_graph(Y_HAND, 0.4, ["a", "b"])


# ----------------------------------------------------------------------------- embeddings
def test_glove_rows_follow_label_names():
    E = G.label_embeddings("glove", "toy_nuswide", NUS_TC10_LABELS)
    assert E.shape == (10, 300) and E.dtype == np.float32
    np.testing.assert_array_equal(E, load_glove("nuswide_tc10"))
    shuffled = NUS_TC10_LABELS[::-1]
    np.testing.assert_array_equal(G.label_embeddings("glove", "toy_nuswide", shuffled), E[::-1])


def test_mir_label_order_agrees_with_shared_glove_rows():
    """README: NUS rows sky, clouds, water, lake equal MIRFlickr's rows of the same names."""
    mir = G.glove_embeddings("mirflickr25k", G.MIR_LABELS)
    nus = load_glove("nuswide_tc10")
    for name in ("sky", "clouds", "water", "lake"):
        np.testing.assert_array_equal(mir[G.MIR_LABELS.index(name)], nus[NUS_TC10_LABELS.index(name)])
    assert not np.array_equal(mir[G.MIR_LABELS.index("sea")], nus[NUS_TC10_LABELS.index("water")])


def test_label_embedding_errors():
    with pytest.raises(ValueError, match="do not match"):
        G.label_embeddings("glove", "toy_nuswide", ["sky", "cloud"] + NUS_TC10_LABELS[2:])
    with pytest.raises(ValueError, match="unknown label embedding"):
        G.label_embeddings("word2vec", "toy_nuswide", NUS_TC10_LABELS)
    with pytest.raises(ValueError, match="needs cfg"):
        G.label_embeddings("clip", "toy_nuswide", NUS_TC10_LABELS)


# ----------------------------------------------------------------------------- the released files
def test_released_nus_adj_is_all_row_counts_mod_256(nus_labels):
    released, num = load_released_adjacency("nuswide_tc10")
    Y = nus_labels.astype(bool)
    true = np.array([[int((Y[:, i] & Y[:, j]).sum()) for j in range(10)] for i in range(10)])
    assert released.dtype == np.uint8
    off = ~np.eye(10, dtype=bool)
    np.testing.assert_array_equal(released[off].astype(np.int64), true[off] % 256)
    np.testing.assert_array_equal(np.diag(released), 0)
    assert (true[off] >= 256).sum() == 82  # wrapped entries, e.g. sky–clouds
    assert true[0, 1] == 45347 and released[0, 1] == 45347 % 256
    np.testing.assert_array_equal(num.astype(np.int64), Y.sum(0))  # num = N_i, exact

    report = R.released_counts_explained(zeta=0.4)
    s = report.summary
    assert s["released_equals_all_rows_mod_256"] and not s["released_equals_all_rows"]
    assert s["released_num_equals_all_label_counts"] and s["num_wrapped_entries"] == 82
    # the released counts (≤ 255) over N_i (≥ 13,392) give D < 0.02: ML-GCN's recipe yields no edge
    assert s["edges_released"] == 0 and s["edges_train_rows"] > 0
    assert s["max_abs_cond_prob_all_vs_train"] > 0  # the query rows do move D


def test_released_counts_train_rows_are_gcdh_split(nus_labels):
    report = R.released_counts_explained(zeta=0.3)
    np.random.seed(7)
    perm = np.random.permutation(len(nus_labels))
    train = nus_labels[perm[2100:12600]].astype(np.int64)
    np.testing.assert_array_equal(report.counts_train, train.T @ train)
    assert report.num_train == 10_500


# ----------------------------------------------------------------------------- no query leakage
def _nus_split(n):
    split = make_split(n, 2100, 10500, 7)
    return split.query, split.train[:9450], split.train[9450:]


def test_query_labels_do_not_influence_the_graph(nus_labels):
    cfg = get_config("default", zeta=0.3)
    query, train, val = _nus_split(len(nus_labels))
    base = G.graph_from_labels(nus_labels, NUS_TC10_LABELS, query, train, val, cfg)
    changed = nus_labels.copy()
    changed[query] = 1 - changed[query]  # every query label flipped
    changed[query[changed[query].sum(1) == 0], 0] = 1
    other = G.graph_from_labels(changed, NUS_TC10_LABELS, query, train, val, cfg)
    np.testing.assert_array_equal(other.counts, base.counts)
    np.testing.assert_array_equal(other.adjacency, base.adjacency)
    assert torch.equal(other.edge_index, base.edge_index)
    # control: the same change on the validation rows (training items) does move the graph
    changed = nus_labels.copy()
    changed[val] = 1 - changed[val]
    changed[val[changed[val].sum(1) == 0], 0] = 1
    moved = G.graph_from_labels(changed, NUS_TC10_LABELS, query, train, val, cfg)
    assert not np.array_equal(moved.counts, base.counts)
    assert base.num_items == 10_500


def test_overlapping_query_and_train_raise():
    with pytest.raises(ValueError, match="query row"):
        LG.graph_training_rows(np.array([1, 2]), np.array([2, 3]), np.array([4]))


# ----------------------------------------------------------------------------- the stage
def _fake_data_module(labels, split):
    ds = types.SimpleNamespace(name="toy_nuswide", labels=labels, label_names=list(NUS_TC10_LABELS))
    return types.SimpleNamespace(dataset_from_config=lambda cfg: ds, split_from_config=lambda ds, cfg: split)


def test_ensure_graph_caches_and_keys(tmp_path, monkeypatch, nus_labels):
    import egath_lite.data as data_mod

    labels = nus_labels[:3000].copy()
    query, train, val = np.arange(0, 500), np.arange(500, 2500), np.arange(2500, 3000)
    fake = _fake_data_module(labels, (query, train, val, np.arange(500, 3000)))
    monkeypatch.setattr(data_mod, "dataset_from_config", fake.dataset_from_config, raising=False)
    monkeypatch.setattr(data_mod, "split_from_config", fake.split_from_config, raising=False)

    cfg = get_config("tiny", runs_root=str(tmp_path), run_name="g", zeta=0.3)
    first = G.ensure_graph(cfg)
    path = G.GRAPH_STAGE.path(cfg)
    assert first["cache_hit"] is False and first["path"] == str(path) and path.is_file()
    t = first["tensors"]
    expected = LG.build_label_graph(labels[500:3000], 0.3, NUS_TC10_LABELS)
    np.testing.assert_array_equal(t["counts"].numpy(), expected.counts)
    assert torch.equal(t["edge_index"], expected.edge_index)
    assert t["label_emb"].shape == (10, 300) and t["label_emb"].dtype == torch.float32
    assert first["meta"]["label_names"] == NUS_TC10_LABELS and first["meta"]["zeta"] == 0.3
    assert first["meta"]["num_edges"] == expected.num_edges

    # a field the graph does not depend on: cache hit; zeta: recompute
    assert G.ensure_graph(cfg.replace(bits=(8,), gat_epochs=1))["cache_hit"] is True
    assert G.ensure_graph(cfg.replace(zeta=0.5))["cache_hit"] is False
    assert G.ensure_graph(cfg.replace(zeta=0.5), force=True)["cache_hit"] is False
    rebuilt = G.ensure_graph(cfg.replace(zeta=0.5)).label_graph()  # results.graph_from_payload
    assert rebuilt.num_edges == LG.build_label_graph(labels[500:3000], 0.5).num_edges

    # a corrupt cache is rebuilt, not trusted
    path.write_bytes(b"not a torch file")
    assert G.ensure_graph(cfg)["cache_hit"] is False
    assert len(list((tmp_path / "g").glob("graph-*.pt"))) == 2  # zeta 0.3 and 0.5, side by side


def test_graph_key_depends_on_clip_fields_only_for_clip():
    glove = get_config("tiny")
    assert "clip_model" not in G.graph_key_fields(glove)
    key = G.GRAPH_STAGE.key
    assert key(glove) == key(glove.replace(clip_model="ViT-B-32", clip_epochs=9))
    clip = glove.replace(label_embedding="clip")
    assert key(clip) != key(glove)
    # the toy CLIP's training recipe changes its weights, hence the prompts' embeddings
    assert key(clip) != key(clip.replace(clip_epochs=clip.clip_epochs + 1))
    assert key(clip) != key(clip.replace(label_prompt="a picture of {}"))


def test_clip_label_embeddings_are_prompt_embeddings():
    """Random-init tiny CLIP (no training, offline): C unit vectors that depend on the prompt template."""
    from egath_lite.pipeline.features import encode_label_prompts

    cfg = get_config("tiny", clip_pretrained=None, device="cpu")
    E = G.label_embeddings("clip", "toy_nuswide", NUS_TC10_LABELS, cfg)
    assert E.shape[0] == 10 and E.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(E, encode_label_prompts(cfg, NUS_TC10_LABELS, template=cfg.label_prompt), atol=1e-6)
    assert np.abs(E[0] - E[1]).max() > 1e-3  # "sky" and "clouds" prompts differ
    other = G.label_embeddings("clip", "toy_nuswide", NUS_TC10_LABELS, cfg.replace(label_prompt="{}"))
    assert np.abs(other - E).max() > 1e-3


def test_ensure_graph_on_toy_nuswide_ignores_query_labels(tmp_path, monkeypatch):
    """End to end through egath_lite.data: flipping every query label leaves graph.pt's tensors unchanged."""
    import dataclasses

    import egath_lite.data as data_mod

    cfg = get_config("tiny", runs_root=str(tmp_path), run_name="a")
    payload = G.ensure_graph(cfg)
    ds = data_mod.dataset_from_config(cfg)
    query, train, val, _ = data_mod.split_from_config(ds, cfg)
    assert payload["meta"]["num_train_items"] == len(train) + len(val) == cfg.num_train
    C = ds.labels[np.concatenate([train, val])].astype(np.int64)
    np.testing.assert_array_equal(payload["tensors"]["counts"].numpy(), C.T @ C)

    flipped = ds.labels.copy()
    flipped[query] = 1 - flipped[query]
    flipped[query[flipped[query].sum(1) == 0], 0] = 1  # keep every row labelled
    changed = dataclasses.replace(ds, labels=flipped)
    monkeypatch.setattr(data_mod, "dataset_from_config", lambda cfg: changed)
    again = G.ensure_graph(cfg.replace(run_name="b"))
    assert again["cache_hit"] is False
    for name, tensor in payload["tensors"].items():
        assert torch.equal(tensor, again["tensors"][name]), name


def test_label_heatmaps_name_both_axes_and_keep_their_scales():
    """The three label × label figures: names on both axes, the colour scale each one promises."""
    import matplotlib

    matplotlib.use("Agg")
    from egath_lite.plots import graph as gplots

    names = ["a", "b", "c"]
    D = np.array([[1.0, 0.2, 0.5], [0.4, 1.0, 0.1], [0.9, 0.3, 1.0]])
    fig = gplots.plot_conditional_probabilities(D, names, zeta=0.5)
    ax, cbar = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == names == [t.get_text() for t in ax.get_yticklabels()]
    assert cbar.get_ylabel() == "P(column label | row label)" and ax.images[0].get_clim() == (0, 1)
    assert ax.images[0].get_array().mask.diagonal().all()  # the diagonal is masked, not drawn
    assert len(ax.patches) == 2  # D_ij >= 0.5 off the diagonal: (0, 2) and (2, 0)
    diff = gplots.plot_cond_prob_difference(D, D.T, names, "D - D^T").axes[0]
    assert diff.images[0].get_clim() == pytest.approx((-0.4, 0.4))  # symmetric: largest |D - D^T| is 0.9 - 0.5
    sim = gplots.plot_embedding_similarity(np.eye(3, 4), names).axes[0]
    assert sim.images[0].get_clim() == (0.0, 1)
    assert [t.get_text() for t in sim.get_yticklabels()] == names


# ----------------------------------------------------------------------------- every set's released file
def test_released_file_facts_show_each_sets_own_pitfall():
    nus, mir, coco = (R.released_file_facts(d, zeta=0.3) for d in ("nuswide_tc10", "mirflickr25k", "mscoco"))
    # NUS-WIDE: uint8, all 45 pairs could overflow, counts far above the 10,500 training items, no edge left
    assert nus["released_dtype"] == "uint8" and nus["pairs_that_may_have_wrapped"] == 45 == nus["pairs"]
    assert nus["counts_exceed_training_split"] and nus["max_label_count"] == 74_190 and nus["edges_released"] == 0
    # MIRFlickr: uint8 too; every pair but those with baby (179 items) may have wrapped: C(23, 2) = 253 of 276
    assert mir["released_dtype"] == "uint8" and (mir["pairs_that_may_have_wrapped"], mir["pairs"]) == (253, 276)
    num = mir["num"].astype(np.int64)
    n_over = int((num > 255).sum())
    assert mir["pairs_that_may_have_wrapped"] == n_over * (n_over - 1) // 2
    # MS-COCO: int64 (no wrap), but person's 45,174 > the 10,000 training items: not counted on the training split
    assert coco["released_dtype"] == "int64" and coco["pairs_that_may_have_wrapped"] == 0
    assert coco["most_frequent_label"] == "person" and coco["max_label_count"] == 45_174
    assert coco["counts_exceed_training_split"] and not mir["counts_exceed_training_split"]
    # the released D, by hand for one MIRFlickr pair
    adj, num = load_released_adjacency("mirflickr25k")
    i, j = G.MIR_LABELS.index("people"), G.MIR_LABELS.index("female")
    assert mir["cond_prob_released"][i, j] == pytest.approx(int(adj[i, j]) / int(num[i]))


def test_released_counts_explained_on_a_sets_own_labels():
    """MIRFlickr / MS-COCO: compared with the loaded set's labels, columns matched by name, any column order."""
    adj, num = load_released_adjacency("mirflickr25k")
    rng = np.random.default_rng(0)
    Y = (rng.random((3000, 24)) < 0.15).astype(np.uint8)
    Y[Y.sum(1) == 0, 0] = 1
    names = list(G.MIR_LABELS)
    perm = rng.permutation(24)
    report = R.released_counts_explained(
        zeta=0.3,
        dataset="mirflickr25k",
        labels=Y[:, perm],
        label_names=[names[k] for k in perm],
        train_rows=np.arange(1000),
    )
    np.testing.assert_array_equal(report.counts_all, Y.T.astype(np.int64) @ Y)  # back in the file's row order
    np.testing.assert_array_equal(report.counts_train, Y[:1000].T.astype(np.int64) @ Y[:1000])
    assert report.summary["released_equals_all_rows"] is False and report.num_train == 1000
    with pytest.raises(ValueError, match="needs that set's real labels: pass labels=ds.labels"):
        R.released_counts_explained(dataset="mscoco")
    with pytest.raises(ValueError, match="must name the 80 labels"):
        R.released_counts_explained(dataset="mscoco", labels=np.ones((5, 80)), label_names=names)
    coco = np.zeros((20, 80), np.uint8)
    coco[:, 0] = 1
    from egath_lite.data.reference import MSCOCO_LABELS_BY_ID

    rep = R.released_counts_explained(
        dataset="mscoco", labels=coco, label_names=MSCOCO_LABELS_BY_ID, train_rows=np.arange(10)
    )
    assert rep.counts_all[rep.label_names.index("person"), rep.label_names.index("person")] == 20


def test_glove_for_every_set():
    from egath_lite.data.reference import MSCOCO_LABELS, MSCOCO_LABELS_BY_ID

    coco = G.label_embeddings("glove", "mscoco", MSCOCO_LABELS_BY_ID)
    np.testing.assert_array_equal(
        coco[MSCOCO_LABELS_BY_ID.index("person")], load_glove("nuswide_tc10")[NUS_TC10_LABELS.index("person")]
    )
    np.testing.assert_array_equal(G.glove_embeddings("mscoco", MSCOCO_LABELS), load_glove("mscoco"))
    assert G.label_embeddings("glove", "mirflickr25k", G.MIR_LABELS).shape == (24, 300)
    with pytest.raises(ValueError, match="no GloVe vectors for dataset 'cifar'"):
        G.glove_embeddings("cifar", ["a"])


@pytest.mark.parametrize("C", [10, 24, 80])
def test_figures_stay_readable_at_10_24_and_80_labels(C):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from egath_lite.plots import data as dplots
    from egath_lite.plots import graph as gplots

    names = [f"label{k:02d}" for k in range(C)]
    rng = np.random.default_rng(C)
    Y = (rng.random((300, C)) < 0.2).astype(np.uint8)
    Y[Y.sum(1) == 0, 0] = 1
    D = LG.conditional_probabilities(*LG.cooccurrence(Y))
    figs = {
        "cond_prob": gplots.plot_conditional_probabilities(D, names, zeta=0.3),
        "difference": gplots.plot_cond_prob_difference(D, D.T, names, "D - D^T"),
        "similarity": gplots.plot_embedding_similarity(rng.normal(size=(C, 8)), names),
        "graph": gplots.plot_label_graph(LG.adjacency(D, 0.3), names, Y.sum(0), D),
        "frequencies": gplots.plot_label_frequencies({"a": Y.mean(0), "b": Y[:100].mean(0)}, names),
        "cooccurrence": dplots.cooccurrence_comparison(Y, Y[:150], names),
    }
    for kind, fig in figs.items():
        fig.canvas.draw()  # renders without error
        w, h = fig.get_size_inches()
        assert w <= 20 and h <= 14, (kind, w, h)  # a notebook page, not a 46-inch poster
        for ax in fig.axes:
            labels = [t for t in ax.get_xticklabels() + ax.get_yticklabels() if t.get_text().startswith("label")]
            if not labels:
                continue
            shown = sorted({t.get_text() for t in labels})
            assert 0.4 * C <= len(shown) <= C, (kind, len(shown))  # all names, or every other one, never a blur
            assert all(t.get_fontsize() >= 5 for t in labels), kind
            if C <= 24:
                assert len(shown) == C, kind
            # named ticks along one axis do not overlap once drawn
            xt = [t for t in ax.get_xticklabels() if t.get_text()]
            boxes = sorted((t.get_window_extent().x0, t.get_window_extent().x1) for t in xt)
            assert all(b[0] >= a[1] - 1.5 for a, b in zip(boxes, boxes[1:])), kind
        plt.close(fig)
    graph_texts = [t.get_text() for t in figs["graph"].axes[0].texts]
    assert sorted(graph_texts) == names or C <= 16  # outside labels for large C, one per node
    with pytest.raises(ValueError, match="one value per label"):
        gplots.plot_label_frequencies({"toy": np.zeros(24), "NUS": np.zeros(10)}, names[:24] if C >= 24 else names)


def test_released_file_figure_for_every_set():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from egath_lite.plots import graph as gplots

    for dataset in ("nuswide_tc10", "mirflickr25k", "mscoco"):
        facts = R.released_file_facts(dataset, zeta=0.3)
        fig = gplots.plot_released_file(facts)
        fig.canvas.draw()
        bars = fig.axes[0].patches
        assert len(bars) == len(facts["label_names"])
        red = sum(1 for b in bars if b.get_facecolor()[0] > 0.8)
        assert red == int((facts["num"].astype(np.int64) > facts["benchmark_num_train"]).sum())
        plt.close(fig)


def test_gallery_titles_stay_short_with_many_labels():
    from egath_lite.plots.data import label_caption

    assert label_caption(["person", "car"]) == "person, car"
    assert label_caption(["person", "car", "bus", "truck", "dog", "cat"], wrap=40) == "person, car, bus, truck, +2"
    assert (
        label_caption(["tennis racket", "baseball glove", "sports ball", "person"], wrap=22)
        == "tennis racket,\nbaseball glove, sports …"
    )
    assert label_caption([]) == "(no label)"


# ----------------------------------------------------------------------------- edges against ζ
def _edge_counts_by_loop(Y: np.ndarray, zetas) -> list[int]:
    """The formula written out: pairs i != j with (sum_k Y_ki Y_kj) / (sum_k Y_ki) >= zeta."""
    n, c = Y.shape
    out = []
    for z in zetas:
        edges = 0
        for i in range(c):
            n_i = sum(int(Y[k, i]) for k in range(n))
            for j in range(c):
                if i != j and n_i > 0:
                    both = sum(int(Y[k, i]) * int(Y[k, j]) for k in range(n))
                    edges += both / n_i >= z
        out.append(edges)
    return out


def test_edge_counts_by_hand_and_against_a_plain_loop():
    # Y_HAND: off-diagonal D values .5 .5 .667 .333 1 .5 (see above)
    np.testing.assert_array_equal(LG.edge_counts(Y_HAND, [0.01, 1 / 3, 0.6, 1.0]), [6, 6, 2, 1])
    rng = np.random.default_rng(11)
    Y = (rng.random((80, 6)) < 0.35).astype(np.uint8)
    Y[Y.sum(1) == 0, 2] = 1
    zetas = [0.01, 0.1, 0.25, 0.3, 0.5, 0.75, 1.0]
    got = LG.edge_counts(Y, zetas)
    assert got.dtype == np.int64
    assert got.tolist() == _edge_counts_by_loop(Y, zetas)


def test_edge_counts_on_the_real_nus_labels(nus_labels):
    """GCDH's NUS-WIDE training split: nearly complete at its own ζ = 0.01 (83 of 90), 14 edges at 0.3."""
    train = make_split(len(nus_labels), **R.GCDH_NUS_SPLIT).train
    np.testing.assert_array_equal(LG.edge_counts(nus_labels[train], [0.01, 0.3, 0.4]), [83, 14, 10])
    np.testing.assert_array_equal(LG.edge_counts(nus_labels, [0.01, 0.3]), [86, 14])  # all 186,577 rows
    # the loop on a slice of the real labels agrees as well
    sub = nus_labels[train[:400]]
    assert LG.edge_counts(sub, [0.01, 0.3]).tolist() == _edge_counts_by_loop(sub, [0.01, 0.3])


@pytest.mark.parametrize("zetas", [[], [0.0], [1.5], [float("nan")], [-0.1, 0.3]])
def test_edge_counts_rejects_bad_thresholds(zetas):
    with pytest.raises(ValueError, match="zetas must be"):
        LG.edge_counts(Y_HAND, zetas)
