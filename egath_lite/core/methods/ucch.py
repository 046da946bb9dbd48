"""UCCH: Unsupervised Contrastive Cross-modal Hashing (Hu, Zhu, Lin, Peng, Zhao, Peng; IEEE TPAMI 2023).

Released code: penghu-cs/UCCH (``UCCH.py``: ``main``, ``train``; ``NCE/NCEAverage.py``: ``NCEAverage``;
``NCE/NCECriterion.py``: ``NCESoftmaxLoss``; ``src/utils.py``: ``ContrastiveLoss``; ``nets/ImageNet.py``,
``nets/TextNet.py``; ``utils/config.py``; ``README.md``: the MIRFlickr feature run).

The method, per batch of items i with image x_i and text t_i, and a memory M (N, K) of unit rows::

    u_i = tanh(f(x_i)) / ||tanh(f(x_i))||,  v_i = tanh(g(t_i)) / ||tanh(g(t_i))||    (MLPs f, g; (b, K))
    W_i = sign(M[i, j_0..j_k])  with j_0 = i and k negatives drawn uniformly from the N items
          (first epoch: W_i = sign((u + v) / 2) of the batch, item i first, then the others)
    L_c = -mean_i log softmax(W_i u_i / tau)_0 - mean_i log softmax(W_i v_i / tau)_0,   tau = T sqrt(K)
    s = u v^T;  c^s_ij = s_ij if s_ij >= s_ii - margin else s_ij - shift  (rows; columns alike, c^t)
    L_r = mean_i [-s_ii + log sum_j exp(c^s_ij) + margin] + mean_j [-s_jj + log sum_i exp(c^t_ij) + margin]
    loss = alpha L_c + (1 - alpha) L_r
    after the step: M[i] <- normalize(mu M[i] + (1 - mu) normalize((u_i + v_i) / 2))   (mu = 0 the first epoch)

The memory's signs are the binary codes the contrast learns against ("contrastive hashing" without a
continuous relaxation: the release's ``weight.sign_()``); L_r is the cross-modal ranking loss, which
shifts the negatives that are already a margin below the positive instead of dropping them.

Departures from the release:

- image input: the run's frozen CLIP image vectors where the release's feature route (``*_fea`` data)
  reads VGG-19 fc7 vectors; its raw-image route (a trainable VGG/ResNet under the MLP, frozen for the
  warm-up epoch) is not reproduced. ``TEXT_INPUT = "bow"``: the release reads bag-of-words/tag vectors;
- negatives are drawn with ``torch.randint`` (uniform with replacement, as the release's alias sampler
  over uniform weights), from torch's global generator as the release does;
- the memory update runs in ``epoch`` after the step, from the detached outputs (the release runs it
  inside the contrast module's forward, under ``no_grad``, with the same values); ``loss`` itself has
  no side effect; the epoch count for the warm-up lives in the state (``state["epoch"]``);
- the release drops the last incomplete batch (``drop_last=True``); here a batch of one item is skipped
  (its in-batch contrast has no negative) and other short batches train;
- ``hidden`` = 8192 is the release's width; it costs 67 M parameters in the image MLP (3 layers), so small
  runs on a CPU may want a smaller value.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

NAME = "ucch"
SUPERVISED = False
TEXT_INPUT = "bow"


@dataclass
class Config:
    """UCCH's hyperparameters, defaults from its release (``utils/config.py``; the README's MIRFlickr run where said)."""

    lr: float = 1e-4  # --lr (config.py and README)
    weight_decay: float = 1e-6  # --wd, Adam weight_decay (UCCH.py main)
    batch_size: int = 256  # --train_batch_size (config.py and README)
    epochs: int = 20  # README's MIRFlickr feature run --max_epochs 20 (config.py default 100)
    alpha: float = 0.7  # README's run --alpha 0.7 (config.py default 0.9): weight of L_c against L_r
    shift: float = 0.1  # README's run --shift 0.1 (config.py default 1): ContrastiveLoss shift
    margin: float = 0.2  # --margin (config.py and README)
    momentum: float = 0.4  # --momentum, the memory's update rate mu (NCEAverage)
    negatives: int = 4096  # --K, negatives drawn from the memory per item (NCEAverage)
    temperature: float = 0.9  # --T; the softmax divides by T sqrt(K bits) (NCEAverage params[1])
    warmup_epochs: int = 1  # --warmup_epoch: in-batch contrast, memory momentum 0 (UCCH.py train)
    image_layers: int = 3  # --num_hiden_layers [3, 2]: the image MLP's layers (nets/ImageNet.py)
    text_layers: int = 2  # ibid.: the text MLP's layers (nets/TextNet.py)
    hidden: int = 8192  # mid_num1 = mid_num2 = 1024 * 8 (nets/ImageNet.py, nets/TextNet.py)
    max_grad_norm: float = 1.0  # clip_grad_norm(parameters, 1.) (UCCH.py train)
    milestones: tuple[int, ...] = (30, 60, 90, 120)  # --ls linear: MultiStepLR([30, 60, 90, 120], 0.1) (UCCH.py main)
    gamma: float = 0.1  # ibid.


def _mlp(in_dim: int, bits: int, layers: int, hidden: int) -> nn.Sequential:
    """The release's ImageNet/TextNet body: ``layers`` linear maps (ReLU between), widths in -> hidden ... -> K."""
    if layers < 1:
        raise ValueError(f"an MLP needs at least one layer, got {layers}")
    widths = [in_dim] + [hidden] * (layers - 1) + [bits]
    modules: list[nn.Module] = []
    for i in range(layers):
        modules.append(nn.Linear(widths[i], widths[i + 1]))
        if i < layers - 1:
            modules.append(nn.ReLU(inplace=True))
    return nn.Sequential(*modules)


class UCCH(nn.Module):
    """An MLP per modality; each output is tanh then scaled to unit length (the release's ``norm=True``)."""

    def __init__(self, image_dim: int, text_dim: int, bits: int, cfg: Config):
        super().__init__()
        self.bits = bits
        self.image_net = _mlp(image_dim, bits, cfg.image_layers, cfg.hidden)
        self.text_net = _mlp(text_dim, bits, cfg.text_layers, cfg.hidden)

    @staticmethod
    def _unit_tanh(z: torch.Tensor) -> torch.Tensor:
        out = torch.tanh(z)
        return out / out.norm(dim=1, keepdim=True)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> dict[str, torch.Tensor]:
        """image (b, D), text (b, V) -> h_image, h_text (b, K), unit rows with entries in [-1, 1]."""
        return {
            "h_image": self._unit_tanh(self.image_net(image)),
            "h_text": self._unit_tanh(self.text_net(text.float())),
        }

    @torch.no_grad()
    def encode(self, x: torch.Tensor, modality: str, batch_size: int = 1024) -> torch.Tensor:
        """int8 (n, K) codes sign(h) in {-1, +1} (0 -> +1) of one modality, eval mode."""
        if modality not in ("image", "text"):
            raise ValueError(f"modality must be 'image' or 'text', got {modality!r}")
        net = self.image_net if modality == "image" else self.text_net
        was_training = self.training
        self.eval()
        device = next(net.parameters()).device
        chunks = [torch.tanh(net(x[i : i + batch_size].to(device).float())) for i in range(0, len(x), batch_size)]
        self.train(was_training)
        if not chunks:
            return torch.empty(0, self.bits, dtype=torch.int8)
        return torch.where(torch.cat(chunks) >= 0, 1, -1).to(torch.int8).cpu()


def build(image_dim: int, text_dim: int, num_labels: int, bits: int, cfg: Config) -> UCCH:
    """The two MLPs; ``num_labels`` is unused (UCCH reads no labels)."""
    return UCCH(image_dim, text_dim, bits, cfg)


def init_state(Y: torch.Tensor, bits: int, cfg: Config, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The memory M (N, K): normalize(sign(2 s z - s)), z ~ N(0, 1), s = 1 / sqrt(K / 3) (NCEAverage); epoch 0."""
    stdv = 1.0 / math.sqrt(bits / 3)
    rnd = torch.randn(len(Y), bits, generator=generator).mul_(2 * stdv).add_(-stdv)
    return {"memory": F.normalize(rnd.sign(), dim=1), "epoch": torch.tensor(0)}


def optimizer(model: nn.Module, cfg: Config) -> torch.optim.Adam:
    """The release's ``--optimizer Adam``: Adam(lr, weight_decay=wd) on both MLPs."""
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def start_epoch(model: nn.Module, opt: torch.optim.Optimizer, epoch: int, epochs: int, cfg: Config) -> None:
    """The release's MultiStepLR as it steps it (``lr_schedu.step(epoch)`` after epoch ``epoch``)."""
    decays = bisect.bisect_right(list(cfg.milestones), max(epoch - 1, 0))
    for group in opt.param_groups:
        group["lr"] = cfg.lr * cfg.gamma**decays


def contrast_weights(u: torch.Tensor, v: torch.Tensor, pos: torch.Tensor, state: dict, cfg: Config) -> torch.Tensor:
    """W (b, k+1, K) in {-1, 0, +1}: each item's own code first, then its negatives (module doc)."""
    b = len(u)
    if int(state["epoch"]) < cfg.warmup_epochs:
        mean = (u + v) / 2.0
        ar = torch.arange(b, device=u.device)
        others = ar.repeat(b, 1)[~torch.eye(b, dtype=torch.bool, device=u.device)].view(b, b - 1)
        return mean.detach()[torch.cat([ar[:, None], others], dim=1)].sign()
    memory = state["memory"]
    idx = torch.randint(0, len(memory), (b, cfg.negatives + 1))
    idx[:, 0] = pos.cpu()
    return memory[idx.to(memory.device)].to(u.device).sign()


def nce_softmax(logits: torch.Tensor) -> torch.Tensor:
    """The release's ``NCESoftmaxLoss``: -mean log softmax(logits)[:, 0]."""
    return -logits.softmax(1)[:, 0].log().mean()


def ranking_loss(u: torch.Tensor, v: torch.Tensor, margin: float, shift: float) -> torch.Tensor:
    """The release's ``ContrastiveLoss`` (tau = 1): the cross-modal ranking loss L_r of the module doc."""
    scores = u @ v.T
    diagonal = scores.diag().view(-1, 1)
    mask_rows = (scores >= diagonal - margin).float().detach()
    cost_rows = scores * mask_rows + (1.0 - mask_rows) * (scores - shift)
    mask_cols = (scores >= diagonal.T - margin).float().detach()
    cost_cols = scores * mask_cols + (1.0 - mask_cols) * (scores - shift)
    rows = (-cost_rows.diag() + cost_rows.exp().sum(1).log() + margin).mean()
    cols = (-cost_cols.diag() + cost_cols.exp().sum(0).log() + margin).mean()
    return rows + cols


def loss(
    out: dict[str, torch.Tensor], pos: torch.Tensor, Y_b: torch.Tensor, state: dict, cfg: Config
) -> dict[str, torch.Tensor]:
    """alpha (L_c of both modalities) + (1 - alpha) L_r; labels are ignored. Draws negatives after the warm-up."""
    u, v = out["h_image"], out["h_text"]
    W = contrast_weights(u, v, pos, state, cfg)
    tau = cfg.temperature * math.sqrt(u.shape[1])
    contrast_image = nce_softmax(torch.bmm(W, u.unsqueeze(2)).squeeze(2) / tau)
    contrast_text = nce_softmax(torch.bmm(W, v.unsqueeze(2)).squeeze(2) / tau)
    ranking = ranking_loss(u, v, cfg.margin, cfg.shift)
    total = cfg.alpha * (contrast_image + contrast_text) + (1.0 - cfg.alpha) * ranking
    return {"total": total, "contrast_image": contrast_image, "contrast_text": contrast_text, "ranking": ranking}


@torch.no_grad()
def update_memory(state: dict, pos: torch.Tensor, u: torch.Tensor, v: torch.Tensor, cfg: Config) -> None:
    """M[pos] <- normalize(mu M[pos] + (1 - mu) normalize((u + v) / 2)); mu = 0 during the warm-up."""
    mu = 0.0 if int(state["epoch"]) < cfg.warmup_epochs else cfg.momentum
    memory = state["memory"]
    rows = pos.to(memory.device)
    mean = F.normalize((u + v).float().to(memory.device) / 2.0, dim=1)
    memory[rows] = F.normalize(memory[rows] * mu + mean * (1 - mu), dim=1)


def epoch(model, loss_fn, batches, Y: torch.Tensor, state: dict, opt, cfg: Config) -> dict[str, float]:
    """One pass: loss, backward, clip the gradient norm (1.0), Adam step, memory update; then the epoch count + 1."""
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    sums: dict[str, float] = {}
    seen = 0
    for pos, image, text in batches:
        if len(pos) < 2:
            continue
        out = model(image, text)
        terms = loss_fn(out, pos, Y[pos].to(device), state, cfg)
        opt.zero_grad()
        terms["total"].backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        opt.step()
        update_memory(state, pos, out["h_image"].detach(), out["h_text"].detach(), cfg)
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + value.item() * len(pos)
        seen += len(pos)
    state["epoch"] = state["epoch"] + 1
    return {name: total / max(seen, 1) for name, total in sums.items()}
