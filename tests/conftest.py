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

    from egath_lite.driver import cli as reproduce

    runs = tmp_path_factory.mktemp("runs")
    start = time.perf_counter()
    assert reproduce.main(["--preset", "tiny", "--runs-root", str(runs)]) == 0
    print(f"tiny preset, five notebooks: {time.perf_counter() - start:.0f} s")
    return runs


@pytest.fixture(scope="session")
def random_clip_checkpoint(tmp_path_factory) -> Path:
    """A random-init tiny open_clip model saved to a file: the weights a real-layout test loads by path."""
    from egath_lite.clip.weights import load_clip, save_clip_checkpoint

    model, _, _ = load_clip("egath-tiny-clip", None, "cpu", seed=0)
    return save_clip_checkpoint(model, tmp_path_factory.mktemp("weights") / "clip_random_init.pt")


def mirflickr_tiny_config(folder: Path, checkpoint: Path, **options):
    """A 120-item MIRFlickr raw fixture (real JPEGs) under ``folder`` and a tiny-preset config that reads it
    with the weights of ``checkpoint``; ``options`` override the config. Returns (cfg, fixture info)."""
    from egath_lite.pipeline.config import get_config
    from egath_lite.testing.fixtures import write_mirflickr_raw

    info = write_mirflickr_raw(folder / "mir", 120, seed=0, min_label_count=2)
    fields = dict(
        dataset="mirflickr25k",
        data_root=str(info.root),
        clip_pretrained=str(checkpoint),
        num_query=20,
        num_train=60,
        vocab_size=64,
        num_workers=0,
        runs_root=str(folder / "runs"),
        device="cpu",
    )
    return get_config("tiny", **{**fields, **options}), info


def readme_command(marker: str) -> list[str]:
    """The README's driver command in the bash block under ``<!-- marker -->``, as argv after ``-m egath_lite.reproduce``."""
    import re
    import shlex

    block = re.search(rf"<!-- {marker} -->\s*```bash\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    assert block, f"README.md lost its {marker} block"
    argv = shlex.split(block[1].replace("\\\n", " "))
    assert argv[:3] == ["python", "-m", "egath_lite.reproduce"], argv
    return argv[3:]


def replace_option(argv: list[str], option: str, values: list[str]) -> list[str]:
    """argv with ``option``'s values replaced (the option must be there)."""
    i = argv.index(option)
    j = i + 1
    while j < len(argv) and not argv[j].startswith("--"):
        j += 1
    return argv[:i] + [option, *values] + argv[j:]
