"""egath_lite: a runnable, teachable implementation of EGATH (Jin et al., NeurIPS 2024)."""

import os as _os

from egath_lite.version import __version__ as __version__  # defined once, in a leaf module

# numba's default OpenMP layer keeps its worker threads spinning after a parallel kernel
# (the metrics), which slowed later torch steps in the same process ~20x on 2 cores.
# The workqueue layer parks them. Set before numba starts its first parallel region.
_os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")


def __getattr__(name: str):
    """``egath_lite.Config`` and ``egath_lite.get_config``, imported on first use (``egath_lite.core`` stays light)."""
    if name in ("Config", "get_config"):
        from egath_lite.pipeline import config

        return getattr(config, name)
    raise AttributeError(f"module 'egath_lite' has no attribute {name!r}")
