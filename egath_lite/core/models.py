"""EGATH's networks: feature encoders, label-graph classifiers, hash heads and the whole model.

- ``CLIPTrans``: a CLIP vector (D) cut into T tokens of D/T, a transformer encoder, an
  output linear layer → feature f (d). (The paper's transformer needs a sequence; one CLIP
  vector is not one, see docs/paper_map.md.)
- ``TransFC``: bag-of-words tags as a set of tag tokens (+ a [CLS] token), a transformer
  encoder, a fully connected layer → feature f (d).
- ``GATClassifier`` (torch_geometric ``GATConv``), ``GCNClassifier`` (``GCNConv``) and
  ``IndependentClassifier`` (no graph): label embeddings E (C × F) → classifiers H (C × d);
  scores Ŝ = f Hᵀ (+ b with ``label_bias``). The GAT's defaults are the released layer's
  (authors' ``gat.py``): no layer bias, dropout on the attention only, Xavier-uniform
  initialisation with gain 1.414; the project's earlier choices are options (docs/paper_map.md).
- ``HashHead``: B = tanh(W [f ; σ(Ŝ)] + b) in training, sign at test.
- ``EGATH``: both encoders, one shared classifier, one hash head per modality.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

CLASSIFIERS = ("gat", "gcn", "independent")
GAT_CONVS = ("gat", "gatv2")  # the released GATConv (static attention) or GATv2Conv (dynamic attention)
CLASSIFIER_SCALES = ("released", "unit")  # H as each classifier makes it, or rows of norm τ (one learned τ)
LABEL_FUSIONS = ("concat", "concat_logits", "none")
TEXT_INPUTS = ("bow", "clip")


def setting(default: Any, doc: str = "", name: str | None = None, **rule: Any) -> Any:
    """A config field with its one-line meaning and its range or choices (``ge``, ``gt``, ``lt``, ``le``, ``choices``).

    The run configuration (``egath_lite.pipeline.config``) takes each component's fields from these dataclasses,
    so every setting is declared once, here, beside the module it configures; its name there is the component's
    prefix + the field's name (``gat_layers``), or ``name`` where the setting is not the component's alone.
    """
    return field(default=default, metadata={**rule, "doc": doc, **({"name": name} if name else {})})


@dataclass(frozen=True)
class EncoderConfig:
    """The transformer of each modality's encoder (``CLIPTrans``, ``TransFC``); run config fields ``trans_*``."""

    tokens: int = setting(8, "CLIPTrans: the D-dim CLIP vector is cut into this many tokens", ge=1)
    width: int = setting(64, "token width of CLIPTrans and TransFC", ge=1)
    layers: int = setting(1, ge=1)
    heads: int = setting(4, ge=1)
    dropout: float = setting(0.0, "0: CPU dropout masks cost more than they help here", ge=0.0, lt=1.0)


@dataclass(frozen=True)
class GATConfig:
    """The label-graph classifier (``GATClassifier``; ``GCNClassifier`` reads the same fields); run config ``gat_*``.

    The defaults are the released layer's (the authors' ``gat.py``, from GCDH): no layer bias, dropout on the
    attention only, Xavier-uniform initialisation with gain 1.414, no per-label bias (docs/paper_map.md); except
    the scale of H: ``scale="unit"`` puts every classifier kind's rows on one footing (``"released"``: the
    layer's own scale, which the ``paper`` preset keeps; benchmarks/RESULTS.md measures both on the main job).
    """

    layers: int = setting(2, ge=1)
    hidden: int = setting(1024, ge=1)
    heads: int = setting(1, ge=1)
    dropout: float = setting(0.2, "dropout on the attention coefficients (released: 0.2)", ge=0.0, lt=1.0)
    negative_slope: float = setting(0.2, ge=0.0)
    bias: bool = setting(False, "a bias in each GAT layer (released layer: none)")
    input_dropout: float = setting(0.0, "dropout on the node features (released: 0)", ge=0.0, lt=1.0)
    init_gain: float | None = setting(1.414, "Xavier gain of the layer weights; None: PyG's init", gt=0.0)
    label_bias: bool = setting(False, "a per-label bias on the scores (measured: no gain, 3 seeds)")
    conv: str = setting("gat", "gat: the released GATConv (static attention); gatv2: GATv2Conv", choices=GAT_CONVS)
    scale: str = setting(
        "unit",
        "unit: rows of H L2-normalised times one learned τ (every kind; measured on the main job); "
        "released: H as each classifier makes it (the paper preset)",
        name="classifier_scale",  # every classifier kind reads it (gat, gcn, independent), not the GAT alone
        choices=CLASSIFIER_SCALES,
    )


@dataclass(frozen=True)
class HashConfig:
    """The shared feature width d and how the predicted labels reach the hash layer (``HashHead``)."""

    hidden_dim: int = setting(512, "feature width d of f, H and the hash layer's input", ge=1)
    label_fusion: str = setting("concat", "how predicted labels reach the hash layer", choices=LABEL_FUSIONS)


def _with(cfg: Any, cls: type, overrides: dict[str, Any]) -> Any:
    """``cfg`` (default ``cls()``) with keyword overrides, e.g. ``GATClassifier(300, 512, 10, hidden=8)``."""
    cfg = cls() if cfg is None else cfg
    unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise TypeError(
            f"unknown {cls.__name__} field(s) {sorted(unknown)}; fields: {[f.name for f in dataclasses.fields(cls)]}"
        )
    return dataclasses.replace(cfg, **overrides) if overrides else cfg


def _check_input(name: str, x: torch.Tensor, dim: int | None = None, width: int | None = None) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if dim is not None and x.dim() != dim:
        raise ValueError(f"{name} must have {dim} dimensions, got shape {tuple(x.shape)}")
    if width is not None and x.shape[-1] != width:
        raise ValueError(f"{name} has {x.shape[-1]} features in its last dimension, the model was built for {width}")
    if x.is_floating_point() and not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf; check the cached features (rebuild with force=True)")


def _encoder_layers(width: int, layers: int, heads: int, dropout: float) -> nn.TransformerEncoder:
    if width % heads:
        raise ValueError(f"transformer width {width} is not divisible by trans_heads={heads}; pick heads dividing it")
    layer = nn.TransformerEncoderLayer(
        d_model=width,
        nhead=heads,
        dim_feedforward=2 * width,
        dropout=dropout,
        activation="gelu",
        batch_first=True,
        norm_first=True,
    )
    # enable_nested_tensor=False: the fast path would warn with norm_first and we need exact masking
    return nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)


class CLIPTrans(nn.Module):
    """Image branch: CLIP vector x (n, D) → T tokens (n, T, D/T) → transformer → f (n, out_dim)."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        num_tokens: int = 8,
        width: int = 64,
        layers: int = 1,
        heads: int = 4,
        dropout: float = 0.1,
    ):
        super().__init__()
        if num_tokens < 1 or in_dim % num_tokens:
            raise ValueError(
                f"CLIP dimension {in_dim} cannot be cut into trans_tokens={num_tokens} equal tokens; "
                f"choose trans_tokens dividing {in_dim}"
            )
        self.in_dim, self.num_tokens = in_dim, num_tokens
        self.token_proj = nn.Linear(in_dim // num_tokens, width)
        self.position = nn.Parameter(torch.randn(1, num_tokens, width) * 0.02)
        self.encoder = _encoder_layers(width, layers, heads, dropout)
        self.norm = nn.LayerNorm(width)
        # "dimension expansion": all token outputs (T·width) → d
        self.out = nn.Linear(num_tokens * width, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (n, D) → f (n, out_dim)."""
        _check_input("image features", x, dim=2, width=self.in_dim)
        x = F.normalize(x, dim=1) * math.sqrt(self.in_dim)  # CLIP vectors live on a sphere; unit variance per dim
        tokens = self.token_proj(x.view(x.shape[0], self.num_tokens, -1)) + self.position
        tokens = self.norm(self.encoder(tokens))
        return self.out(tokens.flatten(1))


class TransFC(nn.Module):
    """Text branch: bag of words (n, V) → tag tokens + [CLS] → transformer → FC → f (n, out_dim)."""

    def __init__(
        self, vocab_size: int, out_dim: int, width: int = 64, layers: int = 1, heads: int = 4, dropout: float = 0.1
    ):
        super().__init__()
        self.vocab_size = vocab_size
        self.tag_embedding = nn.Embedding(vocab_size, width)
        self.cls = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.encoder = _encoder_layers(width, layers, heads, dropout)
        self.norm = nn.LayerNorm(width)
        self.fc = nn.Linear(width, out_dim)

    def forward(self, bow: torch.Tensor) -> torch.Tensor:
        """bow (n, V), non-negative tag weights → f (n, out_dim); an item without tags sees only [CLS]."""
        _check_input("bag of words", bow, dim=2, width=self.vocab_size)
        if (bow < 0).any():
            raise ValueError("bag of words has negative entries; it must hold tag counts or 0/1 flags")
        n = bow.shape[0]
        max_tags = max(int((bow > 0).sum(dim=1).max().item()) if n else 0, 1)
        # the present tags of each item, padded to the longest tag list of the batch
        weights, tag_ids = bow.topk(max_tags, dim=1)
        present = weights > 0
        tokens = self.tag_embedding(tag_ids) * weights.unsqueeze(-1)
        tokens = torch.cat([self.cls.expand(n, -1, -1), tokens], dim=1)
        pad = torch.cat([torch.zeros(n, 1, dtype=torch.bool, device=bow.device), ~present], dim=1)
        out = self.encoder(tokens, src_key_padding_mask=pad)
        return self.fc(self.norm(out[:, 0]))


class _LabelBias(nn.Module):
    """Scores Ŝ = f Hᵀ (+ a per-label bias b (C) when ``label_bias``; the paper and GCDH have none).

    ``scale="unit"`` puts every classifier kind on one footing: H's rows are L2-normalised and multiplied by
    one learned temperature τ (starting at 1), so at initialisation every row has norm 1 whatever the layer
    makes of its inputs (the released GAT on raw GloVe rows starts near 8, ``IndependentClassifier`` near 1).
    """

    def __init__(self, num_labels: int, label_bias: bool = False, scale: str = "released"):
        super().__init__()
        if scale not in CLASSIFIER_SCALES:
            raise ValueError(f"unknown classifier_scale {scale!r}; choose one of {', '.join(CLASSIFIER_SCALES)}")
        self.scale_mode = scale
        if scale == "unit":
            self.temperature = nn.Parameter(torch.ones(()))
        else:
            self.register_parameter("temperature", None)
        if label_bias:
            # lets standardised frozen features reproduce a label's prior (calibrated probabilities);
            # a per-label constant cannot change a label's ranking, so AP does not need it
            self.bias = nn.Parameter(torch.zeros(num_labels))
        else:
            self.register_parameter("bias", None)

    def rescale(self, H: torch.Tensor) -> torch.Tensor:
        """H (C, d) as the classifier returns it: unchanged (``released``) or τ · rows of unit norm (``unit``)."""
        if self.temperature is None:
            return H
        return self.temperature * F.normalize(H, dim=1)

    def scores(self, f: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
        """f (n, d), H (C, d) → Ŝ (n, C)."""
        _check_input("features f", f, dim=2, width=H.shape[1])
        logits = f @ H.t()
        return logits if self.bias is None else logits + self.bias


def _check_dropout(name: str, p: float) -> None:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {p}")


def _released_gat_init(conv: nn.Module, gain: float) -> None:
    """Xavier-uniform with ``gain`` as the released GATLayer: W (in → heads·out) and, per head, a = [a_dst; a_src] (2·out, 1).

    GATv2Conv has two weights (source, target) and one attention vector a (out) per head: the same rule,
    Xavier with ``gain`` on each weight and on a as an (out, 1) matrix.
    """
    if hasattr(conv, "att"):  # GATv2Conv
        nn.init.xavier_uniform_(conv.lin_l.weight, gain=gain)
        nn.init.xavier_uniform_(conv.lin_r.weight, gain=gain)
        out = conv.att.shape[-1]
        bound = gain * math.sqrt(6.0 / (out + 1))
        nn.init.uniform_(conv.att, -bound, bound)
        return
    nn.init.xavier_uniform_(conv.lin.weight, gain=gain)
    out = conv.att_src.shape[-1]
    bound = gain * math.sqrt(6.0 / (2 * out + 1))  # xavier_uniform_ of a (2·out, 1): fan_in 1, fan_out 2·out
    nn.init.uniform_(conv.att_src, -bound, bound)
    nn.init.uniform_(conv.att_dst, -bound, bound)


def _pyg_conv(name: str) -> type:
    """``torch_geometric.nn.<name>``. torch_geometric's first import scripts two of its NamedTuples with
    ``torch.jit.script``, which torch >= 2.10 answers with a FutureWarning that is about torch_geometric, not this
    code, and that a student reads as an error; only that warning is ignored, only during the import."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated", category=FutureWarning)
        import torch_geometric.nn as pyg_nn

    return getattr(pyg_nn, name)


class GATClassifier(_LabelBias):
    """Label graph → classifiers: E (C, F) through ``cfg.layers`` GATConv layers → H (C, out_dim).

    Inputs: E (C, F) label embeddings, edge_index (2, M) int64 (source → target). Output: H (C, out_dim).
    ``cfg`` is a ``GATConfig`` (keyword overrides allowed: ``GATClassifier(300, 512, 10, hidden=8)``):
    ``dropout`` on the attention coefficients (the released layer's only dropout), ``input_dropout`` on the node
    features before each layer, ``bias`` per layer, ``init_gain`` of Xavier-uniform (``None``: PyG's glorot),
    ``label_bias`` of the scores, ``conv`` (``gat``: the released ``GATConv``; ``gatv2``: ``GATv2Conv``, whose
    attention depends on the target node too) and ``scale`` (``_LabelBias``).

    Static attention (Brody et al., ICLR 2022): in ``GATConv`` the score of edge j → i is
    LeakyReLU(a_dstᵀWx_i + a_srcᵀWx_j); the target's term is the same for all of i's edges, so the softmax
    ranks every i's neighbours alike, and two labels with the same neighbourhood get the same row of H.
    """

    def __init__(self, in_dim: int, out_dim: int, num_labels: int, cfg: GATConfig | None = None, **overrides: Any):
        cfg = _with(cfg, GATConfig, overrides)
        super().__init__(num_labels, cfg.label_bias, cfg.scale)
        GATConv, GATv2Conv = _pyg_conv("GATConv"), _pyg_conv("GATv2Conv")

        if cfg.conv not in GAT_CONVS:
            raise ValueError(f"unknown gat_conv {cfg.conv!r}; choose one of {', '.join(GAT_CONVS)}")
        conv_cls = GATv2Conv if cfg.conv == "gatv2" else GATConv

        if cfg.layers < 1:
            raise ValueError(f"gat_layers must be >= 1, got {cfg.layers}")
        if cfg.heads < 1 or cfg.hidden % cfg.heads:
            raise ValueError(f"gat_hidden={cfg.hidden} must be divisible by gat_heads={cfg.heads}")
        _check_dropout("gat_dropout", cfg.dropout)
        _check_dropout("gat_input_dropout", cfg.input_dropout)
        if cfg.init_gain is not None and not cfg.init_gain > 0:
            raise ValueError(
                f"gat_init_gain must be a positive number or None (PyG's initialisation), got {cfg.init_gain}"
            )
        self.cfg, self.in_dim, self.num_labels = cfg, in_dim, num_labels
        self.dropout, self.input_dropout, self.negative_slope = cfg.dropout, cfg.input_dropout, cfg.negative_slope
        heads, hidden = cfg.heads, cfg.hidden
        dims = [in_dim] + [hidden] * (cfg.layers - 1)
        self.convs = nn.ModuleList()
        for i in range(cfg.layers - 1):  # hidden layers concatenate their heads: hidden // heads channels per head
            self.convs.append(
                conv_cls(
                    dims[i],
                    hidden // heads,
                    heads=heads,
                    concat=True,
                    negative_slope=cfg.negative_slope,
                    dropout=cfg.dropout,
                    bias=cfg.bias,
                )
            )
        # the last layer averages its heads, as in the GAT paper's output layer
        self.convs.append(
            conv_cls(
                dims[-1],
                out_dim,
                heads=heads,
                concat=False,
                negative_slope=cfg.negative_slope,
                dropout=cfg.dropout,
                bias=cfg.bias,
            )
        )
        if cfg.init_gain is not None:
            for conv in self.convs:
                _released_gat_init(conv, cfg.init_gain)

    def forward(
        self,
        E: torch.Tensor,
        edge_index: torch.Tensor,
        edge_weight: torch.Tensor | None = None,
        return_attention: bool = False,
    ):
        """E (C, F), edge_index (2, M) → H (C, out_dim) [, per-layer (edge_index, α (M', heads))]."""
        _check_graph(E, edge_index, self.in_dim, self.num_labels)
        attention = []
        x = E
        for i, conv in enumerate(self.convs):
            if self.input_dropout > 0:
                x = F.dropout(x, p=self.input_dropout, training=self.training)
            x, (att_index, alpha) = conv(x, edge_index, return_attention_weights=True)
            attention.append((att_index, alpha))
            if i < len(self.convs) - 1:
                x = F.leaky_relu(x, self.negative_slope)
        x = self.rescale(x)
        return (x, attention) if return_attention else x


class GCNClassifier(_LabelBias):
    """Ablation: the same stack with GCNConv (fixed, degree-normalised weights instead of attention).

    Reads the ``GATConfig`` fields ``layers``, ``hidden``, ``negative_slope``, ``bias``, ``label_bias``, ``scale`` and, as its
    dropout on the node features, ``input_dropout`` (there is no attention to drop): the two differ only in
    the attention. Inputs: E (C, F), edge_index (2, M), edge_weight (M) or None. Output: H (C, out_dim).
    """

    def __init__(self, in_dim: int, out_dim: int, num_labels: int, cfg: GATConfig | None = None, **overrides: Any):
        cfg = _with(cfg, GATConfig, overrides)
        super().__init__(num_labels, cfg.label_bias, cfg.scale)
        GCNConv = _pyg_conv("GCNConv")

        if cfg.layers < 1:
            raise ValueError(f"gat_layers must be >= 1, got {cfg.layers}")
        _check_dropout("gat_input_dropout", cfg.input_dropout)
        self.cfg, self.in_dim, self.num_labels = cfg, in_dim, num_labels
        self.dropout, self.negative_slope = cfg.input_dropout, cfg.negative_slope
        dims = [in_dim] + [cfg.hidden] * (cfg.layers - 1) + [out_dim]
        self.convs = nn.ModuleList(GCNConv(dims[i], dims[i + 1], bias=cfg.bias) for i in range(cfg.layers))

    def forward(
        self, E: torch.Tensor, edge_index: torch.Tensor, edge_weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """E (C, F), edge_index (2, M), edge_weight (M) or None → H (C, out_dim)."""
        _check_graph(E, edge_index, self.in_dim, self.num_labels)
        x = E
        for i, conv in enumerate(self.convs):
            x = F.dropout(x, p=self.dropout, training=self.training)
            x = conv(x, edge_index, edge_weight)
            if i < len(self.convs) - 1:
                x = F.leaky_relu(x, self.negative_slope)
        return self.rescale(x)


class IndependentClassifier(_LabelBias):
    """Ablation without a graph: H (C, out_dim) is a free parameter, i.e. C independent linear classifiers."""

    def __init__(self, in_dim: int, out_dim: int, num_labels: int, cfg: GATConfig | None = None, **overrides: Any):
        cfg = _with(cfg, GATConfig, overrides)  # only label_bias and scale apply
        super().__init__(num_labels, cfg.label_bias, cfg.scale)
        self.in_dim, self.num_labels = in_dim, num_labels
        self.H = nn.Parameter(torch.randn(num_labels, out_dim) / math.sqrt(out_dim))

    def forward(
        self, E: torch.Tensor, edge_index: torch.Tensor | None = None, edge_weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Ignores the graph; returns H (C, out_dim)."""
        if E is not None and E.shape[0] != self.num_labels:
            raise ValueError(
                f"label embeddings have {E.shape[0]} rows, the classifier was built for {self.num_labels} labels"
            )
        return self.rescale(self.H)


def _check_graph(E: torch.Tensor, edge_index: torch.Tensor, in_dim: int, num_labels: int) -> None:
    _check_input("label embeddings E", E, dim=2, width=in_dim)
    if E.shape[0] != num_labels:
        raise ValueError(f"label embeddings have {E.shape[0]} rows, the classifier was built for {num_labels} labels")
    if edge_index.dim() != 2 or edge_index.shape[0] != 2 or edge_index.dtype != torch.long:
        raise ValueError(
            f"edge_index must be an int64 tensor of shape (2, M), got {edge_index.dtype} {tuple(edge_index.shape)}"
        )
    if edge_index.numel() and (edge_index.min() < 0 or edge_index.max() >= num_labels):
        raise ValueError(f"edge_index refers to nodes outside 0..{num_labels - 1}; rebuild the label graph")


def build_classifier(
    kind: str, in_dim: int, out_dim: int, num_labels: int, cfg: GATConfig | None = None, **overrides: Any
) -> nn.Module:
    """``gat`` | ``gcn`` | ``independent`` label classifier producing H (C, out_dim) from a ``GATConfig``."""
    classes = {"gat": GATClassifier, "gcn": GCNClassifier, "independent": IndependentClassifier}
    if kind not in classes:
        raise ValueError(f"unknown classifier {kind!r}; choose one of {', '.join(CLASSIFIERS)}")
    return classes[kind](in_dim, out_dim, num_labels, cfg, **overrides)


class HashHead(nn.Module):
    """h = tanh(W [f ; g(Ŝ)] + b) (n, bits) with g = σ (``concat``), identity (``concat_logits``) or absent (``none``)."""

    def __init__(self, in_dim: int, bits: int, num_labels: int, label_fusion: str = "concat"):
        super().__init__()
        if label_fusion not in LABEL_FUSIONS:
            raise ValueError(f"unknown label_fusion {label_fusion!r}; choose one of {', '.join(LABEL_FUSIONS)}")
        if bits < 1:
            raise ValueError(f"bits must be >= 1, got {bits}")
        self.label_fusion, self.bits = label_fusion, bits
        extra = 0 if label_fusion == "none" else num_labels
        self.linear = nn.Linear(in_dim + extra, bits)

    def forward(self, f: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """f (n, d), logits Ŝ (n, C) → continuous codes in (−1, 1), (n, bits)."""
        if self.label_fusion == "concat":
            f = torch.cat([f, torch.sigmoid(logits)], dim=1)
        elif self.label_fusion == "concat_logits":
            f = torch.cat([f, logits], dim=1)
        return torch.tanh(self.linear(f))


def binarize(h: torch.Tensor) -> torch.Tensor:
    """sign(h) as int8 in {−1, +1} (n, bits); 0 maps to +1 so every bit is a bit."""
    return torch.where(h >= 0, 1, -1).to(torch.int8)


class EGATH(nn.Module):
    """Image encoder + text encoder + one label classifier shared by both + a hash head per modality.

    Built from its components' configs, as open_clip's ``CLIP(embed_dim, vision_cfg, text_cfg)``:
    ``EGATH(image_dim, text_dim, E, edge_index, edge_weight, bits, HashConfig(), EncoderConfig(), GATConfig())``.
    Inputs of ``forward``: image (n, D) CLIP vectors (or pixels with an ``image_backbone``), text (n, V) bag of
    words or (n, D) CLIP text vectors. ``classifier``: ``gat`` (EGATH), ``gcn`` or ``independent`` (ablations).
    """

    def __init__(
        self,
        image_dim: int,
        text_dim: int,
        label_emb: torch.Tensor,
        edge_index: torch.Tensor,
        edge_weight: torch.Tensor | None,
        bits: int,
        hash_cfg: HashConfig | None = None,
        encoder: EncoderConfig | None = None,
        gat: GATConfig | None = None,
        classifier: str = "gat",
        text_input: str = "bow",
        image_backbone: nn.Module | None = None,
    ):
        super().__init__()
        if text_input not in TEXT_INPUTS:
            raise ValueError(f"unknown text_input {text_input!r}; choose one of {', '.join(TEXT_INPUTS)}")
        h, enc, gat = hash_cfg or HashConfig(), encoder or EncoderConfig(), gat or GATConfig()
        num_labels, d = label_emb.shape[0], h.hidden_dim
        # optional trainable CLIP image tower (end-to-end); it maps pixels to the D-dim CLIP vector
        self.image_backbone = image_backbone
        self.image_encoder = CLIPTrans(image_dim, d, enc.tokens, enc.width, enc.layers, enc.heads, enc.dropout)
        if text_input == "bow":
            self.text_encoder = TransFC(text_dim, d, enc.width, enc.layers, enc.heads, enc.dropout)
        else:
            self.text_encoder = CLIPTrans(text_dim, d, enc.tokens, enc.width, enc.layers, enc.heads, enc.dropout)
        self.classifier = build_classifier(classifier, label_emb.shape[1], d, num_labels, gat)
        self.image_hash = HashHead(d, bits, num_labels, h.label_fusion)
        self.text_hash = HashHead(d, bits, num_labels, h.label_fusion)
        self.register_buffer("label_emb", label_emb.detach().float().clone())
        self.register_buffer("edge_index", edge_index.detach().long().clone())
        weight = torch.ones(edge_index.shape[1]) if edge_weight is None else edge_weight.detach().float().clone()
        self.register_buffer("edge_weight", weight)

    def label_classifiers(self) -> torch.Tensor:
        """H (C, hidden_dim) from the label graph."""
        return self.classifier(self.label_emb, self.edge_index, self.edge_weight)

    def image_branch(self, image: torch.Tensor, H: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """image (n, D) CLIP vectors, or pixels when a backbone is attached → f (n, d), Ŝ (n, C), h (n, bits)."""
        x = self.image_backbone(image) if self.image_backbone is not None else image
        f = self.image_encoder(x)
        logits = self.classifier.scores(f, H)
        return f, logits, self.image_hash(f, logits)

    def text_branch(self, text: torch.Tensor, H: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """text (n, V) bag of words or (n, D) CLIP text vectors → f (n, d), Ŝ (n, C), h (n, bits)."""
        f = self.text_encoder(text)
        logits = self.classifier.scores(f, H)
        return f, logits, self.text_hash(f, logits)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> dict[str, torch.Tensor]:
        """Both branches on a batch of pairs: f_* (n, d), logits_* (n, C), h_* (n, bits) continuous codes."""
        H = self.label_classifiers()
        f_i, s_i, h_i = self.image_branch(image, H)
        f_t, s_t, h_t = self.text_branch(text, H)
        return {"f_image": f_i, "f_text": f_t, "logits_image": s_i, "logits_text": s_t, "h_image": h_i, "h_text": h_t}

    @torch.no_grad()
    def encode(self, x: torch.Tensor, modality: str, batch_size: int = 1024) -> torch.Tensor:
        """Binary codes int8 (n, bits) of one modality, in eval mode, batch by batch."""
        if modality not in ("image", "text"):
            raise ValueError(f"modality must be 'image' or 'text', got {modality!r}")
        was_training = self.training
        self.eval()
        H = self.label_classifiers()
        branch = self.image_branch if modality == "image" else self.text_branch
        device = self.label_emb.device
        # streamed images (fine-tuning) come batch by batch from the image pipeline; tensors are sliced
        chunks = (
            x.iter_batches(batch_size)
            if hasattr(x, "iter_batches")
            else (x[i : i + batch_size] for i in range(0, len(x), batch_size))
        )
        codes = [binarize(branch(c.to(device), H)[2]).cpu() for c in chunks]
        self.train(was_training)
        bits = self.image_hash.bits
        return torch.cat(codes) if codes else torch.empty(0, bits, dtype=torch.int8)


class FrozenFeatureClassifier(nn.Module):
    """Ŝ = z(x) Hᵀ + b on frozen CLIP features x (n, D), z = standardisation, H from a label classifier."""

    def __init__(self, classifier: nn.Module, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.classifier = classifier
        self.register_buffer("mean", mean.float().clone())
        self.register_buffer("std", std.float().clone())

    def forward(
        self, x: torch.Tensor, E: torch.Tensor, edge_index: torch.Tensor, edge_weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (n, D) → logits (n, C)."""
        H = self.classifier(E, edge_index, edge_weight)
        return self.classifier.scores((x - self.mean) / self.std, H)


class CLIPImageBackbone(nn.Module):
    """Trainable CLIP image tower: normalised model inputs float (n, 3, S, S) → L2-normalised CLIP vectors (n, D).

    ``prep`` (an ``egath_lite.clip.images.Preprocess``) says what the inputs are: the image pipeline makes them
    from any image (CLIP's eval preprocessing, or its train-time crops when fine-tuning).
    """

    def __init__(self, visual: nn.Module, prep: Any):
        super().__init__()
        self.visual, self.prep = visual, prep
        self.size = tuple(prep.size)
        with torch.no_grad():
            was = visual.training
            visual.eval()
            self.output_dim = int(visual(torch.zeros(1, 3, *self.size)).shape[-1])
            visual.train(was)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x float (n, 3, S, S), normalised with CLIP's mean/std → (n, D)."""
        if not x.is_floating_point() or x.dim() != 4 or tuple(x.shape[1:]) != (3, *self.size):
            raise ValueError(
                f"the CLIP image tower takes normalised float inputs (n, 3, {self.size[0]}, {self.size[1]}) "
                f"from egath_lite.clip.images, got {x.dtype} {tuple(x.shape)}"
            )
        return torch.nn.functional.normalize(self.visual(x), dim=-1)
