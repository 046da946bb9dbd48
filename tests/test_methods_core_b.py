"""DCHMT, DSPH and UCCH (``egath_lite.core.methods``): each loss against a plain transcription of its release,
one epoch lowers it, ``encode`` gives int8 ±1, and each Config holds the release's values.

The transcriptions below follow the released code's shape (DCHMT ``train/hash_train.py`` ``similarity_loss``,
DSPH ``utils/utils.py`` ``HyP.forward``, UCCH ``NCE/NCEAverage.py``, ``NCE/NCECriterion.py`` and
``src/utils.py`` ``ContrastiveLoss``), written with loops or plain tensor operations, never the modules' helpers.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from egath_lite.core.methods import dchmt, dsph, ucch
from egath_lite.metrics import mean_average_precision

B, D, V, C, K = 6, 16, 20, 5, 8


def _batch(seed: int = 0, text_dim: int = D):
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(B, D, generator=g)
    text = torch.randn(B, text_dim, generator=g)
    Y = torch.tensor(
        [[1, 0, 0, 1, 0], [0, 1, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 1, 0, 1], [0, 0, 0, 1, 1], [0, 1, 1, 0, 0]],
        dtype=torch.float32,
    )
    return image, text, Y


def _defaults(cfg_cls) -> dict:
    return {f.name: f.default for f in dataclasses.fields(cfg_cls)}


# ---------------------------------------------------------------- DCHMT


def _dchmt_reference(a: torch.Tensor, t: torch.Tensor, Y: torch.Tensor, bits: int, vartheta: float) -> float:
    """kalenforn/DCHMT train/hash_train.py our_loss, select layer, euclidean, l2: loops over the pairs."""
    n = len(a)
    S = [[1.0 if float(Y[i] @ Y[j]) > 0 else 0.0 for j in range(n)] for i in range(n)]
    max_value = math.sqrt(bits * 2 * vartheta)

    def similarity_loss(u, v):
        pos_sum, neg_sum = 0.0, 0.0
        for i in range(n):
            for j in range(n):
                dist = math.sqrt(sum((float(u[i, k]) - float(v[j, k])) ** 2 for k in range(u.shape[1])))
                positive = dist * S[i][j]
                negative = max_value * (1 - S[i][j]) - min(dist * (1 - S[i][j]), max_value)
                pos_sum += positive**2
                neg_sum += negative**2
        return pos_sum / (n * n) + neg_sum / (n * n)

    return similarity_loss(a, t) + similarity_loss(a, a) + similarity_loss(t, t)


def test_dchmt_loss_matches_release_transcription():
    torch.manual_seed(0)
    image, text, Y = _batch()
    cfg = dchmt.Config()
    model = dchmt.build(D, D, C, K, cfg)
    out = model(image, text)
    terms = dchmt.loss(out, torch.arange(B), Y, {}, cfg)
    # the select layer's output is K softmax pairs, concatenated as the release's torch.cat(list, dim=-1)
    pairs = out["p_image"].detach().view(B, K, 2)
    assert torch.allclose(pairs.sum(-1), torch.ones(B, K))
    ref = _dchmt_reference(out["p_image"].detach(), out["p_text"].detach(), Y, K, cfg.vartheta)
    assert terms["total"].item() == pytest.approx(ref, abs=1e-6)
    # a hand case: two one-hot codes disagreeing in every bit, no shared label: distance sqrt(2K) > margin sqrt(K)
    a = torch.tensor([[1.0, 0.0] * K, [0.0, 1.0] * K])
    Y2 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    hand = dchmt.loss({"p_image": a, "p_text": a}, torch.arange(2), Y2, {}, cfg)
    assert hand["total"].item() == pytest.approx(0.0, abs=1e-6)  # negatives beyond the margin, positives at 0
    same = dchmt.loss({"p_image": a, "p_text": a.flip(0)}, torch.arange(2), Y2, {}, cfg)
    # image-text: the two positives (diagonal) lie sqrt(2K) apart -> 2 * 2K / 4; the negatives coincide -> 2 * K/4
    assert same["image_text"].item() == pytest.approx((2 * 2 * K + 2 * K) / 4, abs=1e-5)


def test_dchmt_epoch_lowers_loss_and_encodes():
    torch.manual_seed(1)
    g = torch.Generator().manual_seed(1)
    N = 48
    Y = (torch.rand(N, C, generator=g) < 0.3).float()
    Y[Y.sum(1) == 0, 0] = 1
    image, text = torch.randn(N, D, generator=g), torch.randn(N, D, generator=g)
    cfg = dchmt.Config()
    model = dchmt.build(D, D, C, K, cfg)
    opt = dchmt.optimizer(model, cfg)
    batches = [(p, image[p], text[p]) for p in torch.randperm(N, generator=g).split(8)]

    def full_loss():
        model.eval()
        with torch.no_grad():
            return float(dchmt.loss(model(image, text), torch.arange(N), Y, {}, cfg)["total"])

    before = full_loss()
    means = dchmt.epoch(model, dchmt.loss, batches, Y, {}, opt, cfg)
    after = full_loss()
    assert set(means) == {"total", "image_text", "image_image", "text_text"}
    assert after < before - 1e-3
    codes = model.encode(image, "image")
    assert codes.dtype == torch.int8 and codes.shape == (N, K)
    assert set(codes.unique().tolist()) <= {-1, 1}
    model.eval()
    h = model(image, text)["h_image"]
    assert torch.equal(codes, torch.where(h > 0, 1, -1).to(torch.int8))


def test_dchmt_config_is_the_release():
    assert _defaults(dchmt.Config) == {
        "lr": 0.001,
        "batch_size": 64,
        "epochs": 100,
        "vartheta": 0.5,
        "weight_decay": 0.2,
        "warmup_proportion": 0.1,
        "betas": (0.9, 0.98),
        "eps": 1e-6,
        "max_grad_norm": 1.0,
        "embed": 128,
    }
    assert dchmt.NAME == "dchmt" and dchmt.SUPERVISED and dchmt.TEXT_INPUT == "clip"


# ---------------------------------------------------------------- DSPH


def _dsph_reference(x, y, label, proxies, threshold, alpha):
    """QinLab-WFU/DSPH utils/utils.py HyP.forward, transcribed."""
    P_one_hot = label
    cos = F.normalize(x, p=2, dim=1).mm(F.normalize(proxies, p=2, dim=1).T)
    pos = 1 - cos
    neg = F.relu(cos - threshold)
    cos_t = F.normalize(y, p=2, dim=1).mm(F.normalize(proxies, p=2, dim=1).T)
    pos_t = 1 - cos_t
    neg_t = F.relu(cos_t - threshold)
    P_num = len(P_one_hot.nonzero())
    N_num = len((P_one_hot == 0).nonzero())
    zeros = torch.zeros_like(cos)
    pos_term = torch.where(P_one_hot == 1, pos, zeros).sum() / P_num
    neg_term = torch.where(P_one_hot == 0, neg, zeros).sum() / N_num
    pos_term_t = torch.where(P_one_hot == 1, pos_t, zeros).sum() / P_num
    neg_term_t = torch.where(P_one_hot == 0, neg_t, zeros).sum() / N_num
    index = label.sum(dim=1) > 1
    label_ = label[index].float()
    x_, t_ = x[index], y[index]
    cos_sim = label_.mm(label_.T)
    if len((cos_sim == 0).nonzero()) == 0:
        reg = 0.0
    else:
        x_sim = F.normalize(x_, p=2, dim=1).mm(F.normalize(x_, p=2, dim=1).T)
        t_sim = F.normalize(t_, p=2, dim=1).mm(F.normalize(t_, p=2, dim=1).T)
        xt_sim = F.normalize(x_, p=2, dim=1).mm(F.normalize(t_, p=2, dim=1).T)
        count = len((cos_sim == 0).nonzero())
        reg = sum(
            torch.where(cos_sim == 0, alpha * F.relu(s - threshold), torch.zeros_like(s)).sum() / count
            for s in (x_sim, t_sim, xt_sim)
        )
    return pos_term + neg_term + pos_term_t + neg_term_t + reg


@pytest.mark.parametrize("threshold", [None, 0.1])
def test_dsph_loss_matches_release_transcription(threshold):
    torch.manual_seed(0)
    image, text, Y = _batch()
    cfg = dsph.Config(threshold=threshold)
    model = dsph.build(D, D, C, K, cfg)
    model.eval()
    out = model(image, text)
    terms = dsph.loss(out, torch.arange(B), Y, {}, cfg)
    zeta = 0.0 if threshold is None else threshold  # 5 labels -> m = 3; 8 bits: Griesmer d = 4 -> 1 - 8/8 = 0
    ref = _dsph_reference(out["h_image"].detach(), out["h_text"].detach(), Y, model.proxies.detach(), zeta, 0.8)
    assert terms["pair"].item() > 0  # the batch holds multi-label items with no shared label
    assert terms["total"].item() == pytest.approx(float(ref), abs=1e-6)


def test_dsph_threshold_hand_computed():
    # d from the Griesmer bound, hand-summed: [16, 5]: 8+4+2+1+1 = 16 -> d = 8; [16, 7]: 6+3+2+1+1+1+1 = 15 -> d = 6
    assert dsph.griesmer_distance(16, 5) == 8 and dsph.griesmer_distance(16, 7) == 6
    assert dsph.proxy_threshold(16, 24) == 0.0 and dsph.proxy_threshold(64, 21) == 0.0
    assert dsph.proxy_threshold(16, 80) == pytest.approx(1 - 12 / 16)
    assert dsph.proxy_threshold(32, 5) == pytest.approx(1 - 2 * 18 / 32)  # [32, 3]: 18+9+5 = 32
    assert dsph.proxy_threshold(64, 2) == -1.0  # two proxies: antipodal


def test_dsph_epoch_lowers_loss_and_encodes():
    torch.manual_seed(2)
    g = torch.Generator().manual_seed(2)
    N = 48
    Y = (torch.rand(N, C, generator=g) < 0.4).float()
    Y[Y.sum(1) == 0, 0] = 1
    image, text = torch.randn(N, D, generator=g), torch.randn(N, D, generator=g)
    cfg = dsph.Config()
    model = dsph.build(D, D, C, K, cfg)
    opt = dsph.optimizer(model, cfg)
    proxies_before = model.proxies.detach().clone()
    batches = [(p, image[p], text[p]) for p in torch.randperm(N, generator=g).split(8)]

    def full_loss():
        model.eval()
        with torch.no_grad():
            return float(dsph.loss(model(image, text), torch.arange(N), Y, {}, cfg)["total"])

    before = full_loss()
    means = dsph.epoch(model, dsph.loss, batches, Y, {}, opt, cfg)
    after = full_loss()
    assert set(means) == {"total", "proxy_image", "proxy_text", "pair"}
    assert after < before - 1e-3
    assert not torch.equal(model.proxies.detach(), proxies_before)  # the proxies' SGD stepped too
    codes = model.encode(text, "text")
    assert codes.dtype == torch.int8 and codes.shape == (N, K)
    assert set(codes.unique().tolist()) <= {-1, 1}


def test_dsph_optimizer_groups_follow_the_release():
    """One BertAdam step and one SGD step by hand on a single parameter each."""
    cfg = dsph.Config()
    torch.manual_seed(3)
    model = dsph.build(4, 4, 3, 4, cfg)
    opt = dsph.optimizer(model, cfg)
    out = model(torch.randn(5, 4), torch.randn(5, 4))
    dsph.loss(out, torch.arange(5), torch.eye(3)[[0, 1, 2, 0, 1]], {}, cfg)["total"].backward()
    w, gw = model.image_hash.fc.weight.detach().clone(), model.image_hash.fc.weight.grad.clone()
    P, gP = model.proxies.detach().clone(), model.proxies.grad.clone()
    opt.step()
    gw = gw * min(1.0, 1.0 / (float(gw.norm()) + 1e-6))  # clip_grad_norm_(p, 1.0)
    m, v = 0.1 * gw, 0.02 * gw * gw
    expected_w = w - 0.001 * (m / (v.sqrt() + 1e-6) + 0.2 * w)
    assert torch.allclose(model.image_hash.fc.weight.detach(), expected_w, atol=1e-7)
    expected_P = P - 0.02 * (gP + 0.0005 * P)
    assert torch.allclose(model.proxies.detach(), expected_P, atol=1e-7)


def test_dsph_config_is_the_release():
    assert _defaults(dsph.Config) == {
        "lr": 0.001,
        "batch_size": 64,
        "epochs": 100,
        "alpha": 0.8,
        "dropout": 0.2,
        "weight_decay": 0.2,
        "warmup_proportion": 0.1,
        "betas": (0.9, 0.98),
        "eps": 1e-6,
        "max_grad_norm": 1.0,
        "proxy_lr": 0.02,
        "proxy_momentum": 0.9,
        "proxy_weight_decay": 0.0005,
        "hypseed": 0,
        "threshold": None,
    }
    assert dsph.NAME == "dsph" and dsph.SUPERVISED and dsph.TEXT_INPUT == "clip"


# ---------------------------------------------------------------- UCCH


def _ucch_reference(im, ab, y, memory, epoch, cfg):
    """penghu-cs/UCCH NCEAverage.forward + NCESoftmaxLoss + ContrastiveLoss, transcribed (memory update apart)."""
    batchSize, inputSize = im.shape
    T = cfg.temperature * math.sqrt(inputSize)
    momentum = 0 if epoch < cfg.warmup_epochs else cfg.momentum
    if momentum <= 0:
        weight = (im + ab) / 2.0
        inx = torch.stack([torch.arange(batchSize)] * batchSize)
        inx = torch.cat(
            [torch.arange(batchSize).view([-1, 1]), inx[torch.eye(batchSize) == 0].view([batchSize, -1])], 1
        )
        weight = weight[inx.view(-1)].view([batchSize, batchSize, -1])
    else:
        idx = torch.randint(0, len(memory), (batchSize, cfg.negatives + 1))  # the release: uniform alias draws
        idx[:, 0] = y
        weight = torch.index_select(memory, 0, idx.view(-1)).view(batchSize, cfg.negatives + 1, inputSize)
    weight = weight.sign()
    out_ab = torch.bmm(weight, ab.view(batchSize, inputSize, 1)) / T
    out_l = torch.bmm(weight, im.view(batchSize, inputSize, 1)) / T

    def nce(x):
        x = x.softmax(1)
        return -x[:, 0].log().mean()

    Lc = nce(out_l) + nce(out_ab)
    # ContrastiveLoss(margin, shift).forward(im, s), tau = 1, element by element
    scores = im @ ab.T
    n = len(scores)
    rows, cols = 0.0, 0.0
    for i in range(n):
        cost_s = [
            float(scores[i, j]) if scores[i, j] >= scores[i, i] - cfg.margin else float(scores[i, j]) - cfg.shift
            for j in range(n)
        ]
        rows += -float(scores[i, i]) + math.log(sum(math.exp(c) for c in cost_s)) + cfg.margin
        cost_im = [
            float(scores[j, i]) if scores[j, i] >= scores[i, i] - cfg.margin else float(scores[j, i]) - cfg.shift
            for j in range(n)
        ]
        cols += -float(scores[i, i]) + math.log(sum(math.exp(c) for c in cost_im)) + cfg.margin
    Lr = rows / n + cols / n
    return cfg.alpha * float(Lc) + (1 - cfg.alpha) * Lr


@pytest.mark.parametrize("epoch", [0, 1])
def test_ucch_loss_matches_release_transcription(epoch):
    torch.manual_seed(0)
    image, text, _ = _batch(text_dim=V)
    cfg = ucch.Config(hidden=32, negatives=16)
    model = ucch.build(D, V, C, K, cfg)
    state = ucch.init_state(torch.zeros(30, C), K, cfg, torch.Generator().manual_seed(0))
    state["epoch"] = torch.tensor(epoch)
    pos = torch.tensor([3, 7, 11, 19, 23, 29])
    out = model(image, text)
    assert torch.allclose(out["h_image"].norm(dim=1), torch.ones(B))
    torch.manual_seed(5)
    terms = ucch.loss(out, pos, None, state, cfg)
    torch.manual_seed(5)
    ref = _ucch_reference(out["h_image"].detach(), out["h_text"].detach(), pos, state["memory"], epoch, cfg)
    assert terms["total"].item() == pytest.approx(ref, abs=1e-6)


def test_ucch_memory_update_and_init_follow_the_release():
    cfg = ucch.Config(hidden=8)
    state = ucch.init_state(torch.zeros(10, C), K, cfg, torch.Generator().manual_seed(0))
    M = state["memory"]
    # normalize(sign(.)) rows: every entry is ±1/sqrt(K)
    assert torch.allclose(M.abs(), torch.full((10, K), 1 / math.sqrt(K)))
    g = torch.Generator().manual_seed(1)
    u, v = F.normalize(torch.randn(3, K, generator=g), dim=1), F.normalize(torch.randn(3, K, generator=g), dim=1)
    pos = torch.tensor([1, 4, 8])
    for epoch, mu in ((0, 0.0), (1, 0.4)):
        state["epoch"] = torch.tensor(epoch)
        old = state["memory"].clone()
        ucch.update_memory(state, pos, u, v, cfg)
        mean = (u + v) / 2
        mean = mean / mean.norm(dim=1, keepdim=True)
        l_pos = old[pos] * mu + mean * (1 - mu)
        l_pos = l_pos / l_pos.norm(dim=1, keepdim=True)
        assert torch.allclose(state["memory"][pos], l_pos, atol=1e-6)
        untouched = torch.ones(10, dtype=torch.bool)
        untouched[pos] = False
        assert torch.equal(state["memory"][untouched], old[untouched])


def test_ucch_epoch_lowers_loss_and_encodes():
    torch.manual_seed(4)
    g = torch.Generator().manual_seed(4)
    N = 64
    image, text = torch.randn(N, D, generator=g), torch.rand(N, V, generator=g)
    Y = torch.zeros(N, C)
    cfg = ucch.Config(hidden=64, lr=1e-3)
    model = ucch.build(D, V, C, K, cfg)
    opt = ucch.optimizer(model, cfg)
    state = ucch.init_state(Y, K, cfg, torch.Generator().manual_seed(4))
    batches = [(p, image[p], text[p]) for p in torch.randperm(N, generator=g).split(16)]

    def full_loss():  # the warm-up contrast (in-batch, no sampling) on all items at once
        model.eval()
        with torch.no_grad():
            frozen = {"memory": state["memory"].clone(), "epoch": torch.tensor(0)}
            return float(ucch.loss(model(image, text), torch.arange(N), Y, frozen, cfg)["total"])

    before = full_loss()
    means = ucch.epoch(model, ucch.loss, batches, Y, state, opt, cfg)
    after = full_loss()
    assert set(means) == {"total", "contrast_image", "contrast_text", "ranking"}
    assert after < before - 1e-3
    assert int(state["epoch"]) == 1
    # warm-up memory = the batch outputs themselves (mu = 0): its rows are unit and follow the network
    assert torch.allclose(state["memory"].norm(dim=1), torch.ones(N), atol=1e-6)
    ucch.epoch(model, ucch.loss, batches, Y, state, opt, cfg)  # a memory epoch runs (negatives drawn)
    codes = model.encode(text, "text")
    assert codes.dtype == torch.int8 and codes.shape == (N, K)
    assert set(codes.unique().tolist()) <= {-1, 1}


def test_ucch_schedule_is_the_release_multistep():
    cfg = ucch.Config(hidden=8)
    model = ucch.build(4, 4, 2, 4, cfg)
    opt = ucch.optimizer(model, cfg)
    lrs = []
    for e in (0, 1, 30, 31, 61, 121):
        ucch.start_epoch(model, opt, e, 200, cfg)
        lrs.append(opt.param_groups[0]["lr"])
    # lr_schedu.step(epoch) after epoch e sets the next epoch's lr to lr * 0.1 ** #milestones <= e
    assert lrs == pytest.approx([1e-4, 1e-4, 1e-4, 1e-5, 1e-6, 1e-8])


def test_ucch_config_is_the_release():
    assert _defaults(ucch.Config) == {
        "lr": 1e-4,
        "weight_decay": 1e-6,
        "batch_size": 256,
        "epochs": 20,
        "alpha": 0.7,
        "shift": 0.1,
        "margin": 0.2,
        "momentum": 0.4,
        "negatives": 4096,
        "temperature": 0.9,
        "warmup_epochs": 1,
        "image_layers": 3,
        "text_layers": 2,
        "hidden": 8192,
        "max_grad_norm": 1.0,
        "milestones": (30, 60, 90, 120),
        "gamma": 0.1,
    }
    assert ucch.NAME == "ucch" and not ucch.SUPERVISED and ucch.TEXT_INPUT == "bow"


# ---------------------------------------------------------------- learning, in numbers


@pytest.mark.parametrize(
    ("module", "overrides", "epochs"),
    [
        (dchmt, {"batch_size": 16}, 15),
        (dsph, {"batch_size": 16}, 30),
        (ucch, {"batch_size": 32, "hidden": 64, "lr": 1e-3, "negatives": 64}, 15),
    ],
    ids=["dchmt", "dsph", "ucch"],
)
def test_learns_separable_data(module, overrides, epochs):
    """Three labels, features = one-hot label @ a random matrix + noise: image-to-text mAP well above chance (1/3)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    N, n_query, labels = 120, 30, 3
    text_dim = V if module.TEXT_INPUT == "bow" else D
    which = torch.arange(N) % labels
    Y = F.one_hot(which, labels).float()
    image = Y @ torch.randn(labels, D, generator=g) + 0.5 * torch.randn(N, D, generator=g)
    text = Y @ torch.rand(labels, text_dim, generator=g) + 0.2 * torch.rand(N, text_dim, generator=g)
    train = torch.arange(n_query, N)
    cfg = module.Config(**overrides)
    model = module.build(D, text_dim, labels, 16, cfg)
    opt = module.optimizer(model, cfg)
    state = module.init_state(Y[train], 16, cfg, torch.Generator().manual_seed(0))
    Y_train = Y[train]

    def chance_map():
        return mean_average_precision(
            model.encode(image[:n_query], "image").numpy(),
            model.encode(text[train], "text").numpy(),
            Y[:n_query].numpy(),
            Y_train.numpy(),
            backend="numpy",
        )

    before = chance_map()
    for e in range(epochs):
        if hasattr(module, "start_epoch"):
            module.start_epoch(model, opt, e, epochs, cfg)
        order = torch.randperm(len(train), generator=g)
        batches = [(p, image[train][p], text[train][p]) for p in order.split(cfg.batch_size)]
        module.epoch(model, module.loss, batches, Y_train, state, opt, cfg)
    after = chance_map()
    assert after > 0.8, (before, after)
    assert after > before + 0.1
