"""toy_nuswide: real label statistics, determinism, cache, no single-pixel shortcut, learnable labels, tags."""

from __future__ import annotations

import numpy as np
import pytest

from egath_lite import get_config
from egath_lite.data import DatasetError, dataset_from_config, generate_toy_nuswide, load_dataset
from egath_lite.data.reference import NUS_TC10_LABELS, load_nus_tc10_labels
from egath_lite.data.toy_cache import cache_path
from egath_lite.data.toy_nuswide import GENERATOR_VERSION, resolve_size
from egath_lite.data.toy_tags import SYNONYMS


@pytest.fixture(scope="module")
def toy4000():
    """4,000 items at 64 px (about 1 s): enough for per-pixel and co-occurrence statistics."""
    return generate_toy_nuswide(4000, seed=1, progress=False)


@pytest.fixture()
def cache_env(tmp_path, monkeypatch):
    monkeypatch.setenv("EGATH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"  # the runs root whose shared-cache/ holds the bundles


# ----------------------------------------------------------------------------- labels
def _cooccurrence_z(sample: np.ndarray, population: np.ndarray) -> np.ndarray:
    """z-scores of P(j | i) of a sample against the population's, with the binomial standard error (C, C)."""
    s, p = sample.astype(np.float64), population.astype(np.float64)
    n_i = s.sum(0)
    p_cond = (p.T @ p) / p.sum(0)[:, None]
    s_cond = (s.T @ s) / n_i[:, None]
    se = np.sqrt(np.clip(p_cond * (1 - p_cond), 1e-12, None) / n_i[:, None])
    z = (s_cond - p_cond) / se
    np.fill_diagonal(z, 0.0)
    return z


def test_labels_are_real_nuswide_rows_with_its_cooccurrence(toy4000):
    real = load_nus_tc10_labels()
    np.testing.assert_array_equal(toy4000["labels"], real[toy4000["label_rows"]])
    assert len(np.unique(toy4000["label_rows"])) == 4000  # sampled without replacement
    z = _cooccurrence_z(toy4000["labels"], real)
    # 90 conditional probabilities P(j|i): all within 4 binomial standard errors of NUS-WIDE's own.
    assert np.abs(z).max() < 4.0, np.round(z, 1)
    freq_z = (toy4000["labels"].mean(0) - real.mean(0)) / np.sqrt(real.mean(0) * (1 - real.mean(0)) / 4000)
    assert np.abs(freq_z).max() < 4.0
    # Power check: the same statistic flags a matrix whose columns were shuffled independently.
    rng = np.random.default_rng(0)
    shuffled = np.stack([rng.permutation(col) for col in toy4000["labels"].T], axis=1)
    assert np.abs(_cooccurrence_z(shuffled, real)).max() > 8.0


def test_every_item_has_a_label_and_a_tag(toy4000):
    assert toy4000["labels"].sum(1).min() >= 1
    assert min(len(t.split()) for t in toy4000["texts"]) >= 1


# ----------------------------------------------------------------------------- determinism and cache
def test_same_seed_gives_identical_bytes_and_another_seed_does_not():
    a = generate_toy_nuswide(300, seed=5, progress=False)
    b = generate_toy_nuswide(300, seed=5, progress=False)
    c = generate_toy_nuswide(300, seed=6, progress=False)
    assert a["images"].tobytes() == b["images"].tobytes()
    assert a["labels"].tobytes() == b["labels"].tobytes() and a["texts"] == b["texts"]
    assert a["images"].shape == (300, 64, 64, 3) and a["images"].dtype == np.uint8
    assert not np.array_equal(a["label_rows"], c["label_rows"])
    assert np.abs(a["images"].astype(int) - c["images"].astype(int)).mean() > 20  # different scenes, not a shift


def test_cache_hit_reuses_identical_data_and_cache_files_are_byte_identical(cache_env, tmp_path):
    first = load_dataset("toy_nuswide", size=150, seed=2, progress=False)
    assert first.info["cache_hit"] is False
    path = cache_path(cache_env, 150, 2, 64)
    assert path.is_file() and path.parent.name == "shared-cache" and path.name.startswith("toy_nuswide-")
    assert path.suffix == ".bundle" and GENERATOR_VERSION == 1
    second = load_dataset("toy_nuswide", size=150, seed=2, progress=False)
    assert second.info["cache_hit"] is True
    np.testing.assert_array_equal(first.images, second.images)
    assert first.texts == second.texts
    other = load_dataset("toy_nuswide", size=150, seed=2, cache_dir=tmp_path / "elsewhere", progress=False)
    assert cache_path(tmp_path / "elsewhere", 150, 2, 64).read_bytes() == path.read_bytes()
    assert other.info["cache_hit"] is False


def test_corrupt_or_foreign_cache_is_reported_and_regenerated(cache_env, capsys):
    reference = load_dataset("toy_nuswide", size=100, seed=3, progress=False)
    path = cache_path(cache_env, 100, 3, 64)
    path.write_bytes(path.read_bytes()[:-100])  # truncated
    again = load_dataset("toy_nuswide", size=100, seed=3, progress=False)
    assert f"[toy_nuswide] recomputing: {path.name}" in capsys.readouterr().out and again.info["cache_hit"] is False
    np.testing.assert_array_equal(again.images, reference.images)
    # A valid file made with other parameters, under this key's name: rejected by its recorded parameters.
    load_dataset("toy_nuswide", size=100, seed=4, progress=False)
    path.write_bytes(cache_path(cache_env, 100, 4, 64).read_bytes())
    third = load_dataset("toy_nuswide", size=100, seed=3, progress=False)
    assert "made by another configuration" in capsys.readouterr().out and third.info["cache_hit"] is False
    np.testing.assert_array_equal(third.labels, reference.labels)


# ----------------------------------------------------------------------------- images
def _best_pixel_accuracy(images: np.ndarray, y: np.ndarray, stride: int = 4) -> tuple[float, float]:
    """(best held-out accuracy of a per-pixel Gaussian (QDA) classifier on RGB, majority-class accuracy)."""
    x = images[:, ::stride, ::stride, :].astype(np.float64).reshape(len(images), -1, 3).transpose(1, 0, 2) / 255
    half = x.shape[1] // 2  # x: (pixels, items, 3); first half of the items trains, second half tests
    loglik = []
    for c in (0, 1):
        xc = x[:, :half][:, y[:half] == c]
        mu = xc.mean(1, keepdims=True)
        d = xc - mu
        cov = d.transpose(0, 2, 1) @ d / d.shape[1] + 1e-4 * np.eye(3)  # (pixels, 3, 3)
        dt = x[:, half:] - mu
        maha = ((dt @ np.linalg.inv(cov)) * dt).sum(-1)  # (pixels, test items)
        loglik.append(-0.5 * maha - 0.5 * np.linalg.slogdet(cov)[1][:, None] + np.log((y[:half] == c).mean()))
    test = slice(half, None)
    acc = ((loglik[1] > loglik[0]) == y[test][None, :]).mean(1)
    prior = y[test].mean()
    return float(acc.max()), float(max(prior, 1 - prior))


def test_no_label_is_decodable_from_a_single_fixed_pixel(toy4000):
    images, labels = toy4000["images"], toy4000["labels"]
    for c, name in enumerate(NUS_TC10_LABELS):
        best, majority = _best_pixel_accuracy(images, labels[:, c].astype(int))
        assert best <= majority + 0.05, f"{name}: one pixel gives accuracy {best:.3f} vs majority {majority:.3f}"
    # Power check: the same test catches a planted one-pixel shortcut.
    leaky = images.copy()
    leaky[labels[:, 0] == 1, 8, 8] = (255, 0, 0)
    best, majority = _best_pixel_accuracy(leaky, labels[:, 0].astype(int))
    assert best > majority + 0.3


def test_every_label_is_learnable_from_the_pixels(toy4000):
    """Random conv features + logistic regression: each label's held-out AP is twice its prior or 0.2 above it."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score

    x = torch.tensor(toy4000["images"][:3000]).permute(0, 3, 1, 2).float() / 255
    x = torch.nn.functional.avg_pool2d(x, 2)  # 32 x 32
    w = torch.randn(32, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    w -= w.mean((1, 2, 3), keepdim=True)
    with torch.no_grad():
        h = torch.relu(torch.nn.functional.conv2d(x - 0.5, w, padding=2, stride=2) - 0.5)
        feats = torch.cat([torch.nn.functional.adaptive_max_pool2d(h, 2).flatten(1), h.mean((2, 3))], 1).numpy()
    feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-6)
    y = toy4000["labels"][:3000]
    for c, name in enumerate(NUS_TC10_LABELS):
        clf = LogisticRegression(C=0.05, max_iter=500).fit(feats[:2000], y[:2000, c])
        ap = average_precision_score(y[2000:, c], clf.decision_function(feats[2000:]))
        prior = y[2000:, c].mean()
        assert ap >= min(2 * prior, prior + 0.2), f"{name}: AP {ap:.3f} vs prior {prior:.3f}"


def test_image_size_is_configurable_and_validated():
    small = generate_toy_nuswide(40, seed=0, image_size=32, progress=False)
    assert small["images"].shape == (40, 32, 32, 3)
    with pytest.raises(ValueError, match="image_size must be an int >= 16"):
        generate_toy_nuswide(40, seed=0, image_size=8, progress=False)


# ----------------------------------------------------------------------------- tags
def test_tags_name_present_labels_often_and_absent_ones_rarely(toy4000):
    labels, texts = toy4000["labels"], [set(t.split()) for t in toy4000["texts"]]
    for c, name in enumerate(NUS_TC10_LABELS):
        words = {w for w, _ in SYNONYMS[name]}
        hit = np.array([bool(words & t) for t in texts])
        present = labels[:, c] == 1
        # MENTION_RATE 0.85 when present; absent: 3% strays plus words shared with other labels (green, reflection)
        assert 0.8 <= hit[present].mean() <= 0.92, (name, hit[present].mean())
        assert hit[~present].mean() <= 0.2, (name, hit[~present].mean())
    counts = np.array([len(t) for t in texts])
    assert 3.0 <= counts.mean() <= 9.0 and counts.min() >= 1


# ----------------------------------------------------------------------------- dataset object and entry points
def test_toy_dataset_object_summary_split_and_images(cache_env):
    ds = load_dataset("toy_nuswide", size="tiny", progress=False)
    assert len(ds) == 1200 and ds.label_names == NUS_TC10_LABELS and ds.images.shape == (1200, 64, 64, 3)
    s = ds.summary()
    assert s["items"] == 1200 and sum(s["label_counts"].values()) == int(ds.labels.sum())
    assert s["mean_tags_per_item"] == pytest.approx(np.mean([len(t.split()) for t in ds.texts]))
    assert "per-label counts" in ds.format_summary()
    split = ds.split()
    assert (len(split.query), len(split.train), split.seed) == (120, 600, 7)  # 10% / 50%, NUS-WIDE's seed
    img = ds.get_image(5)
    assert img.size == (64, 64) and img.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(img), ds.images[5])


def test_dataset_from_config_follows_toy_size_seed_and_image_size(cache_env):
    ds = dataset_from_config(get_config("tiny", toy_size=60, seed=9, image_size=32))
    assert len(ds) == 60 and ds.images.shape[1:] == (32, 32, 3) and ds.info["seed"] == 9


@pytest.mark.parametrize(
    "size, match", [("huge", "unknown toy_nuswide size"), (5, r"\[20, 186577\]"), (True, "must be an int")]
)
def test_bad_sizes_raise(size, match):
    with pytest.raises(DatasetError, match=match):
        resolve_size(size)


def test_negative_seed_raises():
    with pytest.raises(DatasetError, match="seed must be a non-negative int"):
        generate_toy_nuswide(40, seed=-1, progress=False)


def test_command_line_prints_summary_and_writes_example_grid(cache_env, tmp_path, capsys):
    from PIL import Image

    from egath_lite.data.__main__ import main

    out = tmp_path / "grid.png"
    assert main(["--size", "60", "--out", str(out), "--examples", "6"]) == 0
    printed = capsys.readouterr().out
    assert "toy_nuswide: 60 items, 10 labels" in printed and "mean tags per item" in printed and "sky" in printed
    with Image.open(out) as png:
        assert png.size[0] > 600 and png.size[1] > 200
