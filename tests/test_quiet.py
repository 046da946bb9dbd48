"""Quiet notebooks: expected warnings are silenced at their source, and only those; progress degrades to lines.

What a student saw as errors (issue 21): open_clip's "No pretrained weights loaded" for the tiny CLIP meant to
start random, torch_geometric's ``torch.jit.script`` FutureWarning, ipykernel's "running over TCP without
encryption" once per notebook under the driver, and progress bars that left "Error displaying widget" (a
widget saved by papermill) or a red stderr line per refresh (the docs site).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import types
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "EGATH_PROGRESS")}
    env.update(PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", MPLBACKEND="Agg", **extra)
    return env


SETUP = r"""
import logging, warnings
import torch
from egath_lite.core.models import GATClassifier, GCNClassifier
from egath_lite.clip.weights import load_clip

before = list(warnings.filters)
GATClassifier(300, 8, 10, layers=1, heads=1)  # the first torch_geometric import
GCNClassifier(300, 8, 10, layers=1)
assert warnings.filters == before, "the warning filter must not outlive the import"
load_clip("egath-tiny-clip", None, "cpu", seed=0)  # random init on purpose: the tiny CLIP before training
load_clip("egath-tiny-clip", "random", "cpu", seed=0)
# the silencing is that record, during that call only: other warnings still reach the user
logging.warning("No pretrained weights loaded (the user's own message)")
warnings.warn("`torch.jit.script` is deprecated (the user's own call)", FutureWarning)
print("ok")
"""

# A notebook whose one cell is the imports and model set-up the notebooks do, run as the driver runs notebooks.
KERNEL = r"""
import sys
import nbformat, papermill as pm
from egath_lite.driver.cli import kernel_options
nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
nb.cells = [nbformat.v4.new_code_cell(open(sys.argv[1]).read())]
nbformat.write(nb, "in.ipynb")
pm.execute_notebook("in.ipynb", "out.ipynb", kernel_name="python3", progress_bar=False, **kernel_options(sys.argv[2]))
print("OUTPUTS " + repr([(o.get("name"), o.get("text", "")) for c in nbformat.read("out.ipynb", 4).cells for o in c.outputs]))
"""


@pytest.mark.slow  # a kernel and two torch imports: ~15 s alone, ~40 s on a loaded machine
@pytest.mark.skipif(os.name != "posix", reason="IPC kernel sockets are POSIX-only; Windows keeps TCP")
def test_a_notebook_under_the_driver_prints_no_expected_warnings(tmp_path):
    sockets = tmp_path / "sockets"
    sockets.mkdir()
    (tmp_path / "setup.py").write_text(SETUP)
    proc = subprocess.run(
        [sys.executable, "-c", KERNEL, "setup.py", str(sockets)],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "without encryption" not in proc.stderr, proc.stderr  # ipykernel over TCP warns once per notebook
    assert list(sockets.iterdir()) == []  # the kernel's socket files went with it
    outputs = ast.literal_eval(proc.stdout.split("OUTPUTS ", 1)[1])
    stdout = "".join(text for name, text in outputs if name == "stdout")
    stderr = [line for name, text in outputs if name == "stderr" for line in text.splitlines() if line.strip()]
    assert stdout.strip() == "ok", outputs
    # exactly the user's own two messages survive (a warning's source line follows it)
    assert [line for line in stderr if "No pretrained weights loaded" in line] == [
        "WARNING:root:No pretrained weights loaded (the user's own message)"
    ], stderr
    jit = [line for line in stderr if ": FutureWarning:" in line]
    assert len(jit) == 1 and "`torch.jit.script` is deprecated (the user's own call)" in jit[0], stderr
    assert not any("egath-tiny-clip" in line for line in stderr), stderr


@pytest.fixture
def no_mode(monkeypatch):
    for name in ("EGATH_PROGRESS", "JPY_SESSION_NAME", "VSCODE_PID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delitem(sys.modules, "ipykernel.zmqshell", raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)


def test_progress_mode_follows_what_can_render(no_mode, monkeypatch):
    from egath_lite import progress

    assert progress.progress_mode() == "text"  # a terminal
    monkeypatch.setitem(sys.modules, "ipykernel.zmqshell", types.ModuleType("ipykernel.zmqshell"))
    assert progress.progress_mode() == "log"  # a kernel nobody watches: papermill, nbclient, the docs build
    monkeypatch.setenv("JPY_SESSION_NAME", "/work/notebooks/04_hash_learning.ipynb")  # JupyterLab's kernels
    monkeypatch.setattr(progress, "_has_ipywidgets", lambda: True)
    assert progress.progress_mode() == "widget"
    monkeypatch.setattr(progress, "_has_ipywidgets", lambda: False)
    assert progress.progress_mode() == "log"  # no ipywidgets: lines, not tqdm's "IProgress not found"
    monkeypatch.setenv("EGATH_PROGRESS", "text")
    assert progress.progress_mode() == "text"


def test_log_bar_prints_one_line_per_bar_on_stdout(no_mode, monkeypatch, capsys):
    from egath_lite import progress

    monkeypatch.setenv("EGATH_PROGRESS", "log")
    bar = progress.tqdm(range(12), desc="egath 16 bits")
    for epoch in bar:
        bar.set_postfix(loss=round(1.0 / (epoch + 1), 3))
    for _ in progress.tqdm(range(50), desc="image embeddings", leave=False):
        pass
    for _ in progress.tqdm(range(5), desc="off", disable=True):
        pass
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("egath 16 bits: 12/12 [") and "loss=0.083" in lines[0], out


def test_log_bar_prints_at_most_one_line_per_step_when_steps_are_slow(no_mode, monkeypatch, capsys):
    from egath_lite import progress

    monkeypatch.setenv("EGATH_PROGRESS", "log")
    monkeypatch.setattr(progress, "LOG_INTERVAL", 0.0)  # every step is "slow": a line per epoch, none twice
    for _ in progress.tqdm(range(4), desc="gat classifier"):
        pass
    out, err = capsys.readouterr()
    assert err == "" and [line.split(" [")[0] for line in out.splitlines()] == [
        f"gat classifier: {n}/4" for n in (1, 2, 3, 4)
    ], out


def test_executed_notebooks_would_hold_no_widget_state_under_papermill(no_mode, monkeypatch):
    # papermill starts kernels without JPY_SESSION_NAME: the bar is a LogBar, never a widget
    from egath_lite import progress

    monkeypatch.setitem(sys.modules, "ipykernel.zmqshell", types.ModuleType("ipykernel.zmqshell"))
    bar = progress.tqdm(range(2), desc="x")
    try:
        assert type(bar).__name__ == "LogBar"
    finally:
        bar.close()


def test_a_kernel_without_ipywidgets_drops_tqdms_advice_to_install_them(no_mode, monkeypatch):
    from tqdm.notebook import WARN_NOIPYW
    from tqdm.std import TqdmWarning

    from egath_lite import progress

    monkeypatch.setitem(sys.modules, "ipykernel.zmqshell", types.ModuleType("ipykernel.zmqshell"))
    monkeypatch.setattr(progress, "_has_ipywidgets", lambda: False)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        warnings.warn(WARN_NOIPYW, TqdmWarning, stacklevel=1)  # what tqdm.auto's import says (the control)
        progress.quiet_widgetless_kernel()
        warnings.warn(WARN_NOIPYW, TqdmWarning, stacklevel=1)
        warnings.warn("another tqdm warning", TqdmWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == [WARN_NOIPYW, "another tqdm warning"]
