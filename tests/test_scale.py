"""The machinery at real sizes (issue 22): fingerprint once, load lean and once, artifacts that open fast."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from egath_lite.data import DatasetError, dataset_fingerprint, dataset_from_config, load_dataset
from egath_lite.data import fingerprint as fpm
from egath_lite.pipeline.config import get_config
from egath_lite.testing.fixtures import write_nuswide_gcdh_mat


def _age(root: Path, seconds: int = 60) -> None:
    """Set every file's and folder's mtime ``seconds`` into the past (settled: the memo may keep them)."""
    for dirpath, _, files in os.walk(root):
        for p in [*files]:
            st = os.stat(os.path.join(dirpath, p))
            os.utime(os.path.join(dirpath, p), ns=(st.st_atime_ns, st.st_mtime_ns - seconds * 10**9))
    for dirpath, _, _ in sorted(os.walk(root), key=lambda w: -len(w[0])):  # folders last: children first
        st = os.stat(dirpath)
        os.utime(dirpath, ns=(st.st_atime_ns, st.st_mtime_ns - seconds * 10**9))


@pytest.fixture(scope="module")
def nus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("nus")
    write_nuswide_gcdh_mat(root, n_items=60, seed=3, min_label_count=2)
    _age(root)
    return root


@pytest.fixture
def counted(monkeypatch):
    """Count the stat passes: every file stat of a pass comes from a folder listed by fingerprint._scandir."""
    calls = []

    def scandir(path):
        calls.append(path)
        return os.scandir(path)

    monkeypatch.setattr(fpm, "_scandir", scandir)
    yield calls
    fpm.end_session()


def _cfg(root: Path, tmp_path: Path):
    return get_config(
        "tiny", dataset="nuswide_tc10", data_root=str(root), clip_pretrained="random", runs_root=str(tmp_path / "runs")
    )


def test_second_key_in_a_session_makes_no_stat_pass_and_a_replaced_image_changes_it(nus, tmp_path, counted):
    cfg = _cfg(nus, tmp_path)
    outside = dataset_fingerprint(cfg)
    first_pass = len(counted)
    assert first_pass == 1 + sum(p.is_dir() for p in (nus / "images").iterdir())  # images/ and its concept folders
    assert dataset_fingerprint(cfg) == outside and len(counted) == 2 * first_pass  # no session: a full pass each time
    fpm.begin_session()
    assert dataset_fingerprint(cfg) == outside and len(counted) == 3 * first_pass
    for _ in range(3):  # every later key: the folders' stat only, no listing, no file stat
        assert dataset_fingerprint(cfg) == outside
    assert len(counted) == 3 * first_pass
    image = sorted((nus / "images").rglob("*.jpg"))[0]
    new = image.with_name("new.tmp")
    new.write_bytes(image.read_bytes() + b"\0")  # another image, moved over the old one (a rename: mtime of its folder)
    os.replace(new, image)
    try:
        changed = dataset_fingerprint(cfg)
        assert changed != outside and len(counted) == 4 * first_pass  # the pass runs again, inside the session
        fpm.end_session()
        assert dataset_fingerprint(cfg) == changed  # and agrees with a full pass outside any session
    finally:
        _age(nus)


def test_the_driver_hands_its_digests_to_a_notebook(nus, tmp_path, counted, monkeypatch):
    cfg = _cfg(nus, tmp_path)
    fpm.begin_session(inherit=False)
    key = dataset_fingerprint(cfg)
    handed = fpm.export_session()
    fpm.end_session()
    passes = len(counted)
    monkeypatch.setenv(fpm.ENV_VAR, handed)
    fpm.begin_session()  # the notebook's setup: takes the driver's digests
    assert dataset_fingerprint(cfg) == key and len(counted) == passes
    monkeypatch.setenv(fpm.ENV_VAR, handed.replace('"count": 60', '"count": "60"'))  # a garbled record is not used
    fpm.begin_session()
    assert dataset_fingerprint(cfg) == key and len(counted) == 2 * passes
    extra = sorted((nus / "images").rglob("*.jpg"))[0].with_name("extra.jpg")
    monkeypatch.setenv(fpm.ENV_VAR, handed)
    fpm.begin_session()
    extra.write_bytes(b"x")  # a file added after the driver looked: its folder's mtime tells
    try:
        assert dataset_fingerprint(cfg) != key and len(counted) == 3 * passes
    finally:
        extra.unlink()
        _age(nus)


def test_file_digests_are_memoised_by_stat_and_ctime(tmp_path, monkeypatch):
    f = tmp_path / "labels.txt"
    f.write_text("0 1\n1 0\n")
    monkeypatch.setattr(fpm, "RACY_SECONDS", 0.05)  # the ctime cannot be set back: wait for it to settle
    time.sleep(0.1)
    opened = []
    real_open = open
    monkeypatch.setattr(fpm, "open", lambda p, m="r": opened.append(p) or real_open(p, m), raising=False)
    first = fpm.file_digest(f)
    assert fpm.file_digest(f) == first and len(opened) == 1  # second digest: one stat, no read
    st = f.stat()
    f.write_text("1 0\n0 1\n")  # same size, other content, and the old mtime restored: only the ctime tells
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert fpm.file_digest(f) != first and len(opened) == 2


def test_tag_matrix_is_read_as_uint8_in_slabs_and_checked(tmp_path):
    from egath_lite.data.matfiles import load_mat_binary
    from egath_lite.testing.fixtures import _save_mat_v73

    rng = np.random.default_rng(0)
    T = (rng.random((1000, 37)) < 0.1).astype(np.uint8)
    _save_mat_v73(tmp_path / "t.mat", {"YAll": T})
    got = load_mat_binary(tmp_path / "t.mat", ["YAll"], chunk_bytes=37 * 8 * 50)  # slabs of 50 items
    assert got.dtype == np.uint8 and got.shape == (1000, 37)
    np.testing.assert_array_equal(got, T)
    T2 = T.astype(np.float64)
    T2[613, 5] = 2.0
    _save_mat_v73(tmp_path / "bad.mat", {"YAll": T2})
    with pytest.raises(DatasetError, match=r"only 0 and 1, found 2.0 at item 613, column 5"):
        load_mat_binary(tmp_path / "bad.mat", ["YAll"], chunk_bytes=37 * 8 * 50)


def test_a_real_set_is_loaded_once_per_fingerprint(nus, tmp_path, capsys):
    cfg = _cfg(nus, tmp_path)
    direct = load_dataset("nuswide_tc10", root=str(nus))
    first = dataset_from_config(cfg)
    bundles = list((tmp_path / "runs" / "shared-cache").glob("dataset-nuswide_tc10-*.bundle"))
    assert len(bundles) == 1
    again = dataset_from_config(cfg)
    assert "reusing the loaded data set" in capsys.readouterr().out
    for ds in (first, again):
        np.testing.assert_array_equal(ds.labels, direct.labels)
        assert ds.labels.dtype == np.uint8
        assert ds.texts == direct.texts and ds.image_paths == direct.image_paths
        assert ds.label_names == direct.label_names and ds.image_root == direct.image_root
        assert ds.info == direct.info and ds.split_defaults == direct.split_defaults
    with open(bundles[0], "r+b") as f:  # a damaged bundle is reloaded, never used
        f.seek(-3, os.SEEK_END)
        f.write(b"zzz")
    third = dataset_from_config(cfg)
    assert "reloading the release files" in capsys.readouterr().out and third.texts == direct.texts


def test_an_artifact_opens_memory_mapped_and_one_pass_still_checks_bytes_and_nan(tmp_path, monkeypatch):
    import torch

    from egath_lite.files import ArtifactError
    from egath_lite.pipeline import stages
    from egath_lite.pipeline.stages import Stage, checksum

    monkeypatch.setattr(stages, "CHUNK_BYTES", 4096)  # many slices: the one pass must cover every byte
    cfg = get_config("tiny", runs_root=str(tmp_path / "runs"))
    stage = Stage("bigfeat", fields=("seed",), tensors=("x",))
    x = torch.arange(50_000, dtype=torch.float32).reshape(500, 100)
    path = Path(stage.save(cfg, {"x": x}, {"n": 500})["path"])
    loaded = stage.load(cfg)
    torch.testing.assert_close(loaded["tensors"]["x"], x, rtol=0, atol=0)
    maps = Path("/proc/self/maps").read_text()
    assert str(path) in maps  # the tensor's bytes are mapped from the file, not read into a copy
    payload = torch.load(path, weights_only=True)
    assert payload["checksum"] == checksum(payload) and payload["checksum"].startswith("xxh3_128:")
    raw = bytearray(path.read_bytes())
    at = raw.find(x[499].numpy().tobytes())  # the last row's bytes, in the last slice of the pass
    raw[at + 5] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        stage.load(cfg)
    bad = x.clone()
    bad[499, 99] = float("nan")  # a NaN in the last slice, with a checksum that matches it
    payload["tensors"]["x"] = bad
    payload["checksum"] = checksum(payload)
    torch.save(payload, path)
    with pytest.raises(ArtifactError, match="tensor 'x' contains NaN or Inf"):
        stage.load(cfg)
    payload["tensors"]["x"] = x  # an artifact written before (a plain sha256 checksum) still opens
    payload["checksum"] = checksum(payload, "sha256")
    assert len(payload["checksum"]) == 64 and ":" not in payload["checksum"]
    torch.save(payload, path)
    torch.testing.assert_close(stage.load(cfg)["tensors"]["x"], x, rtol=0, atol=0)
    payload["checksum"] = "md5:0"  # an algorithm this version does not know: refused, recomputed
    torch.save(payload, path)
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        stage.load(cfg)


@pytest.mark.parametrize("slow_with", [2, 1])
def test_the_thread_chooser_keeps_the_faster_count_and_restores_the_setting(monkeypatch, slow_with):
    from types import SimpleNamespace

    import torch

    from egath_lite.clip import encode

    monkeypatch.setattr(encode, "available_cores", lambda: 2)
    clock = {"t": 0.0}  # a batch's time is what the test says, not what a busy machine makes of it
    monkeypatch.setattr(encode, "time", SimpleNamespace(perf_counter=lambda: clock["t"]))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    used = []
    try:
        model = torch.nn.Linear(1, 1)  # a new model: no remembered choice
        with encode.ThreadChooser(model, "text", "cpu") as chooser:
            for _ in range(8):
                with chooser.batch(10) as n:
                    assert torch.get_num_threads() == n
                    used.append(n)
                    clock["t"] += 0.03 if n == slow_with else 0.001
        fast = 3 - slow_with
        assert used[:5].count(1) == 2 and used[1:5].count(2) == 2  # warm-up on 2, then two timed batches each
        assert chooser.chosen == fast and used[5:] == [fast] * 3
        assert torch.get_num_threads() == 2  # restored
        with encode.ThreadChooser(model, "text", "cpu") as again:  # remembered for this model
            assert again.chosen == fast
        with encode.ThreadChooser(model, "text", "cuda") as gpu:
            assert gpu.candidates == [] and gpu.chosen == 2
    finally:
        torch.set_num_threads(before)


def test_bench_scale_at_a_small_size_is_correct(tmp_path, capsys):
    """benchmarks/bench_scale.py inline (new code, 200 items per set): its correctness checks, no timing."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_scale", Path(__file__).resolve().parents[1] / "benchmarks" / "bench_scale.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    report = bench.main(["--sizes", "200", "--inline", "--work", str(tmp_path), "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert [(r["dataset"], r["items"]) for r in report["results"]] == [("nuswide_tc10", 200), ("mscoco", 200)]
    for r in report["results"]:
        assert r["checks"] == {"reopen equals load": True, "opened artifact equals saved": True}
        rows = r["rows"]["new"]
        assert rows["keys"]["session"] is True and len(rows["keys"]["check"].split("-")) == 4
    assert out.count("reusing the loaded data set") == 2  # the second load of each set opened its bundle
    assert "| nuswide_tc10 | 200 | fingerprint (fresh process) |" in out


def test_the_driver_exports_its_session_to_the_notebooks_it_runs(nus, tmp_path, monkeypatch):
    from egath_lite.driver import cli

    monkeypatch.delenv(fpm.ENV_VAR, raising=False)
    fpm.begin_session(inherit=False)
    try:
        dataset_fingerprint(_cfg(nus, tmp_path))
        with cli._streamed("01_features", None):  # what run_notebook wraps papermill in: the kernel inherits it
            handed = os.environ[fpm.ENV_VAR]
        assert handed == fpm.export_session() and str(nus / "images") in handed
        assert fpm.ENV_VAR not in os.environ  # restored afterwards
    finally:
        fpm.end_session()
