"""The hash-codes stage: EGATH (or an ablation) trained at ``bits`` bits, its model and its codes.

One artifact ``codes-<variant>-<bits>-<key>.pt`` holds the trained model (``state.*``), the
int8 ±1 codes of the query and retrieval items in both modalities, their labels and the
training history, so the model and its codes can never disagree or go missing apart.

The key digests the source of ``core.models``, ``core.losses`` and ``core.train`` (an edit to the loss
recomputes, saying so) and of a ``loss_fn``/``model_fn`` passed in, which therefore gets its own
artifact beside the default's and never overwrites it.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from egath_lite.core.losses import LossConfig
from egath_lite.core.methods import METHODS
from egath_lite.core.models import EGATH, EncoderConfig, GATConfig, HashConfig
from egath_lite.files import ArtifactError
from egath_lite.pipeline import distributed
from egath_lite.pipeline.artifacts import run_dir
from egath_lite.pipeline.classifier import load_state
from egath_lite.pipeline.config import Config, component_fields
from egath_lite.pipeline.engine import build_egath, clip_image_backbone, hash_data, train_egath
from egath_lite.pipeline.features import FEATURES_STAGE, ensure_features
from egath_lite.pipeline.graph import GRAPH_STAGE, ensure_graph
from egath_lite.pipeline.results import Codes, state_from
from egath_lite.pipeline.stages import Stage, code_changes, shape_problems
from egath_lite.pipeline.variants import variant_settings
from egath_lite.utils import cpu_threads, resolve_device

HASH_FIELDS = (
    "variant",
    *component_fields(HashConfig),  # hidden_dim, label_fusion
    *component_fields(EncoderConfig),  # trans_tokens, trans_width, trans_layers, trans_heads, trans_dropout
    "epochs",
    "hash_batch_size",
    "lr",
    "lr_min",
    "weight_decay",
    "mu",
    *component_fields(LossConfig),  # alpha, w_cosine, w_triplet, w_cls, w_quant
    "finetune_clip",
    "finetune_lr_scale",
    "image_decoder",
    "early_stop_patience",
    "val_sample_size",
    *component_fields(GATConfig),  # gat_layers, ... (core.models.GATConfig)
    "seed",
)
CODE_TENSORS = (
    "query_image_codes",
    "query_text_codes",
    "retrieval_image_codes",
    "retrieval_text_codes",
    "query_labels",
    "retrieval_labels",
    "history_loss",
    "history_val_map_i2t",
    "history_val_map_t2i",
)


def _expect(cfg: Config, params: dict[str, Any], payload: dict[str, Any]) -> list[str]:
    t, bits = payload["tensors"], params["bits"]
    nq, nr = t["query_labels"].shape[0], t["retrieval_labels"].shape[0]
    c = t["query_labels"].shape[1] if t["query_labels"].dim() == 2 else -1
    problems = shape_problems(
        t,
        {
            "query_image_codes": ((nq, bits), torch.int8),
            "query_text_codes": ((nq, bits), torch.int8),
            "retrieval_image_codes": ((nr, bits), torch.int8),
            "retrieval_text_codes": ((nr, bits), torch.int8),
            "query_labels": ((nq, c), torch.uint8),
            "retrieval_labels": ((nr, c), torch.uint8),
        },
    )
    if cfg.num_query is not None and nq != cfg.num_query:
        problems.append(f"{nq} query rows, the key promises num_query={cfg.num_query}")
    for name in CODE_TENSORS[:4]:
        if not problems and not ((t[name] == 1) | (t[name] == -1)).all():
            problems.append(f"{name} holds values other than -1 and +1")
    if not any(k.startswith("state.") for k in t):
        problems.append("holds no model state")
    return problems


CODES_STAGE = Stage(
    "codes",
    fields=HASH_FIELDS,
    params=("variant", "bits"),
    upstream=(FEATURES_STAGE, GRAPH_STAGE),
    version="2",
    tensors=CODE_TENSORS,
    expect=_expect,
    code=("egath_lite.core.models", "egath_lite.core.losses", "egath_lite.core.train"),
    description="a trained EGATH (or ablation) model and its query/retrieval codes in both modalities",
)


@functools.cache
def codes_stage(method: str = "egath") -> Stage:
    """The codes stage of ``method``: ``CODES_STAGE`` for EGATH; for a comparison method the same stage keyed
    on ``pipeline.methods.METHOD_FIELDS`` and its module's source, its ``variant`` parameter the method's name
    (files ``codes-<method>-<bits>-<key>.pt``)."""
    if method == "egath":
        return CODES_STAGE
    from egath_lite.pipeline.methods import METHOD_FIELDS, method_code

    return dataclasses.replace(
        CODES_STAGE,
        fields=METHOD_FIELDS,
        code=method_code(method),
        description=f"a trained {method} model and its query/retrieval codes in both modalities",
    )


def codes_tag(cfg: Config) -> str:
    """What names a run's codes: the ablation ``cfg.variant`` for EGATH, else ``cfg.method``."""
    return cfg.variant if cfg.method == "egath" else cfg.method


def split_codes(model: EGATH, data: Any) -> dict[str, torch.Tensor]:
    """Codes int8 (n, bits) of both modalities and labels uint8 (n, C) of the query and retrieval rows of ``data``."""
    q, r = data.split["query"], data.split["retrieval"]
    with cpu_threads(1):
        return {
            "query_image_codes": model.encode(data.image[q], "image"),
            "query_text_codes": model.encode(data.text[q], "text"),
            "retrieval_image_codes": model.encode(data.image[r], "image"),
            "retrieval_text_codes": model.encode(data.text[r], "text"),
            "query_labels": data.labels[q].to(torch.uint8),
            "retrieval_labels": data.labels[r].to(torch.uint8),
        }


def ensure_codes(
    cfg: Config,
    bits: int,
    force: bool = False,
    progress: bool = True,
    loss_fn: Callable[..., dict[str, torch.Tensor]] | None = None,
    model_fn: Callable[..., nn.Module] | None = None,
) -> Codes:
    """Train (or reuse) ``cfg.variant`` at ``bits`` bits; the result holds the model and the codes.

    ``loss_fn(out, Y, B) -> {"total", <terms>}`` replaces ``core.losses.egath_loss`` (e.g. a loss written in
    notebook 04); ``model_fn(cfg, bits, image_dim, text_dim, graph, image_backbone) -> nn.Module`` replaces
    ``engine.build_egath``. Both are passed to ``engine.train_egath``, and both key the artifact by their
    source (``pipeline.code_digest.callable_fingerprint``): a custom loss gets its own file beside the
    default's, an edit to it recomputes. ``meta["custom"]`` records their names and digests; the history
    holds ``history_loss_<term>`` for each term the loss returned.
    """
    if isinstance(bits, bool) or not isinstance(bits, int) or bits < 1:
        raise ValueError(f"bits must be a positive integer, got {bits!r}")
    if cfg.method != "egath":
        if loss_fn is not None or model_fn is not None:
            raise ValueError(f"loss_fn/model_fn replace EGATH's; method={cfg.method!r} trains its own (core.methods)")
        return _ensure_method_codes(cfg, bits, force, progress)
    variant_settings(cfg)  # unknown variant → clear error before any work
    custom = custom_code(loss_fn, model_fn)  # a lambda → CodeKeyError before any work
    features, graph = ensure_features(cfg), ensure_graph(cfg)

    key = CODES_STAGE.key(cfg, custom, variant=cfg.variant, bits=bits)
    resume = resume_path(cfg, bits, custom=custom)
    for role, fp in custom.items():
        print(f"[codes] {role}={fp['name']} (source digest {fp['digest']}): its own artifact, keyed by its source")

    def compute():
        backbone = clip_image_backbone(cfg) if cfg.finetune_clip else None
        data = hash_data(cfg, features, backbone)
        gt = graph["tensors"]
        model, hist = train_egath(
            cfg,
            bits,
            data,
            gt,
            backbone,
            progress,
            resume_path=resume,
            resume_key=key,
            loss_fn=loss_fn,
            model_fn=model_fn,
        )
        return _trained_payload(
            cfg,
            bits,
            model,
            data,
            hist,
            variant=cfg.variant,
            image_dim=int(features["tensors"]["image_emb"].shape[1]),
            custom=custom,  # {"loss_fn": {"name", "digest"}} when a loss or model was passed in; {} for the paper's
        )

    if force and distributed.is_main():
        resume.unlink(missing_ok=True)  # force means from scratch, not from the last epoch
    distributed.barrier()
    payload = distributed.stage_on_rank0(  # torchrun: every rank trains, rank 0 writes
        CODES_STAGE, cfg, compute, force=force, custom=custom, variant=cfg.variant, bits=bits
    )
    payload = Codes(payload)
    if distributed.is_main():
        resume.unlink(missing_ok=True)  # the artifact holds the result now
    return payload


def _trained_payload(
    cfg: Config, bits: int, model: nn.Module, data: Any, hist: dict[str, Any], **meta_fields: Any
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, meta) of a codes artifact: the split codes, the model's state, every per-epoch history
    (loss, loss_<term>, val_map_*, lr, ...) and the training record; ``meta_fields`` (variant, method,
    image_dim, custom, ...) complete the meta."""
    tensors = split_codes(model, data)
    tensors.update({f"state.{k}": v for k, v in model.state_dict().items()})
    for name, values in hist.items():
        if isinstance(values, list):
            tensors[f"history_{name}"] = torch.tensor(values, dtype=torch.float64)
    meta = dict(
        bits=bits,
        best_epoch=int(hist["best_epoch"]),
        val_map=float(hist["val_map"]),
        train_seconds=float(hist["train_seconds"]),
        seconds_per_epoch=float(hist["seconds_per_epoch"]),
        cpu_seconds_per_epoch=float(hist["cpu_seconds_per_epoch"]),
        threads=torch.get_num_threads(),
        epochs_run=int(hist["epochs_run"]),
        selected_on="validation",
        device=str(resolve_device(cfg.device)),
        text_dim=int(data.text.shape[1]),
        resumed_after_epoch=hist["resumed_after_epoch"],
        **meta_fields,
    )
    return tensors, meta


def custom_code(
    loss_fn: Callable[..., Any] | None = None, model_fn: Callable[..., Any] | None = None
) -> dict[str, dict[str, str]]:
    """``{"loss_fn": {"name", "digest"}, ...}`` of the callables passed in place of the paper's (none: ``{}``)."""
    return (CODES_STAGE.code_record({"loss_fn": loss_fn, "model_fn": model_fn}) or {}).get("custom", {})


def resume_path(
    cfg: Config,
    bits: int,
    loss_fn: Callable[..., Any] | None = None,
    model_fn: Callable[..., Any] | None = None,
    custom: dict[str, Any] | None = None,
) -> Path:
    """Where the hash training of ``cfg``/``bits`` (with ``loss_fn``/``model_fn``, or their ``custom_code``)
    keeps its state after each epoch until the codes are written: named by the same key as the codes."""
    custom = custom_code(loss_fn, model_fn) if custom is None else custom
    tag = codes_tag(cfg)
    key = codes_stage(cfg.method).key(cfg, custom, variant=tag, bits=bits)
    return run_dir(cfg) / f"codes-{tag}-{bits}-{key}.resume.pt"


def _ensure_method_codes(cfg: Config, bits: int, force: bool, progress: bool) -> Codes:
    """``ensure_codes`` of a comparison method (``pipeline.methods.train_method``)."""
    from egath_lite.pipeline.methods import check_method, method_data, train_method

    module = check_method(cfg)
    stage, tag = codes_stage(cfg.method), cfg.method
    features, graph = ensure_features(cfg), ensure_graph(cfg)
    key = stage.key(cfg, variant=tag, bits=bits)
    resume = resume_path(cfg, bits)

    def compute():
        data = method_data(features, module)
        model, hist = train_method(cfg, bits, data, graph["tensors"], module, progress, resume, key)
        return _trained_payload(
            cfg,
            bits,
            model,
            data,
            hist,
            variant=tag,
            method=cfg.method,
            image_dim=int(data.image.shape[1]),
            text_input=module.TEXT_INPUT,
            custom={},
        )

    if force:
        resume.unlink(missing_ok=True)
    payload = Codes(stage.run(cfg, compute, force=force, variant=tag, bits=bits))
    resume.unlink(missing_ok=True)
    return payload


def load_method(cfg: Config, payload: dict[str, Any], graph: dict[str, torch.Tensor]) -> nn.Module:
    """The trained comparison model (``cfg.method``) stored in a codes payload, in eval mode.

    ``graph``: the run's graph tensors (``ensure_graph(cfg)["tensors"]``; read by methods with ``NEEDS_GRAPH``).
    """
    from egath_lite.pipeline.methods import build_method, check_method, method_config

    module = check_method(cfg)
    meta, bits = payload["meta"], int(payload["params"]["bits"])
    num_labels = int(payload["tensors"]["query_labels"].shape[1])
    model = build_method(
        module, int(meta["image_dim"]), int(meta["text_dim"]), num_labels, bits, graph, method_config(module, cfg)
    )
    load_state(model, state_from(payload), f"{cfg.method} model in {payload.get('path')}")
    return model.eval()


def load_egath(
    cfg: Config,
    payload: dict[str, Any],
    graph: dict[str, torch.Tensor],
    image_dim: int,
    text_dim: int,
    image_backbone: nn.Module | None = None,
    model_fn: Callable[..., nn.Module] | None = None,
) -> EGATH:
    """The trained model stored in an ``ensure_codes`` payload (eval mode); ``model_fn``: the one it was trained with."""
    bits = int(payload["params"]["bits"])
    model = (model_fn or build_egath)(cfg, bits, image_dim, text_dim, graph, image_backbone)
    load_state(model, state_from(payload), f"EGATH model in {payload.get('path')}")
    return model.eval()


# --------------------------------------------------------------------------- finding a run's trained codes
def codes_in_run(folder: str | Path) -> list[dict[str, Any]]:
    """The codes artifacts a run folder's index lists and that exist: ``[{file, variant, bits, key, config, created}]``.

    Sorted by variant, then bits, then newest first. ``config`` holds the codes stage's own fields as written;
    ``code`` the digests of the code that trained it. Artifacts trained with a ``loss_fn``/``model_fn`` passed in
    are left out: their key needs that callable, so the run's configuration alone cannot load them.
    """
    from egath_lite.pipeline.stages import read_index

    folder = Path(folder)
    out = []
    for name, entry in read_index(folder).items():
        params = entry.get("params") or {}
        if entry.get("stage") != CODES_STAGE.name or not (folder / name).is_file():
            continue
        if not isinstance(params.get("variant"), str) or not isinstance(params.get("bits"), int):
            continue  # an entry this version did not write: the files it names are not trusted either
        if (entry.get("code") or {}).get("custom"):
            continue
        out.append(
            {
                "file": name,
                "variant": params["variant"],
                "bits": params["bits"],
                "key": entry.get("key"),
                "config": dict(entry.get("config") or {}),
                "code": entry.get("code"),
                "created": str(entry.get("created", "")),
            }
        )
    # newest first within one (variant, bits): stable sorts, the last one decides the outer order
    out.sort(key=lambda e: e["created"], reverse=True)
    out.sort(key=lambda e: (e["variant"], e["bits"]))
    return out


def describe_codes(entries: list[dict[str, Any]]) -> str:
    """``"egath: 16, 32, 64 bits; no_gat: 32 bits"`` for ``codes_in_run`` entries (``"none"`` when empty)."""
    by_variant: dict[str, list[int]] = {}
    for e in entries:
        by_variant.setdefault(e["variant"], [])
        if e["bits"] not in by_variant[e["variant"]]:
            by_variant[e["variant"]].append(e["bits"])
    return "; ".join(f"{v}: {', '.join(map(str, sorted(b)))} bits" for v, b in by_variant.items()) or "none"


def load_run_codes(recorded: Config, variant: str, bits: int) -> tuple[Config, dict[str, Any]]:
    """``(cfg, payload)``: the valid codes artifact of ``variant``/``bits`` in the run of ``recorded`` (its run config).

    Tries the run's configuration with ``variant``, then each indexed artifact of that variant and bit length
    (the run's configuration with the artifact's own codes-stage fields, e.g. another ``epochs`` given to
    notebook 04), newest first; the artifact must load under its key (checksum, shapes). ArtifactError names
    what the run has otherwise.
    """
    folder = run_dir(recorded)
    entries = [e for e in codes_in_run(folder) if e["variant"] == variant and e["bits"] == bits]
    method = variant if variant in METHODS else "egath"  # a comparison method's codes are tagged by its name
    base = recorded.replace(variant="egath" if method != "egath" else variant, method=method)
    stage = codes_stage(method)
    candidates = [base]
    for e in entries:
        try:
            candidates.append(Config.from_dict({**base.to_dict(), **e["config"]}))
        except ValueError:  # a field this version does not know: that artifact cannot be keyed here
            continue
    for cfg in candidates:
        if stage.path(cfg, variant=variant, bits=bits).is_file():
            return cfg, stage.load(cfg, variant=variant, bits=bits)
    if entries:
        current = stage.code_record()
        changed = [m for e in entries if isinstance(e["code"], dict) for m in code_changes(e["code"], current)]
        why = (
            f"the code of {', '.join(dict.fromkeys(changed))} changed"
            if changed
            else "the data set, the CLIP weights or an upstream setting changed"
        )
        raise ArtifactError(
            f"run {recorded.run_name!r} holds {', '.join(e['file'] for e in entries)} but none has the key that its "
            f"configuration and inputs give now: {why} since notebook 04 trained it; rerun notebook 04 (and 01) "
            f"for this run"
        )
    raise ArtifactError(
        f"run {recorded.run_name!r} ({folder}) has no {variant} codes at {bits} bits; it has: "
        f"{describe_codes(codes_in_run(folder))}. Train them with notebook 04 (VARIANT={variant!r}, BITS=[{bits}])"
    )
