"""Progress bars: widgets where a person watches a live notebook, plain lines where no widget can render.

``EGATH_PROGRESS`` picks the kind (the driver sets ``log`` for the notebooks it runs); unset, it is chosen here:

- ``widget``: ``tqdm.auto``'s widget bar, in a kernel a live front end renders (JupyterLab or Jupyter Notebook
  through jupyter_server, which sets ``JPY_SESSION_NAME``; Colab; VS Code) when ipywidgets is installed;
- ``log``: in any other kernel (papermill, nbclient, the docs site's executed copies): one plain line on
  stdout when a bar ends, and while it runs at most one line per step and per minute. A widget there would
  be saved without its state ("Error displaying widget: model not found" when reopened), and a text bar
  stores every ``\\r`` refresh as a red stderr line;
- ``text``: ``tqdm``'s text bar outside a kernel (a terminal), updated in place.
"""

from __future__ import annotations

import os
import sys
from typing import Any

MODES = ("widget", "log", "text")
# Seconds between two progress lines of a running bar in log mode (the first and the last line always print).
LOG_INTERVAL = 60.0


def progress_mode() -> str:
    """``widget``, ``log`` or ``text``: ``$EGATH_PROGRESS`` if it names one, else what this process can show."""
    mode = os.environ.get("EGATH_PROGRESS", "")
    if mode in MODES:
        return mode
    if "ipykernel.zmqshell" not in sys.modules:
        return "text"
    live = bool(os.environ.get("JPY_SESSION_NAME")) or "google.colab" in sys.modules or "VSCODE_PID" in os.environ
    if live and _has_ipywidgets():
        return "widget"
    return "log"


def _has_ipywidgets() -> bool:
    import importlib.util

    return importlib.util.find_spec("ipywidgets") is not None


def quiet_widgetless_kernel() -> None:
    """In a kernel without ipywidgets, ignore tqdm's "IProgress not found. Please update jupyter and ipywidgets".

    Libraries the notebooks import (huggingface_hub, torch_geometric) import ``tqdm.auto``, which says so once,
    in red, as a warning; this package's bars need no widgets there (``log`` lines), so the advice is noise for a
    student. Only that message, only in such a kernel; every notebook's setup call makes it.
    """
    if "ipykernel.zmqshell" in sys.modules and not _has_ipywidgets():
        import warnings

        from tqdm.std import TqdmWarning

        warnings.filterwarnings("ignore", message="IProgress not found", category=TqdmWarning)


def tqdm(*args: Any, **kwargs: Any) -> Any:
    """A progress bar of the kind ``progress_mode()`` names; the arguments are ``tqdm``'s."""
    mode = progress_mode()
    if mode == "log":
        return _log_bar()(*args, **kwargs)
    if mode == "widget":
        from tqdm.notebook import tqdm as widget_bar

        return widget_bar(*args, **kwargs)
    from tqdm.std import tqdm as text_bar

    return text_bar(*args, **kwargs)


class _Nowhere:
    """The file a log bar hands tqdm: its in-place redraws go nowhere; the bar prints whole lines itself."""

    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass


def _log_bar() -> type:
    from tqdm.std import tqdm as text_bar

    class LogBar(text_bar):
        """A bar that prints whole lines on stdout: one when it ends, and while running at most one per
        ``LOG_INTERVAL`` seconds (so at most one per step); a transient bar (``leave=False``) only the latter."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("bar_format", "{desc}: {n_fmt}/{total_fmt} [{elapsed}, {rate_fmt}{postfix}]")
            kwargs["file"] = _Nowhere()
            kwargs["mininterval"] = 0.0  # every step reaches display(), which decides whether to print
            self._printed_at: float | None = None
            self._printed_n = 0
            self._closing = False
            super().__init__(*args, **kwargs)

        def _line(self) -> None:
            print(self.__str__(), file=sys.stdout, flush=True)
            self._printed_at, self._printed_n = self._time(), self.n

        def display(self, msg: str | None = None, pos: int | None = None) -> bool:
            if self._closing or self.disable or self.n <= self._printed_n:
                return True
            since = self._time() - (self.start_t if self._printed_at is None else self._printed_at)
            if since >= LOG_INTERVAL:
                self._line()
            return True

        def set_postfix(self, ordered_dict: Any = None, refresh: bool = False, **kwargs: Any) -> None:
            super().set_postfix(ordered_dict, refresh=False, **kwargs)

        def close(self) -> None:
            if not self.disable and not self._closing:
                if self.n > self._printed_n and (self.leave or self._printed_at is not None):
                    self._line()
                self._closing = True
            super().close()

    return LogBar
