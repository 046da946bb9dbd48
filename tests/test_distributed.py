"""Two processes under torchrun (gloo, CPU) give what one process gives: the features stage with its shards split
by rank, and two epochs of hash training with DDP and the discrete B step over the gathered batch
(egath_lite.pipeline.distributed), on frozen CLIP features and with the CLIP image tower fine-tuned.

Tolerance: the features are the same rows encoded by the same model in the same batches (equal to float32
rounding, 1e-6); the training sums its gradients in another order (DDP's all-reduce of two halves instead
of one batch), so the losses agree to 2e-6 relative (measured: 3e-7 frozen, 4e-8 fine-tuned) and the codes,
signs of continuous outputs, may differ only where an output is within that rounding of 0: at most 0.1% of
the bits (measured: none). Adam hides a wrong gradient scale almost entirely: without DDP's average undone
(the loss times the world size) the losses still agree to 3e-5 and 5e-4 relative and 0.16% of the query
text bits differ, which this test fails. Fine-tuning adds the CLIP tower's BatchNorm (the toy CLIP is a
ResNet): normalised over each rank's chunk instead of the whole batch, the losses were 0.84% and 2.4% apart
after epochs 1 and 2 and 6% of the retrieval image bits differed (``distributed.GlobalBatchNorm`` fixes it).
Adam also turns rounding-level gradients into lr-sized steps where the true gradient is 0 (attention
key biases, GAT's destination attention vector: no output depends on them): they differ by up to 6e-4.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from egath_lite.pipeline.codes import ensure_codes
from egath_lite.pipeline.config import get_config
from egath_lite.pipeline.features import ensure_features
from egath_lite.pipeline.graph import ensure_graph

pytestmark = pytest.mark.slow

FIELDS = dict(
    toy_size=240,
    num_query=40,
    num_train=160,
    vocab_size=64,
    epochs=2,
    bits=(16,),
    hash_batch_size=32,
    extract_shard_size=50,
    extract_batch_size=25,
    num_workers=0,
    device="cpu",
    run_name="r",
)


def _torchrun(fields: dict, runs_root) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node 2 -m egath_lite.driver.torchrun --preset tiny --set ...`` (gloo), checked."""
    sets = [f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in fields.items()]
    sets.append(f"runs_root={runs_root}")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(29500 + os.getpid() % 1000),
        "-m",
        "egath_lite.driver.torchrun",
        "--preset",
        "tiny",
        "--set",
        *sets,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "[distributed] 2 process(es): egath 16 bits" in proc.stdout
    return proc


def _same_training(codes1, codes2) -> None:
    """Two epochs each, losses within 2e-6 relative, at most 0.1% of the bits of each code set different."""
    h1, h2 = codes1["tensors"]["history_loss"], codes2["tensors"]["history_loss"]
    assert len(h1) == len(h2) == 2
    assert torch.allclose(h1, h2, rtol=2e-6, atol=0), (h1, h2)
    for name in ("query_image_codes", "query_text_codes", "retrieval_image_codes", "retrieval_text_codes"):
        a, b = codes1["tensors"][name].numpy(), codes2["tensors"][name].numpy()
        assert a.shape == b.shape
        assert np.mean(a != b) <= 0.001, (name, np.mean(a != b))


def test_two_gloo_processes_give_the_codes_of_one(tmp_path, random_clip_checkpoint):
    fields = {**FIELDS, "clip_pretrained": str(random_clip_checkpoint)}
    one = get_config("tiny", runs_root=str(tmp_path / "one"), **fields)
    feats1 = ensure_features(one, progress=False)
    ensure_graph(one)
    codes1 = ensure_codes(one, 16, progress=False)

    two = one.replace(runs_root=str(tmp_path / "two"))
    _torchrun(fields, two.runs_root)

    feats2 = ensure_features(two, progress=False)  # reads rank 0's artifact
    assert feats2["cache_hit"]
    shards = feats2["meta"]["image_shards"]
    assert shards["num_shards"] == 5 and shards["reused_shards"] == [0, 1, 2, 3, 4]  # rank 0 reused every shard
    t1, t2 = feats1["tensors"], feats2["tensors"]
    assert torch.allclose(t1["image_emb"], t2["image_emb"], atol=1e-6)
    for name in ("text_emb", "bow", "labels", "train_idx", "val_idx", "query_idx"):
        assert torch.equal(t1[name], t2[name]), name

    codes2 = ensure_codes(two, 16, progress=False)  # rank 0's artifact, no training here
    assert codes2["cache_hit"]
    _same_training(codes1, codes2)
    assert not list((tmp_path / "two" / "r").glob("*.resume.pt"))  # the per-epoch state is gone


def test_two_gloo_processes_fine_tune_clip_as_one(tmp_path, random_clip_checkpoint):
    fields = {**FIELDS, "clip_pretrained": str(random_clip_checkpoint), "finetune_clip": True}
    one = get_config("tiny", runs_root=str(tmp_path / "one"), **fields)
    codes1 = ensure_codes(one, 16, progress=False)  # features and graph first, then end-to-end training
    assert codes1["meta"]["epochs_run"] == 2

    two = one.replace(runs_root=str(tmp_path / "two"))
    _torchrun(fields, two.runs_root)
    codes2 = ensure_codes(two, 16, progress=False)  # rank 0's artifact
    assert codes2["cache_hit"]
    _same_training(codes1, codes2)
    # the CLIP tower's BatchNorm running statistics (what its evaluation-mode codes use) are the whole batch's
    s1, s2 = codes1["tensors"], codes2["tensors"]
    stats = [k for k in s1 if k.startswith("state.image_backbone.") and k.endswith(("running_mean", "running_var"))]
    assert stats
    for k in stats:
        assert torch.allclose(s1[k], s2[k], rtol=1e-4, atol=1e-5), k
