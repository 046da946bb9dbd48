"""Issue 20, a fair test of the label graph: the classifier scale option, GATv2 and static attention, the toy
generator's ``label_dependence`` knob, and the study's diagnostics against hand-computed values."""

from __future__ import annotations

import hashlib
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from egath_lite.core.models import GATConfig, build_classifier
from egath_lite.pipeline.runs import load_results
from egath_lite.studies.graph_fair import effective_rank, loss_shares, max_row_cosine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def _glove():
    from egath_lite.data.reference import NUS_TC10_LABELS
    from egath_lite.pipeline.graph import glove_embeddings

    return torch.from_numpy(glove_embeddings("toy_nuswide", NUS_TC10_LABELS)), list(NUS_TC10_LABELS)


def _ring(C: int) -> torch.Tensor:
    pairs = [(i, (i + 1) % C) for i in range(C)]
    return torch.tensor(pairs + [(j, i) for i, j in pairs]).t()


# ----------------------------------------------------------------------------- classifier scale
@pytest.mark.parametrize("kind", ["gat", "gcn", "independent"])
@pytest.mark.parametrize("conv", ["gat", "gatv2"])
def test_unit_scale_gives_every_kind_rows_of_norm_one_at_initialisation(kind, conv):
    E, _ = _glove()  # raw GloVe rows, norm 5.8 to 7.4: what makes the released GAT start far from norm 1
    torch.manual_seed(0)
    H = build_classifier(kind, 300, 64, 10, hidden=32, conv=conv, scale="unit")(E, _ring(10))
    assert torch.allclose(H.norm(dim=1), torch.ones(10), atol=1e-5)
    torch.manual_seed(0)
    released = build_classifier(kind, 300, 64, 10, hidden=32, conv=conv, scale="released")(E, _ring(10))
    # the same directions: unit scale only rescales each row (τ = 1 at the start)
    assert torch.allclose(F.normalize(released, dim=1), H, atol=1e-5)


def test_released_scale_differs_between_kinds_and_unit_scale_has_one_learned_temperature():
    E, _ = _glove()
    torch.manual_seed(0)
    gat = build_classifier("gat", 300, 512, 10, scale="released")(E, _ring(10)).norm(dim=1).mean().item()
    ind = build_classifier("independent", 300, 512, 10, scale="released")(E, _ring(10)).norm(dim=1).mean().item()
    assert gat > 3 * ind  # the confound of issue 20: the released GAT's rows start several times longer
    clf = build_classifier("gat", 300, 16, 10, hidden=8, scale="unit")
    assert clf.temperature.requires_grad and float(clf.temperature.detach()) == 1.0
    with torch.no_grad():
        clf.temperature.fill_(2.5)
    assert torch.allclose(clf(E, _ring(10)).norm(dim=1), torch.full((10,), 2.5), atol=1e-5)
    assert build_classifier("gat", 300, 16, 10, hidden=8, scale="released").temperature is None
    with pytest.raises(ValueError, match="classifier_scale"):
        build_classifier("independent", 300, 16, 10, scale="half")


def test_config_fields_come_from_the_core_dataclass():
    from egath_lite import get_config
    from egath_lite.pipeline.config import ConfigError, component, component_fields

    assert {"gat_conv", "classifier_scale"} <= set(component_fields(GATConfig))
    cfg = get_config("tiny", gat_conv="gatv2", classifier_scale="unit")
    assert component(cfg, GATConfig) == GATConfig(conv="gatv2", scale="unit", hidden=128)
    with pytest.raises(ConfigError, match="gat_conv"):
        get_config("tiny", gat_conv="gat3")
    # the paper's tables came from the released layer: its preset says so, whatever the default becomes
    assert {get_config("paper", dataset=d).classifier_scale for d in ("mirflickr25k", "nuswide_tc10")} == {"released"}


# ----------------------------------------------------------------------------- GATv2 and static attention
def _attention(conv: str, E, edge_index, seed: int = 0):
    torch.manual_seed(seed)
    m = build_classifier("gat", E.shape[1], 8, E.shape[0], hidden=8, layers=1, conv=conv, dropout=0.0).eval()
    _, att = m(E, edge_index, return_attention=True)
    idx, alpha = att[0]
    return {(int(s), int(t)): float(a) for s, t, a in zip(idx[0], idx[1], alpha[:, 0].detach())}


def test_gat_attention_is_static_and_gatv2_attention_is_not():
    """Brody et al.: GATConv ranks a shared neighbourhood the same way for every target; GATv2Conv need not.

    On a complete graph every target attends to all C nodes: GATConv gives all of them one ranking of the sources
    (LeakyReLU is monotone and the target's term is the same for all its edges), GATv2Conv several.
    """
    torch.manual_seed(1)
    C = 6
    E = torch.randn(C, 16) * 3
    complete = torch.tensor([(i, j) for i in range(C) for j in range(C) if i != j]).t()
    orders = {}
    for conv in ("gat", "gatv2"):
        a = _attention(conv, E, complete)
        # with self-loops every target attends to all C nodes: its ranking of the sources
        orders[conv] = {tuple(sorted(range(C), key=lambda s, t=t: -a[(s, t)])) for t in range(C)}
    assert len(orders["gat"]) == 1  # one ranking for all targets
    assert len(orders["gatv2"]) > 1


# four labels a, b, x, y on a complete graph (each layer adds self-loops): a and b have one neighbourhood {a, b, x, y}
FOUR = torch.tensor([(i, j) for i in range(4) for j in range(4) if i != j]).t()


def _trained_apart(conv: str, seed: int, steps: int = 100) -> tuple[float, float]:
    """Rows a, b of the released classifier (2 layers, 1 head, gain 1.414; attention dropout off) trained to tell
    a from b: two items with orthonormal features, item 0 shows a, item 1 shows b, BCE on the scores f Hᵀ (EGATH's
    classification term), Adam lr 1e-2. Returns (cosine of H_a and H_b, final BCE; ln 2 = 0.693 when H_a = H_b)."""
    g = torch.Generator().manual_seed(seed)
    E, items = torch.randn(4, 16, generator=g), torch.linalg.qr(torch.randn(32, 2, generator=g))[0].t()
    torch.manual_seed(seed)
    m = build_classifier("gat", 16, 32, 4, hidden=32, conv=conv, dropout=0.0, scale="released")
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = F.binary_cross_entropy_with_logits(items @ m(E, FOUR)[:2].t(), torch.eye(2))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        H = m(E, FOUR)
        bce = F.binary_cross_entropy_with_logits(items @ H[:2].t(), torch.eye(2))
        return float(F.cosine_similarity(H[0], H[1], dim=0)), float(bce)


def test_two_labels_with_identical_neighbourhoods_trained_apart_stay_together_under_gat_not_gatv2():
    """The issue's claim, where it holds: trained to give a and b different rows, the released two-layer GAT keeps
    them at cosine > 0.99 (and the BCE at chance) in most seeds; GATv2 separates them in most seeds.

    Why. In ``GATConv`` the score of j → i is LeakyReLU(s_j + t_i) with t_i = a_dstᵀWh_i. On one linear piece t_i
    cancels in the softmax, so a and b (same neighbours) get the same attention, exactly, unless the kink at 0
    falls between s_j + t_a and s_j + t_b for some j. In the second layer the messages W h_j are the same for both
    targets, so row a can differ from row b only if that layer's kink separates t_a from t_b, and t_a ≠ t_b needs
    the first layer's kink to have made h_a ≠ h_b: the gradient that would pull the rows apart is exactly zero
    unless both layers straddle their kinks, and small (a product of two small differences) where they do.
    ``GATv2Conv`` scores aᵀLeakyReLU(W_l h_j + W_r h_i), per dimension: the target moves the ranking itself.

    Measured (this construction, seeds 0–19, 150 steps; 300 steps gave the same seeds): GAT cosine > 0.99 in
    18 of 20 seeds (seeds 4 and 13 escape, to −0.34 and +0.03); GATv2 < 0.99 in 19 of 20 (−0.73 to −0.91; seed 9
    stays at 1.000). Adam lr 1e-3, 300 steps: GAT 16 of 20, GATv2 19 of 20. So it is a tendency of training, not a
    theorem; and it needs the released depth: with ONE layer a free W turns any attention difference the kink
    allows into any pair of rows, and a single GAT layer separated a from b in 7 of 8 seeds (GATv2 8 of 8).
    Asserted here, seeds 0–5 at 100 steps: GAT 5 of 6 above 0.99 (seed 4 escapes, −0.30), GATv2 6 of 6 at −0.74 to
    −0.90 with BCE < 1e-3; about 7 s of CPU.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # four nodes: one thread is fastest, and not at the mercy of a busy machine
    try:
        gat = [_trained_apart("gat", s) for s in range(6)]
        v2 = [_trained_apart("gatv2", s) for s in range(6)]
    finally:
        torch.set_num_threads(before)
    assert sum(c > 0.99 for c, _ in gat) >= 5
    assert all(bce == pytest.approx(math.log(2), abs=1e-3) for c, bce in gat if c > 0.99)  # could not tell a from b
    assert sum(c < 0.99 for c, _ in v2) >= 5
    assert all(bce < 0.05 for c, bce in v2 if c < 0.99)  # told them apart
    assert all(c < -0.5 for c, _ in v2 if c < 0.99)  # and point apart


def test_identical_neighbourhoods_collapse_under_gat_on_the_toy_graph():
    """On toy_nuswide's graph (ζ 0.3) water and lake have the same neighbourhood: their rows of H coincide."""
    from egath_lite.core.label_graph import build_label_graph
    from egath_lite.data.reference import load_nus_tc10_labels

    E, names = _glove()
    Y = load_nus_tc10_labels()[np.random.default_rng(0).choice(186_577, 5_000, replace=False)]
    ei = torch.as_tensor(build_label_graph(Y, zeta=0.3).edge_index)
    w, lake = names.index("water"), names.index("lake")
    nb = {i: set(ei[0][ei[1] == i].tolist()) for i in (w, lake)}
    assert nb[w] == nb[lake] and len(nb[w]) >= 3  # the premise: the same neighbours (self-loops included)
    for seed in range(3):
        torch.manual_seed(seed)
        H = build_classifier("gat", 300, 512, 10, scale="released").eval()(E, ei)
        assert F.cosine_similarity(H[w], H[lake], dim=0) > 0.99
        other = names.index("person")
        assert F.cosine_similarity(H[w], H[other], dim=0) < 0.99  # not every pair: the neighbourhood decides
        assert effective_rank(H) > 3
    # GCDH's NUS-WIDE threshold: a nearly complete graph, on which every classifier starts as nearly one vector,
    # under GATv2 too (its attention can depend on the target, but untrained it is nearly uniform)
    dense = torch.as_tensor(build_label_graph(Y, zeta=0.01).edge_index)
    assert dense.shape[1] >= 90  # ≥ 80 of the 90 edges, plus the self-loops
    for conv in ("gat", "gatv2"):
        torch.manual_seed(0)
        assert effective_rank(build_classifier("gat", 300, 512, 10, conv=conv, scale="released").eval()(E, dense)) < 1.3


# ----------------------------------------------------------------------------- label_dependence
# sha256 of generate_toy_nuswide(300, seed=3, image_size=32) (images, labels, label_rows, texts), recorded
# with the generator of main before label_dependence existed (commit f1e152b)
INDEPENDENT_SHA = "3884851fd825b431e885c50e5b1d81151698a30dc5005b442779615163cdc41f"


def _digest(d) -> str:
    h = hashlib.sha256()
    for k in ("images", "labels", "label_rows"):
        h.update(np.ascontiguousarray(d[k]).tobytes())
    h.update("\n".join(d["texts"]).encode())
    return h.hexdigest()


def test_label_dependence_zero_is_todays_data_byte_for_byte_and_one_draws_lakes_as_water():
    from egath_lite.data.reference import NUS_TC10_LABELS
    from egath_lite.data.toy_nuswide import generate_toy_nuswide

    d0 = generate_toy_nuswide(300, seed=3, image_size=32, progress=False, label_dependence=0.0)
    assert _digest(d0) == INDEPENDENT_SHA
    d1 = generate_toy_nuswide(300, seed=3, image_size=32, progress=False, label_dependence=1.0)
    # the label rows are the same real NUS-WIDE rows at every level
    assert np.array_equal(d1["labels"], d0["labels"]) and np.array_equal(d1["label_rows"], d0["label_rows"])
    col = {n: i for i, n in enumerate(NUS_TC10_LABELS)}
    lake = d0["labels"][:, col["lake"]] > 0
    assert lake.sum() > 5
    # the renderer draws a batch's parameters together: a changed item changes its batch's random draws
    assert not np.array_equal(d0["images"], d1["images"])

    # level 1: a lake item is tagged "lake" only as a stray tag of an absent label (3% per item), at level 0
    # when mentioned (85%)
    def tagged(texts, words=("lake", "pond", "shore")):
        return sum(any(w in t.split() for w in words) for t, y in zip(texts, lake) if y)

    assert tagged(d0["texts"]) >= 0.6 * lake.sum() and tagged(d1["texts"]) <= 0.2 * lake.sum()
    assert tagged(d1["texts"], ("water", "sea", "ocean", "river")) >= tagged(
        d0["texts"], ("water", "sea", "ocean", "river")
    )


def test_dependent_labels_follow_the_stated_rule_on_the_real_rows():
    from egath_lite.data.reference import NUS_TC10_LABELS, load_nus_tc10_labels
    from egath_lite.data.toy_nuswide import DEPENDENCE_THRESHOLD, DEPENDENT_LABELS

    Y = load_nus_tc10_labels().astype(np.float64)
    C = Y.T @ Y
    D = C / np.diag(C)[:, None]
    np.fill_diagonal(D, 0)
    rule = {NUS_TC10_LABELS[i]: NUS_TC10_LABELS[int(D[i].argmax())] for i in range(10) if D[i].max() >= 0.8}
    assert rule == DEPENDENT_LABELS and DEPENDENCE_THRESHOLD == 0.8


def test_label_dependence_config_reaches_the_data_and_is_validated(tmp_path):
    from egath_lite import get_config
    from egath_lite.data import dataset_from_config
    from egath_lite.data.registry import dataset_fingerprint
    from egath_lite.pipeline.config import ConfigError

    cfg = get_config("tiny", toy_size=40, runs_root=str(tmp_path), image_size=16)
    half = cfg.replace(label_dependence=0.5)
    assert dataset_fingerprint(cfg) != dataset_fingerprint(half)
    assert dataset_from_config(half).info["label_dependence"] == 0.5
    with pytest.raises(ConfigError, match="label_dependence"):
        get_config("tiny", label_dependence=1.5)


# ----------------------------------------------------------------------------- the study's diagnostics
def test_effective_rank_and_max_cosine_by_hand():
    assert effective_rank(torch.eye(4)) == pytest.approx(4.0)
    assert effective_rank(torch.ones(5, 3)) == pytest.approx(1.0)
    # singular values 3 and 1: p = (0.75, 0.25), exp(H) = exp(-(.75 ln .75 + .25 ln .25))
    expected = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert effective_rank(torch.diag(torch.tensor([3.0, 1.0]))) == pytest.approx(expected)
    H = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, -1.0]])
    assert max_row_cosine(H) == pytest.approx(1 / math.sqrt(2))


def _scale_rows(diffs: dict[str, list[float]], seeds=(0, 1)) -> list[dict]:
    """Rows of both scales whose unit − released difference is ``diffs[variant][column]`` in every seed."""
    from egath_lite.studies.graph_fair import SCALE_COLUMNS

    rows = [{"method": "CLIP (continuous)", "bits": 16, "seed": 0, "i2t": 0.5, "t2i": 0.5}]  # ignored
    for variant, ds in diffs.items():
        for s in seeds:
            for sc in ("released", "unit"):
                row = {"method": variant, "classifier_scale": sc, "seed": s}
                for bits in (16, 32, 64):
                    r = {**row, "bits": bits}
                    for (b, key), d in zip(SCALE_COLUMNS, ds):
                        if b == bits:
                            r[key] = 0.5 + 0.01 * s + (d if sc == "unit" else 0.0)
                    rows.append(r)
    return rows


def test_unit_scale_decision_follows_the_rule_fixed_before_the_measurement():
    from egath_lite.studies.graph_fair import unit_scale_decision

    # egath: mean (0.02 + 0.01 + 0.01 + 0.01 - 0.004 - 0.006) / 6 = 0.04 / 6 > 0, 4 of 6 positive; no_gat −0.004
    rows = _scale_rows({"egath": [0.02, 0.01, 0.01, 0.01, -0.004, -0.006], "no_gat": [-0.004] * 6})
    ok = unit_scale_decision(rows, seeds=(0, 1))
    assert ok["switch"] and ok["egath_positive"] == 4
    assert ok["egath_mean"] == pytest.approx(0.04 / 6) and ok["no_gat_mean"] == pytest.approx(-0.004)
    assert ok["columns"]["egath"][(64, "t2i")] == pytest.approx(-0.006) and ok["seeds"]["egath"][(16, "i2t")] == [0, 1]
    # each condition alone blocks it: 3 of 6 positive (mean still > 0), mean ≤ 0, no_gat below −0.005
    three = unit_scale_decision(
        _scale_rows({"egath": [0.05, 0.01, 0.01, -0.001, -0.004, -0.006], "no_gat": [0.0] * 6}), seeds=(0, 1)
    )
    assert three["egath_mean"] > 0 and three["egath_positive"] == 3 and not three["switch"]
    mean = unit_scale_decision(_scale_rows({"egath": [0.001] * 4 + [-0.01, -0.01], "no_gat": [0.0] * 6}), seeds=(0, 1))
    assert mean["egath_positive"] == 4 and mean["egath_mean"] < 0 and not mean["switch"]
    no_gat = unit_scale_decision(_scale_rows({"egath": [0.02] * 6, "no_gat": [-0.006] * 6}), seeds=(0, 1))
    assert not no_gat["switch"]
    # an incomplete measurement is not read as a decision
    with pytest.raises(ValueError, match=r"64 bits, i2t: seed\(s\) \[0, 1\] not measured"):
        unit_scale_decision([r for r in rows if r["bits"] != 64], seeds=(0, 1))
    with pytest.raises(ValueError, match=r"seed\(s\) \[2\] not measured at both scales"):  # the rule's 3 seeds
        unit_scale_decision(rows)


def test_the_decision_from_the_command_line(tmp_path, capsys):
    import json

    from egath_lite.studies.graph_fair import main

    path = tmp_path / "scale.jsonl"
    rows = _scale_rows({"egath": [0.02, 0.01, 0.01, 0.01, -0.004, -0.006], "no_gat": [-0.004] * 6})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert main([str(path), "--seeds", "0", "1"]) == 0
    out = capsys.readouterr().out
    assert "| egath | +0.0200 | +0.0100 | +0.0100 | +0.0100 | -0.0040 | -0.0060 | +0.0067 | 4 of 6 |" in out
    assert "| no_gat | -0.0040 |" in out and 'switch the default to "unit"' in out and "seeds [0, 1]" in out
    path.write_text("\n".join(json.dumps(r) for r in rows if r.get("bits") != 64) + "\n")  # still running
    assert main([str(path), "--seeds", "0", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not measured at both scales" in err and "wait until" in err
    path.write_text('{"method": "egath"\n')
    assert main([str(path)]) == 2 and "line 1 is not JSON" in capsys.readouterr().err


def test_loss_shares_by_hand():
    hist = {"loss_cosine": [9.0, 0.2], "loss_triplet": [9.0, 0.1], "loss_cls": [9.0, 0.3], "loss_quant": [9.0, 0.4]}
    w = {"w_cosine": 1.0, "w_triplet": 1.0, "w_cls": 0.5, "w_quant": 0.0}
    shares = loss_shares(hist, w)  # last epoch: 0.2, 0.1, 0.15, 0 of 0.45
    assert shares == pytest.approx({"cosine": 0.2 / 0.45, "triplet": 0.1 / 0.45, "cls": 0.15 / 0.45, "quant": 0.0})


# ----------------------------------------------------------------------------- GATv2 through the driver and notebook 03
def _conv_layers(payload) -> set[str]:
    """The parameter names of a classifier artifact's GAT layers, e.g. ``convs.0.lin_l.weight``."""
    return {k.split("classifier.", 1)[1] for k in payload["tensors"] if k.startswith("state.classifier.convs.")}


@pytest.mark.slow
@pytest.mark.notebooks
def test_gatv2_runs_through_the_driver_and_notebook_03(tiny_runs, tmp_path, capsys):
    """``--set gat_conv=gatv2`` on the tiny preset at 16 bits, in a fresh runs root that holds a copy of the shared
    tiny run (so notebooks 01 and 02 reuse its features and graph instead of training the tiny CLIP again):
    notebook 03 trains a GATv2 classifier (GATv2Conv's two weights lin_l, lin_r and one attention vector, where the
    released GATConv has lin, att_src, att_dst), notebook 04 hashes with it, and the driver's table has the row."""
    import shutil

    from egath_lite.driver import cli
    from egath_lite.pipeline.classifier import CLASSIFIER_STAGE

    runs = tmp_path / "runs"
    shutil.copytree(tiny_runs, runs)
    assert cli.main(["--preset", "tiny", "--runs-root", str(runs), "--bits", "16", "--set", "gat_conv=gatv2"]) == 0
    table = capsys.readouterr().out.rsplit("mAP@all (Hamming ranking", 1)[1]
    assert "| I→T 16 | T→I 16 |" in table and "I→T 32" not in table
    (row,) = [line for line in table.splitlines() if line.startswith("| toy_nuswide | egath |")]
    shown = [float(x) for x in row.split("|")[3:5]]

    options = {"device": "auto", "bits": [16], **cli._parse_sets(["gat_conv=gatv2"])}
    (cell,) = cli.cell_configs("tiny", ["toy_nuswide"], [0], ["egath"], runs, options)
    cfg = cell.cfg
    assert cfg.gat_conv == "gatv2"
    r3, r4 = load_results(cfg, "03_gat_classification"), load_results(cfg, "04_hash_learning")
    assert r3["features_cache_hit"] is True and r3["graph_cache_hit"] is True  # the copied run's
    assert r3["gat_cache_hit"] is False  # its own classifier, not the GAT's
    assert all(0.0 < v <= 1.0 for v in r3["map_image"].values())
    v2 = CLASSIFIER_STAGE.load(cfg, kind="gat")
    assert v2["config"]["gat_conv"] == "gatv2"
    assert _conv_layers(v2) == {f"convs.{i}.{p}" for i in (0, 1) for p in ("att", "lin_l.weight", "lin_r.weight")}
    released = {k for k in build_classifier("gat", 8, 4, 3, hidden=4).state_dict() if k.startswith("convs.")}
    assert released == {f"convs.{i}.{p}" for i in (0, 1) for p in ("att_src", "att_dst", "lin.weight")}
    # hashing used it: new codes (a GATv2 model never reuses a GAT model's), and the table shows their mAP
    assert r4["codes_cache_hit"] == {"16": False}
    assert shown == pytest.approx([r4["map"]["16"]["i2t"], r4["map"]["16"]["t2i"]], abs=6e-5)


# ----------------------------------------------------------------------------- the prose agrees with the results file
QUOTED = {  # what README / notebooks 03, 04 quote: paired differences of the default preset's fair grid (dependence 0)
    "released": ("egath", "no_gat"),
    "unit": ("egath, unit scale", "no_gat, unit scale"),
    "selfloops": ("egath, self-loops only (ζ 1)", "no_gat"),
}


def test_the_notebooks_and_readme_quote_the_numbers_of_the_results_file():
    import json

    from egath_lite.studies.graph_fair import quote

    root = Path(__file__).resolve().parents[1]
    rows = [
        json.loads(line) for line in (root / "benchmarks/results/graph_fair_default.jsonl").read_text().splitlines()
    ]
    rows = [r for r in rows if r["bits"] == 32 and r["epochs"] == 6]
    quotes = {k: f"{quote(rows, a, b, 'i2t')} / {quote(rows, a, b, 't2i')}" for k, (a, b) in QUOTED.items()}

    def markdown(name):
        cells = json.loads((root / "notebooks" / f"{name}.ipynb").read_text())["cells"]
        return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")

    texts = {n: markdown(n) for n in ("03_gat_classification", "04_hash_learning")}
    texts["README.md"] = (root / "README.md").read_text()
    for name, text in texts.items():
        for key in ("released", "unit"):
            assert quotes[key] in text, (name, key, quotes[key])
    assert quotes["selfloops"] in texts["04_hash_learning"] and quotes["selfloops"] in texts["README.md"]
    # and the differences the prose draws are the ones the numbers show: unit scale closes most of the gap
    gap = {k: [float(x.split(" ± ")[0]) for x in quotes[k].split(" / ")] for k in quotes}
    assert all(abs(u) < abs(r) / 2 for u, r in zip(gap["unit"], gap["released"]))
