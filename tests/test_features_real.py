"""The features stage on a real-layout data set (MIRFlickr raw fixture, JPEGs on disk) with weights from a file:
bad images are reported together after the good shards are kept, and a rerun encodes only what is missing."""

import numpy as np
import pytest
from conftest import mirflickr_tiny_config

from egath_lite.clip.sharded import UnreadableImagesError
from egath_lite.pipeline.features import ensure_features, shard_folder, shard_key


@pytest.fixture()
def mir(tmp_path, random_clip_checkpoint):
    return mirflickr_tiny_config(
        tmp_path, random_clip_checkpoint, extract_shard_size=16, extract_batch_size=8, run_name="r"
    )


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
