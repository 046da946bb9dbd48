"""DCMH, GCDH, DJSRH, JDSH (``egath_lite.core.methods``): each loss against a plain transcription of its
release's formula, one epoch lowering it, codes, and the release's hyperparameters as defaults."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from egath_lite.core.methods import dcmh, djsrh, gcdh, jdsh

b, D, V, C, K = 6, 16, 20, 5, 8


def _batch(seed: int = 0, n: int = b):
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(n, D, generator=g)
    text = (torch.rand(n, V, generator=g) < 0.3).float()
    Y = (torch.rand(n, C, generator=g) < 0.4).float()
    Y[torch.arange(n), torch.randint(0, C, (n,), generator=g)] = 1.0  # every item has a label
    return image, text, Y


def _graph(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    P = torch.rand(C, C, generator=g)
    P.fill_diagonal_(1.0)
    return {"cond_prob": P, "label_emb": torch.randn(C, 12, generator=g)}


def _small(module, **extra):
    fields = {f.name for f in dataclasses.fields(module.Config)}
    sizes = {"text_hidden": 32} if "text_hidden" in fields else {}
    if module is gcdh:
        sizes = {"text_hidden": (32, 24), "hidden_dim": 16, "gcn_hidden": 16}
    return module.Config(**{**sizes, **extra})


# --------------------------------------------------------------------------- 1. loss = plain transcription
def test_dcmh_loss_equals_the_released_formula():
    torch.manual_seed(0)
    N = 14
    image, text, Yall = _batch(1, N)
    cfg = _small(dcmh)
    model = dcmh.build(D, V, C, K, cfg)
    state = dcmh.init_state(Yall, K, cfg, torch.Generator().manual_seed(3))
    pos = torch.tensor([3, 0, 7, 11, 5, 9])
    out = model(image[pos], text[pos])
    got = dcmh.loss(out, pos, Yall[pos], state, cfg)
    # main.py train, image half then text half, with F/G buffers holding the batch's outputs
    f, g = out["h_image"].detach().double(), out["h_text"].detach().double()
    Fb, Gb, B = state["F"].double().clone(), state["G"].double().clone(), state["B"].double()
    Fb[pos], Gb[pos] = f, g
    total = 0.0
    for cur, other, own in ((f, Gb, Fb), (g, Fb, Gb)):
        logloss = quant = 0.0
        for a, i in enumerate(pos.tolist()):
            for j in range(N):
                s = 1.0 if float(Yall[i] @ Yall[j]) > 0 else 0.0
                theta = 0.5 * float(cur[a] @ other[j])
                logloss -= s * theta - math.log(1.0 + math.exp(theta))
            quant += float(((B[i] - cur[a]) ** 2).sum())
        rest = [j for j in range(N) if j not in pos.tolist()]
        balance = float(((cur.sum(0) + own[rest].sum(0)) ** 2).sum())
        total += (logloss + cfg.gamma * quant + cfg.eta * balance) / (len(pos) * N)
    assert got["total"].item() == pytest.approx(total, abs=1e-6, rel=1e-6)


def test_djsrh_loss_equals_the_released_formula():
    torch.manual_seed(0)
    image, text, Y = _batch(2)
    cfg = _small(djsrh)
    model = djsrh.build(D, V, C, K, cfg)
    out = model(image, text)
    got = djsrh.loss(out, torch.arange(b), Y, {}, cfg)["total"].item()
    # train.py Session.train, entry by entry
    fi = [image[i] / image[i].norm() for i in range(b)]
    ft = [text[i] / text[i].norm().clamp_min(1e-12) for i in range(b)]
    St = [[cfg.beta * (2 * float(fi[i] @ fi[j]) - 1) + (1 - cfg.beta) * (2 * float(ft[i] @ ft[j]) - 1)
           for j in range(b)] for i in range(b)]  # fmt: skip
    S = [[cfg.mu * ((1 - cfg.eta) * St[i][j] + cfg.eta * sum(St[i][k] * St[k][j] for k in range(b)) / b)
          for j in range(b)] for i in range(b)]  # fmt: skip
    bi = [out["h_image"][i].detach() / out["h_image"][i].detach().norm() for i in range(b)]
    bt = [out["h_text"][i].detach() / out["h_text"][i].detach().norm() for i in range(b)]

    def mse(u, v):
        return sum((float(u[i] @ v[j]) - S[i][j]) ** 2 for i in range(b) for j in range(b)) / b**2

    want = cfg.lambda1 * mse(bi, bi) + mse(bi, bt) + cfg.lambda2 * mse(bt, bt)
    assert got == pytest.approx(want, abs=1e-6)


def test_jdsh_loss_equals_the_released_formula():
    torch.manual_seed(0)
    image, text, Y = _batch(3)
    cfg = _small(jdsh)
    model = jdsh.build(D, V, C, K, cfg)
    out = model(image, text)
    got = jdsh.loss(out, torch.arange(b), Y, {}, cfg)["total"].item()
    # JDSH.py cal_similarity_matrix + cal_loss, in the release's own tensor ops (in-place masked writes)
    F_I, F_T = F.normalize(image), F.normalize(text)
    S_I, S_T = F_I.mm(F_I.t()) * 2 - 1, F_T.mm(F_T.t()) * 2 - 1
    S_high = F.normalize(S_I).mm(F.normalize(S_T).t())
    S_ = cfg.a * S_I + cfg.b * S_T + cfg.lamb * (S_high + S_high.t()) / 2
    left = cfg.loc_left - cfg.alpha_left * cfg.scale_left
    right = cfg.loc_right + cfg.beta_right * cfg.scale_right
    S_[S_ < left] = (1 + cfg.l1 * torch.exp(-(S_[S_ < left] - cfg.min_))) * S_[S_ < left]
    S_[S_ > right] = (1 + cfg.l2 * torch.exp(S_[S_ > right] - cfg.max_)) * S_[S_ > right]
    S = S_ * cfg.mu
    B_I, B_T = F.normalize(out["h_image"].detach(), dim=1), F.normalize(out["h_text"].detach(), dim=1)
    loss1 = F.mse_loss(B_I.mm(B_I.t()), S)
    loss2 = F.mse_loss(B_I.mm(B_T.t()), S) + F.mse_loss(B_T.mm(B_I.t()), S) - (B_I * B_T).sum(dim=1).mean()
    loss3 = F.mse_loss(B_T.mm(B_T.t()), S)
    assert got == pytest.approx((cfg.intra * loss1 + loss2 + cfg.intra * loss3).item(), abs=1e-6)
    assert (S_ < left).any() and (S_ > right).any()  # both re-weightings are exercised


def test_gcdh_loss_equals_the_released_formula():
    torch.manual_seed(0)
    image, text, Y = _batch(4)
    cfg = _small(gcdh)
    model = gcdh.build(D, V, C, K, cfg, graph=_graph())
    state = gcdh.init_state(Y, K, cfg, torch.Generator().manual_seed(1))
    pos = torch.arange(b)
    out = model(image, text)
    got = gcdh.loss(out, pos, Y, state, cfg)["total"].item()
    h_i, h_t, B = out["h_image"].detach(), out["h_text"].detach(), state["B"]

    def tri(src, tgt):  # triplet_loss.py, loops over (a, p, n)
        total = 0.0
        for a in range(b):
            gains = [2 ** float(Y[a] @ Y[j]) - 1 for j in range(b)]
            ideal = sorted([float(Y[a] @ Y[j]) for j in range(b)], reverse=True)
            Z = sum((2**v - 1) / math.log2(r + 2) for r, v in enumerate(ideal))
            for p in range(b):
                for n in range(b):
                    if float(Y[a] @ Y[p]) > 0 and float(Y[a] @ Y[n]) == 0:
                        d_ap = max(1 - float(F.cosine_similarity(src[a], tgt[p], dim=0)), 0.0)
                        d_an = max(1 - float(F.cosine_similarity(src[a], tgt[n], dim=0)), 0.0)
                        w = gains[p] / Z - gains[n] / Z
                        total += max(w * (d_ap - d_an + cfg.margin), 0.0)
        return total

    triplets = tri(h_i, h_t) + tri(h_i, h_i) + tri(h_t, h_i) + tri(h_t, h_t)
    quant = float(((B - h_i) ** 2).sum() + ((B - h_t) ** 2).sum())
    logits = out["logits"].detach()
    bce = -sum(
        float(Y[i, c]) * math.log(torch.sigmoid(logits[i, c]).item())
        + (1 - float(Y[i, c])) * math.log(1 - torch.sigmoid(logits[i, c]).item())
        for i in range(b)
        for c in range(C)
    ) / (b * C)
    assert got == pytest.approx(cfg.alpha * triplets + quant + bce, rel=1e-5, abs=1e-5)


def test_gcdh_adjacency_and_discrete_step_follow_the_release():
    P = _graph()["cond_prob"]
    A = (P >= 0.3).float()
    A = A * 0.25 / (A.sum(0, keepdim=True) + 1e-6) + torch.eye(C)
    Dm = torch.diag(A.sum(1) ** -0.5)
    assert torch.allclose(gcdh.gcdh_adjacency(P, 0.3), (A @ Dm).t() @ Dm, atol=1e-6)
    _, _, Y = _batch(5, 12)
    cfg = gcdh.Config()
    state = gcdh.init_state(Y, K, cfg, torch.Generator().manual_seed(2))
    before = copy.deepcopy(state)
    gcdh.discrete_step(state, cfg)
    g = before["gamma"].item()
    R = torch.inverse(Y.t() @ Y + torch.eye(C)) @ Y.t() @ before["B"]
    Bw = torch.sign(Y @ R + g * (before["C"] - before["D"] / g) + cfg.mu * (before["H_image"] + before["H_text"]))
    assert torch.equal(state["B"], Bw)
    U, _, Vh = torch.linalg.svd(Bw + before["D"] / g, full_matrices=False)
    assert torch.allclose(state["C"], U @ Vh, atol=1e-5)
    assert torch.allclose(state["C"].t() @ state["C"], torch.eye(K), atol=1e-4)  # orthogonal columns
    assert state["gamma"].item() == pytest.approx(g * 1.05)


# --------------------------------------------------------------------------- 2. one epoch lowers the loss
@pytest.mark.parametrize("module", [dcmh, djsrh, jdsh, gcdh], ids=lambda m: m.NAME)
def test_one_epoch_lowers_the_loss_and_codes_are_signs(module):
    torch.manual_seed(0)
    N = 48
    image, text, Y = _batch(6, N)
    lr = {"gcdh": {"lr": 1e-3}}.get(module.NAME, {})  # GCDH: 10 x its release rate, for one short epoch
    cfg = _small(module, batch_size=12, **lr)
    extra = {"graph": _graph()} if getattr(module, "NEEDS_GRAPH", False) else {}
    model = module.build(D, V, C, K, cfg, **extra)
    state = module.init_state(Y, K, cfg, torch.Generator().manual_seed(0))
    opt = module.optimizer(model, cfg)
    pos_all = torch.arange(N)

    def full_loss(st):  # train mode: GCDH's batch norm normalises by the batch, not by running statistics
        model.train()
        with torch.no_grad():
            return module.loss(model(image, text), pos_all, Y, st, cfg)["total"].item()

    fixed = copy.deepcopy(state)
    before = full_loss(fixed)
    batches = [(p, image[p], text[p]) for p in torch.randperm(N, generator=torch.Generator().manual_seed(1)).split(12)]
    means = module.epoch(model, module.loss, batches, Y, state, opt, cfg)
    after = full_loss(fixed)
    assert math.isfinite(means["total"]) and after < before, (before, after)
    codes = model.encode(image[:10], "image"), model.encode(text[:7], "text")
    for c, n in zip(codes, (10, 7)):
        assert c.dtype == torch.int8 and c.shape == (n, K) and set(c.unique().tolist()) <= {-1, 1}
    with pytest.raises(ValueError, match="modality"):
        model.encode(image, "audio")


# --------------------------------------------------------------------------- 3. the releases' defaults
RELEASE = {
    # WendellGul/DCMH config.py (lr, batch_size, gamma, eta), main.py (lr_min), models/txt_module.py (8192)
    dcmh: dict(lr=10 ** (-1.5), lr_min=1e-6, batch_size=128, gamma=1.0, eta=1.0, text_hidden=8192),
    # zs-zhong/DJSRH settings.py, MIRFlickr block and shared values; models.py TxtNet (4096)
    djsrh: dict(
        lr_image=0.001,
        lr_text=0.01,
        momentum=0.9,
        weight_decay=5e-4,
        batch_size=32,
        beta=0.9,
        eta=0.4,
        mu=1.5,
        lambda1=0.1,
        lambda2=0.1,
        text_hidden=4096,
    ),  # fmt: skip
    # KaiserLew/JDSH config.py, MIRFlickr block; main.py --mu default
    jdsh: dict(
        a=0.5,
        b=0.1,
        lamb=0.4,
        mu=1.4,
        intra=0.1,
        lr_image=0.01,
        lr_text=0.01,
        min_=-0.52,
        max_=0.68,
        alpha_left=2.0,
        loc_left=-0.49,
        scale_left=0.019,
        beta_right=4.0,
        loc_right=-0.49,
        scale_right=0.088,
        l1=0.1,
        l2=0.2,
        batch_size=32,
        momentum=0.9,
        weight_decay=5e-4,
        text_hidden=4096,
    ),  # fmt: skip
    # Zjut-MultimediaPlus/GCDH config.py; main.py (lr_min, weight decay); models/ (widths, slope)
    gcdh: dict(
        lr=1e-4,
        lr_min=1e-6,
        weight_decay=5e-4,
        batch_size=64,
        hidden_dim=2048,
        text_hidden=(8192, 4096),
        gcn_hidden=1024,
        leaky_slope=0.2,
        adj_threshold=0.3,
        alpha=10.0,
        margin=0.4,
        mu=0.5,
        gamma=0.01,
        rho=1.05,
    ),  # fmt: skip
}


@pytest.mark.parametrize("module", list(RELEASE), ids=lambda m: m.NAME)
def test_config_defaults_are_the_releases(module):
    defaults = {f.name: f.default for f in dataclasses.fields(module.Config)}
    assert defaults == RELEASE[module]
    assert module.SUPERVISED == (module.NAME in ("dcmh", "gcdh")) and module.TEXT_INPUT == "bow"
