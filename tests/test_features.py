"""Feature stage: open_clip loading and its errors, preprocessing, extraction, tiny-CLIP training, the cache."""

import numpy as np
import pytest
import torch
from PIL import Image

from egath_lite.clip.encode import encode_images, encode_texts, extract_features, images_to_tensor, preprocess_config
from egath_lite.clip.tiny import train_tiny_clip
from egath_lite.clip.weights import (
    ClipWeightsError,
    hub_cache_dir,
    load_clip,
    save_clip_checkpoint,
    weights_fingerprint,
)
from egath_lite.pipeline import features as F
from egath_lite.pipeline import tiny_clip as T
from egath_lite.pipeline.config import get_config
from egath_lite.pipeline.features import FEATURES_STAGE
from egath_lite.pipeline.tiny_clip import TINY_CLIP_STAGE

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30)}


def colour_pairs(n, seed=0):
    """A learnable toy task: noisy single-colour images paired with their colour word."""
    rng = np.random.default_rng(seed)
    names = list(COLOURS)
    cls = rng.integers(0, len(names), n)
    base = np.array([COLOURS[names[c]] for c in cls], dtype=np.float64)[:, None, None, :]
    imgs = np.clip(base + rng.normal(0, 25, (n, 64, 64, 3)), 0, 255).astype(np.uint8)
    return imgs, [f"{names[c]} photo" for c in cls], cls


@pytest.fixture(scope="module")
def tiny():
    """The shipped tiny CLIP at its seeded random initialisation (model, preprocess, tokenizer)."""
    return load_clip("egath-tiny-clip", None, "cpu", seed=0)


def reference_map(q, r, q_labels, r_labels):
    """Plain per-query mAP@all of a cosine ranking (stable ties), label-sharing relevance."""
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    r = r / np.linalg.norm(r, axis=1, keepdims=True)
    aps = []
    for i in range(len(q)):
        order = np.argsort(-(r @ q[i]), kind="stable")
        rel = (r_labels[order] @ q_labels[i]) > 0
        if not rel.any():
            continue
        hits = np.cumsum(rel)
        aps.append(np.mean(hits[rel] / (np.flatnonzero(rel) + 1)))
    return float(np.mean(aps))


def test_reference_map_hand_computed():
    # ranking for the one query: r0 (rel), r2 (not), r1 (rel) -> AP = (1/1 + 2/3) / 2
    q = np.array([[1.0, 0.0]])
    r = np.array([[1.0, 0.0], [-1.0, 0.1], [0.5, 0.5]])
    assert reference_map(q, r, np.array([[1, 0]]), np.array([[1, 0], [1, 1], [0, 1]])) == pytest.approx(5 / 6)


def test_shipped_config_and_seeded_init(tiny):
    model, _, tokenizer = tiny
    assert preprocess_config(model)["size"] == (64, 64)
    assert type(model.visual).__name__ == "ModifiedResNet" and model.visual.output_dim == 128
    assert model.text_projection.shape == (128, 128)  # both towers end in the 128-d shared space
    assert tokenizer(["sky"]).shape == (1, 32)  # context length 32
    again, _, _ = load_clip("egath-tiny-clip", None, "cpu", seed=0)
    other, _, _ = load_clip("egath-tiny-clip", None, "cpu", seed=1)
    w = "visual.conv1.weight"
    assert torch.equal(model.state_dict()[w], again.state_dict()[w])
    assert not torch.equal(model.state_dict()[w], other.state_dict()[w])


def test_vectorised_preprocess_equals_open_clip_pil_preprocess(tiny):
    model, preprocess, _ = tiny
    imgs, _, _ = colour_pairs(5)
    ours = images_to_tensor(imgs, model)
    theirs = torch.stack([preprocess(Image.fromarray(im)) for im in imgs])
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="model takes"):
        images_to_tensor(np.zeros((2, 80, 80, 3), np.uint8), model)


def test_other_image_sizes_go_through_the_pil_preprocess(tiny):
    model, preprocess, _ = tiny
    imgs = np.random.default_rng(0).integers(0, 256, (3, 80, 96, 3), dtype=np.uint8)
    got = encode_images(model, preprocess, imgs, batch_size=2, progress=False)
    with torch.no_grad():
        x = torch.stack([preprocess(Image.fromarray(im)) for im in imgs])
        want = torch.nn.functional.normalize(model.encode_image(x), dim=-1).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_extraction_matches_the_model_is_normalised_deterministic_and_batch_invariant(tiny):
    model, preprocess, tokenizer = tiny
    imgs, texts, _ = colour_pairs(23)
    a = extract_features(model, preprocess, tokenizer, imgs, texts, batch_size=8, progress=False)
    b = extract_features(model, preprocess, tokenizer, imgs, texts, batch_size=8, progress=False)
    c = extract_features(model, preprocess, tokenizer, imgs, texts, batch_size=23, progress=False)
    assert a["image_emb"].shape == (23, 128) and a["text_emb"].shape == (23, 128)
    assert a["image_emb"].dtype == np.float32
    np.testing.assert_array_equal(a["image_emb"], b["image_emb"])
    np.testing.assert_array_equal(a["text_emb"], b["text_emb"])
    np.testing.assert_allclose(a["image_emb"], c["image_emb"], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(a["text_emb"], axis=1), 1.0, atol=1e-5)
    with torch.no_grad():
        x = torch.stack([preprocess(Image.fromarray(im)) for im in imgs])
        want_img = model.encode_image(x)
        want_txt = model.encode_text(tokenizer(texts))
    np.testing.assert_allclose(a["image_emb"], torch.nn.functional.normalize(want_img, dim=-1).numpy(), atol=1e-5)
    np.testing.assert_allclose(a["text_emb"], torch.nn.functional.normalize(want_txt, dim=-1).numpy(), atol=1e-5)
    assert a["items_per_second"] == pytest.approx(23 / a["seconds"])


def test_bad_inputs_raise_clear_errors(tiny):
    model, preprocess, tokenizer = tiny
    imgs, texts, _ = colour_pairs(4)
    with pytest.raises(ValueError, match="uint8 array"):
        encode_images(model, preprocess, imgs.astype(np.float32), progress=False)
    with pytest.raises(ValueError, match=r"uint8 array \(N, H, W, 3\)"):
        encode_images(model, preprocess, imgs[..., 0], progress=False)
    with pytest.raises(ValueError, match="N = 0"):
        encode_images(model, preprocess, imgs[:0], progress=False)
    with pytest.raises(ValueError, match="3 texts for 4 images"):
        extract_features(model, preprocess, tokenizer, imgs, texts[:3], progress=False)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        encode_texts(model, tokenizer, texts, batch_size=0, progress=False)
    with pytest.raises(ValueError, match="texts must be strings"):
        encode_texts(model, tokenizer, ["a", 3], progress=False)
    with pytest.raises(ValueError, match="at least 2"):
        train_tiny_clip(model, imgs[:1], texts[:1], tokenizer, epochs=1, lr=1e-3, batch_size=4)
    with pytest.raises(ValueError, match="clip_lr"):
        train_tiny_clip(model, imgs, texts, tokenizer, epochs=1, lr=float("nan"), batch_size=4)


def test_unknown_model_missing_file_unknown_tag_and_train_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unknown open_clip model 'ViT-B-33'.*ViT-B-32"):
        load_clip("ViT-B-33", None, "cpu")
    with pytest.raises(ClipWeightsError, match="does not exist"):
        load_clip("egath-tiny-clip", str(tmp_path / "missing.pt"), "cpu")
    with pytest.raises(ClipWeightsError, match=r"neither a pretrained tag.*openai"):
        load_clip("ViT-B-32", "opnai", "cpu")
    with pytest.raises(ValueError, match="ensure_tiny_clip"):
        load_clip("egath-tiny-clip", "train", "cpu")


def test_real_tag_offline_fails_with_instructions(monkeypatch):
    # conftest sets HF_HUB_OFFLINE=1 (as CI does): the hub is not asked, the cache lacks the weights
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ClipWeightsError) as err:
        load_clip("ViT-B-32", "laion2b_s34b_b79k", "cpu")
    msg = str(err.value)
    assert "not in the local cache" in msg and "Colab" in msg and hub_cache_dir() in msg
    assert "PRETRAINED='/path/to/" in msg and "egath-tiny-clip" in msg


def test_checkpoint_round_trip_through_the_pretrained_path(tiny, tmp_path):
    model, preprocess, tokenizer = tiny
    imgs, texts, _ = colour_pairs(40)
    trained, _, _ = load_clip("egath-tiny-clip", None, "cpu", seed=0)
    train_tiny_clip(trained, imgs, texts, tokenizer, epochs=1, lr=1e-3, batch_size=20, progress=False)
    path = save_clip_checkpoint(trained, tmp_path / "tiny.pt")
    loaded, pre2, _ = load_clip("egath-tiny-clip", str(path), "cpu")
    ours = extract_features(loaded, pre2, tokenizer, imgs, texts, progress=False)
    want = extract_features(trained, preprocess, tokenizer, imgs, texts, progress=False)
    init = extract_features(model, preprocess, tokenizer, imgs, texts, progress=False)
    np.testing.assert_array_equal(ours["image_emb"], want["image_emb"])
    assert np.abs(ours["image_emb"] - init["image_emb"]).max() > 1e-3  # the weights really changed
    junk = tmp_path / "junk.pt"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))  # random bytes where a checkpoint should be
    with pytest.raises(ClipWeightsError, match="is not a checkpoint: not a torch file") as err:
        load_clip("egath-tiny-clip", str(junk), "cpu")
    assert "weights_only" not in str(err.value) and "state_dict" in str(err.value)  # our message, not torch's
    (tmp_path / "list.pt").write_bytes(b"")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(ClipWeightsError, match="not a state dict"):
        load_clip("egath-tiny-clip", str(tmp_path / "list.pt"), "cpu")
    with pytest.raises(ClipWeightsError, match="does not fit model 'ViT-S-32'"):
        load_clip("ViT-S-32", str(path), "cpu")


def test_training_is_seeded():
    imgs, texts, _ = colour_pairs(32)
    runs = []
    for _ in range(2):
        model, _, tokenizer = load_clip("egath-tiny-clip", None, "cpu", seed=0)
        runs.append(
            train_tiny_clip(model, imgs, texts, tokenizer, epochs=1, lr=1e-3, batch_size=16, seed=3, progress=False)[
                "step_loss"
            ]
        )
    assert len(runs[0]) == 2 and runs[0] == runs[1]  # same seed, same data -> the same run, bit for bit


def test_training_lowers_the_contrastive_loss_and_aligns_the_modalities(tiny):
    model, preprocess, tokenizer = load_clip("egath-tiny-clip", None, "cpu", seed=0)
    imgs, texts, cls = colour_pairs(96)
    one_hot = np.eye(4)[cls]
    before = extract_features(model, preprocess, tokenizer, imgs, texts, progress=False)
    seen = []
    hist = train_tiny_clip(
        model,
        imgs,
        texts,
        tokenizer,
        epochs=4,
        lr=1e-3,
        batch_size=32,
        seed=3,
        progress=False,
        on_epoch_end=lambda epoch, m: seen.append(epoch) or {"epoch": epoch},
    )
    assert seen == [0, 1, 2, 3] and hist["epoch_eval"][-1] == {"epoch": 3}
    assert len(hist["step_loss"]) == 4 * 3 and hist["steps_per_epoch"] == 3
    # log(32) = 3.47 is the loss of guessing; four colours bound the attainable loss near log(32 / 4) = 2.08
    assert hist["epoch_loss"][-1] < hist["epoch_loss"][0] - 0.4
    after = extract_features(model, preprocess, tokenizer, imgs, texts, progress=False)
    map_before = reference_map(before["image_emb"], before["text_emb"], one_hot, one_hot)
    map_after = reference_map(after["image_emb"], after["text_emb"], one_hot, one_hot)
    assert map_after > 0.7 and map_after > map_before + 0.25, (map_before, map_after)


# --------------------------------------------------------------------------- the stage on toy_nuswide
# 2,000 toy pairs: 200 queries, 1,800 training pairs; the shipped tiny CLIP trained 2 epochs (~110 steps).
TOY = dict(toy_size=2_000, num_query=200, num_train=1_800, clip_epochs=2, clip_batch_size=32)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """(cfg, payload) of ensure_features on a small toy_nuswide with the tiny CLIP trained from scratch."""
    cfg = get_config("tiny", runs_root=str(tmp_path_factory.mktemp("runs")), run_name="toy", **TOY)
    return cfg, F.ensure_features(cfg, progress=False)


def test_features_artifact_holds_what_the_interface_promises(toy_run):
    from egath_lite.data import bag_of_words, build_vocabulary, dataset_from_config, split_from_config

    cfg, payload = toy_run
    T, meta = payload["tensors"], payload["meta"]
    assert payload["cache_hit"] is False and payload["stage"] == "features"
    n = TOY["toy_size"]
    assert T["image_emb"].shape == (n, 128) and T["text_emb"].shape == (n, 128)
    assert T["image_emb"].dtype == torch.float32 and T["bow"].dtype == torch.uint8
    torch.testing.assert_close(T["image_emb"].norm(dim=1), torch.ones(n), atol=1e-5, rtol=0)
    ds = dataset_from_config(cfg)
    query, train, val, retrieval = split_from_config(ds, cfg)
    for name, want in (("query_idx", query), ("train_idx", train), ("val_idx", val), ("retrieval_idx", retrieval)):
        assert T[name].dtype == torch.int64 and np.array_equal(T[name].numpy(), want)
    assert len(query) == 200 and len(train) + len(val) == 1_800
    np.testing.assert_array_equal(T["labels"].numpy(), ds.labels.astype(np.float32))
    vocab = build_vocabulary(ds.texts, train, cfg.vocab_size)
    assert meta["vocab"] == list(vocab)
    np.testing.assert_array_equal(T["bow"].numpy(), bag_of_words(ds.texts, vocab))
    assert meta["label_names"] == list(ds.label_names) and meta["dataset"] == "toy_nuswide"
    assert meta["clip_model"] == "egath-tiny-clip" and meta["clip_pretrained"] == "train"
    assert meta["items_per_second"] == pytest.approx(n / meta["extract_seconds"])
    train_info = meta["clip_train"]
    assert train_info["num_pairs"] == 1_800 and len(train_info["step_loss"]) == 2 * (1_800 // 32)
    # the checkpoint loads back through the same pretrained=<path> route as real weights
    model, preprocess, tokenizer = load_clip("egath-tiny-clip", meta["clip_checkpoint"], "cpu")
    some = np.array([0, 7, 1999])
    again = extract_features(model, preprocess, tokenizer, ds.images[some], [ds.texts[i] for i in some], progress=False)
    np.testing.assert_allclose(again["image_emb"], T["image_emb"].numpy()[some], atol=1e-5)
    np.testing.assert_allclose(again["text_emb"], T["text_emb"].numpy()[some], atol=1e-5)


def test_tiny_clip_retrieval_is_far_above_its_random_initialisation(toy_run):
    from egath_lite.data import dataset_from_config

    cfg, payload = toy_run
    T = payload["tensors"]
    q, r, Y = T["query_idx"].numpy(), T["retrieval_idx"].numpy(), T["labels"].numpy()
    ds = dataset_from_config(cfg)
    model, preprocess, tokenizer = load_clip(cfg.clip_model, None, "cpu", seed=cfg.seed)  # same init as training
    init = extract_features(model, preprocess, tokenizer, ds.images, list(ds.texts), progress=False)
    img, txt = T["image_emb"].numpy(), T["text_emb"].numpy()
    before = (
        reference_map(init["image_emb"][q], init["text_emb"][r], Y[q], Y[r]),
        reference_map(init["text_emb"][q], init["image_emb"][r], Y[q], Y[r]),
    )
    after = (reference_map(img[q], txt[r], Y[q], Y[r]), reference_map(txt[q], img[r], Y[q], Y[r]))
    # measured: I→T 0.323 -> 0.426, T→I 0.338 -> 0.431 (held-out queries; 0.33 is the label prior)
    assert before[0] < 0.36 and before[1] < 0.36
    assert after[0] > before[0] + 0.07 and after[1] > before[1] + 0.07, (before, after)


def test_second_call_reuses_artifacts_and_keys_follow_the_config(toy_run, monkeypatch):
    cfg, payload = toy_run

    def must_not_run(*args, **kwargs):
        raise AssertionError("recomputed although the cached artifact matches")

    monkeypatch.setattr(T, "train_tiny_clip", must_not_run)
    monkeypatch.setattr(F, "_extract", must_not_run)
    again = F.ensure_features(cfg, progress=False)
    assert again["cache_hit"] and again["key"] == payload["key"]
    assert torch.equal(again["tensors"]["text_emb"], payload["tensors"]["text_emb"])
    # what the features depend on changes the key; later stages' knobs do not
    fkey, ckey = FEATURES_STAGE.key, TINY_CLIP_STAGE.key
    key, clip_key = fkey(cfg), ckey(cfg)
    for change in (dict(clip_lr=2e-3), dict(clip_epochs=3), dict(seed=1), dict(num_query=100), dict(toy_size=2_001)):
        assert fkey(cfg.replace(**change)) != key and ckey(cfg.replace(**change)) != clip_key
    assert fkey(cfg.replace(vocab_size=100)) != key and ckey(cfg.replace(vocab_size=100)) == clip_key
    assert fkey(cfg.replace(clip_pretrained="random")) != key
    for later in (dict(bits=(16,)), dict(zeta=0.3), dict(epochs=1), dict(extract_batch_size=7)):
        assert fkey(cfg.replace(**later)) == key
    # label prompts for the graph stage reuse the trained checkpoint (training is patched to fail)
    prompts = F.encode_label_prompts(cfg, ["sky", "plants"], template="a photo of {}")
    model, _, tokenizer = load_clip(cfg.clip_model, payload["meta"]["clip_checkpoint"], "cpu")
    want = encode_texts(model, tokenizer, ["a photo of sky", "a photo of plants"], progress=False)
    assert prompts.shape == (2, 128) and prompts.dtype == np.float32
    np.testing.assert_allclose(prompts, want, atol=1e-6)
    with pytest.raises(ValueError, match="needs a '{}'"):
        F.encode_label_prompts(cfg, ["sky"], template="a photo")


def test_a_checkpoint_file_is_keyed_by_its_bytes(tmp_path):
    path = tmp_path / "weights.pt"
    path.write_bytes(b"one")
    cfg = get_config("tiny", clip_model="egath-tiny-clip", clip_pretrained=str(path))
    first = FEATURES_STAGE.key(cfg)
    path.write_bytes(b"two")  # same path, other weights
    assert FEATURES_STAGE.key(cfg) != first
    assert weights_fingerprint(cfg.replace(clip_pretrained="openai")) == "tag:openai"


def test_feature_figures_draw_and_reject_bad_input():
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    from egath_lite.plots import features as P

    rng = np.random.default_rng(0)
    emb = rng.standard_normal((30, 8))
    Y = np.eye(3)[rng.integers(0, 3, 30)]
    imgs, texts, _ = colour_pairs(3)
    figs = [
        P.plot_similarity_matrix(emb[:5], emb[:5], texts[:3] + ["a", "b"]),
        P.plot_training_loss(np.linspace(4, 3, 12), steps_per_epoch=4, batch_size=32),
        P.plot_nearest_texts(imgs, texts, ["r", "g", "b"], Y[:3], [[0, 1], [1, 2], [2, 0]], texts, Y[:3]),
        P.plot_embedding_map(emb, Y, ["r", "g", "b"], "pca"),
        P.plot_map_comparison({"init": {"I→T": 0.3, "T→I": 0.31}, "trained": {"I→T": 0.6, "T→I": 0.58}}, prior=0.3),
        P.plot_timing({"images": 2.0, "texts": 1.0}, {"images": 1000}),
    ]
    assert all(isinstance(f, Figure) for f in figs)
    # the diagonal of identical embeddings is the row maximum: the title reports 100 %
    assert "100%" in figs[0].axes[0].get_title()
    plt.close("all")
    with pytest.raises(ValueError, match="equal shapes"):
        P.plot_similarity_matrix(emb[:5], emb[:4])
    with pytest.raises(ValueError, match="at least one label"):
        P.plot_embedding_map(emb, np.zeros_like(Y), ["r", "g", "b"])
    with pytest.raises(ValueError, match="unknown method"):
        P.plot_embedding_map(emb, Y, ["r", "g", "b"], "umap")
    with pytest.raises(ValueError, match="no training steps"):
        P.plot_training_loss([], steps_per_epoch=1)
