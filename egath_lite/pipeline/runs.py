"""A run folder's configuration and results: recorded once, inherited by every later notebook of the run.

The first stage of a run writes ``run_config.json`` (the resolved configuration); a notebook
of that run starts from it, so what was given to notebook 01 (data set, data root, model,
weights, seed) reaches 02–05 without being repeated. A notebook parameter that differs from
the recorded value is printed as an override and keys its artifacts separately. Results are
written per configuration (``results/results-<notebook>-<key>.json``), never to one shared path.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from egath_lite.files import ArtifactError, file_lock, read_json, versions, write_json
from egath_lite.pipeline.artifacts import run_dir
from egath_lite.pipeline.code_digest import CORE_MODULES
from egath_lite.pipeline.config import FIELD_SECTION, LOCATION_FIELDS, Config, ConfigError, get_config
from egath_lite.pipeline.stages import Stage

RUN_CONFIG = "run_config.json"
RESULT_FIELDS = tuple(f for f in FIELD_SECTION if f not in LOCATION_FIELDS)
RUNS_ENV = "EGATH_RUNS"


def checkout_of(folder: str | os.PathLike) -> Path | None:
    """The egath_lite checkout ``folder`` sits in (it or a parent holds ``pyproject.toml`` naming egath_lite and
    ``notebooks/``), or None."""
    start = Path(folder).resolve()
    for candidate in (start, *start.parents):
        project = candidate / "pyproject.toml"
        if project.is_file() and (candidate / "notebooks").is_dir():
            try:
                text = project.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            if re.search(r'^name\s*=\s*"egath_lite"', text, flags=re.MULTILINE):
                return candidate
    return None


def default_runs_root(cwd: str | os.PathLike | None = None) -> Path:
    """Where runs go when no runs root is given, one rule for the notebooks and the driver (absolute):

    ``$EGATH_RUNS`` if set; else the checkout's ``runs/`` when the working folder (a notebook's kernel runs in the
    notebook's folder) sits in a checkout; else ``./runs`` of the working folder (Colab: ``/content/runs``).
    """
    given = os.environ.get(RUNS_ENV)
    if given:
        return Path(given).expanduser().resolve()
    here = Path.cwd() if cwd is None else Path(cwd)
    checkout = checkout_of(here)
    return (checkout / "runs") if checkout is not None else (here / "runs").resolve()


def run_name_for(preset: str, dataset: str, seed: int) -> str:
    """The run name of a configuration, ``<preset>-<dataset>-s<seed>`` (a manifest: ``<stem>-<8 hex>``): the
    driver's name for a grid cell, and a notebook's default, so a notebook opened after the driver reuses its run."""
    from egath_lite.data import dataset_label

    return f"{preset}-{dataset_label(dataset)}-s{seed}"


def run_inputs(cfg: Config) -> dict[str, Any]:
    """data set fingerprint, weights (tag or file digest)"""
    from egath_lite.clip.weights import weights_fingerprint
    from egath_lite.data import dataset_fingerprint

    return {"data": dataset_fingerprint(cfg), "weights": weights_fingerprint(cfg)}


def _results_folder(cfg: Config) -> Path:
    return run_dir(cfg) / "results"


RESULTS_STAGE = Stage(
    "results",
    fields=RESULT_FIELDS,
    params=("notebook",),
    extra=run_inputs,
    codec="json",
    suffix=".json",
    location=_results_folder,
    code=CORE_MODULES,  # a notebook's results come from the whole paper's code
    description="a notebook's RESULTS dict, per configuration (what the driver reads)",
)


def _cell_folder(cfg: Config) -> Path:
    return run_dir(cfg) / "results"


CELL_STAGE = Stage(
    "cell",
    fields=RESULT_FIELDS,
    params=("variant",),
    extra=run_inputs,
    codec="json",
    suffix=".json",
    location=_cell_folder,
    code=CORE_MODULES,  # a reused cell must not hide an edit to core/
    description="one grid cell of the driver: its table rows and stage times",
)


def run_config_path(cfg: Config, create: bool = True) -> Path:
    """``<runs_root>/<run_name>/run_config.json`` (the run folder is made unless ``create=False``: a lookup)."""
    return run_dir(cfg, create=create) / RUN_CONFIG


def load_run_config(runs_root: str, run_name: str) -> Config | None:
    """The configuration recorded for a run (with this runs root), or None when the run has none yet."""
    probe = Config.from_dict({"runs_root": runs_root, "run_name": run_name})
    path = run_config_path(probe, create=False)  # looking a run up never leaves an empty folder behind
    if not path.is_file():
        return None
    data = read_json(path)
    values = data.get("config")
    if not isinstance(values, dict):
        raise ArtifactError(f"{path} holds no 'config' object; delete {path} to let the next notebook record it")
    try:
        return Config.from_dict({**values, "runs_root": runs_root, "run_name": run_name})
    except ConfigError as exc:
        raise ArtifactError(
            f"{path} records a configuration this version refuses ({exc}); delete {path} or use another run name"
        ) from exc


def record_run_config(cfg: Config) -> Config:
    """Record ``cfg`` as the run's configuration unless one is recorded; return the recorded one."""
    path = run_config_path(cfg)
    with file_lock(path, RUN_CONFIG):
        recorded = load_run_config(cfg.runs_root, cfg.run_name)
        if recorded is not None:
            return recorded
        write_json(path, {"config": cfg.to_dict(), "sections": cfg.sections(), "versions": versions()})
        print(f"[run] recorded the configuration of run {cfg.run_name!r} in {path}")
        return cfg


def resolve_run_config(
    preset: str | None, run_name: str, runs_root: str, given: dict[str, Any], log=print
) -> tuple[Config, Config]:
    """``(cfg, recorded)``: the run's recorded config (recording a new one) with ``given`` fields applied.

    ``given`` holds field values a notebook or the driver sets explicitly (None means "inherit").
    Differences from the recorded config are printed, one line each.
    """
    given = {k: v for k, v in given.items() if v is not None}
    recorded = load_run_config(runs_root, run_name)
    if recorded is None:
        recorded = record_run_config(get_config(preset or "default", run_name=run_name, runs_root=runs_root, **given))
    elif preset is not None and preset != recorded.preset:
        raise ConfigError(
            f"run {run_name!r} was recorded with preset {recorded.preset!r} "
            f"({run_config_path(recorded)}); this asks for {preset!r}: use another RUN_NAME, "
            f"or PRESET=None to continue the run"
        )
    cfg = recorded.replace(**given)
    for name, (old, new) in cfg.differences(recorded).items():
        log(f"this notebook overrides {name}: {old!r} → {new!r}")
    return cfg, recorded


def save_results(cfg: Config, notebook: str, results: dict[str, Any]) -> Path:
    """Write a notebook's RESULTS for this configuration; returns the file."""
    payload = RESULTS_STAGE.save(cfg, None, {"config": cfg.to_dict(), "results": results}, notebook=notebook)
    return Path(payload["path"])


def load_results(cfg: Config, notebook: str) -> dict[str, Any]:
    """The RESULTS a notebook wrote for exactly this configuration (ArtifactError when absent or stale)."""
    return RESULTS_STAGE.load(cfg, notebook=notebook)["meta"]["results"]
