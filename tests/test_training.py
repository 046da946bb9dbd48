"""Classifier and hash training (egath_lite.pipeline.classifier, hashing, codes) and egath_lite.pipeline.baselines on synthetic
features with planted label structure.

The stage inputs (features, label graph) are replaced by small synthetic payloads (monkeypatched
``ensure_features`` / ``ensure_graph``), so these tests exercise the real training, caching and
model-loading code in seconds without the CLIP stage.
"""

import math

import numpy as np
import pytest
import torch

from egath_lite import get_config
from egath_lite.core.lsh import lsh_codes
from egath_lite.core.models import CLIPImageBackbone
from egath_lite.files import ArtifactError
from egath_lite.metrics.classification import label_average_precision
from egath_lite.pipeline import classifier as classifier_mod
from egath_lite.pipeline import codes as codes_mod
from egath_lite.pipeline.baselines import lsh_cross_modal_codes
from egath_lite.pipeline.classifier import CLASSIFIER_STAGE, ensure_gat
from egath_lite.pipeline.codes import CODES_STAGE, ensure_codes, load_egath
from egath_lite.pipeline.engine import HashData, retrieval_map, train_egath
from egath_lite.pipeline.results import training_split as _split

N, C, D, V = 420, 5, 16, 30


def synthetic_inputs(seed: int = 0):
    """Features / graph payloads: labels with a planted implication (1 ⇒ 0), features = label mix + noise."""
    g = torch.Generator().manual_seed(seed)
    Y = (torch.rand(N, C, generator=g) < 0.3).float()
    Y[Y.sum(1) == 0, 2] = 1.0
    Y[:, 0] = torch.maximum(Y[:, 0], Y[:, 1])
    image = Y @ torch.randn(C, D, generator=g) + 0.7 * torch.randn(N, D, generator=g)
    text = Y @ torch.randn(C, D, generator=g) + 0.7 * torch.randn(N, D, generator=g)
    group = torch.arange(V) % (C + 1)  # tags of label c (group c); group C: noise tags
    keep = torch.rand(N, V, generator=g) < 0.6
    bow = ((group < C) & (Y[:, group.clamp(max=C - 1)] > 0) & keep).float()
    bow = torch.maximum(bow, ((group == C) & (torch.rand(N, V, generator=g) < 0.1)).float())
    perm = torch.randperm(N, generator=g)
    query, val, train = perm[:80], perm[80:140], perm[140:]
    features = {
        "key": f"synthetic-{seed}",
        "meta": {"label_names": [f"l{i}" for i in range(C)]},
        "tensors": {
            "image_emb": image,
            "text_emb": text,
            "bow": bow,
            "labels": Y,
            "query_idx": query,
            "train_idx": torch.cat([val, train]),
            "val_idx": val,
            "retrieval_idx": perm[80:],
        },
    }
    counts = Y[train].t() @ Y[train]
    A = (counts / counts.diag().unsqueeze(1)) >= 0.3
    edge_index = A.nonzero().t().flip(0).contiguous()  # A_ij > 0: j → i
    graph = {
        "key": "synthetic-graph",
        "meta": {},
        "tensors": {
            "label_emb": torch.randn(C, 12, generator=g),
            "edge_index": edge_index,
            "edge_weight": torch.ones(edge_index.shape[1]),
        },
    }
    return features, graph


def small_cfg(tmp_path, **kw):
    args = dict(
        runs_root=str(tmp_path),
        run_name="t",
        device="cpu",
        num_query=80,
        num_train=340,
        hidden_dim=32,
        trans_width=16,
        trans_heads=2,
        trans_tokens=4,
        gat_hidden=32,
        epochs=4,
        lr=1e-3,
        lr_min=1e-4,
        gat_epochs=6,
        gat_lr=1e-2,
        early_stop_patience=10,
    )
    args.update(kw)
    return get_config("tiny", **args)


@pytest.fixture
def inputs(monkeypatch):
    features, graph = synthetic_inputs()
    for mod in (classifier_mod, codes_mod):
        monkeypatch.setattr(mod, "ensure_features", lambda cfg, **kw: features)
        monkeypatch.setattr(mod, "ensure_graph", lambda cfg, **kw: graph)
    return features, graph


def _plain_map(qB, rB, qL, rL):
    """Independent reference: per-query loop, Hamming distance, stable ties, empty queries skipped."""
    aps = []
    for i in range(len(qB)):
        dist = (qB[i].unsqueeze(0) != rB).sum(1).numpy()
        order = np.argsort(dist, kind="stable")
        rel = ((rL[order].float() @ qL[i].float()) > 0).numpy().astype(float)
        if rel.sum() == 0:
            continue
        aps.append(float(((np.cumsum(rel) / np.arange(1, len(rel) + 1)) * rel).sum() / rel.sum()))
    return float(np.mean(aps))


def test_label_average_precision_by_hand_and_against_sklearn():
    from sklearn.metrics import average_precision_score

    # scores 0.9, 0.8, 0.7 with relevance 1, 0, 1: AP = (1/1 + 2/3) / 2
    ap = label_average_precision(torch.tensor([[0.9], [0.8], [0.7]]), torch.tensor([[1.0], [0.0], [1.0]]))
    assert ap.item() == pytest.approx((1 + 2 / 3) / 2)
    g = torch.Generator().manual_seed(0)
    scores, Y = torch.randn(50, 4, generator=g), (torch.rand(50, 4, generator=g) < 0.3).float()
    ours = label_average_precision(scores, Y)
    theirs = [average_precision_score(Y[:, c].numpy(), scores[:, c].numpy()) for c in range(4)]
    assert np.allclose(ours.numpy(), theirs)
    with pytest.raises(ValueError, match="no positive"):
        label_average_precision(torch.randn(3, 2), torch.tensor([[1.0, 0.0]] * 3))
    # a label absent from a small split: NaN with absent="nan", the others unchanged
    both = label_average_precision(
        torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3]]),
        torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 0.0]]),
        absent="nan",
    )
    assert both[0].item() == pytest.approx((1 + 2 / 3) / 2) and torch.isnan(both[1])


def test_retrieval_map_matches_loop_reference():
    g = torch.Generator().manual_seed(1)
    qB = torch.where(torch.rand(9, 8, generator=g) < 0.5, -1, 1).to(torch.int8)
    rB = torch.where(torch.rand(30, 8, generator=g) < 0.5, -1, 1).to(torch.int8)
    qL, rL = (torch.rand(9, 3, generator=g) < 0.4).float(), (torch.rand(30, 3, generator=g) < 0.4).float()
    qL[:, 0] = 1.0
    rL[0, 0] = 1.0
    assert retrieval_map(qB, rB, qL, rL) == pytest.approx(_plain_map(qB, rB, qL, rL), abs=1e-12)


def test_split_removes_validation_from_training_and_rejects_leaks():
    features, _ = synthetic_inputs()
    split = _split(features)
    assert len(np.intersect1d(split["train"], split["val"])) == 0
    assert len(split["train"]) == N - 80 - 60
    bad = {"tensors": dict(features["tensors"], val_idx=features["tensors"]["query_idx"][:5])}
    with pytest.raises(ValueError, match="overlap the query"):
        _split(bad)


def test_train_egath_learns_planted_structure(tmp_path):
    features, graph = synthetic_inputs()
    t = features["tensors"]
    cfg = small_cfg(tmp_path, epochs=5)
    data = HashData(t["image_emb"], t["bow"], t["labels"], _split(features))
    model, hist = train_egath(cfg, 16, data, graph["tensors"], progress=False)
    q, r = data.split["query"], data.split["retrieval"]
    learned = retrieval_map(
        model.encode(data.image[q], "image"), model.encode(data.text[r], "text"), data.labels[q], data.labels[r]
    )
    lsh = retrieval_map(
        lsh_codes(t["image_emb"][q], 16, 0), lsh_codes(t["text_emb"][r], 16, 1), data.labels[q], data.labels[r]
    )
    # label prior: mAP of a random ranking is about the fraction of relevant items
    prior = float(((data.labels[q] @ data.labels[r].t()) > 0).float().mean())
    assert learned > prior + 0.15 and learned > lsh + 0.1, (learned, prior, lsh)
    assert hist["loss"][-1] < hist["loss"][0]
    assert len(hist["val_map_i2t"]) == 5 and 0 <= hist["best_epoch"] < 5
    assert hist["val_map"] == pytest.approx(max((a + b) / 2 for a, b in zip(hist["val_map_i2t"], hist["val_map_t2i"])))
    # geometric decay: lr_e = lr · γ^e with γ = (lr_min / lr)^(1 / epochs)
    gamma = (cfg.lr_min / cfg.lr) ** (1 / cfg.epochs)
    assert hist["lr"] == pytest.approx([cfg.lr * gamma**e for e in range(5)])


def test_early_stop_stops_after_patience(tmp_path):
    features, graph = synthetic_inputs()
    t = features["tensors"]
    cfg = small_cfg(tmp_path, epochs=30, lr=1e-9, lr_min=1e-10, early_stop_patience=2)  # nothing is learned
    data = HashData(t["image_emb"], t["bow"], t["labels"], _split(features))
    _, hist = train_egath(cfg, 8, data, graph["tensors"], progress=False)
    assert hist["epochs_run"] == hist["best_epoch"] + 3 < 30


def test_ensure_codes_writes_caches_and_reloads(inputs, tmp_path, capsys):
    features, graph = inputs
    cfg = small_cfg(tmp_path, epochs=2)
    first = ensure_codes(cfg, 16, progress=False)
    t = first["tensors"]
    assert first["cache_hit"] is False and first["meta"]["variant"] == "egath" and first["meta"]["bits"] == 16
    assert t["query_image_codes"].shape == (80, 16) and t["retrieval_text_codes"].shape == (N - 80, 16)
    assert t["query_labels"].dtype == torch.uint8
    assert torch.equal(t["query_labels"].float(), features["tensors"]["labels"][features["tensors"]["query_idx"]])
    assert first["meta"]["seconds_per_epoch"] > 0 and len(t["history_loss"]) == 2
    again = ensure_codes(cfg, 16, progress=False)
    assert again["cache_hit"] is True and torch.equal(again["tensors"]["query_image_codes"], t["query_image_codes"])
    # the checkpoint rebuilds the model that made the codes
    model = load_egath(cfg, again, graph["tensors"], D, V)
    ft = features["tensors"]
    assert torch.equal(model.encode(ft["image_emb"][ft["query_idx"]], "image"), t["query_image_codes"])
    # another configuration (seed) recomputes instead of reusing
    other = ensure_codes(cfg.replace(seed=1), 16, progress=False)
    assert other["cache_hit"] is False
    # a corrupt cache is recomputed with a message, never trusted
    path = CODES_STAGE.path(cfg.replace(seed=1), variant="egath", bits=16)
    assert path.name.startswith("codes-egath-16-") and path.is_file()
    path.write_bytes(b"not a torch file")
    redone = ensure_codes(cfg.replace(seed=1), 16, progress=False)
    assert redone["cache_hit"] is False and "recomputing" in capsys.readouterr().out


@pytest.mark.parametrize("variant", ["no_gat", "gcn", "no_triplet", "no_cosine", "clip_text"])
def test_every_variant_trains_and_writes_its_own_file(inputs, tmp_path, variant):
    cfg = small_cfg(tmp_path, epochs=1, variant=variant)
    payload = ensure_codes(cfg, 8, progress=False)
    assert payload["meta"]["variant"] == variant
    assert payload["path"] == str(CODES_STAGE.path(cfg, variant=variant, bits=8))
    assert any(k.startswith("state.") for k in payload["tensors"])  # the model travels with its codes
    hist = payload["tensors"]
    if variant == "no_triplet":
        assert hist["history_loss_triplet"].abs().max() == 0
    if variant == "no_cosine":
        assert hist["history_loss_cosine"].abs().max() == 0


def test_unknown_variant_and_bad_checkpoint(inputs, tmp_path):
    with pytest.raises(ValueError, match="variant='egath2' is not one of egath"):  # refused when the config is built
        small_cfg(tmp_path, variant="egath2")
    cfg = small_cfg(tmp_path, epochs=1)
    payload = ensure_codes(cfg, 8, progress=False)
    _, graph = inputs
    with pytest.raises(ArtifactError, match="does not fit"):
        load_egath(cfg, payload, graph["tensors"], D + 4, V)  # another image dimension


def test_ensure_gat_beats_label_prior_and_caches(inputs, tmp_path):
    features, _ = inputs
    cfg = small_cfg(tmp_path)
    payload = ensure_gat(cfg, progress=False)
    meta, t = payload["meta"], payload["tensors"]
    path = CLASSIFIER_STAGE.path(cfg, kind="gat")
    assert payload["path"] == str(path) and path.is_file() and payload["cache_hit"] is False
    assert t["ap_image"].shape == (C,) and meta["map_image"] == pytest.approx(float(t["ap_image"].mean()), rel=1e-6)
    assert bool(t["ap_present"].all()) and meta["labels_without_query_items"] == 0
    Yq = features["tensors"]["labels"][features["tensors"]["query_idx"]]
    prior = float(Yq.mean(0).mean())  # AP of a random ranking ≈ label frequency
    assert meta["map_image"] > prior + 0.2 and meta["map_text"] > prior + 0.2
    assert ensure_gat(cfg, progress=False)["cache_hit"] is True
    state = CLASSIFIER_STAGE.load(cfg, kind="gat")["tensors"]
    assert any(k.startswith("state.classifier.convs.0") for k in state)


def test_lsh_codes_follow_angle_and_are_reproducible():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(2, 6, generator=g)
    mean = torch.zeros(6)
    B = lsh_codes(X, 4096, seed=3, mean=mean)
    assert B.dtype == torch.int8 and set(B.unique().tolist()) == {-1, 1}
    # Charikar: P(bit differs) = angle / π
    angle = math.acos(float(torch.nn.functional.cosine_similarity(X[:1], X[1:])))
    assert float((B[0] != B[1]).float().mean()) == pytest.approx(angle / math.pi, abs=0.03)
    assert torch.equal(B, lsh_codes(X, 4096, seed=3, mean=mean))
    assert not torch.equal(B, lsh_codes(X, 4096, seed=4, mean=mean))
    with pytest.raises(ValueError, match="NaN"):
        lsh_codes(torch.full((2, 3), float("nan")), 8)


def test_lsh_cross_modal_codes_shapes():
    features, _ = synthetic_inputs()
    c = lsh_cross_modal_codes(features, 32, seed=0)
    assert c["query_image_codes"].shape == (80, 32) and c["retrieval_text_codes"].shape == (N - 80, 32)
    assert c["query_labels"].dtype == torch.uint8


def test_finetune_clip_trains_the_image_tower_from_pixels(inputs, tmp_path, monkeypatch):
    """End-to-end path with a stand-in tower (the real one is open_clip's visual, same interface): images stream
    through the image pipeline (here an in-memory uint8 array, the toy route) and the tower itself trains."""
    from egath_lite.clip.images import Preprocess
    from egath_lite.pipeline import engine as hashing

    features, _ = inputs
    torch.manual_seed(0)
    tower = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, D))
    start = tower[1].weight.detach().clone()
    backbone = CLIPImageBackbone(tower, Preprocess((8, 8), (0.5,) * 3, (0.25,) * 3))
    assert backbone.output_dim == D
    pixels = np.random.default_rng(0).integers(0, 256, (N, 8, 8, 3), dtype=np.uint8)
    monkeypatch.setattr(codes_mod, "clip_image_backbone", lambda cfg: backbone)
    monkeypatch.setattr(
        codes_mod,
        "hash_data",
        lambda cfg, feats, bb: hashing.HashData(
            hashing.StreamedImages(pixels, bb.prep, 0, 0, "cpu"),
            feats["tensors"]["bow"],
            feats["tensors"]["labels"],
            _split(feats),
        ),
    )
    cfg = small_cfg(tmp_path, epochs=1, finetune_clip=True)
    payload = ensure_codes(cfg, 8, progress=False)
    assert payload["tensors"]["query_image_codes"].shape == (80, 8)
    assert not torch.allclose(tower[1].weight, start)  # the tower itself was trained
    assert "state.image_backbone.visual.1.weight" in payload["tensors"]
    with pytest.raises(ValueError, match="normalised float inputs"):
        backbone(torch.zeros(2, 8, 8, 3, dtype=torch.uint8))
