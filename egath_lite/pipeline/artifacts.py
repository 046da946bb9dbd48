"""Run folders: where a run's artifacts live (``<runs_root>/<run_name>/``), never outside the runs root.

The file primitives (atomic writes, locks, JSON) are in ``egath_lite.files``; what is cached and when
it is reused is decided in ``egath_lite.pipeline.stages``.
"""

from __future__ import annotations

from pathlib import Path

from egath_lite.files import ArtifactError
from egath_lite.pipeline.config import Config


def run_dir(cfg: Config, create: bool = True) -> Path:
    """``<runs_root>/<run_name>`` (created if asked); the run name is one folder, never outside the root."""
    root = Path(cfg.runs_root).resolve()
    path = (root / cfg.run_name).resolve()
    if path.parent != root:  # Config validates run_name; this guards against a root that is a symlink trick
        raise ArtifactError(f"run folder {path} is not directly under the runs root {root}; use a plain run_name")
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path
