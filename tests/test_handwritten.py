"""What notebooks 03 and 04 write by hand equals the package: the cells tagged ``hand-written`` are read from the
notebooks' JSON, executed, and compared on small synthetic tensors with ``egath_lite.core`` (a GAT layer against
``GATConv``, a classifier epoch against ``core.train.classifier_epoch``, EGATH's loss and epoch against
``core.losses.egath_loss`` and ``core.train.egath_epoch``). Each comparison also checks that it can fail."""

import copy
import functools
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from egath_lite.core.losses import LossConfig, classification_loss, egath_loss
from egath_lite.core.models import (
    EGATH,
    EncoderConfig,
    FrozenFeatureClassifier,
    GATClassifier,
    GATConfig,
    HashConfig,
    build_classifier,
)
from egath_lite.core.train import DiscreteCodes, classifier_epoch, egath_epoch
from egath_lite.plots.training import attention_matrix

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def hand_written(name: str) -> dict:
    """The namespace after executing the code cells of ``notebooks/<name>.ipynb`` tagged ``hand-written``."""
    nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
    cells = [
        "".join(c["source"])
        for c in nb["cells"]
        if c["cell_type"] == "code" and "hand-written" in c.get("metadata", {}).get("tags", [])
    ]
    assert cells, f"{name} has no code cell tagged hand-written"
    namespace = {"torch": torch, "F": F}  # what the notebooks import before these cells
    for i, source in enumerate(cells):
        exec(compile(source, f"{name}.ipynb hand-written cell {i}", "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def nb03():
    return hand_written("03_gat_classification")


@pytest.fixture(scope="module")
def nb04():
    return hand_written("04_hash_learning")


def label_graph(C: int = 6, seed: int = 0):
    """A random directed label graph with every self-loop: edge_index (2, M) as (source j, target i) of A_ij = 1."""
    g = torch.Generator().manual_seed(seed)
    A = (torch.rand(C, C, generator=g) < 0.4).float()
    A.fill_diagonal_(1.0)
    i, j = A.nonzero().t()
    return torch.stack([j, i]), A


def labels(n: int, C: int, seed: int = 0) -> torch.Tensor:
    """Multi-hot (n, C) float labels, every item with at least one label."""
    g = torch.Generator().manual_seed(seed)
    Y = (torch.rand(n, C, generator=g) < 0.3).float()
    Y[Y.sum(1) == 0, torch.randint(C, (n,), generator=g)[Y.sum(1) == 0]] = 1.0
    return Y


def max_diff(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).detach().abs().max()) for k in b)


# --------------------------------------------------------------------------- notebook 03
@pytest.mark.parametrize("negative_slope", [0.2, 0.05])
def test_03_gat_layer_equals_gatconv_with_its_weights(nb03, negative_slope):
    edge_index, _ = label_graph(C=7)
    E = torch.randn(7, 20, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(2)
    layer = GATClassifier(20, 8, 7, layers=1, heads=1, dropout=0.0, negative_slope=negative_slope, scale="released")
    layer = layer.eval()
    conv = layer.convs[0]
    weights = (conv.lin.weight, conv.att_src[0, 0], conv.att_dst[0, 0])
    with torch.no_grad():
        H, attention = layer(E, edge_index, return_attention=True)
        H_hand, alpha = nb03["gat_layer"](E, edge_index, *weights, negative_slope=negative_slope)
        wrong, _ = nb03["gat_layer"](E, edge_index, *weights, negative_slope=negative_slope + 0.3)
    torch.testing.assert_close(H_hand, H)
    A_pyg = torch.tensor(attention_matrix(*attention[0], 7))
    A_hand = torch.tensor(attention_matrix(edge_index, alpha, 7))
    torch.testing.assert_close(A_hand, A_pyg)
    torch.testing.assert_close(A_hand.sum(1), torch.ones(7, dtype=A_hand.dtype))  # a softmax per target
    assert not torch.allclose(wrong, H, atol=1e-4)  # the comparison sees a wrong slope


@pytest.mark.parametrize("kind", ["gat", "independent"])
def test_03_classifier_epoch_by_hand_equals_core(nb03, kind):
    C, D, n, batch_size, seed = 6, 16, 90, 16, 3
    edge_index, _ = label_graph(C)
    graph = (
        torch.randn(C, 12, generator=torch.Generator().manual_seed(0)),
        edge_index,
        torch.ones(edge_index.shape[1]),
    )
    X = torch.randn(n, D, generator=torch.Generator().manual_seed(1))
    Y = labels(n, C)
    torch.manual_seed(0)  # hidden 12, attention dropout 0.2 (the released default): the masks come from the seed
    start = FrozenFeatureClassifier(build_classifier(kind, 12, D, C, hidden=12), X.mean(0), X.std(0))

    def run(by_hand: bool, lr: float = 1e-2):
        model = copy.deepcopy(start)
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=5e-4)
        generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        if by_hand:
            losses = nb03["classifier_epoch_by_hand"](model, X, Y, graph, opt, batch_size, generator)
            mean = sum(loss * len(idx) for loss, idx in zip(losses, torch.arange(n).split(batch_size))) / n
        else:
            batches = ((X[i], Y[i]) for i in torch.randperm(n, generator=generator).split(batch_size))
            mean = classifier_epoch(model, classification_loss, batches, opt, graph)
        return mean, dict(model.named_parameters())

    (loss_hand, p_hand), (loss_core, p_core) = run(True), run(False)
    assert loss_hand == pytest.approx(loss_core, rel=1e-5)
    torch.testing.assert_close(p_hand, p_core)
    assert max_diff(p_hand, dict(start.named_parameters())) > 1e-4  # the epoch trained something
    _, p_other = run(True, lr=1.1e-2)
    assert max_diff(p_other, p_core) > 1e-5  # the comparison sees another learning rate


def test_03_bce_equals_core_classification_loss(nb03):
    logits = torch.randn(20, 5, generator=torch.Generator().manual_seed(0)) * 4
    Y = labels(20, 5)
    torch.testing.assert_close(nb03["bce"](logits, Y), classification_loss(logits, Y))


# --------------------------------------------------------------------------- notebook 04
def egath_model(C: int, bits: int = 16, classifier: str = "gat") -> EGATH:
    edge_index, _ = label_graph(C)
    torch.manual_seed(0)
    return EGATH(
        24,
        30,
        torch.randn(C, 12),
        edge_index,
        None,
        bits,
        HashConfig(hidden_dim=16),
        EncoderConfig(tokens=4, width=16, heads=2),
        GATConfig(hidden=16),  # attention dropout 0.2, as released
        classifier=classifier,
    )


def pairs(n: int, C: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(n, 24, generator=g)
    text = (torch.rand(n, 30, generator=g) < 0.15).float()
    return image, text, labels(n, C, seed)


LOSS_CONFIGS = [
    LossConfig(),
    LossConfig(alpha=0.5, w_quant=1.0),
    LossConfig(w_triplet=0.0),  # no_triplet
    LossConfig(w_cosine=0.0, w_cls=2.0),  # no_cosine
]


@pytest.mark.parametrize("w", LOSS_CONFIGS, ids=lambda w: f"alpha{w.alpha}-tri{w.w_triplet}-cos{w.w_cosine}")
def test_04_loss_by_hand_equals_egath_loss(nb04, w):
    C = 5
    model = egath_model(C)
    image, text, Y = pairs(24, C)
    out = model(image, text)
    B = torch.where(torch.rand(24, 16, generator=torch.Generator().manual_seed(4)) < 0.5, -1.0, 1.0)
    mine, core = nb04["egath_loss_by_hand"](out, Y, B, w), egath_loss(out, Y, B, w)
    for name in ("total", "cls", "quant") + tuple(t for t in ("cosine", "triplet") if getattr(w, f"w_{t}")):
        torch.testing.assert_close(mine[name], core[name], msg=name)
    grads = [
        torch.autograd.grad(t["total"], model.image_hash.linear.weight, retain_graph=True)[0] for t in (mine, core)
    ]
    torch.testing.assert_close(*grads)
    other = nb04["egath_loss_by_hand"](out, Y, B, LossConfig(alpha=w.alpha + 0.1, w_quant=w.w_quant))
    assert abs((other["triplet"] - mine["triplet"]).item()) > 1e-4  # the comparison sees another margin


def test_04_triplet_of_a_batch_without_a_negative_is_zero_with_a_graph(nb04):
    h = torch.randn(6, 8, requires_grad=True)
    loss = nb04["triplet"](h, h.flip(0), torch.ones(6, 3), 0.3)  # every pair shares a label: no valid triplet
    assert loss.item() == 0.0 and loss.requires_grad


def test_04_triplet_by_hand_on_the_notebooks_two_items(nb04):
    h_image, h_text = torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.tensor([[0.6, 0.8], [1.0, 0.0]])
    Y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert float(nb04["triplet"](h_image, h_text, Y, 0.3)) == pytest.approx(0.55)  # (1.1 + 0) / 2, as in the text


def _without_key_bias(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parameters by name, without the attention layers' key bias: its gradient is zero in exact arithmetic, so
    Adam turns rounding noise into steps of up to lr in both runs (notebook 04, section 4); it changes no output."""
    named = {k: v.detach() for k, v in model.named_parameters()}
    for name, p in named.items():
        if name.endswith("self_attn.in_proj_bias"):
            named[name] = torch.cat([p[: len(p) // 3], p[2 * len(p) // 3 :]])
    return named


def _one_epoch(nb04, start, image, text, Y, B0, batches, w, mu, by_hand: bool, loss_by_hand: bool):
    """One epoch from ``start``; returns (B, H_I, H_T, parameters, means, eval outputs)."""
    model = copy.deepcopy(start)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-4)
    loss_fn = (
        functools.partial(nb04["egath_loss_by_hand"], w=w) if loss_by_hand else functools.partial(egath_loss, cfg=w)
    )
    data = [(pos, image[pos], text[pos]) for pos in batches]
    torch.manual_seed(7)  # the GAT's attention-dropout masks
    if by_hand:
        H_I, H_T = torch.zeros_like(B0), torch.zeros_like(B0)
        B, means = nb04["egath_epoch_by_hand"](model, data, Y, B0.clone(), H_I, H_T, opt, loss_fn, mu)
    else:
        codes = DiscreteCodes(B0.clone(), torch.zeros_like(B0), torch.zeros_like(B0))
        means = egath_epoch(model, loss_fn, data, Y, codes, opt, mu)
        B, H_I, H_T = codes.B, codes.H_image, codes.H_text
    with torch.no_grad():
        outputs = model.eval()(image, text)
    return B, H_I, H_T, _without_key_bias(model), means, outputs


@pytest.mark.parametrize("classifier", ["gat", "independent"])
def test_04_epoch_by_hand_equals_core_egath_epoch(nb04, classifier):
    C, N, bits, mu = 5, 70, 16, 0.5
    start = egath_model(C, bits, classifier)
    image, text, Y = pairs(N, C, seed=1)
    g = torch.Generator().manual_seed(0)
    B0 = torch.where(torch.rand(N, bits, generator=g) < 0.5, -1.0, 1.0)
    batches = [pos for pos in torch.randperm(N, generator=g).split(16) if len(pos) > 1]  # 16, 16, 16, 16, 6
    w = LossConfig()
    hand = _one_epoch(nb04, start, image, text, Y, B0, batches, w, mu, by_hand=True, loss_by_hand=True)
    core = _one_epoch(nb04, start, image, text, Y, B0, batches, w, mu, by_hand=False, loss_by_hand=False)
    B, H_I, H_T, params, means, outputs = hand
    assert torch.equal(B, core[0]) and not torch.equal(B, B0)  # the discrete step ran and agrees bit for bit
    torch.testing.assert_close(H_I, core[1])
    torch.testing.assert_close(H_T, core[2])
    torch.testing.assert_close(params, core[3])
    assert means == pytest.approx(core[4], rel=1e-5)
    torch.testing.assert_close(outputs, core[5])
    assert max_diff(params, _without_key_bias(start)) > 1e-4  # the epoch trained something
    # the loss written in the notebook also trains through core's loop (notebook 04's exercises: loss_fn=)
    mixed = _one_epoch(nb04, start, image, text, Y, B0, batches, w, mu, by_hand=False, loss_by_hand=True)
    torch.testing.assert_close(mixed[3], core[3])
    # and the comparison can fail: another margin, or another mu, gives other parameters or codes
    other = _one_epoch(nb04, start, image, text, Y, B0, batches, LossConfig(alpha=0.4), mu, True, True)
    assert max_diff(other[3], core[3]) > 1e-5
    other = _one_epoch(nb04, start, image, text, Y, B0, batches, w, 5.0, True, True)
    assert not torch.equal(other[0], core[0])


# --------------------------------------------------------------------------- one best-epoch convention
def test_training_plots_mark_the_selected_epoch_counted_from_1():
    import matplotlib

    matplotlib.use("Agg")
    from egath_lite.plots.training import plot_classifier_history, plot_hash_history

    val = [0.1, 0.5, 0.5, 0.2]  # the first best epoch is the second, counted from 1
    fig = plot_classifier_history({"gat": {"loss": [1.0, 0.9, 0.8, 0.7], "val_map": val}})
    assert fig.axes[1].collections[0].get_offsets()[0].tolist() == [2.0, 0.5]
    fig = plot_classifier_history({"gat": {"loss": [1.0] * 4, "val_map": val}}, selected={"gat": 3})
    assert fig.axes[1].collections[0].get_offsets()[0].tolist() == [3.0, 0.5]
    with pytest.raises(ValueError, match="count from 1"):
        plot_classifier_history({"gat": {"loss": [1.0] * 4, "val_map": val}}, selected={"gat": 0})
    history = {"loss": [1.0] * 4, "val_map_i2t": val, "val_map_t2i": val}
    for selected, want in ((None, 2), ({16: 4}, 4)):
        fig = plot_hash_history({16: history}, selected=selected)
        assert [line.get_xdata()[0] for ax in fig.axes for line in ax.lines if line.get_linestyle() == "--"] == [
            want
        ] * 2
