"""One query against a finished run: ``Searcher`` loads the trained model and the retrieval set's codes once,
then answers a text or an image with its top-k retrieval items (Hamming distance, labels, image path, text).

    s = Searcher.from_run("tiny-toy_nuswide-s0", runs_root="runs")   # bits=None: the largest trained
    s.search_text("sky clouds lake", k=5)      # T→I: the query's text code against the retrieval images' codes
    s.search_image("photo.jpg", k=5)           # I→T: the image code against the retrieval texts' codes

    python -m egath_lite.search --run tiny-toy_nuswide-s0 --runs-root runs --text "sky clouds" -k 10

A query goes through exactly what made the stored codes: the run's CLIP (the tiny CLIP artifact, or the
checkpoint file / pretrained tag recorded in ``run_config.json``, loaded offline), the image pipeline's
eval preprocessing (``egath_lite.clip.images``), the run's tag vocabulary, and the trained EGATH in eval mode
without gradients. Distances are ``popcount(a XOR b)`` on the metrics' packed bytes and ties go to the
smaller retrieval position, the evaluation's stable order. A bag-of-words variant refuses a text with no
word of the run's vocabulary (its code would be the same for every such text): ``SearchError``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from egath_lite.clip.weights import ClipWeightsError, load_clip, weights_fingerprint
from egath_lite.errors import EgathError, run_main
from egath_lite.files import ArtifactError
from egath_lite.metrics.inputs import pack_codes, popcount
from egath_lite.pipeline.config import Config, ConfigError

MODALITIES = ("image", "text")


class SearchError(EgathError, ValueError):
    """A query or a run that cannot be searched; the message names the problem and the fix."""


@dataclass(frozen=True)
class Hit:
    """One retrieved item: 1-based ``rank``, data set item ``index``, row ``position`` in the retrieval set,
    Hamming ``distance``, label names, image file (None for in-memory images) and text."""

    rank: int
    index: int
    position: int
    distance: int
    labels: tuple[str, ...]
    image_path: str | None
    text: str


def hamming_ranking(query_code: Any, packed: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k ``(positions int64 (k,), distances int32 (k,))`` of one code (bits,) against packed codes uint8 (n, bytes).

    ``popcount(query XOR code)`` per row, ties by position (a stable sort): the evaluation's ranking.
    """
    q = pack_codes(np.asarray(query_code).reshape(1, -1), "query code", pad=True)
    if q.shape[1] != packed.shape[1]:
        raise SearchError(f"the query code has {q.shape[1]} bytes, the retrieval codes {packed.shape[1]}")
    dist = popcount(np.bitwise_xor(packed, q)).sum(axis=1, dtype=np.int64)
    k = min(k, len(dist))
    if k < len(dist):  # only the k nearest need sorting: everything closer than the k-th distance, then ties
        kth = np.partition(dist, k - 1)[k - 1]
        candidates = np.flatnonzero(dist <= kth)
    else:
        candidates = np.arange(len(dist))
    order = candidates[np.argsort(dist[candidates], kind="stable")][:k]  # candidates ascend: ties by position
    return order.astype(np.int64), dist[order].astype(np.int32)


class Searcher:
    """A finished run's trained model, CLIP, vocabulary and retrieval codes, loaded once; answers single queries.

    Build it with ``Searcher.from_run(run, variant, bits)`` (or ``from_config(cfg, bits)``); then
    ``search_text(text, k)``, ``search_image(image, k)`` return ``list[Hit]``; ``encode_text`` /
    ``encode_image`` give the query's code int8 (bits,) in {-1, +1}.
    """

    def __init__(
        self, cfg: Config, bits: int, payload: dict[str, Any], device: str | torch.device = "cpu", dataset: Any = None
    ):
        from egath_lite.clip.images import Preprocess
        from egath_lite.core.methods import get_method
        from egath_lite.core.models import CLIPImageBackbone
        from egath_lite.data import dataset_from_config
        from egath_lite.pipeline.codes import codes_tag, load_egath, load_method
        from egath_lite.pipeline.features import FEATURES_STAGE
        from egath_lite.pipeline.graph import GRAPH_STAGE
        from egath_lite.pipeline.variants import variant_settings

        self.cfg, self.bits, self.variant = cfg, int(bits), codes_tag(cfg)  # variant: the ablation or the method
        self.device = _device(device)
        self.codes_path = payload.get("path")
        t, meta = payload["tensors"], payload["meta"]
        features = _load(lambda: FEATURES_STAGE.load(cfg), "features", "01_feature_extraction", cfg)
        ft, fmeta = features["tensors"], features["meta"]
        self.vocab: list[str] = list(fmeta["vocab"])
        self.label_names: list[str] = list(fmeta["label_names"])
        self.query_idx = ft["query_idx"].numpy().copy()
        self.retrieval_idx = ft["retrieval_idx"].numpy().copy()
        labels = ft["labels"][ft["retrieval_idx"]].to(torch.uint8)
        if not torch.equal(labels, t["retrieval_labels"]):
            raise SearchError(
                f"{self.codes_path}: its retrieval labels are not the features' retrieval rows; "
                f"rerun notebook 04 for run {cfg.run_name!r}"
            )
        self.retrieval_labels = t["retrieval_labels"].numpy().astype(bool)
        num_items = len(ft["labels"])
        del features, ft  # the embeddings of every item are not needed any more

        egath = cfg.method == "egath"
        self.text_input = variant_settings(cfg)["text_input"] if egath else get_method(cfg.method).TEXT_INPUT
        self.clip, _, self.tokenizer = load_clip(cfg.clip_model, clip_weights(cfg), self.device, seed=cfg.seed)
        self.prep = Preprocess.from_model(self.clip)
        backbone = CLIPImageBackbone(self.clip.visual, self.prep) if cfg.finetune_clip else None
        if egath:
            graph = {name: t[f"state.{name}"] for name in ("label_emb", "edge_index", "edge_weight")}  # buffers
            self.model = load_egath(cfg, payload, graph, int(meta["image_dim"]), int(meta["text_dim"]), backbone)
        else:  # a comparison method (core.methods): the run's graph only where the method reads one
            needs = getattr(get_method(cfg.method), "NEEDS_GRAPH", False)
            graph = _load(lambda: GRAPH_STAGE.load(cfg), "graph", "02_label_graph", cfg)["tensors"] if needs else {}
            self.model = load_method(cfg, payload, graph)
        self.model.to(self.device).eval()  # a fine-tuned image tower is now the model's own (its stored state)
        with torch.no_grad():  # H depends on the weights only: computed once, not per query as model.encode does
            self._H = self.model.label_classifiers() if egath else None
        self.packed = {
            "image": pack_codes(t["retrieval_image_codes"], "retrieval_image_codes", pad=True),
            "text": pack_codes(t["retrieval_text_codes"], "retrieval_text_codes", pad=True),
        }
        self.dataset = dataset_from_config(cfg) if dataset is None else dataset
        if len(self.dataset) != num_items:
            raise SearchError(
                f"the data set {cfg.dataset!r} has {len(self.dataset)} items, the run's features {num_items}: "
                f"it is not the data set run {cfg.run_name!r} was made from"
            )

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_run(
        cls,
        run: str | os.PathLike,
        variant: str = "egath",
        bits: int | None = None,
        runs_root: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        log: Callable[[str], None] = print,
        method: str = "egath",
    ) -> Searcher:
        """Load run ``run`` (a folder, or a run name under ``runs_root``, default ``default_runs_root()``) at ``variant``/``bits``.

        ``bits=None`` takes the largest bit length trained for ``variant`` (and says so through ``log``).
        ``method``: a comparison method's codes (``egath_lite.core.methods``) instead of EGATH's ``variant``.
        """
        from egath_lite.core.methods import METHODS
        from egath_lite.pipeline.codes import codes_in_run, describe_codes, load_run_codes
        from egath_lite.pipeline.runs import RUN_CONFIG, load_run_config
        from egath_lite.pipeline.variants import VARIANTS

        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a query never downloads: the run's weights are local
        device = _device(device)  # before any weights load: a missing GPU is not a missing download
        root, name = _locate_run(run, runs_root)
        folder = root / name
        try:
            recorded = load_run_config(str(root), name)
        except (ArtifactError, ConfigError) as exc:
            raise SearchError(f"run {name!r}: {exc}") from None
        if recorded is None:
            raise SearchError(f"{folder} has no {RUN_CONFIG}: not a run folder (notebook 01 records it)")
        if method not in METHODS:
            raise SearchError(f"unknown method {method!r}; methods: {', '.join(METHODS)}")
        if method != "egath":
            if variant != "egath":
                raise SearchError(f"variant={variant!r} is an ablation of EGATH; method={method!r} takes none")
            variant = method  # a comparison method's codes are named by the method
        elif variant not in VARIANTS:
            raise SearchError(f"unknown variant {variant!r}; variants: {', '.join(VARIANTS)}")
        entries = codes_in_run(folder)
        trained = sorted({e["bits"] for e in entries if e["variant"] == variant})
        if not trained:
            raise SearchError(
                f"run {name!r} has no trained {variant!r} codes; it has: {describe_codes(entries)} "
                f"(train them with notebook 04, VARIANT={variant!r})"
            )
        if bits is None:
            bits = trained[-1]
            log(f"[search] bits=None: using {bits} bits, the longest {variant} codes of run {name!r} ({trained})")
        elif isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or int(bits) not in trained:
            raise SearchError(
                f"run {name!r} has no {variant} codes at bits={bits!r}; it has: {describe_codes(entries)}"
            )
        check_weights(recorded)
        try:
            cfg, payload = load_run_codes(recorded, variant, int(bits))
        except (ArtifactError, ConfigError) as exc:
            raise SearchError(str(exc)) from None
        return cls(cfg, int(bits), payload, device)

    @classmethod
    def from_config(cls, cfg: Config, bits: int, device: str | torch.device = "cpu", dataset: Any = None) -> Searcher:
        """The codes artifact of exactly ``cfg`` (e.g. a notebook's) at ``bits`` bits; never trains.

        ``dataset``: the run's data set when the caller has loaded it already (``dataset_from_config(cfg)``).
        """
        from egath_lite.pipeline.codes import codes_stage, codes_tag

        check_weights(cfg)
        stage, tag = codes_stage(cfg.method), codes_tag(cfg)
        payload = _load(lambda: stage.load(cfg, variant=tag, bits=bits), "codes", "04_hash_learning", cfg)
        return cls(cfg, bits, payload, device, dataset)

    # ------------------------------------------------------------------ queries
    def encode_text(self, text: str) -> torch.Tensor:
        """The code int8 (bits,) of a tag string or caption, through the run's text input (bag of words or CLIP)."""
        from egath_lite.clip.encode import encode_texts
        from egath_lite.data import bag_of_words

        if not isinstance(text, str):
            raise SearchError(f"a text query must be a string, got {type(text).__name__}")
        if not text.strip():
            raise SearchError("the text query is empty; give some tags or a caption, e.g. 'sky clouds lake'")
        if self.text_input == "bow":
            known, unknown = self.vocabulary_words(text)
            if not known:
                raise SearchError(
                    f"no word of {text!r} is in run {self.cfg.run_name!r}'s vocabulary of {len(self.vocab)} tags "
                    f"(e.g. {', '.join(self.vocab[:8])}); the {self.variant!r} model reads a bag of words, and an "
                    f"empty one has no meaning: use tags of the vocabulary (or a clip_text run for free text)"
                )
            x = torch.from_numpy(bag_of_words([text], self.vocab))
        else:
            with self._threads():
                x = torch.from_numpy(encode_texts(self.clip, self.tokenizer, [text], 1, self.device, progress=False))
        return self._code(x, "text")

    def encode_image(self, image: Any) -> torch.Tensor:
        """The code int8 (bits,) of an image: a file path, a PIL image, or a uint8 array (H, W, 3)."""
        from egath_lite.clip.images import normalize

        pixels = self._pixels(image)  # uint8 (3, S, S), the extraction's eval resize
        x = normalize(pixels[None], self.prep, self.device)
        if not self.cfg.finetune_clip:  # frozen features: the CLIP vector is the model's image input
            with torch.no_grad(), self._threads():
                x = self.clip.encode_image(x, normalize=True).float()
        return self._code(x, "image")

    def search_text(self, text: str, k: int = 10, against: str = "image") -> list[Hit]:
        """The k nearest retrieval items of a text query (by their image codes: T→I, the evaluated direction)."""
        return self.search_code(self.encode_text(text), k, against)

    def search_image(self, image: Any, k: int = 10, against: str = "text") -> list[Hit]:
        """The k nearest retrieval items of an image query (by their text codes: I→T, the evaluated direction)."""
        return self.search_code(self.encode_image(image), k, against)

    def search_code(self, code: Any, k: int = 10, against: str = "image") -> list[Hit]:
        """The k nearest retrieval items of a code (bits,) in {-1, +1} among the retrieval codes of ``against``."""
        if against not in MODALITIES:
            raise SearchError(f"against must be one of {MODALITIES}, got {against!r}")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise SearchError(f"k must be a positive integer, got {k!r}")
        code = np.asarray(code.cpu() if isinstance(code, torch.Tensor) else code)
        if code.shape != (self.bits,):
            raise SearchError(f"a query code must have shape ({self.bits},), got {code.shape}")
        positions, distances = hamming_ranking(code, self.packed[against], int(k))
        return [self._hit(rank, int(p), int(d)) for rank, (p, d) in enumerate(zip(positions, distances), start=1)]

    def vocabulary_words(self, text: str) -> tuple[list[str], list[str]]:
        """``(known, unknown)``: the words of ``text`` in the run's tag vocabulary and the others, in order."""
        from egath_lite.data import tokenize

        vocab = set(self.vocab)
        words = list(dict.fromkeys(tokenize(text)))
        return [w for w in words if w in vocab], [w for w in words if w not in vocab]

    def image(self, index: int) -> np.ndarray:
        """The image of data set item ``index`` as uint8 (H, W, 3) (in memory, or read from its file)."""
        return np.asarray(self.dataset.get_image(int(index)).convert("RGB"))

    def labels_of(self, index: int) -> tuple[str, ...]:
        """The label names of data set item ``index``."""
        row = np.asarray(self.dataset.labels[int(index)])
        return tuple(n for n, v in zip(self.label_names, row) if v)

    def __repr__(self) -> str:
        return (
            f"Searcher(run={self.cfg.run_name!r}, variant={self.variant!r}, bits={self.bits}, "
            f"retrieval items={len(self.retrieval_idx)}, text input={self.text_input})"
        )

    # ------------------------------------------------------------------ internals
    def _code(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        """int8 (bits,) of one model input (1, ...): ``EGATH.encode``'s branch and sign, with the cached H."""
        from egath_lite.core.models import binarize

        with torch.no_grad(), self._threads():
            if self._H is None:  # a comparison method: its own encode (the core.methods interface)
                return self.model.encode(x.to(self.device).float(), modality)[0].cpu()
            branch = self.model.image_branch if modality == "image" else self.model.text_branch
            return binarize(branch(x.to(self.device), self._H)[2])[0].cpu()

    def _threads(self):
        """One CPU thread for one query: measured 8.6 ms per tiny-CLIP image query on one thread, 255 ms on two
        beside another busy process (the second thread only spins); on a GPU, nothing changes."""
        from egath_lite.utils import cpu_threads

        return cpu_threads(1) if self.device.type == "cpu" else contextlib.nullcontext()

    def _hit(self, rank: int, position: int, distance: int) -> Hit:
        index = int(self.retrieval_idx[position])
        labels = tuple(n for n, v in zip(self.label_names, self.retrieval_labels[position]) if v)
        return Hit(rank, index, position, distance, labels, self._image_path(index), str(self.dataset.texts[index]))

    def _image_path(self, index: int) -> str | None:
        from egath_lite.data import DatasetError

        if getattr(self.dataset, "image_paths", None) is None:
            return None  # in memory (toy_nuswide)
        try:
            return str(self.dataset.image_path(index))
        except DatasetError:  # the file moved since the run: name the entry as the data set lists it
            return str(self.dataset.image_paths[index])

    def _pixels(self, image: Any) -> torch.Tensor:
        """uint8 (3, S, S): a path, PIL image or uint8 (H, W, 3) array through the image pipeline's eval resize."""
        from PIL import Image

        from egath_lite.clip.images import ImageItems

        if isinstance(image, (str, os.PathLike)):
            path = Path(image)
            if not path.is_file():
                raise SearchError(f"image file {str(path)!r} not found; give the path of an existing image file")
            source: Any = [os.fspath(path)]
        else:
            if isinstance(image, Image.Image):
                from egath_lite.data.dataset import image_to_rgb

                image = np.asarray(image_to_rgb(image))
            if not isinstance(image, np.ndarray):
                raise SearchError(
                    f"an image query is a file path, a PIL image or a uint8 array (H, W, 3); got {type(image).__name__}"
                )
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
                raise SearchError(
                    f"an image array must be uint8 (H, W, 3) RGB, got {image.dtype} {image.shape}; "
                    f"e.g. np.asarray(PIL.Image.open(path).convert('RGB'))"
                )
            source = np.array(image, copy=True)[None]  # writable and contiguous: torch.from_numpy needs both
        decoder = "auto" if self.cfg.image_decoder == "cuda" else self.cfg.image_decoder  # one image: the CPU decodes
        items = ImageItems(source, None, self.prep, decoder=decoder)
        try:
            return items.load(0).pixels
        except (ValueError, OSError) as exc:
            raise SearchError(
                f"cannot read image {image if isinstance(image, (str, os.PathLike)) else 'array'}: {exc}"
            ) from None


def _device(device: str | torch.device) -> torch.device:
    """A usable device (``resolve_device``'s checks), or SearchError saying which and what to use instead."""
    from egath_lite.errors import SettingsError
    from egath_lite.utils import resolve_device

    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise SearchError(f"device must be a name such as 'cpu' or 'cuda', got {device!r}")
    try:
        return resolve_device(device)
    except SettingsError as exc:
        raise SearchError(f"--device: {exc}") from None


def clip_weights(cfg: Config) -> str | None:
    """The CLIP weights a run's features were made with, as ``load_clip`` takes them; SearchError when gone."""
    from egath_lite.pipeline.tiny_clip import TINY_CLIP_STAGE

    if cfg.clip_pretrained != "train":
        check_weights(cfg)
        return cfg.clip_pretrained
    path = TINY_CLIP_STAGE.path(cfg)
    if not path.is_file():
        raise SearchError(
            f"run {cfg.run_name!r}'s tiny CLIP weights {path} are gone; its codes were made with them. "
            f"Rerun notebook 01 for this run (RUN_NAME={cfg.run_name!r}): it retrains them from the recorded config"
        )
    _load(lambda: TINY_CLIP_STAGE.load(cfg), "tiny CLIP", "01_feature_extraction", cfg)  # checksum, key
    return str(path)


def check_weights(cfg: Config) -> None:
    """SearchError naming the checkpoint file when the run's ``clip_pretrained`` file is gone."""
    try:
        weights_fingerprint(cfg)
    except ClipWeightsError:
        raise SearchError(
            f"run {cfg.run_name!r}'s CLIP weights file {cfg.clip_pretrained!r} (clip_pretrained in run_config.json) "
            f"is gone; its codes were made with it: put the file back at that path"
        ) from None


def _load(fn: Callable[[], dict[str, Any]], what: str, notebook: str, cfg: Config) -> dict[str, Any]:
    try:
        return fn()
    except ArtifactError as exc:
        raise SearchError(
            f"run {cfg.run_name!r}: its {what} artifact cannot be used ({exc}); rerun {notebook}"
        ) from None


def _locate_run(run: str | os.PathLike, runs_root: str | os.PathLike | None) -> tuple[Path, str]:
    """``(runs root, run name)`` of a run folder path or a run name under ``runs_root`` (default: ``default_runs_root``)."""
    from egath_lite.pipeline.runs import RUN_CONFIG, default_runs_root

    if not isinstance(run, (str, os.PathLike)) or not os.fspath(run):
        raise SearchError(f"run must be a run name or a run folder, got {run!r}")
    given = Path(run)
    if runs_root is None and (given / RUN_CONFIG).is_file():
        return given.resolve().parent, given.resolve().name
    root = default_runs_root() if runs_root is None else Path(runs_root)
    if len(given.parts) != 1:
        raise SearchError(f"{os.fspath(run)!r} is not a run folder (no {RUN_CONFIG} in it) nor a run name")
    folder = root / given.name
    if not (folder / RUN_CONFIG).is_file():
        runs = sorted(p.parent.name for p in root.glob(f"*/{RUN_CONFIG}")) if root.is_dir() else []
        raise SearchError(
            f"no run {given.name!r} in {root.resolve()} (no {folder / RUN_CONFIG}); runs there: {runs or 'none'}. "
            f"Pass --runs-root (the notebooks write to runs/) or run the notebooks first"
        )
    return root.resolve(), given.name


# --------------------------------------------------------------------------- the command
def format_hits(hits: Sequence[Hit], width: int = 48) -> str:
    """A plain-text table: rank, distance, item, labels, image (path or "in memory"), text snippet."""
    rows = [("rank", "dist", "item", "labels", "image", "text")]
    for h in hits:
        text = h.text if len(h.text) <= width else h.text[: width - 1] + "…"
        rows.append(
            (str(h.rank), str(h.distance), str(h.index), ", ".join(h.labels) or "-", h.image_path or "in memory", text)
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m egath_lite.search --run RUN (--text TEXT | --image PATH) [-k 10]``; exit 2 on bad input."""
    p = argparse.ArgumentParser(
        prog="python -m egath_lite.search",
        description="Search a finished run's retrieval set with one text or one image (Hamming ranking).",
    )
    p.add_argument("--run", required=True, help="run name under --runs-root, or a run folder")
    p.add_argument(
        "--runs-root",
        default=None,
        help="folder of the runs (default: $EGATH_RUNS, else the checkout's runs/, else ./runs)",
    )
    p.add_argument("--variant", default="egath", help="which trained model (default: egath)")
    p.add_argument("--method", default="egath", help="a comparison method's model instead (egath_lite.core.methods)")
    p.add_argument("--bits", type=int, default=None, help="code length (default: the longest trained)")
    query = p.add_mutually_exclusive_group(required=True)
    query.add_argument("--text", help="a tag string or caption: ranks the retrieval images (T→I)")
    query.add_argument("--image", help="an image file: ranks the retrieval texts (I→T)")
    p.add_argument("-k", type=int, default=10, help="how many items to print (default: 10)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, mps")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error instead of one line")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = p.parse_args(argv)
    return run_main(p.prog, lambda: _search(args), args.debug)


def _search(args: argparse.Namespace) -> int:
    # torch_geometric's import-time deprecation notice is not about this command (pytest filters it too)
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)
    s = Searcher.from_run(args.run, args.variant, args.bits, args.runs_root, device=args.device, method=args.method)
    if args.text is not None:
        hits = s.search_text(args.text, args.k)
        unknown = s.vocabulary_words(args.text)[1] if s.text_input == "bow" else []
        what = f"text {args.text!r} → retrieval images (T→I)" + (
            f"; not in the vocabulary, ignored: {', '.join(unknown)}" if unknown else ""
        )
    else:
        hits = s.search_image(args.image, args.k)
        what = f"image {args.image} → retrieval texts (I→T)"
    print(f"run {s.cfg.run_name}, {s.variant}, {s.bits} bits, {len(s.retrieval_idx)} retrieval items; {what}")
    print(format_hits(hits))
    return 0


if __name__ == "__main__":
    sys.exit(main())
