"""egath_lite: a runnable, teachable implementation of EGATH (Jin et al., NeurIPS 2024)."""
__version__ = "0.1.0"

from .config import Config, get_config  # noqa: E402,F401
