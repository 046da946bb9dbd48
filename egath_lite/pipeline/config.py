"""Every knob of the pipeline, grouped by the stage that reads it, with the presets ``tiny``, ``default`` and ``paper``.

``Config`` holds one section per stage (``cfg.data``, ``cfg.features``, ``cfg.graph``,
``cfg.classifier``, ``cfg.hashing``, ``cfg.evaluation``, plus ``cfg.run``); each field name is
unique across sections, so ``cfg.zeta`` reads ``cfg.graph.zeta`` and ``get_config(zeta=0.1)``
sets it. Every value is validated when the config is built (type, range, choice), before any
stage runs. A stage keys its artifact by the fields it declares (``egath_lite.pipeline.stages``), so
changing ``num_bits`` never invalidates the feature cache, and changing ``seed`` does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from egath_lite.core.losses import LossConfig
from egath_lite.core.methods import METHODS
from egath_lite.core.models import EncoderConfig, GATConfig, HashConfig
from egath_lite.data.manifest import MANIFEST_SUFFIXES, TEXT_KINDS, is_manifest_path
from egath_lite.errors import EgathError
from egath_lite.pipeline.variants import VARIANTS

PRESETS = ("tiny", "default", "paper")
LABEL_EMBEDDINGS = ("glove", "clip")
# A run name is one folder under the runs root: no separators, no "..", nothing absolute.
RUN_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")
# Fields that say where a run lives, not what it computes: never part of a key.
LOCATION_FIELDS = ("runs_root", "run_name")


def _check(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple[str, ...] | None = None,
    doc: str = "",
) -> Any:
    """A dataclass field with its validation rule (range or choices) and a one-line meaning."""
    rule = {"ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices, "doc": doc}
    if isinstance(default, (list, tuple, dict)):
        return field(default_factory=lambda: default, metadata=rule)
    return field(default=default, metadata=rule)


@dataclass(frozen=True)
class RunSection:
    """Where a run lives and what is shared by every stage."""

    preset: str = _check("default", choices=PRESETS)
    run_name: str = _check("default", doc="one folder name under runs_root (letters, digits, -_.)")
    runs_root: str = _check("runs", doc="folder holding every run; nothing is written outside it")
    device: str = _check("auto", doc="auto | cpu | cuda | cuda:N | mps")
    seed: int = _check(0, ge=0)


@dataclass(frozen=True)
class DataSection:
    """egath_lite.data: which items, labels, tags and split."""

    dataset: str = _check("toy_nuswide", doc="a registered data set name, or the path of a .csv / .jsonl manifest")
    data_root: str | None = _check(None, doc="real benchmarks: folder holding the release files")
    layout: str = _check("auto", doc="release layout of a real set; auto: detect it")
    drop_unlabeled: bool = _check(False, doc="drop items without any label instead of refusing them")
    text_kind: str = _check(
        "auto", choices=TEXT_KINDS, doc="manifests: tags | caption (stop words leave the BoW) | auto"
    )
    toy_size: int = _check(10_000, ge=20, doc="toy_nuswide: number of image-text pairs")
    image_size: int = _check(64, ge=16, doc="toy_nuswide: rendered image side in pixels")
    label_dependence: float = _check(
        0.0, ge=0.0, le=1.0, doc="toy_nuswide: share of a dependent label drawn as its parent (0: independent)"
    )
    num_query: int | None = _check(1_000, ge=1, doc="None: the data set's benchmark default (GCDH split)")
    num_train: int | None = _check(5_000, ge=2, doc="None: the data set's benchmark default")
    split_seed: int | None = _check(None, ge=0, doc="None: the data set's benchmark default")
    vocab_size: int = _check(512, ge=1, doc="bag-of-words vocabulary, built from training tags only")
    val_fraction: float = _check(0.1, gt=0.0, lt=1.0, doc="validation items carved from the training split")


@dataclass(frozen=True)
class FeaturesSection:
    """egath_lite.pipeline.features and egath_lite.pipeline.tiny_clip: the CLIP model and the extraction."""

    clip_model: str = _check("egath-tiny-clip", doc="open_clip model name, e.g. ViT-B-32")
    clip_pretrained: str | None = _check("train", doc="tag (openai, ...), checkpoint path, 'train' (toy), None")
    clip_epochs: int = _check(4, ge=1, doc="tiny CLIP training epochs (clip_pretrained='train')")
    clip_lr: float = _check(1e-3, gt=0.0)
    clip_batch_size: int = _check(128, ge=2, doc="tiny CLIP training batch (image-text pairs)")
    extract_batch_size: int = _check(256, ge=1, doc="feature extraction batch (items per forward pass)")
    extract_shard_size: int = _check(2048, ge=1, doc="items per extraction shard (the unit a rerun resumes from)")
    num_workers: int | None = _check(None, ge=0, doc="image decoding workers; None: the available cores")
    image_decoder: str = _check(
        "auto",
        choices=("auto", "torchvision", "pil", "cuda"),
        doc="auto: torchvision.io for JPEG/PNG, PIL otherwise; cuda: nvJPEG on the GPU",
    )


@dataclass(frozen=True)
class GraphSection:
    """egath_lite.pipeline.graph: the label graph and its node inputs."""

    zeta: float = _check(0.3, gt=0.0, le=1.0, doc="adjacency threshold on D_ij = C_ij / N_i (GCDH: 0.3)")
    self_loops: bool = _check(True)
    reweight: bool = _check(False, doc="ML-GCN re-weighting of the binary adjacency")
    reweight_p: float = _check(0.2, gt=0.0, lt=1.0)
    label_embedding: str = _check("glove", choices=LABEL_EMBEDDINGS)
    label_prompt: str = _check("a photo of a {}", doc="CLIP prompt template when label_embedding == 'clip'")
    label_embedding_file: str | None = _check(
        None, doc="a .npy (C, F) of label embeddings in label order; replaces label_embedding"
    )


def _component_fields(cls: type, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """The fields of a ``core`` component config (``GATConfig``, ...) as config fields named ``prefix + name``.

    Each setting is declared once, beside its module in ``egath_lite.core``; the run configuration takes its
    default, type, range and meaning from there (``component`` goes back).
    """
    hints = typing.get_type_hints(cls)
    return [
        (
            _run_name(f, prefix),
            hints[f.name],
            field(default=f.default, metadata={k: v for k, v in f.metadata.items() if k != "name"}),
        )
        for f in dataclasses.fields(cls)
    ]


def _run_name(f: dataclasses.Field, prefix: str) -> str:
    """A component field's name in the run configuration: its ``setting(name=...)``, else ``prefix + name``."""
    return f.metadata.get("name") or prefix + f.name


# Component configs of egath_lite.core and the prefix of their fields in the run configuration.
COMPONENTS: dict[type, str] = {GATConfig: "gat_", EncoderConfig: "trans_", HashConfig: "", LossConfig: ""}


def component_fields(cls: type) -> tuple[str, ...]:
    """The run config's names of a ``core`` component config's fields, e.g. ``('gat_layers', 'gat_hidden', …)``."""
    return tuple(_run_name(f, COMPONENTS[cls]) for f in dataclasses.fields(cls))


def component(cfg: Config, cls: type) -> Any:
    """The ``core`` component config ``cls`` (``GATConfig``, ``EncoderConfig``, ``HashConfig``, ``LossConfig``) of ``cfg``."""
    prefix = COMPONENTS[cls]
    return cls(**{f.name: getattr(cfg, _run_name(f, prefix)) for f in dataclasses.fields(cls)})


ClassifierSection = dataclasses.make_dataclass(
    "ClassifierSection",
    _component_fields(GATConfig, "gat_")
    + [
        ("gat_epochs", int, _check(30, ge=1, doc="epochs of the frozen-feature classifiers (notebook 03)")),
        ("gat_lr", float, _check(1e-3, gt=0.0)),
        ("gat_batch_size", int, _check(256, ge=1, doc="frozen-feature classifier batch (feature vectors)")),
    ],
    frozen=True,
)
ClassifierSection.__doc__ = "The label classifier: ``core.models.GATConfig`` as ``gat_*``, and notebook 03's training."

HashingSection = dataclasses.make_dataclass(
    "HashingSection",
    [
        ("variant", str, _check("egath", choices=tuple(VARIANTS))),
        ("method", str, _check("egath", choices=METHODS, doc="egath or a comparison method (core.methods)")),
        ("bits", tuple[int, ...], _check((16, 32, 64), ge=1, le=4096, doc="code lengths")),
    ]
    + _component_fields(HashConfig)
    + _component_fields(EncoderConfig, "trans_")
    + [
        ("epochs", int, _check(30, ge=1)),
        ("hash_batch_size", int, _check(64, ge=2, doc="hash-learning batch (items; triplets need two)")),
        ("lr", float, _check(1e-4, gt=0.0)),
        ("lr_min", float, _check(1e-6, gt=0.0)),
        ("weight_decay", float, _check(5e-4, ge=0.0)),
        ("mu", float, _check(0.5, ge=0.0, doc="discrete step weight")),
    ]
    + _component_fields(LossConfig)
    + [
        ("finetune_clip", bool, _check(False, doc="train the CLIP image tower jointly (end to end)")),
        ("finetune_lr_scale", float, _check(0.1, gt=0.0, doc="CLIP tower's lr = lr x this when finetune_clip")),
        (
            "grad_checkpointing",
            bool,
            _check(False, doc="recompute the CLIP tower's activations in backward (less memory)"),
        ),
        ("early_stop_patience", int, _check(10, ge=1)),
        (
            "val_sample_size",
            int,
            _check(0, ge=0, doc="validation retrieves from a fixed seeded sample of this many training items; 0: all"),
        ),
    ],
    frozen=True,
)
HashingSection.__doc__ = (
    "EGATH hash learning: ``core.models.HashConfig``, ``EncoderConfig`` (``trans_*``), ``core.losses.LossConfig`` "
    "and the training engine's settings."
)


@dataclass(frozen=True)
class EvaluationSection:
    """egath_lite.metrics: what notebook 05 reports."""

    topk: tuple[int, ...] = _check((50, 100, 200, 500, 1000, 2000, 5000), ge=1, doc="K of precision@K")


# The fields that decide which items, labels, tags and split every data-reading stage sees.
DATA_FIELDS = tuple(f.name for f in dataclasses.fields(DataSection) if f.name != "vocab_size") + ("seed",)

SECTIONS: dict[str, type] = {
    "run": RunSection,
    "data": DataSection,
    "features": FeaturesSection,
    "graph": GraphSection,
    "classifier": ClassifierSection,
    "hashing": HashingSection,
    "evaluation": EvaluationSection,
}
# field name -> section name; names are unique across sections (checked at import)
FIELD_SECTION: dict[str, str] = {}
for _section, _cls in SECTIONS.items():
    for _f in dataclasses.fields(_cls):
        assert _f.name not in FIELD_SECTION, f"config field {_f.name!r} defined twice"
        FIELD_SECTION[_f.name] = _section


class ConfigError(EgathError, ValueError):
    """A config value has the wrong type, range or choice, or names no field."""


@dataclass(frozen=True)
class Config:
    """All parameters of one run, one section per stage; build with ``get_config(preset, **overrides)``."""

    run: RunSection = field(default_factory=RunSection)
    data: DataSection = field(default_factory=DataSection)
    features: FeaturesSection = field(default_factory=FeaturesSection)
    graph: GraphSection = field(default_factory=GraphSection)
    classifier: ClassifierSection = field(default_factory=ClassifierSection)
    hashing: HashingSection = field(default_factory=HashingSection)
    evaluation: EvaluationSection = field(default_factory=EvaluationSection)

    def __getattr__(self, name: str) -> Any:
        # Called only for names that are not sections: the flat view cfg.zeta == cfg.graph.zeta.
        section = FIELD_SECTION.get(name)
        if section is None:
            raise AttributeError(f"Config has no field {name!r}; known fields: {sorted(FIELD_SECTION)}")
        return getattr(object.__getattribute__(self, section), name)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Config:
        """Build from flat field values (e.g. papermill parameters); unknown names and bad values raise ConfigError."""
        unknown = sorted(set(values) - set(FIELD_SECTION))
        if unknown:
            hints = {u: _close(u) for u in unknown}
            raise ConfigError(f"unknown config field(s) {hints}; known fields: {sorted(FIELD_SECTION)}")
        grouped: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
        for name, value in values.items():
            grouped[FIELD_SECTION[name]][name] = value
        cfg = cls(**{s: _build_section(SECTIONS[s], grouped[s]) for s in SECTIONS})
        _check_across_sections(cfg)
        return cfg

    @classmethod
    def preset_config(cls, name: str, **overrides: Any) -> Config:
        """A preset (with its per-data-set values) and overrides applied; unknown names raise."""
        if name not in _PRESET_OVERRIDES:
            raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        values = dict(_PRESET_OVERRIDES[name])
        dataset = overrides.get("dataset", values.get("dataset", DataSection.dataset))
        values.update(_MANIFEST_DEFAULTS if is_manifest_path(dataset) else _PER_DATASET.get(name, {}).get(dataset, {}))
        values.update(overrides)
        values.setdefault("run_name", name)
        values["preset"] = name
        return cls.from_dict(values)

    def to_dict(self) -> dict[str, Any]:
        """Flat, JSON-able dict of every field (tuples as lists)."""
        out: dict[str, Any] = {}
        for section in SECTIONS:
            for f in dataclasses.fields(SECTIONS[section]):
                v = getattr(getattr(self, section), f.name)
                out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    def sections(self) -> dict[str, dict[str, Any]]:
        """{section: {field: value}}: which knob feeds which stage."""
        flat = self.to_dict()
        return {s: {f.name: flat[f.name] for f in dataclasses.fields(SECTIONS[s])} for s in SECTIONS}

    def replace(self, **changes: Any) -> Config:
        """A copy with some fields changed (validated)."""
        return Config.from_dict({**self.to_dict(), **changes})

    def key(self, fields: Iterable[str]) -> str:
        """16-hex digest of the named fields: the part of an artifact's key that comes from the config."""
        d = self.to_dict()
        fields = list(fields)
        missing = [f for f in fields if f not in d]
        if missing:
            raise KeyError(f"Config has no field(s) {missing}")
        return digest({f: d[f] for f in sorted(fields)})

    def digest(self) -> str:
        """16-hex digest of every field that shapes results (all but where the run lives)."""
        return self.key(f for f in FIELD_SECTION if f not in LOCATION_FIELDS)

    def differences(self, other: Config) -> dict[str, tuple[Any, Any]]:
        """{field: (other's value, this value)} for every field that differs (location fields excluded)."""
        a, b = other.to_dict(), self.to_dict()
        return {k: (a[k], b[k]) for k in a if a[k] != b[k] and k not in LOCATION_FIELDS}


def digest(obj: Any) -> str:
    """16-hex sha256 of a JSON-able object (sorted keys): the one digest every key uses."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- validation
def _build_section(cls: type, values: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    checked = {}
    for f in dataclasses.fields(cls):
        if f.name in values:
            checked[f.name] = _validate(f, hints[f.name], values[f.name])
    section = cls(**checked)
    for f in dataclasses.fields(cls):  # the defaults pass the same rules (a broken default is a bug)
        if f.name not in values:
            _validate(f, hints[f.name], getattr(section, f.name))
    _cross_checks(section)
    return section


def _validate(f: dataclasses.Field, hint: Any, value: Any) -> Any:
    """``value`` converted to the field's type, or ConfigError naming the field and showing the right form."""
    name, rule = f.name, f.metadata
    optional = _is_optional(hint)
    base = _non_none(hint)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{name} must not be None; e.g. {name}={_example(f)!r}")
    if base is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    elif base is int:
        value = _as_int(name, value, _example(f))
    elif base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(
                f"{name} must be a number, e.g. {name}={_example(f)!r}; got {value!r} ({type(value).__name__})"
            )
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{name} must be finite, got {value}")
    elif base is str:
        if not isinstance(value, str):
            raise ConfigError(
                f"{name} must be a string, e.g. {name}={_example(f)!r}; got {value!r} ({type(value).__name__})"
            )
    elif typing.get_origin(base) is tuple:
        value = _as_int_tuple(name, value, _example(f))
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        _check_range(name, v, rule)
    if rule.get("choices") and value not in rule["choices"]:
        raise ConfigError(f"{name}={value!r} is not one of {', '.join(rule['choices'])}")
    if name == "run_name" and (not RUN_NAME_PATTERN.match(value) or value in (".", "..")):
        raise ConfigError(
            f"run_name={value!r} must be one folder name (letters, digits, '-', '_', '.'; not '..', "
            f"no '/'), e.g. run_name='my-run'; runs live under runs_root"
        )
    if name == "dataset":
        value = _check_dataset(value)
    if name == "label_embedding_file" and value is not None:
        value = _check_existing_file(name, value, (".npy",), "a NumPy .npy file of shape (C, F), e.g. np.save(...)")
    if name == "device" and not (value in ("auto", "cpu", "mps") or re.match(r"^cuda(:\d+)?$", value)):
        raise ConfigError(f"device={value!r} is not auto, cpu, cuda, cuda:N or mps")
    return value


def _check_existing_file(name: str, value: str, suffixes: tuple[str, ...], what: str) -> str:
    """An existing file with one of ``suffixes``, as an absolute path (notebooks run from another folder)."""
    path = Path(value).expanduser()
    if path.suffix.lower() not in suffixes:
        raise ConfigError(f"{name}={value!r}: expected {what} (ending in {' or '.join(suffixes)})")
    if not path.is_file():
        raise ConfigError(f"{name}={value!r}: no such file ({path.absolute()}); give the path of {what}")
    return str(path.absolute())


def _check_dataset(value: str) -> str:
    """A registered name, or a manifest path (made absolute); anything else raises naming both forms."""
    if is_manifest_path(value):
        return _check_existing_file("dataset", value, MANIFEST_SUFFIXES, "your own data's manifest")
    from egath_lite.data.registry import available_datasets

    names = available_datasets()
    if value not in names:
        hint = _close_in(value, names)
        raise ConfigError(
            f"dataset={value!r} is not a registered data set{f' (did you mean {hint[0]!r}?)' if hint else ''}; "
            f"use one of {names}, or the path of your own manifest (.csv / .jsonl, see README 'Your own data')"
        )
    return value


def _close_in(name: str, names: list[str]) -> list[str]:
    import difflib

    return difflib.get_close_matches(name, names, n=1)


def _as_int(name: str, value: Any, example: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, e.g. {name}={example!r}; got {value!r} ({type(value).__name__})")
    return int(value)


def _as_int_tuple(name: str, value: Any, example: Any) -> tuple[int, ...]:
    form = f"{name}={tuple(example)!r} or {name}=[{example[0]}]"
    if isinstance(value, (str, bytes)):
        raise ConfigError(f"{name} must be a list of integers, e.g. {form}; got the string {value!r}")
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, (list, tuple)) or len(value) == 0:
        raise ConfigError(f"{name} must be a non-empty list of integers, e.g. {form}; got {value!r}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"{name} must hold integers, e.g. {form}; got {v!r} ({type(v).__name__}) in {value!r}")
        out.append(int(v))
    if len(set(out)) != len(out):
        raise ConfigError(f"{name} lists a value twice: {value!r}")
    return tuple(out)


def _check_range(name: str, v: Any, rule: Any) -> None:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return
    for op, bound, ok in (
        ("ge", rule.get("ge"), lambda a, b: a >= b),
        ("gt", rule.get("gt"), lambda a, b: a > b),
        ("le", rule.get("le"), lambda a, b: a <= b),
        ("lt", rule.get("lt"), lambda a, b: a < b),
    ):
        if bound is not None and not ok(v, bound):
            sign = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}[op]
            raise ConfigError(f"{name} must be {sign} {bound}, got {v}")


def _cross_checks(section: Any) -> None:
    if isinstance(section, HashingSection) and section.lr_min > section.lr:
        raise ConfigError(f"lr_min ({section.lr_min}) must not exceed lr ({section.lr})")
    if isinstance(section, HashingSection) and section.method != "egath" and section.variant != "egath":
        raise ConfigError(
            f"variant={section.variant!r} is an ablation of EGATH; method={section.method!r} takes variant='egath'"
        )


# What the models require of their sizes (core.models: GATClassifier, CLIPTrans/TransFC's nn.TransformerEncoder),
# checked when the config is built rather than minutes later when a notebook builds the model.
_DIVISIBLE = (
    ("gat_hidden", "gat_heads", "GATClassifier splits its hidden width over its heads"),
    ("trans_width", "trans_heads", "the transformer encoders split their token width over their heads"),
)


def _check_across_sections(cfg: Config) -> None:
    for width, heads, why in _DIVISIBLE:
        w, h = getattr(cfg, width), getattr(cfg, heads)
        if w % h:
            fits = [d for d in range(1, w + 1) if w % d == 0 and d <= max(h, 16)]
            raise ConfigError(
                f"{width}={w} is not divisible by {heads}={h} ({why}); pick {heads} from {fits[-6:]} "
                f"or a {width} that is a multiple of {h}"
            )
    if cfg.clip_pretrained == "train" and cfg.dataset != "toy_nuswide":
        raise ConfigError(
            f"clip_pretrained='train' trains the offline tiny CLIP on toy_nuswide's in-memory images only; "
            f"for {cfg.dataset!r} pass real weights, e.g. clip_model='ViT-B-32', clip_pretrained='openai' "
            f"(or a local checkpoint path; driver: --clip-model ViT-B-32 --clip-pretrained PATH_OR_TAG)"
        )


def _is_optional(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)


def _non_none(hint: Any) -> Any:
    if _is_optional(hint):
        return next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def _example(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING and f.default is not None:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return {"data_root": "/path/to/data", "clip_pretrained": "openai"}.get(f.name, 1)


def _close(name: str) -> list[str]:
    import difflib

    return difflib.get_close_matches(name, list(FIELD_SECTION), n=3)


# --------------------------------------------------------------------------- presets
_PRESET_OVERRIDES: dict[str, dict[str, Any]] = {
    # CI: minutes on 2 CPU cores, every stage exercised.
    "tiny": dict(
        toy_size=1_200,
        num_query=200,
        num_train=600,
        vocab_size=256,
        clip_epochs=2,
        clip_batch_size=32,
        extract_batch_size=128,
        gat_hidden=128,
        gat_epochs=5,
        hidden_dim=128,
        epochs=3,
        lr=1e-3,
        lr_min=1e-5,
        bits=(16, 32, 64),
        early_stop_patience=3,
        topk=(10, 50, 100, 200, 500),
    ),
    # The main job on the embedded data: all notebooks in about ten minutes on 2 cores.
    # hashing: lr 1e-3 -> 1e-5 over 12 epochs beat the paper's 1e-4 (validation mAP 0.515 vs 0.468 at 32 bits)
    "default": dict(lr=1e-3, lr_min=1e-5, epochs=12),
    # Real benchmarks with real CLIP on a GPU; the paper's hyperparameters where stated.
    "paper": dict(
        dataset="mirflickr25k",
        num_query=None,
        num_train=None,
        split_seed=None,
        clip_model="ViT-B-32",
        clip_pretrained="openai",
        extract_batch_size=256,
        gat_hidden=1024,
        hidden_dim=1024,
        epochs=100,
        lr=1e-4,
        lr_min=1e-6,
        finetune_clip=True,  # end to end, as the paper's title says (toy measurement: docs/paper_map.md)
        classifier_scale="released",  # the paper's tables came from the released layer's H, whatever the default
        early_stop_patience=20,
        val_sample_size=2_000,  # validation images decoded once, not 10,500 per epoch (benchmarks/RESULTS.md)
        topk=(50, 100, 200, 500, 1000, 2000, 3000, 4000, 5000),
    ),
}
# Per-data-set values of a preset, applied before the overrides (sources in docs/paper_map.md).
_PER_DATASET: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {
        # GCDH's released classifier: threshold 0.3, and 0.01 for NUS-WIDE; vocabularies of the releases
        "mirflickr25k": dict(zeta=0.3, vocab_size=1_386),
        "nuswide_tc10": dict(zeta=0.01, vocab_size=1_000),
        "mscoco": dict(zeta=0.3, vocab_size=2_000),
    },
}

# A manifest (own data), in every preset: the split sizes of the manifest itself (its split column, or 10% query
# and the rest train) and CLIP prompts of the label names, since no GloVe vectors ship for them.
_MANIFEST_DEFAULTS: dict[str, Any] = dict(num_query=None, num_train=None, split_seed=None, label_embedding="clip")


def get_config(preset: str = "default", **overrides: Any) -> Config:
    """The named preset (tiny | default | paper) with field overrides applied, validated."""
    return Config.preset_config(preset, **overrides)


def parse_value(name: str, text: str) -> Any:
    """A ``--set KEY=VALUE`` string as the field's type: ints, floats, bools, None, lists of ints, strings."""
    section = FIELD_SECTION.get(name)
    if section is None:
        raise ConfigError(f"--set {name}=...: unknown config field; close names: {_close(name)}")
    f = next(x for x in dataclasses.fields(SECTIONS[section]) if x.name == name)
    hint = typing.get_type_hints(SECTIONS[section])[name]
    base = _non_none(hint)
    low = text.strip().lower()
    if _is_optional(hint) and low in ("none", "null"):
        return None
    try:
        if base is bool:
            if low not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return low in ("true", "1", "yes")
        if base is int:
            return int(text)
        if base is float:
            return float(text)
        if typing.get_origin(base) is tuple:
            return tuple(int(p) for p in text.replace("[", "").replace("]", "").replace(",", " ").split())
    except ValueError:
        raise ConfigError(
            f"--set {name}={text!r}: not a valid {getattr(base, '__name__', base)}; e.g. --set {name}={_example(f)}"
        ) from None
    return text
