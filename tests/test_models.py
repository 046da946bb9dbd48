"""egath_lite.core.models: shapes, a hand-written GAT reference, masking, graph use, and bad input."""

import pytest
import torch
import torch.nn.functional as F

from egath_lite.core.models import (
    EGATH,
    CLIPTrans,
    EncoderConfig,
    GATClassifier,
    GATConfig,
    GCNClassifier,
    HashConfig,
    HashHead,
    IndependentClassifier,
    TransFC,
    binarize,
    build_classifier,
)

C, FEAT = 4, 6


def _graph(edges):
    """edge_index (2, M) from (source, target) pairs."""
    return torch.tensor(edges, dtype=torch.long).t().contiguous()


def _gat_attention_reference(conv, x, edge_index):
    """Hand-written GAT layer (Veličković et al. 2018, eq. 1–3, heads averaged) for one GATConv."""
    heads, out = conv.heads, conv.out_channels
    Wx = (x @ conv.lin.weight.t()).view(-1, heads, out)  # (N, heads, out)
    a_src, a_dst = conv.att_src[0], conv.att_dst[0]  # (heads, out)
    n = x.shape[0]
    # neighbours of i: sources j of edges j → i, plus i itself (GATConv adds self-loops)
    nbrs = {i: {i} for i in range(n)}
    for j, i in edge_index.t().tolist():
        nbrs[i].add(j)
    result = torch.zeros(n, out)
    alphas = {}
    for i in range(n):
        js = sorted(nbrs[i])
        e = torch.stack(
            [F.leaky_relu((Wx[j] * a_src).sum(-1) + (Wx[i] * a_dst).sum(-1), conv.negative_slope) for j in js]
        )
        alpha = torch.softmax(e, dim=0)  # (|N(i)|, heads)
        alphas[i] = dict(zip(js, alpha))
        result[i] = (alpha.unsqueeze(-1) * Wx[js]).sum(0).mean(0)
    return (result if conv.bias is None else result + conv.bias), alphas


def test_gat_layer_matches_hand_written_attention():
    torch.manual_seed(0)
    model = GATClassifier(
        FEAT, 3, C, hidden=8, layers=1, heads=2, dropout=0.0, negative_slope=0.2, scale="released"
    ).eval()
    E = torch.randn(C, FEAT)
    ei = _graph([(1, 0), (2, 0), (0, 1), (3, 2)])
    H, attention = model(E, ei, return_attention=True)
    expected, alphas = _gat_attention_reference(model.convs[0], E, ei)
    assert torch.allclose(H, expected, atol=1e-5)
    # the returned attention coefficients are the hand-computed ones
    att_index, alpha = attention[0]
    for (j, i), a in zip(att_index.t().tolist(), alpha):
        assert torch.allclose(a, alphas[i][j], atol=1e-5)


def test_gat_attention_sums_to_one_per_target_and_respects_graph():
    torch.manual_seed(1)
    model = GATClassifier(FEAT, 5, C, hidden=8, layers=2, heads=2, dropout=0.0).eval()
    E = torch.randn(C, FEAT)
    ei = _graph([(1, 0), (0, 1)])  # labels 2 and 3 are isolated
    H, attention = model(E, ei, return_attention=True)
    assert H.shape == (C, 5)
    for att_index, alpha in attention:
        sums = torch.zeros(C, alpha.shape[1]).index_add_(0, att_index[1], alpha)
        assert torch.allclose(sums, torch.ones_like(sums), atol=1e-6)
    # an isolated node ignores the others: perturbing node 0 leaves H[2], H[3] unchanged, H[1] changed
    E2 = E.clone()
    E2[0] += 1.0
    H2 = model(E2, ei)
    assert torch.allclose(H[2:], H2[2:], atol=1e-6)
    assert not torch.allclose(H[1], H2[1], atol=1e-4)


def test_gcn_on_self_loops_only_is_a_per_node_linear_map():
    torch.manual_seed(2)
    model = GCNClassifier(FEAT, 3, C, layers=1, dropout=0.0, scale="released").eval()
    E = torch.randn(C, FEAT)
    empty = torch.zeros(2, 0, dtype=torch.long)
    conv = model.convs[0]
    assert conv.bias is None  # no layer bias by default, as the GAT
    assert torch.allclose(model(E, empty), E @ conv.lin.weight.t(), atol=1e-5)
    with_bias = GCNClassifier(FEAT, 3, C, layers=1, bias=True, scale="released").eval()
    with torch.no_grad():
        with_bias.convs[0].bias.fill_(0.5)
    assert torch.allclose(with_bias(E, empty), E @ with_bias.convs[0].lin.weight.t() + 0.5, atol=1e-5)


def test_independent_classifier_ignores_graph():
    model = IndependentClassifier(FEAT, 3, C, scale="released")
    assert model(torch.randn(C, FEAT), _graph([(0, 1)])) is model.H
    with pytest.raises(ValueError, match="labels"):
        model(torch.randn(C + 1, FEAT))


def test_scores_are_f_times_H_transpose_plus_bias():
    model = build_classifier("gat", FEAT, 3, C, hidden=8, label_bias=True)
    with torch.no_grad():
        model.bias.copy_(torch.tensor([0.0, 1.0, 2.0, 3.0]))
    f, H = torch.randn(5, 3), torch.randn(C, 3)
    assert torch.allclose(model.scores(f, H), f @ H.t() + model.bias)


def test_clip_trans_shapes_and_errors():
    enc = CLIPTrans(16, 10, num_tokens=4, width=8, heads=2)
    assert enc(torch.randn(3, 16)).shape == (3, 10)
    with pytest.raises(ValueError, match="trans_tokens"):
        CLIPTrans(15, 10, num_tokens=4)
    with pytest.raises(ValueError, match="last dimension"):
        enc(torch.randn(3, 12))
    with pytest.raises(ValueError, match="NaN"):
        enc(torch.full((2, 16), float("nan")))


def test_trans_fc_masks_padding_and_handles_tagless_items():
    torch.manual_seed(0)
    enc = TransFC(vocab_size=12, out_dim=5, width=8, heads=2).eval()
    short = torch.zeros(1, 12)
    short[0, [1, 4]] = 1.0
    long = torch.zeros(1, 12)
    long[0, [0, 2, 3, 5, 7, 9]] = 1.0
    none = torch.zeros(1, 12)
    alone = enc(short)
    batch = enc(torch.cat([short, long, none]))
    # an item's feature does not depend on the longer tag lists padded next to it
    assert torch.allclose(alone, batch[:1], atol=1e-5)
    assert torch.isfinite(batch).all()
    assert torch.allclose(enc(long), batch[1:2], atol=1e-5)
    # an item without tags sees only [CLS]: the same output alone and in the batch
    assert torch.allclose(enc(none), batch[2:], atol=1e-5)
    with pytest.raises(ValueError, match="negative"):
        enc(-short)


def test_hash_head_fusions_and_binarize():
    f, logits = torch.randn(4, 6), torch.randn(4, C)
    for fusion, width in (("concat", 6 + C), ("concat_logits", 6 + C), ("none", 6)):
        head = HashHead(6, 16, C, fusion)
        assert head.linear.in_features == width
        h = head(f, logits)
        assert h.shape == (4, 16) and (h.abs() < 1).all()
    with pytest.raises(ValueError, match="label_fusion"):
        HashHead(6, 16, C, "sum")
    assert binarize(torch.tensor([[-0.2, 0.0, 0.7]])).tolist() == [[-1, 1, 1]]
    assert binarize(torch.zeros(1, 2)).dtype == torch.int8


def _egath(**kw):
    E = torch.randn(C, FEAT)
    ei = _graph([(0, 1), (1, 0), (2, 3)])
    return EGATH(
        16,
        20,
        E,
        ei,
        None,
        12,
        HashConfig(hidden_dim=16),
        EncoderConfig(tokens=4, width=8, heads=2),
        GATConfig(hidden=8),
        **kw,
    )


@pytest.mark.parametrize("classifier", ["gat", "gcn", "independent"])
def test_egath_forward_and_encode(classifier):
    torch.manual_seed(0)
    model = _egath(classifier=classifier)
    img, bow = torch.randn(5, 16), (torch.rand(5, 20) < 0.3).float()
    out = model(img, bow)
    assert out["h_image"].shape == (5, 12) and out["logits_text"].shape == (5, C)
    loss = out["h_image"].sum() + out["h_text"].sum() + out["logits_image"].sum()
    loss.backward()
    # the label classifier learns through both the scores and the hash layer
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.classifier.parameters())
    codes = model.encode(img, "image", batch_size=2)
    assert codes.dtype == torch.int8 and codes.shape == (5, 12) and set(codes.unique().tolist()) <= {-1, 1}
    assert model.training  # encode restores the mode
    with pytest.raises(ValueError, match="modality"):
        model.encode(img, "audio")


def test_egath_clip_text_input_and_unknown_names():
    model = _egath(text_input="clip")
    assert isinstance(model.text_encoder, CLIPTrans)
    with pytest.raises(ValueError, match="text_input"):
        _egath(text_input="words")
    with pytest.raises(ValueError, match="classifier"):
        _egath(classifier="mlp")
    with pytest.raises(ValueError, match="edge_index"):
        GATClassifier(FEAT, 3, C, hidden=8)(torch.randn(C, FEAT), torch.tensor([[0, 9], [1, 0]]))


# --------------------------------------------------------------------------------------
# The released GAT's defaults (authors' gat.py) and the options that restore our earlier layer
# --------------------------------------------------------------------------------------
def _names(module):
    return {name for name, _ in module.named_parameters()}


def test_gat_has_no_layer_bias_by_default():
    model = GATClassifier(FEAT, 3, C, hidden=8, layers=2, scale="released")
    assert all(conv.bias is None for conv in model.convs)
    assert _names(model) == {
        "convs.0.att_src",
        "convs.0.att_dst",
        "convs.0.lin.weight",
        "convs.1.att_src",
        "convs.1.att_dst",
        "convs.1.lin.weight",
    }
    with_bias = GATClassifier(FEAT, 3, C, hidden=8, layers=2, bias=True, scale="released")
    assert _names(with_bias) - _names(model) == {"convs.0.bias", "convs.1.bias"}
    assert with_bias.convs[0].bias.shape == (8,) and with_bias.convs[1].bias.shape == (3,)


def test_label_bias_is_an_option_of_every_classifier():
    for kind in ("gat", "gcn", "independent"):
        on = build_classifier(kind, FEAT, 3, C, hidden=8, label_bias=True)
        off = build_classifier(kind, FEAT, 3, C, hidden=8)  # the default: Ŝ = f Hᵀ, as the paper and the release
        assert "bias" in _names(on) and on.bias.shape == (C,)
        assert off.bias is None and "bias" not in _names(off)
        f, H = torch.randn(5, 3), torch.randn(C, 3)
        assert torch.equal(off.scores(f, H), f @ H.t())


def _train_twice(model, E, ei):
    model.train()
    torch.manual_seed(0)
    a = model(E, ei)
    torch.manual_seed(1)
    return a, model(E, ei)


def test_gat_drops_attention_only_by_default():
    E, ei = torch.randn(C, FEAT), _graph([(1, 0), (2, 0), (0, 1), (3, 2), (2, 3)])
    torch.manual_seed(3)
    a, b = _train_twice(GATClassifier(FEAT, 5, C, hidden=16, dropout=0.0), E, ei)
    assert torch.equal(a, b)  # input features are not dropped: training mode is deterministic
    torch.manual_seed(3)
    a, b = _train_twice(GATClassifier(FEAT, 5, C, hidden=16, dropout=0.0, input_dropout=0.2), E, ei)
    assert not torch.allclose(a, b)  # the earlier behaviour: node features dropped before each layer
    torch.manual_seed(3)
    a, b = _train_twice(GATClassifier(FEAT, 5, C, hidden=16, dropout=0.5), E, ei)
    assert not torch.allclose(a, b)  # attention dropout is on by default (gat_dropout)


def test_input_dropout_drops_node_features_as_before():
    # input_dropout=p: F.dropout(x, p) before each GATConv, drawn from the global RNG in that order.
    torch.manual_seed(4)
    model = GATClassifier(FEAT, 5, C, hidden=16, dropout=0.0, input_dropout=0.3, scale="released").train()
    E, ei = torch.randn(C, FEAT), _graph([(1, 0), (0, 1), (3, 2)])
    torch.manual_seed(9)
    H = model(E, ei)
    torch.manual_seed(9)
    x = F.dropout(E, 0.3, training=True)
    x = F.leaky_relu(model.convs[0](x, ei), 0.2)
    x = model.convs[1](F.dropout(x, 0.3, training=True), ei)
    assert torch.allclose(H, x, atol=1e-6)


def test_gat_initialisation_is_xavier_uniform_with_gain_1414():
    torch.manual_seed(5)
    model = GATClassifier(300, 1024, C, hidden=1024, layers=2)  # the released sizes 300 → 1024 → d
    for conv, (fan_in, fan_out) in zip(model.convs, [(300, 1024), (1024, 1024)]):
        w = conv.lin.weight.detach()
        bound = 1.414 * (6.0 / (fan_in + fan_out)) ** 0.5
        assert w.abs().max() <= bound and w.abs().max() > 0.999 * bound  # uniform on [-bound, bound]
        assert w.std().item() == pytest.approx(bound / 3**0.5, rel=0.01)  # std of U(-b, b) is b / √3
        a = torch.cat([conv.att_dst.detach().flatten(), conv.att_src.detach().flatten()])  # released a (2·out, 1)
        a_bound = 1.414 * (6.0 / (2 * 1024 + 1)) ** 0.5
        assert a.abs().max() <= a_bound
        assert a.std().item() == pytest.approx(a_bound / 3**0.5, rel=0.05)


def test_init_gain_none_restores_pyg_glorot_and_other_gains_scale():
    torch.manual_seed(6)
    pyg = GATClassifier(300, 1024, C, hidden=1024, layers=1, init_gain=None)
    torch.manual_seed(6)
    from torch_geometric.nn import GATConv

    plain = GATConv(300, 1024, heads=1, concat=False, negative_slope=0.2, dropout=0.2, bias=False)
    assert torch.equal(pyg.convs[0].lin.weight, plain.lin.weight)  # PyG's own initialisation, untouched
    assert torch.equal(pyg.convs[0].att_src, plain.att_src)
    assert pyg.convs[0].lin.weight.std().item() == pytest.approx((2.0 / 1324) ** 0.5, rel=0.01)  # glorot, gain 1
    torch.manual_seed(6)
    half = GATClassifier(300, 1024, C, hidden=1024, layers=1, init_gain=0.707)
    assert half.convs[0].lin.weight.std().item() == pytest.approx(0.707 * (2.0 / 1324) ** 0.5, rel=0.01)


def test_options_restore_the_earlier_gat_layer():
    # bias=True, input_dropout=0.2, init_gain=None, label_bias=True: the layer stack as built before,
    # GATConv(..., dropout=0.2) with PyG's bias and initialisation, node features dropped before each layer.
    torch.manual_seed(7)
    old = GATClassifier(
        FEAT,
        5,
        C,
        hidden=16,
        layers=2,
        dropout=0.2,
        bias=True,
        input_dropout=0.2,
        init_gain=None,
        label_bias=True,
        scale="released",
    )
    torch.manual_seed(7)
    from torch_geometric.nn import GATConv

    bias = torch.nn.Parameter(torch.zeros(C))  # the label bias is created first, as in _LabelBias
    convs = [
        GATConv(FEAT, 16, heads=1, concat=True, negative_slope=0.2, dropout=0.2),
        GATConv(16, 5, heads=1, concat=False, negative_slope=0.2, dropout=0.2),
    ]
    for mine, theirs in zip(old.convs, convs):
        for (n1, p1), (n2, p2) in zip(mine.named_parameters(), theirs.named_parameters()):
            assert n1 == n2 and torch.equal(p1, p2)
    assert torch.equal(old.bias, bias)
    E, ei = torch.randn(C, FEAT), _graph([(1, 0), (0, 1), (3, 2), (2, 1)])
    old.train()
    torch.manual_seed(8)
    H = old(E, ei)
    torch.manual_seed(8)
    x = E
    for i, conv in enumerate(convs):
        x = conv.train()(F.dropout(x, 0.2, training=True), ei)
        if i == 0:
            x = F.leaky_relu(x, 0.2)
    assert torch.allclose(H, x, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(dropout=1.0), "gat_dropout must be in"),
        (dict(input_dropout=-0.1), "gat_input_dropout must be in"),
        (dict(init_gain=0.0), "gat_init_gain must be a positive number or None"),
    ],
)
def test_bad_gat_options_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GATClassifier(FEAT, 3, C, hidden=8, **kwargs)


def test_egath_passes_the_gat_options_to_its_classifier():
    E, ei = torch.randn(C, FEAT), _graph([(1, 0), (0, 1)])
    small = dict(hash_cfg=HashConfig(hidden_dim=12), encoder=EncoderConfig(tokens=2, width=8, heads=2))
    gat = GATConfig(hidden=8, bias=True, input_dropout=0.1, init_gain=None, label_bias=True)
    model = EGATH(8, 10, E, ei, None, 16, gat=gat, **small)
    clf = model.classifier
    assert all(conv.bias is not None for conv in clf.convs)
    assert clf.input_dropout == 0.1 and clf.bias.shape == (C,)
    default = EGATH(8, 10, E, ei, None, 16, gat=GATConfig(hidden=8), **small).classifier
    assert all(conv.bias is None for conv in default.convs) and default.input_dropout == 0.0
    assert default.bias is None
