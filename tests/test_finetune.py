"""End-to-end fine-tuning on images that stream from disk: a MIRFlickr-layout fixture (real JPEGs), a tiny CLIP
loaded from a checkpoint file, the tower trained with the hash layers; resume after an interruption."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import mirflickr_tiny_config

from egath_lite.pipeline.codes import ensure_codes, resume_path
from egath_lite.pipeline.features import ensure_features

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mir(tmp_path_factory, random_clip_checkpoint):
    cfg, _ = mirflickr_tiny_config(
        tmp_path_factory.mktemp("ft"),
        random_clip_checkpoint,
        epochs=3,
        bits=[16],
        hash_batch_size=16,
        early_stop_patience=5,
        finetune_clip=True,
        run_name="a",
    )
    return cfg, random_clip_checkpoint


def test_finetuning_trains_the_tower_from_disk_and_changes_the_codes(mir):
    cfg, ckpt = mir
    frozen = ensure_codes(cfg.replace(finetune_clip=False), 16, progress=False)
    tuned = ensure_codes(cfg, 16, progress=False)
    start = torch.load(ckpt, weights_only=True)["state_dict"]
    tower = {
        k[len("state.image_backbone.visual.") :]: v
        for k, v in tuned["tensors"].items()
        if k.startswith("state.image_backbone.visual.")
    }
    assert tower and set(tower) <= {k[len("visual.") :] for k in start if k.startswith("visual.")}
    moved = [k for k, v in tower.items() if v.is_floating_point() and not torch.equal(v, start[f"visual.{k}"])]
    assert len(moved) > len(tower) // 2  # the image tower itself was trained
    assert not torch.equal(tuned["tensors"]["query_image_codes"], frozen["tensors"]["query_image_codes"])
    assert torch.equal(tuned["tensors"]["query_labels"], frozen["tensors"]["query_labels"])
    assert not resume_path(cfg, 16).exists()  # the per-epoch state is gone once the codes are written


def test_an_interrupted_finetuning_resumes_from_its_epoch_to_the_same_result(mir):
    cfg, _ = mir
    whole = ensure_codes(cfg, 16, progress=False)
    other = cfg.replace(run_name="b")
    ensure_features(other, progress=False)  # the interrupted process starts at the hash training
    code = (
        "import json, sys; from egath_lite.pipeline.config import Config; from egath_lite.pipeline.codes import ensure_codes\n"
        "ensure_codes(Config.from_dict(json.loads(sys.argv[1])), 16, progress=False)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, json.dumps(other.to_dict())], env={**os.environ, "PYTHONHASHSEED": "0"}
    )
    state = resume_path(other, 16)
    deadline = time.time() + 600
    while not state.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert state.exists(), "the first epoch's state was never written"
    proc.send_signal(signal.SIGKILL)  # killed after epoch 1 of 3, mid-training
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    resumed = ensure_codes(other, 16, progress=False)
    assert resumed["meta"]["resumed_after_epoch"] >= 1
    for name in ("query_image_codes", "retrieval_image_codes", "query_text_codes"):
        assert torch.equal(resumed["tensors"][name], whole["tensors"][name]), name
    assert resumed["meta"]["best_epoch"] == whole["meta"]["best_epoch"]
