"""Progress bars: widgets in JupyterLab, plain text lines when the driver streams a notebook to a terminal.

The driver sets ``EGATH_PROGRESS=log`` for the notebooks it runs: a widget's updates never reach
papermill's output stream, so a long loop would look silent; text bars at a slower refresh do.
"""

from __future__ import annotations

import os
from typing import Any


def tqdm(*args: Any, **kwargs: Any) -> Any:
    """``tqdm.auto.tqdm``, or a text bar refreshed at most every 10 s when EGATH_PROGRESS=log."""
    if os.environ.get("EGATH_PROGRESS") == "log":
        kwargs.setdefault("mininterval", 10.0)
        kwargs.setdefault("ascii", True)
        kwargs.setdefault("ncols", 100)
        return _log_bar()(*args, **kwargs)
    from tqdm.auto import tqdm as auto_bar

    return auto_bar(*args, **kwargs)


def _log_bar() -> type:
    from tqdm.std import tqdm as text_bar

    class LogBar(text_bar):
        """A text bar whose postfix updates wait for the next refresh (one line per 10 s, not per step)."""

        def set_postfix(self, ordered_dict: Any = None, refresh: bool = False, **kwargs: Any) -> None:
            super().set_postfix(ordered_dict, refresh=False, **kwargs)

    return LogBar
