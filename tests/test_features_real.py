"""The features stage on a real-layout data set (MIRFlickr raw fixture, JPEGs on disk) with weights from a file:
bad images are reported together after the good shards are kept, and a rerun encodes only what is missing."""

import numpy as np
import pytest

from egath_lite.clip_weights import load_clip, save_clip_checkpoint
from egath_lite.config import get_config
from egath_lite.data.fixtures import write_mirflickr_raw
from egath_lite.features import ensure_features, shard_folder, shard_key
from egath_lite.sharded import UnreadableImagesError


@pytest.fixture()
def mir(tmp_path):
    info = write_mirflickr_raw(tmp_path / "mir", 120, seed=0, min_label_count=2)
    model, _, _ = load_clip("egath-tiny-clip", None, "cpu", seed=0)
    ckpt = save_clip_checkpoint(model, tmp_path / "clip.pt")
    cfg = get_config(
        "tiny",
        dataset="mirflickr25k",
        data_root=str(info.root),
        clip_pretrained=str(ckpt),
        num_query=20,
        num_train=60,
        vocab_size=64,
        extract_shard_size=16,
        extract_batch_size=8,
        num_workers=0,
        runs_root=str(tmp_path / "runs"),
        run_name="r",
        device="cpu",
    )
    return cfg, info


def _image_file(cfg, ds_item: int):
    from egath_lite.data import dataset_from_config

    return dataset_from_config(cfg).image_path(ds_item)


def test_bad_images_are_reported_together_and_a_rerun_encodes_only_their_shards(mir):
    cfg, info = mir
    clean = ensure_features(cfg.replace(run_name="clean"), progress=False)
    corrupt, truncated = _image_file(cfg, 5), _image_file(cfg, 70)
    good = {p: p.read_bytes() for p in (corrupt, truncated)}
    corrupt.write_bytes(np.random.default_rng(0).bytes(3000))
    truncated.write_bytes(good[truncated][: len(good[truncated]) // 3])
    with pytest.raises(UnreadableImagesError) as err:
        ensure_features(cfg, progress=False)
    msg = str(err.value)
    assert str(corrupt) in msg and str(truncated) in msg  # both, in one message
    # the good shards stay; replacing the two files, the rerun encodes only the two shards that held them
    for p, data in good.items():
        p.write_bytes(data)
    done = ensure_features(cfg, progress=False)
    shards = done["meta"]["image_shards"]
    assert shards["encoded_items"] == 32 and shards["reused_items"] == len(info.labels) - 32
    np.testing.assert_allclose(done["tensors"]["image_emb"].numpy(), clean["tensors"]["image_emb"].numpy(), atol=1e-6)
    assert not list(shard_folder(cfg).glob(f"{shard_key(cfg)}-shard*"))  # cleaned once the artifact exists
