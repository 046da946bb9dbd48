"""egath_lite.core.losses: hand-computed values, an independent loop reference, and bad input."""

import math

import pytest
import torch

from egath_lite.core.losses import (
    classification_loss,
    cosine_similarity_loss,
    discrete_code_step,
    label_cosine_similarity,
    quantization_loss,
    triplet_loss,
)

T = torch.tensor


def test_label_cosine_similarity_by_hand():
    S = label_cosine_similarity(T([[1.0, 0, 1]]), T([[1.0, 1, 0], [0, 1, 0], [1, 0, 1]]))
    # <(1,0,1),(1,1,0)> / (√2 √2) = 1/2; disjoint → 0; identical → 1
    assert torch.allclose(S, T([[0.5, 0.0, 1.0]]))


def test_cosine_loss_zero_when_codes_match_label_similarity():
    h_a, h_b = T([[1.0, 0.0]]), T([[1.0, 0.0], [0.0, 1.0]])
    Y_a, Y_b = T([[1.0, 0.0]]), T([[1.0, 0.0], [0.0, 1.0]])
    assert cosine_similarity_loss(h_a, h_b, Y_a, Y_b).item() == pytest.approx(0.0, abs=1e-7)
    # codes swapped: cos = (0, 1) against S = (1, 0) → ((0-1)² + (1-0)²) / 2 = 1
    swapped = T([[0.0, 1.0], [1.0, 0.0]])
    assert cosine_similarity_loss(h_a, swapped, Y_a, Y_b).item() == pytest.approx(1.0)


def test_cosine_loss_by_hand_with_soft_target():
    # cos((3,4),(1,0)) = 0.6; S((1,1),(1,0)) = 1/√2 → (0.6 − 0.70711)² = 0.011472
    loss = cosine_similarity_loss(T([[3.0, 4.0]]), T([[1.0, 0.0]]), T([[1.0, 1.0]]), T([[1.0, 0.0]]))
    assert loss.item() == pytest.approx((0.6 - 1 / math.sqrt(2)) ** 2, rel=1e-5)


def test_triplet_by_hand_normalized():
    # anchor (1,0); positive (0.6,0.8): ‖a−p‖² = 2 − 2·0.6 = 0.8; negative (2,0) → unit (1,0): ‖a−n‖² = 0
    anchor, target = T([[1.0, 0.0]]), T([[0.6, 0.8], [2.0, 0.0]])
    Y_a, Y_t = T([[1.0, 0.0]]), T([[1.0, 0.0], [0.0, 1.0]])
    assert triplet_loss(anchor, target, Y_a, Y_t, margin=0.3).item() == pytest.approx(0.8 - 0.0 + 0.3, rel=1e-5)
    # an easy triplet (negative opposite: distance 4) contributes 0
    easy = T([[1.0, 0.0], [-1.0, 0.0]])
    assert triplet_loss(anchor, easy, Y_a, Y_t, margin=0.3).item() == pytest.approx(0.0, abs=1e-7)


def test_triplet_by_hand_unnormalized_and_mean_over_valid_triplets():
    # a=(2,0), p=(0,0), n=(2,1): 4 − 1 + 0.3 = 3.3 ; second anchor has no negative → no triplet
    anchor = T([[2.0, 0.0], [0.0, 5.0]])
    target = T([[0.0, 0.0], [2.0, 1.0]])
    Y_a = T([[1.0, 0.0], [1.0, 1.0]])
    Y_t = T([[1.0, 0.0], [0.0, 1.0]])
    loss = triplet_loss(anchor, target, Y_a, Y_t, margin=0.3, normalize=False)
    assert loss.item() == pytest.approx(3.3, rel=1e-5)


def _triplet_loop(anchor, target, Y_a, Y_t, margin):
    """Independent reference: explicit loops over (a, p, n)."""
    a_n = anchor / anchor.norm(dim=1, keepdim=True)
    t_n = target / target.norm(dim=1, keepdim=True)
    total, count = 0.0, 0
    for a in range(len(a_n)):
        for p in range(len(t_n)):
            if (Y_a[a] * Y_t[p]).sum() == 0:
                continue
            for n in range(len(t_n)):
                if (Y_a[a] * Y_t[n]).sum() > 0:
                    continue
                d_ap = float(((a_n[a] - t_n[p]) ** 2).sum())
                d_an = float(((a_n[a] - t_n[n]) ** 2).sum())
                total += max(d_ap - d_an + margin, 0.0)
                count += 1
    return total / count


def test_triplet_matches_loop_reference_on_random_batch():
    g = torch.Generator().manual_seed(3)
    anchor, target = torch.randn(7, 5, generator=g), torch.randn(6, 5, generator=g)
    Y_a = (torch.rand(7, 4, generator=g) < 0.4).float()
    Y_t = (torch.rand(6, 4, generator=g) < 0.4).float()
    Y_a[:, 0], Y_t[0, 0], Y_t[1] = 1.0, 1.0, 0.0
    Y_t[1, 3] = 1.0  # target 1 has only label 3
    Y_a[:, 3] = 0.0  # so it is a negative for every anchor
    expected = _triplet_loop(anchor, target, Y_a, Y_t, 0.3)
    assert triplet_loss(anchor, target, Y_a, Y_t, 0.3).item() == pytest.approx(expected, rel=1e-5)


def test_triplet_without_valid_triplet_is_zero_and_differentiable():
    h = torch.randn(3, 4, requires_grad=True)
    Y = T([[1.0, 0.0]] * 3)  # everything relevant: no negative
    loss = triplet_loss(h, h, Y, Y)
    loss.backward()
    assert loss.item() == 0.0 and h.grad is not None


def test_classification_loss_by_hand():
    assert classification_loss(torch.zeros(2, 3), torch.ones(2, 3)).item() == pytest.approx(math.log(2))
    # y=1, ŝ=2: log(1 + e^-2); y=0, ŝ=2: log(1 + e^2)
    expected = (math.log1p(math.exp(-2)) + math.log1p(math.exp(2))) / 2
    assert classification_loss(T([[2.0, 2.0]]), T([[1.0, 0.0]])).item() == pytest.approx(expected, rel=1e-6)


def test_quantization_loss_by_hand():
    # ((1 − 0.5)² + (1 + 0.5)²) / 2 = (0.25 + 2.25) / 2
    assert quantization_loss(T([[0.5, -0.5]]), T([[1.0, 1.0]])).item() == pytest.approx(1.25)


def test_discrete_code_step_by_hand():
    Y = T([[1.0, 0.0], [0.0, 1.0]])
    B = T([[1.0, -1.0], [-1.0, 1.0]])
    # R = (YᵀY + I)⁻¹ Yᵀ B = B / 2, so with H = 0 the codes are kept
    zeros = torch.zeros(2, 2)
    assert torch.equal(discrete_code_step(Y, zeros, zeros, B, mu=0.5), B)
    # μ(H_I + H_T) = 0.5·(−3) = −1.5 outweighs YR = ±0.5 → all −1
    H = torch.full((2, 2), -1.5)
    assert torch.equal(discrete_code_step(Y, H, H, B, mu=0.5), -torch.ones(2, 2))
    # exactly 0 → +1: YR = 0.5, μ(H_I + H_T) = −0.5
    H0 = T([[-0.5, 0.0], [0.0, 0.0]])
    out = discrete_code_step(Y, H0, H0, B, mu=0.5)
    assert out[0, 0].item() == 1.0


def test_discrete_code_step_gives_same_label_sets_the_same_code():
    g = torch.Generator().manual_seed(0)
    Y = T([[1.0, 0.0, 0.0]] * 4 + [[0.0, 1.0, 1.0]] * 4)
    B = torch.where(torch.rand(8, 16, generator=g) < 0.5, -1.0, 1.0)
    out = discrete_code_step(Y, torch.zeros(8, 16), torch.zeros(8, 16), B, mu=0.5)
    assert (out[:4] == out[0]).all() and (out[4:] == out[4]).all()


@pytest.mark.parametrize(
    "bad, match",
    [
        (lambda: cosine_similarity_loss(T([[float("nan"), 0.0]]), T([[1.0, 0.0]]), T([[1.0]]), T([[1.0]])), "NaN"),
        (
            lambda: cosine_similarity_loss(T([[1.0, 0.0]]), T([[1.0, 0.0]]), T([[0.0, 0.0]]), T([[1.0, 0.0]])),
            "without any label",
        ),
        (lambda: triplet_loss(torch.ones(2, 3), torch.ones(2, 4), torch.ones(2, 1), torch.ones(2, 1)), "columns"),
        (lambda: triplet_loss(torch.ones(2, 3), torch.ones(2, 3), torch.ones(3, 1), torch.ones(2, 1)), "rows"),
        (
            lambda: triplet_loss(torch.ones(2, 3), torch.ones(2, 3), torch.ones(2, 1), torch.ones(2, 1), margin=-1),
            "margin",
        ),
        (lambda: classification_loss(torch.zeros(2, 3), torch.ones(2, 2)), "columns"),
        (lambda: quantization_loss(torch.zeros(3), torch.ones(3)), "2-D"),
        (
            lambda: discrete_code_step(torch.ones(2, 2), torch.zeros(2, 4), torch.zeros(2, 3), torch.ones(2, 4)),
            "columns",
        ),
    ],
)
def test_bad_input_raises_clear_error(bad, match):
    with pytest.raises(ValueError, match=match):
        bad()


def test_stacked_pairs_equal_the_mean_of_single_losses():
    g = torch.Generator().manual_seed(5)
    h_i, h_t = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    Y = (torch.rand(6, 3, generator=g) < 0.5).float()
    Y[:, 0], Y[0] = 1.0, torch.tensor([0.0, 1.0, 0.0])  # row 0 shares nothing with rows lacking label 1
    Y[1:, 1] = 0.0
    pairs = [(h_i, h_t), (h_i, h_i), (h_t, h_t), (h_t, h_i)]
    stacked = triplet_loss(torch.stack([a for a, _ in pairs]), torch.stack([b for _, b in pairs]), Y, Y, 0.3)
    single = sum(triplet_loss(a, b, Y, Y, 0.3) for a, b in pairs) / 4
    assert stacked.item() == pytest.approx(single.item(), rel=1e-5) and stacked.item() > 0
    stacked_cos = cosine_similarity_loss(torch.stack([h_i, h_i]), torch.stack([h_t, h_i]), Y, Y, validate=False)
    single_cos = (cosine_similarity_loss(h_i, h_t, Y, Y) + cosine_similarity_loss(h_i, h_i, Y, Y)) / 2
    assert stacked_cos.item() == pytest.approx(single_cos.item(), rel=1e-5)
