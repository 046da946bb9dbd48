"""Papermill driver: run the notebooks in order over datasets x variants x seeds and tabulate.

    python -m egath_lite.reproduce                      # the main job: preset "default"
    python -m egath_lite.reproduce --preset tiny        # minutes (CI)
    python -m egath_lite.reproduce --preset paper --datasets mirflickr25k --data-root /data/mirflickr \
        --clip-model ViT-B-32-quickgelu --clip-pretrained /weights/vit_b_32.bin \
        --variants egath no_gat --seeds 0 1 2 --device cuda
    python -m egath_lite.reproduce --datasets my_data/manifest.csv --clip-model ViT-B-32 --clip-pretrained openai

One grid cell is (dataset, seed, variant) with every other option; its whole configuration is
resolved and validated before anything runs. A cell runs the five notebooks in the run folder
``<runs_root>/<preset>-<dataset>-s<seed>/`` (a manifest: ``<stem>-<8 hex of its path>`` for <dataset>) with that
configuration; the stages inside reuse
whatever artifact of the same key exists (so cells of one run share features, graph and
classifiers). Notebooks 01-03 (features, label graph, label classifiers) do not depend on the variant or the
method: within one invocation a cell whose 01-03 would compute exactly what an earlier cell's did (the same run
folder and stage keys, ``shared_key``) skips them and says "01-03 shared with <that cell's executed folder>".
A cell is reused only when a result of exactly its configuration and inputs exists; ``--force`` recomputes every
stage (and runs every notebook of every cell). Two drivers on one runs root wait for each other's
artifacts instead of mixing them. A failing notebook stops the driver with the notebook, cell
and error; finished results stay intact.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from egath_lite.core.methods import METHODS, get_method
from egath_lite.errors import run_main
from egath_lite.files import ArtifactError, atomic_write_bytes, file_lock, read_json, write_json
from egath_lite.pipeline.artifacts import run_dir
from egath_lite.pipeline.codes import codes_tag
from egath_lite.pipeline.config import LOCATION_FIELDS, PRESETS, Config, ConfigError, get_config, parse_value
from egath_lite.pipeline.runs import CELL_STAGE, default_runs_root, load_results, record_run_config, run_name_for
from egath_lite.pipeline.variants import VARIANTS
from egath_lite.utils import resolve_device

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = (
    "01_feature_extraction",
    "02_label_graph",
    "03_gat_classification",
    "04_hash_learning",
    "05_pr_curve_evaluation",
)
SHARED_NOTEBOOKS = NOTEBOOKS[:3]  # features, label graph, label classifiers: the same for every variant and method
SHARED_LABEL = "01-03"


def missing_driver_packages() -> list[str]:
    """The packages of the ``driver`` extra this environment lacks (the base install has no papermill)."""
    import importlib.util

    return [name for name in ("papermill", "nbformat") if importlib.util.find_spec(name) is None]


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names the notebook, the cell and the error."""


@dataclass
class Cell:
    """One point of the grid: its validated configuration."""

    cfg: Config

    @property
    def label(self) -> str:
        from egath_lite.data import dataset_label

        what = f"variant {self.cfg.variant}" if self.cfg.method == "egath" else f"method {self.cfg.method}"
        return f"{dataset_label(self.cfg.dataset)} seed {self.cfg.seed} {what}"


def kernel_options(sockets: str) -> dict[str, Any]:
    """papermill options for a kernel whose sockets are files in the private folder ``sockets`` (POSIX).

    Over TCP (jupyter_client's default) ipykernel prints "Kernel is running over TCP without encryption" once
    per notebook, on the driver's terminal, as a WARNING; over IPC there is no port to eavesdrop on and nothing to
    warn about. Windows has no IPC transport: TCP, and the warning, stay.
    """
    if os.name != "posix":
        return {}
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class IPCKernelManager(AsyncKernelManager):
        @default("transport")
        def _transport_default(self) -> str:
            return "ipc"

        @default("ip")
        def _ip_default(self) -> str:
            return os.path.join(sockets, "kernel")

    return {"kernel_manager_class": IPCKernelManager}


def run_notebook(
    name: str, executed_dir: Path, parameters: dict[str, Any], kernel: str = "python3", log_path: Path | None = None
) -> float:
    """Execute ``notebooks/<name>.ipynb`` with papermill, streaming its output; return wall seconds or raise NotebookFailed."""
    import papermill as pm

    src = NOTEBOOK_DIR / f"{name}.ipynb"
    if not src.is_file():
        raise FileNotFoundError(
            f"notebook {src} not found; run the driver from a clone of the repository "
            f"(the notebooks are not part of the installed package)"
        )
    executed_dir.mkdir(parents=True, exist_ok=True)
    out = executed_dir / f"{name}.ipynb"
    start = time.perf_counter()
    with _streamed(name, log_path), tempfile.TemporaryDirectory(prefix="egath-kernel-") as sockets:
        try:
            pm.execute_notebook(
                str(src),
                str(out),
                parameters=parameters,
                kernel_name=kernel,
                cwd=str(NOTEBOOK_DIR),
                progress_bar=False,
                log_output=True,
                **kernel_options(sockets),
            )
        except pm.PapermillExecutionError as exc:
            first_line = (exc.source or "").strip().splitlines()[:1]
            raise NotebookFailed(
                f"{name} failed in cell {_source_cell_index(src, exc.cell_index)} "
                f"(counting from 0; starts {first_line[0] if first_line else '?'!r}): "
                f"{exc.ename}: {exc.evalue}\n  executed copy with the traceback: {out}"
            ) from None
    return time.perf_counter() - start


class _NotebookLines(logging.Handler):
    """Papermill's cell output, one line at a time, to the terminal and the run's log file."""

    def __init__(self, name: str, log_path: Path | None):
        super().__init__(logging.INFO)
        self.name_, self.file = name, open(log_path, "a", encoding="utf-8") if log_path else None  # noqa: SIM115

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if text.startswith(
            (
                "Executing notebook",
                "Executing Cell",
                "Ending Cell",
                "Input Notebook",
                "Output Notebook",
                "Black is not installed",
            )
        ):
            return
        for line in text.replace("\r", "\n").splitlines():
            if line.strip():
                print(f"      | {line}", flush=True)
                if self.file:
                    self.file.write(f"{time.strftime('%H:%M:%S')} {self.name_} | {line}\n")
                    self.file.flush()

    def close(self) -> None:
        if self.file:
            self.file.close()
        super().close()


class _streamed:
    def __init__(self, name: str, log_path: Path | None):
        self.handler, self.logger = _NotebookLines(name, log_path), logging.getLogger("papermill")

    def __enter__(self):
        # text progress bars in the kernel (egath_lite.progress): widget updates never reach the stream
        from egath_lite.data import fingerprint

        self.env = {k: os.environ.get(k) for k in ("EGATH_PROGRESS", "MPLBACKEND", fingerprint.ENV_VAR)}
        os.environ["EGATH_PROGRESS"] = "log"
        os.environ[fingerprint.ENV_VAR] = fingerprint.export_session()  # the data stat'ed once per invocation
        # kernels draw inline figures into the executed copy (the docs site shows them); a
        # non-interactive MPLBACKEND inherited from the shell (scripts/test.sh: Agg) would drop them
        os.environ.pop("MPLBACKEND", None)
        self.saved = (self.logger.level, self.logger.propagate)
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        self.logger.addHandler(self.handler)

    def __exit__(self, *exc):
        for k, v in self.env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self.saved[0])
        self.logger.propagate = self.saved[1]
        self.handler.close()


def _source_cell_index(src: Path, executed_index: int) -> int:
    """Map a cell index of the executed copy back to the source notebook (papermill injects one cell)."""
    import nbformat

    cells = nbformat.read(src, as_version=4).cells
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    return executed_index - 1 if tagged and executed_index > tagged[0] else executed_index


def cell_configs(
    preset: str,
    datasets: Sequence[str],
    seeds: Sequence[int],
    variants: Sequence[str],
    runs_root: Path,
    options: dict[str, Any],
    methods: Sequence[str] = ("egath",),
) -> list[Cell]:
    """Every grid cell's configuration, validated (ConfigError before anything runs).

    ``methods``: ``egath`` runs each of ``variants``; every other method (``core.methods``) runs once per
    dataset and seed (EGATH's ablations are not its variants), on frozen CLIP features (``finetune_clip=False``
    for it even where the preset fine-tunes EGATH: the comparison methods do not fine-tune CLIP here)."""
    from egath_lite.data import is_manifest_path

    cells = []
    num_real = sum(d != "toy_nuswide" and not is_manifest_path(d) for d in datasets)  # sets read from a data root
    for dataset in datasets:
        opts = dict(options)
        if is_manifest_path(dataset):
            dataset = str(Path(dataset).expanduser().resolve())  # notebooks run in notebooks/: an absolute path
            opts.pop("data_root", None)  # a manifest names its images itself
        elif dataset != "toy_nuswide":
            opts["data_root"] = str(data_root_of(dataset, options.get("data_root"), num_real))
        for seed in seeds:
            grid = [("egath", v) for v in variants if "egath" in methods]
            grid += [(m, "egath") for m in methods if m != "egath"]
            for method, variant in grid:
                cfg = get_config(
                    preset,
                    **{
                        **opts,
                        "dataset": dataset,
                        "seed": seed,
                        "variant": variant,
                        "method": method,
                        **({"finetune_clip": False} if method != "egath" else {}),
                        "runs_root": str(runs_root),
                        "run_name": run_name_for(preset, dataset, seed),
                    },
                )
                cells.append(Cell(cfg))
    return cells


def data_root_of(dataset: str, given: str | None, num_datasets: int) -> Path:
    """A real set's folder, absolute (notebooks run in notebooks/): ``--data-root`` itself for one real data set,
    ``<--data-root>/<name>`` for several (manifests not counted), else ``$EGATH_DATA/<name>`` or ``./data/<name>``."""
    from egath_lite.data import default_data_root

    if given is None:
        return default_data_root(dataset)
    return Path(given).resolve() / dataset if num_datasets > 1 else Path(given).resolve()


def _rows_from_results(cfg: Config, res05: dict[str, Any]) -> list[dict[str, Any]]:
    """Flatten notebook 05's ``map`` table ({method: {bits: {i2t, t2i}}}) into table rows (a manifest: its label)."""
    from egath_lite.data import dataset_label

    rows = []
    table = res05.get("map")
    if not isinstance(table, dict) or not table:
        raise NotebookFailed(f"05_pr_curve_evaluation wrote no 'map' table for {cfg.run_name}/{cfg.variant}")
    for method, by_bits in table.items():
        for bits, vals in by_bits.items():
            rows.append(
                {
                    "dataset": dataset_label(cfg.dataset),
                    "seed": cfg.seed,
                    "method": method,
                    "bits": int(bits),
                    "i2t": float(vals["i2t"]),
                    "t2i": float(vals["t2i"]),
                }
            )
    return rows


def describe_dataset(cfg, png: Path) -> Path:
    """Print the data set's summary (items, labels, per-label counts, tags per item); save example images."""
    from egath_lite.data import dataset_from_config, split_from_config
    from egath_lite.data.__main__ import write_example_grid

    ds = dataset_from_config(cfg)
    query, train, val, retrieval = split_from_config(ds, cfg)
    # the summary's "benchmark split" is the data set's default; the run's own sizes come from its preset
    summary = [line for line in ds.format_summary().splitlines() if not line.lstrip().startswith("benchmark split:")]
    summary.append(
        f"  this run's split: query {len(query):,}, train {len(train):,} + validation {len(val):,}, "
        f"retrieval {len(retrieval):,}, "
        f"seed {ds.split_defaults.seed if cfg.split_seed is None else cfg.split_seed}"
    )
    print("\n".join(summary))
    fingerprint = dataset_fingerprint_of(cfg)
    if grid_is_current(png, fingerprint):  # a finished run on a read-only runs root still prints its table
        print(f"example images with their tags: {png} (current)")
        return png
    path = write_example_grid(ds, png, fingerprint=fingerprint)
    print(f"example images with their tags: {path}")
    return path


def dataset_fingerprint_of(cfg: Config) -> str:
    """The data set's fingerprint as ``run_inputs`` keys it (what the example grid shows)."""
    from egath_lite.data import dataset_fingerprint

    return str(dataset_fingerprint(cfg))


def grid_is_current(png: Path, fingerprint: str) -> bool:
    """Whether ``png`` is an example grid written for the data set of ``fingerprint`` (its PNG text says so)."""
    from egath_lite.data.__main__ import GRID_KEY

    if not png.is_file():
        return False
    try:
        from PIL import Image

        with Image.open(png) as im:
            return im.text.get(GRID_KEY) == fingerprint
    except (OSError, ValueError, AttributeError):
        return False


def notebook_parameters(cfg: Config, force: bool) -> dict[str, Any]:
    """What every notebook of a cell gets: the run's location, the whole configuration, FORCE."""
    overrides = {k: v for k, v in cfg.to_dict().items() if k not in LOCATION_FIELDS and k != "preset"}
    return {
        "PRESET": cfg.preset,
        "RUN_NAME": cfg.run_name,
        "RUNS_ROOT": cfg.runs_root,
        "OVERRIDES": overrides,
        "FORCE": bool(force),
    }


def later_only_fields(cfg: Config) -> frozenset[str]:
    """Config fields that only the hash-learning stage of some method or variant reads, never features, graph or
    classifier: the ones the cells of one run may differ in (``variant``, ``method``, ``finetune_clip``, the hash
    recipe). The same set for every cell of a run."""
    from egath_lite.pipeline.classifier import CLASSIFIER_STAGE
    from egath_lite.pipeline.codes import codes_stage
    from egath_lite.pipeline.features import FEATURES_STAGE
    from egath_lite.pipeline.graph import GRAPH_STAGE

    early = {f for stage in (FEATURES_STAGE, GRAPH_STAGE, CLASSIFIER_STAGE) for f in stage.field_names(cfg)}
    grid = [("egath", v) for v in VARIANTS] + [(m, "egath") for m in METHODS if m != "egath"]
    later = {f for m, v in grid for f in codes_stage(m).field_names(cfg.replace(method=m, variant=v))}
    return frozenset(later - early)


def shared_key(cfg: Config) -> str | None:
    """One digest of what notebooks 01-03 compute for ``cfg`` (None when it cannot be told: no sharing).

    It digests the run folder; the keys of the features, label graph and every label classifier (gat, gcn,
    independent), which hold the data set's fingerprint, the CLIP weights (and the tiny CLIP they train) and the
    code; and every config field except those only the hash-learning stage reads (``later_only_fields``). Two cells
    of one run that differ only in variant or method share it; another zeta, vocabulary, seed or data set does not.
    """
    from egath_lite.pipeline.classifier import CLASSIFIER_KINDS, CLASSIFIER_STAGE
    from egath_lite.pipeline.config import digest
    from egath_lite.pipeline.features import FEATURES_STAGE
    from egath_lite.pipeline.graph import GRAPH_STAGE

    try:
        keys = {"features": FEATURES_STAGE.key(cfg), "graph": GRAPH_STAGE.key(cfg)}
        keys |= {f"classifier-{k}": CLASSIFIER_STAGE.key(cfg, kind=k) for k in CLASSIFIER_KINDS}
        later = later_only_fields(cfg)
    except (ArtifactError, OSError, ValueError):  # an input the notebooks will name themselves: run them all
        return None
    config = {k: v for k, v in cfg.to_dict().items() if k not in later}
    return digest({"run": str(run_dir(cfg, create=False)), "stages": keys, "config": config})


def run_cell(cell: Cell, force: bool, log=print, shared: dict[str, Path] | None = None) -> dict[str, Any]:
    """Run (or reuse) one grid cell; returns its result (``cache_hit`` True when reused).

    ``shared``: ``{shared_key: executed folder}`` of the cells that ran notebooks 01-03 in this invocation (updated
    here); a cell with a key in it runs only 04-05, its record naming the executed copies of 01-03 that ran. None,
    or ``force``: every notebook runs.
    """
    cfg = cell.cfg
    record_run_config(cfg)
    tag = codes_tag(cfg)  # the variant, or the comparison method
    key = CELL_STAGE.key(cfg, variant=tag)
    executed = run_dir(cfg) / "executed" / f"{tag}-{key}"
    log_path = run_dir(cfg) / "driver.log"

    def compute():
        params = notebook_parameters(cfg, force)
        share = shared_key(cfg) if shared is not None and not force else None
        first = shared.get(share) if share is not None else None
        stages: dict[str, float] = {}
        copies: dict[str, str] = {}
        if first is not None:
            log(f"    {SHARED_LABEL} shared with {first}", flush=True)
            copies = {name: str(first / f"{name}.ipynb") for name in SHARED_NOTEBOOKS}
            executed.mkdir(parents=True, exist_ok=True)
            write_json(executed / "shared.json", {"shared_with": str(first), "notebooks": copies})
        for name in NOTEBOOKS:
            if name in copies:
                continue
            log(f"    {name} ...", flush=True)
            stages[name] = run_notebook(name, executed, params, log_path=log_path)
            log(f"    {name:<28} {stages[name]:7.1f} s", flush=True)
            copies[name] = str(executed / f"{name}.ipynb")
            if share is not None and name == SHARED_NOTEBOOKS[-1]:
                shared[share] = executed  # later cells of this key skip 01-03
        try:
            res04, res05 = load_results(cfg, "04_hash_learning"), load_results(cfg, "05_pr_curve_evaluation")
        except ArtifactError as exc:
            raise NotebookFailed(
                f"the notebooks ran but their results for this configuration are missing: {exc}"
            ) from None
        meta = {
            "dataset": cfg.dataset,
            "seed": cfg.seed,
            "variant": cfg.variant,
            "method": cfg.method,
            "preset": cfg.preset,
            "stage_seconds": stages,  # the notebooks that ran for this cell
            "rows": _rows_from_results(cfg, res05),
            "notebook_results": {"04": res04, "05": res05},
            "executed": str(executed),
            "executed_notebooks": copies,  # each notebook's executed copy (01-03: another cell's when shared)
            "shared_with": str(first) if first is not None else None,
        }
        return None, meta

    payload = CELL_STAGE.run(cfg, compute, force=force, log=log, variant=tag)
    return {
        **payload["meta"],
        "cache_hit": payload["cache_hit"],
        "path": payload["path"],
        "created": payload["created"],
    }


def summarize(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and std over seeds of every (dataset, method, bits)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for res in results:
        for row in res["rows"]:
            groups.setdefault((row["dataset"], row["method"], row["bits"]), []).append(row)
    table = []
    for (dataset, method, bits), rows in sorted(groups.items()):
        seeds = sorted({r["seed"] for r in rows})
        # Baseline rows repeat across variants of one seed: average per seed first.
        per_seed = {s: [r for r in rows if r["seed"] == s] for s in seeds}
        i2t = [sum(r["i2t"] for r in rs) / len(rs) for rs in per_seed.values()]
        t2i = [sum(r["t2i"] for r in rs) / len(rs) for rs in per_seed.values()]
        table.append(
            {
                "dataset": dataset,
                "method": method,
                "bits": bits,
                "seeds": len(seeds),
                "i2t_mean": _mean(i2t),
                "i2t_std": _std(i2t),
                "t2i_mean": _mean(t2i),
                "t2i_std": _std(t2i),
            }
        )
    return table


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def _std(xs: list[float]) -> float:
    if len(xs) < 2:
        return 0.0
    m = _mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def format_markdown(table: list[dict[str, Any]]) -> str:
    """The results table as Markdown: one row per (dataset, method), columns per bits."""
    bits = sorted({r["bits"] for r in table})
    head = (
        "| dataset | method | "
        + " | ".join(f"I→T {b}" for b in bits)
        + " | "
        + " | ".join(f"T→I {b}" for b in bits)
        + " |"
    )
    sep = "|" + "---|" * (2 + 2 * len(bits))
    lines = [head, sep]
    keys = sorted({(r["dataset"], r["method"]) for r in table})
    by = {(r["dataset"], r["method"], r["bits"]): r for r in table}

    def fmt(r: dict[str, Any] | None, d: str) -> str:
        if r is None:
            return "–"
        return f"{r[d + '_mean']:.4f}" + (f" ± {r[d + '_std']:.4f}" if r["seeds"] > 1 else "")

    for dataset, method in keys:
        cells = [fmt(by.get((dataset, method, b)), "i2t") for b in bits] + [
            fmt(by.get((dataset, method, b)), "t2i") for b in bits
        ]
        lines.append(f"| {dataset} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def invocation_tag(variants: Sequence[str], results: list[dict[str, Any]]) -> str:
    """``<variants>-<8 hex>``: the name of one invocation's tables, from its variants (and other methods) and its
    cells' artifact keys.

    Two invocations with the same options (the same cells) share it, and their tables are identical; any other
    option (variants, seeds, bits, ``--set``) gives other cells, so another name: nothing overwrites another's table.
    """
    import hashlib

    names = sorted(Path(r["path"]).name for r in results)
    return "+".join(dict.fromkeys(variants)) + "-" + hashlib.sha256("\n".join(names).encode()).hexdigest()[:8]


def write_tables(table: list[dict[str, Any]], out_dir: Path, tag: str | None = None) -> tuple[Path, Path]:
    """Write ``results[-<tag>].csv`` and ``.md`` atomically; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"results-{tag}" if tag else "results"
    csv_path, md_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.md"
    fields = ["dataset", "method", "bits", "seeds", "i2t_mean", "i2t_std", "t2i_mean", "t2i_std"]

    def write_csv(f):
        import io

        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=fields)
        w.writeheader()
        w.writerows(table)
        f.write(buf.getvalue().encode())

    atomic_write_bytes(csv_path, write_csv)
    md = format_markdown(table)
    atomic_write_bytes(md_path, lambda f: f.write(md.encode()))
    return csv_path, md_path


def append_timings(path: Path, entry: dict[str, Any]) -> Path:
    """Add one invocation's timings to ``path`` (``{"invocations": [...]}``, under a lock: concurrent drivers
    each keep their own entry); a damaged file is started afresh."""
    with file_lock(path, path.name, log=lambda s: None):
        try:
            old = read_json(path).get("invocations") if path.is_file() else []
        except ArtifactError:
            old = []
        write_json(path, {"invocations": [*(old if isinstance(old, list) else []), entry]})
    return path


def _parse_sets(items: Sequence[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: use KEY=VALUE, e.g. --set zeta=0.1")
        name, text = item.split("=", 1)
        name = name.strip()
        if name in LOCATION_FIELDS or name in ("dataset", "seed", "variant", "method", "preset"):
            raise ConfigError(
                f"--set {name}=...: use the driver's own option for {name} (--runs-root, --datasets, "
                f"--seeds, --variants, --methods, --preset)"
            )
        out[name] = parse_value(name, text)
    return out


PROG = "python -m egath_lite.reproduce"


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code (2 with one line for a mistake, ``--debug``: traceback)."""
    from egath_lite.data import fingerprint

    argv = list(sys.argv[1:] if argv is None else argv)
    fingerprint.begin_session(inherit=False)  # one stat pass of each data set per invocation, handed to notebooks
    try:
        return run_main(PROG, lambda: _main(argv), debug="--debug" in argv)
    finally:
        fingerprint.end_session()


def _main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        prog="python -m egath_lite.reproduce", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--preset", default="default", choices=PRESETS)
    p.add_argument(
        "--datasets",
        nargs="+",
        default=None,
        help="registered names and/or paths of own-data manifests (.csv / .jsonl); default: the preset's",
    )
    p.add_argument("--variants", nargs="+", default=["egath"], choices=list(VARIANTS))
    p.add_argument(
        "--methods",
        nargs="+",
        default=["egath"],
        choices=list(METHODS),
        help="egath and/or comparison methods (egath_lite.core.methods); one results row each",
    )
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--bits", nargs="+", type=int, default=None, help="default: the preset's bits")
    p.add_argument("--epochs", type=int, default=None, help="hash-learning epochs; default: the preset's")
    p.add_argument(
        "--data-root",
        default=None,
        help="folder holding a real data set's release files (with several "
        "data sets: the folder holding one sub-folder per data set); default $EGATH_DATA/<name> or ./data/<name>",
    )
    p.add_argument("--clip-model", default=None, help="open_clip model name, e.g. ViT-B-32")
    p.add_argument("--clip-pretrained", default=None, help="a pretrained tag (openai, ...) or a checkpoint path")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any config field, parsed with its type (repeatable), e.g. --set zeta=0.1",
    )
    p.add_argument(
        "--runs-root",
        default=None,
        help="default: $EGATH_RUNS, else the checkout's runs/ (from inside a checkout), else ./runs",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--force", action="store_true", help="recompute every stage of every cell")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error instead of one line")
    args = p.parse_args(argv)

    runs_root = Path(args.runs_root).resolve() if args.runs_root else default_runs_root()
    if missing_driver_packages():
        print(
            f"egath_lite.driver.cli: the driver executes the notebooks with {' and '.join(missing_driver_packages())}, "
            "which this environment lacks: pip install 'egath_lite[driver]'",
            file=sys.stderr,
        )
        return 2
    options: dict[str, Any] = {"device": args.device}
    for name, value in (
        ("bits", args.bits),
        ("epochs", args.epochs),
        ("data_root", args.data_root),
        ("clip_model", args.clip_model),
        ("clip_pretrained", args.clip_pretrained),
    ):
        if value is not None:
            options[name] = value
    if options.get("clip_pretrained") and Path(options["clip_pretrained"]).exists():
        options["clip_pretrained"] = str(Path(options["clip_pretrained"]).resolve())
    try:
        options.update(_parse_sets(args.set))
        datasets = args.datasets or [get_config(args.preset, **options).dataset]
        for method in args.methods:
            try:
                get_method(method)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        cells = cell_configs(args.preset, datasets, args.seeds, args.variants, runs_root, options, args.methods)
    except ConfigError as exc:
        print(f"egath_lite.driver.cli: {exc}", file=sys.stderr)
        return 2
    resolve_device(args.device)  # a device this machine lacks: one line now, not inside notebook 01
    print(
        f"egath_lite.driver.cli: preset {args.preset}, {len(cells)} grid cell(s) "
        f"[datasets {datasets} x seeds {args.seeds} x variants {args.variants} x methods {args.methods}], "
        f"runs in {runs_root}"
    )
    t0 = time.perf_counter()
    for dataset in dict.fromkeys(c.cfg.dataset for c in cells):  # what the notebooks will work on, before minutes
        first = next(c.cfg for c in cells if c.cfg.dataset == dataset)
        describe_dataset(first, run_dir(first) / "data_examples.png")
    results = []
    shared: dict[str, Path] = {}  # notebooks 01-03 that ran in this invocation, by what they compute
    for i, cell in enumerate(cells, 1):
        print(f"[{i}/{len(cells)}] {cell.label}")
        try:
            res = run_cell(cell, args.force, shared=shared)
        except NotebookFailed as exc:
            print(f"\nFAILED: {exc}\nFinished cells keep their results; rerun to resume.", file=sys.stderr)
            return 1
        if res["cache_hit"]:
            print(f"    done before ({res['created']}), reusing {res['path']}")
        results.append(res)
    table = summarize(results)
    out_dir = runs_root / f"reproduce-{args.preset}"
    stage_totals: dict[str, float] = {}
    for res in results:
        if not res["cache_hit"]:  # only what ran in this invocation
            for k, v in res.get("stage_seconds", {}).items():
                stage_totals[k] = stage_totals.get(k, 0.0) + v
    print("\nmAP@all (Hamming ranking; queries without a relevant item skipped)\n")
    print(format_markdown(table))
    if stage_totals:
        print("wall time per stage (this invocation): " + ", ".join(f"{k} {v:.0f} s" for k, v in stage_totals.items()))
    else:
        print("every cell was reused: no notebook ran in this invocation")
    names = [*(args.variants if "egath" in args.methods else []), *(m for m in args.methods if m != "egath")]
    tag = invocation_tag(names, results)  # e.g. egath+no_gat+dcmh-1a2b3c4d
    try:
        csv_path, md_path = write_tables(table, out_dir, tag)
        timings = append_timings(
            out_dir / f"timings-{tag}.json",
            {
                "argv": list(argv),
                "pid": os.getpid(),
                "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
                "stage_seconds": stage_totals,
                "wall_seconds": time.perf_counter() - t0,
                "cells_run": sum(not r["cache_hit"] for r in results),
                "cells_reused": sum(r["cache_hit"] for r in results),
                "cells": [r["path"] for r in results],
            },
        )
    except OSError as exc:  # a read-only or full runs root: the table above is complete, its files are not written
        from egath_lite.errors import one_line

        print(f"{PROG}: the table above is complete but was not saved: {one_line(exc)}", file=sys.stderr)
        return 0
    print(f"results (this invocation): {csv_path}\n                           {md_path}\ntimings: {timings}")
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
