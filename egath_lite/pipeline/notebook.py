"""The one setup call every notebook makes: configuration from the run + parameters, offline switch, seed, device.

S = setup_from("03_gat_classification", globals())   # or setup(notebook, PRESET, RUN_NAME, ..., zeta=ZETA)
S.cfg, S.device, S.force, S.save_results(RESULTS)
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from egath_lite.errors import EgathError, is_expected, one_line
from egath_lite.pipeline.artifacts import run_dir
from egath_lite.pipeline.config import Config
from egath_lite.pipeline.runs import default_runs_root, resolve_run_config, run_name_for, save_results
from egath_lite.utils import resolve_device, seed_everything

# The repository the notebooks' Colab cell installs from (one place; tests check the cells use it).
REPOSITORY_URL = "https://github.com/egath-lite/egath_lite"


@dataclass
class Session:
    """What a notebook works with: the resolved config, the device, and whether to recompute its own stages."""

    notebook: str
    cfg: Config
    recorded: Config
    device: torch.device
    force: bool

    @property
    def run_dir(self) -> Path:
        """The run folder."""
        return run_dir(self.cfg)

    def save_results(self, results: dict[str, Any]) -> Path:
        """Write this notebook's RESULTS for its configuration (the driver reads exactly this file)."""
        path = save_results(self.cfg, self.notebook, results)
        print(f"wrote {path}")
        return path


# The parameters cell's names that are not config fields.
_SESSION_PARAMETERS = ("PRESET", "RUN_NAME", "RUNS_ROOT", "OVERRIDES", "FORCE")
# Parameters whose config field is not their name in lower case (notebook 01's short names for its CLIP knobs).
PARAMETER_FIELDS = {"MODEL": "clip_model", "PRETRAINED": "clip_pretrained", "BATCH_SIZE": "extract_batch_size"}


class SetupError(EgathError, OSError):
    """The notebook's setup met a file it cannot use (missing, unreadable, read-only, a full disk): one line."""


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """In a notebook an exception is the report: an OS error becomes ``SetupError`` whose message is one line
    naming the file, the problem and the fix (the project's own errors already say so, and keep their type)."""
    try:
        yield
    except SetupError:
        raise
    except OSError as exc:
        if not is_expected(exc) or isinstance(exc, EgathError):
            raise
        raise SetupError(one_line(exc)) from None


def setup_from(notebook: str, namespace: dict[str, Any], offline: bool = True) -> Session:
    """``setup`` with the notebook's parameters read from its namespace: ``S = setup_from("04_hash_learning", globals())``.

    Reads ``PRESET``, ``RUN_NAME``, ``RUNS_ROOT``, ``OVERRIDES``, ``FORCE`` and every upper-case name of the
    parameters cell that is a config field in lower case (``ZETA`` → ``zeta``, ``BITS`` → ``bits``) or is named in
    ``PARAMETER_FIELDS`` (``MODEL`` → ``clip_model``); other names are the notebook's own (e.g. ``SHOW``). So the
    parameters cell is the only place a notebook lists its knobs.
    """
    from egath_lite.pipeline.config import FIELD_SECTION

    fields = {name: PARAMETER_FIELDS.get(name, name.lower()) for name in namespace if name.isupper()}
    params = {
        field: namespace[name]
        for name, field in fields.items()
        if name not in _SESSION_PARAMETERS and field in FIELD_SECTION
    }
    return setup(
        notebook,
        namespace.get("PRESET"),
        namespace.get("RUN_NAME"),
        namespace.get("RUNS_ROOT"),
        namespace.get("OVERRIDES"),
        namespace.get("FORCE", False),
        offline,
        **params,
    )


def default_run_name(preset: str | None, given: dict[str, Any]) -> str:
    """The run name the driver gives this configuration (``run_name_for``): preset (None: "default"), data set, seed.

    So a notebook opened with its default ``RUN_NAME`` after ``bash scripts/run.sh`` continues the driver's run
    (``default-toy_nuswide-s0``) instead of recomputing it.
    """
    from egath_lite.data import is_manifest_path
    from egath_lite.pipeline.config import get_config

    base = get_config(preset or "default")
    dataset = given.get("dataset") or base.dataset
    if is_manifest_path(dataset):
        dataset = str(Path(dataset).expanduser().resolve())  # the driver names a manifest by its absolute path
    seed = given.get("seed")
    return run_name_for(base.preset, dataset, base.seed if seed is None else seed)


def setup(
    notebook: str,
    preset: str | None = None,
    run_name: str | None = None,
    runs_root: str | None = None,
    overrides: dict[str, Any] | None = None,
    force: bool = False,
    offline: bool = True,
    **params: Any,
) -> Session:
    """Resolve the notebook's config (recorded run config + named ``params`` + ``overrides``), seed, pick the device.

    ``params`` are config fields given as notebook parameters (None: inherit from the run);
    ``overrides`` any other fields (what the driver's options and ``--set`` pass). ``run_name`` None: the
    driver's name for this configuration (``default_run_name``); ``runs_root`` None: ``default_runs_root()``
    (``$EGATH_RUNS``, else the checkout's ``runs/``, else ``./runs``). ``force``
    recomputes this notebook's own stages. ``offline`` makes the Hugging Face hub serve cached
    files only (notebooks after 01 download nothing).
    """
    if offline:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from egath_lite.progress import quiet_widgetless_kernel

    quiet_widgetless_kernel()
    if not isinstance(force, bool):
        raise TypeError(f"FORCE must be True or False, got {force!r}")
    if _in_kernel():  # a notebook run (by hand or by the driver), not a library call
        from egath_lite.data.fingerprint import begin_session

        begin_session()  # this run stats the data set's image folders once (a driver hands its digests down)
    given = {**params, **(overrides or {})}
    if runs_root is None:
        runs_root = str(default_runs_root())
    if run_name is None:
        run_name = default_run_name(preset, given)
    with one_line_errors():
        cfg, recorded = resolve_run_config(preset, run_name, runs_root, given)
        seed_everything(cfg.seed)
        device = resolve_device(cfg.device)
    from egath_lite.version import __version__

    print(
        f"egath_lite {__version__} | torch {torch.__version__} | {notebook} | run {cfg.run_name!r} in "
        f"{Path(cfg.runs_root).resolve()} | preset {cfg.preset} | dataset {cfg.dataset} | device {device}"
        + (" | FORCE: recomputing this notebook's stages" if force else "")
    )
    if cfg.preset != "default":
        print(
            f"preset {cfg.preset}: this notebook's prose quotes the default preset's numbers; the numbers printed "
            f"below are this run's and may differ"
        )
    return Session(notebook, cfg, recorded, device, force)


def _in_kernel() -> bool:
    """True inside a running Jupyter kernel (a notebook run), not merely when ipykernel was imported (pytest, a
    library call from a script that imported papermill)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and getattr(shell, "kernel", None) is not None
