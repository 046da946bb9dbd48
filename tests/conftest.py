"""Shared pytest set-up: offline hub, headless matplotlib, CPU only, repo paths."""

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo_root() -> Path:
    """The repository root folder."""
    return REPO


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    """The driver once on the tiny preset (all five notebooks), shared by the notebook and docs-site tests."""
    import time

    from egath_lite import reproduce

    runs = tmp_path_factory.mktemp("runs")
    start = time.perf_counter()
    assert reproduce.main(["--preset", "tiny", "--runs-root", str(runs)]) == 0
    print(f"tiny preset, five notebooks: {time.perf_counter() - start:.0f} s")
    return runs
