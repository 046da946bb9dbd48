"""Every mistake ends in one clear line (issue 21): each case here failed before its fix.

Kinds: a traceback where one line naming the file, the problem and the fix belongs (exit code 2, the traceback
only with ``--debug``); silently wrong inputs (images clipped instead of scaled, COCO ids listed twice, a label
every item carries); results of one driver overwritten by another's; advice that must work ("delete index.json
and rerun"). The notebooks are faked (``fake_notebooks``) as in tests/test_reproduce.py: the driver's own code
runs, papermill does not.
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from egath_lite.data.dataset import DatasetError
from egath_lite.driver import cli as driver
from egath_lite.pipeline.config import ConfigError, get_config


def fake_notebooks(monkeypatch, calls):
    """Stand-in for papermill: 04/05 write results for their own config (05's table: the variant's row)."""
    from egath_lite.pipeline.runs import save_results

    def run(name, executed_dir, parameters, kernel="python3", log_path=None):
        cfg = get_config(
            parameters["PRESET"], run_name=parameters["RUN_NAME"], runs_root=parameters["RUNS_ROOT"],
            **parameters["OVERRIDES"],
        )  # fmt: skip
        calls.append((name, cfg.variant))
        base = {"egath": 0.6, "no_gat": 0.5, "gcn": 0.4}[cfg.variant]
        if name == "04_hash_learning":
            save_results(cfg, name, {"map": {str(b): {"i2t": base, "t2i": base} for b in cfg.bits}})
        if name == "05_pr_curve_evaluation":
            save_results(cfg, name, {"map": {cfg.variant: {str(b): {"i2t": base, "t2i": base} for b in cfg.bits}}})
        return 0.25

    monkeypatch.setattr(driver, "run_notebook", run)


def one_line_error(capsys, prog="python -m egath_lite.reproduce") -> str:
    """The command's stderr: exactly one line, ``<prog>: error: ...``, no traceback (progress bars aside)."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and "%|" not in line]
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith(f"{prog}: error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def toy_cache(tmp_path_factory):
    """The tiny toy data's bundle, generated once: each driver test copies it into its own runs root."""
    from egath_lite.data import dataset_from_config

    root = tmp_path_factory.mktemp("toy")
    dataset_from_config(get_config("tiny", runs_root=str(root)))
    return root / "shared-cache"


@pytest.fixture
def runs(tmp_path, toy_cache):
    """A fresh runs root holding the tiny toy data's cache."""
    import shutil

    shutil.copytree(toy_cache, tmp_path / "runs" / "shared-cache")
    return tmp_path / "runs"


TINY = ["--preset", "tiny", "--bits", "16"]


# --------------------------------------------------------------------------- tracebacks → one line
def test_missing_data_root_is_one_line(tmp_path, capsys):
    argv = [*TINY, "--datasets", "mirflickr25k", "--data-root", str(tmp_path / "nowhere")]
    argv += ["--clip-model", "egath-tiny-clip", "--clip-pretrained", "none", "--runs-root", str(tmp_path / "runs")]
    assert driver.main(argv) == 2
    err = one_line_error(capsys)
    assert str(tmp_path / "nowhere") in err and "mirflickr25k" in err
    with pytest.raises(DatasetError):  # --debug: the error itself, with its traceback
        driver.main([*argv, "--debug"])


def _manifest(folder: Path, rows: list[tuple[str, str, str]]) -> Path:
    path = folder / "m.csv"
    path.write_text("image,text,labels\n" + "".join(f"{i},{t},{labels}\n" for i, t, labels in rows))
    return path


def _png(path: Path, value: int = 100, size: int = 8) -> Path:
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)
    return path


def test_unreadable_manifest_image_is_one_line(tmp_path, capsys, monkeypatch):
    rows = [(_png(tmp_path / f"{i}.png", 10 * i).name, f"word{i} sky", "a" if i % 2 else "b;c") for i in range(12)]
    (tmp_path / "3.png").write_bytes(b"this is no image at all")
    manifest = _manifest(tmp_path, rows)
    fake_notebooks(monkeypatch, [])
    argv = [*TINY, "--datasets", str(manifest), "--clip-model", "egath-tiny-clip", "--clip-pretrained", "none"]
    assert driver.main([*argv, "--runs-root", str(tmp_path / "runs")]) == 2
    err = one_line_error(capsys)
    assert "3.png" in err


def test_corrupt_run_config_is_one_line(runs, capsys):
    run = runs / "tiny-toy_nuswide-s0"
    run.mkdir(parents=True)
    (run / "run_config.json").write_text('{"config": {"preset": "ti')
    assert driver.main([*TINY, "--runs-root", str(runs)]) == 2
    err = one_line_error(capsys)
    assert str(run / "run_config.json") in err and "not valid JSON" in err and "delete" in err


def test_a_runs_root_that_is_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "runs").write_text("not a folder")
    assert driver.main([*TINY, "--runs-root", str(tmp_path / "runs")]) == 2
    err = one_line_error(capsys)
    assert f"{tmp_path / 'runs'} is a file, not a folder" in err


def test_clip_pretrained_naming_a_folder_is_one_line(tmp_path, runs, capsys):
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "open_clip_model.bin").write_bytes(b"x")
    argv = [*TINY, "--runs-root", str(runs), "--clip-model", "egath-tiny-clip"]
    assert driver.main([*argv, "--clip-pretrained", str(weights)]) == 2
    err = one_line_error(capsys)
    assert "is a folder, not a checkpoint file" in err and str(weights / "open_clip_model.bin") in err
    assert "does not exist" not in err


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["trans_width=30", "trans_heads=4"], "trans_width=30 is not divisible by trans_heads=4"),
        (["gat_hidden=100", "gat_heads=3"], "gat_hidden=100 is not divisible by gat_heads=3"),
    ],
)
def test_settings_the_models_cannot_build_are_refused_with_the_config(tmp_path, capsys, sets, message):
    with pytest.raises(ConfigError, match=message):
        get_config("tiny", **{k: int(v) for k, v in (s.split("=") for s in sets)})
    argv = [*TINY, "--runs-root", str(tmp_path / "runs")] + [a for s in sets for a in ("--set", s)]
    assert driver.main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # refused before anything ran


def test_the_models_build_what_the_config_accepts():
    """The config check is the models' own rule: an accepted width/heads pair builds, a refused one does not."""
    from egath_lite.core.models import GATClassifier, TransFC

    GATClassifier(8, 4, 3, hidden=12, heads=3, layers=2)
    TransFC(10, 4, width=12, heads=3)
    with pytest.raises(ValueError, match="divisible"):
        GATClassifier(8, 4, 3, hidden=10, heads=3, layers=2)


def test_full_disk_is_one_line_and_leaves_nothing_behind(tmp_path, capsys, monkeypatch):
    from egath_lite import files
    from egath_lite.data.__main__ import main as data_main

    class Full(io.RawIOBase):  # a disk that fills after 1 kB
        def __init__(self, fd):
            self.f, self.n = os.fdopen(fd, "wb"), 0

        def writable(self):
            return True

        def write(self, b):
            self.n += len(b)
            if self.n > 1024:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.f.write(b)

        def close(self):
            self.f.close()
            super().close()

        def fileno(self):
            return self.f.fileno()

    monkeypatch.setattr(files, "_open_temp", Full)
    # torch.save wraps the write's OSError in "[enforce fail at inline_container.cc] unexpected pos": named again
    target = tmp_path / "a.pt"
    with pytest.raises(OSError, match="No space left") as info:
        files.atomic_write_bytes(target, lambda f: torch.save({"x": torch.zeros(10_000)}, f))
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []  # no half file, no temp file
    monkeypatch.undo()  # the toy data's cache is written first, on a disk with room
    # through an entry point: one line naming the file and the fix
    out = tmp_path / "grid.png"
    argv = ["--size", "60", "--examples", "6", "--out", str(out)]
    monkeypatch.setenv("EGATH_CACHE", str(tmp_path / "cache"))
    assert data_main([*argv[:-1], str(tmp_path / "first.png")]) == 0  # the toy data's cache: on a disk with room
    monkeypatch.setattr(files, "_open_temp", Full)
    capsys.readouterr()
    assert data_main(argv) == 2
    err = one_line_error(capsys, "python -m egath_lite.data")
    assert str(out) in err and "no space left on the device" in err and "free some space" in err
    assert not out.exists()


# --------------------------------------------------------------------------- search
def test_search_device_mistakes_are_one_line(tmp_path, capsys, monkeypatch):
    from egath_lite.serve import search

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    argv = ["--run", "r", "--runs-root", str(tmp_path), "--text", "sky"]
    assert search.main([*argv, "--device", "cuda"]) == 2
    err = one_line_error(capsys, "python -m egath_lite.search")
    assert "CUDA is not available" in err and "download" not in err
    assert search.main([*argv, "--device", "tpu"]) == 2
    assert "unknown device 'tpu'" in one_line_error(capsys, "python -m egath_lite.search")
    assert driver.main([*TINY, "--runs-root", str(tmp_path / "runs"), "--device", "cuda"]) == 2
    assert "CUDA is not available" in one_line_error(capsys)
    assert not (tmp_path / "runs").exists()  # refused before anything ran


def test_an_image_over_the_pixel_limit_is_refused_before_decoding(tmp_path, monkeypatch):
    from egath_lite.clip.images import Preprocess, decode_bytes
    from egath_lite.serve.search import Searcher, SearchError

    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 64x64 = 4096 > 2 x 100: PIL's "decompression bomb"
    with pytest.raises(ValueError, match="MAX_IMAGE_PIXELS"):
        decode_bytes(path.read_bytes())
    fake = type("S", (), {})()  # Searcher._pixels needs only the run's decoder and preprocessing
    fake.cfg = get_config("tiny")
    fake.prep = Preprocess(size=(32, 32), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bicubic")
    with pytest.raises(SearchError, match=r"cannot read image .*big\.png.*MAX_IMAGE_PIXELS"):
        Searcher._pixels(fake, path)


def test_a_codes_file_with_a_pickle_payload_is_refused_with_torch_meaning(tmp_path):
    from egath_lite.files import ArtifactError
    from egath_lite.pipeline.stages import FORMAT, Stage

    stage = Stage("demo", fields=("bits",), params=("bits",))
    cfg = get_config("tiny", runs_root=str(tmp_path), run_name="r")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = stage.path(cfg, bits=8)
    torch.save({"format": FORMAT, "evil": Evil()}, path)
    with pytest.raises(ArtifactError) as info:
        stage.load(cfg, bits=8)
    msg = str(info.value)
    assert "not a plain tensor file" in msg and "refused" in msg and "execute code" in msg
    # torch's own advice is kept whole, not cut at 200 characters: its warning about code execution is there
    assert "arbitrary code execution" in msg and "trusted source" in msg


# --------------------------------------------------------------------------- data files
def test_a_truncated_v73_mat_names_the_file(tmp_path):
    h5py = pytest.importorskip("h5py")
    from egath_lite.data.matfiles import load_mat

    path = tmp_path / "label.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        f["LAll"] = np.ones((24, 500), np.uint8)
    with open(path, "r+b") as f:  # MATLAB's v7.3 header in the user block, then cut the file short
        f.write(b"MATLAB 7.3 MAT-file".ljust(128))
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(DatasetError, match=rf"{path}.*v7\.3.*truncated or damaged"):
        load_mat(path)


def _coco(root: Path, train_images, train_annotations, train_captions, val=None):
    from egath_lite.data.reference import MSCOCO_LABELS_BY_ID

    (root / "annotations").mkdir(parents=True)
    categories = [{"id": i + 1, "name": n} for i, n in enumerate(MSCOCO_LABELS_BY_ID)]
    parts = {"train": (train_images, train_annotations, train_captions), "val": val or ([], [], [])}
    for split, (images, instances, captions) in parts.items():
        inst = {"images": images, "annotations": instances, "categories": categories}
        (root / "annotations" / f"instances_{split}2014.json").write_text(json.dumps(inst))
        (root / "annotations" / f"captions_{split}2014.json").write_text(json.dumps({"annotations": captions}))
    return root


def _coco_ok():
    images = [{"id": i, "file_name": f"{i}.jpg"} for i in (1, 2, 3)]
    annotations = [{"id": 10 + i, "image_id": i, "category_id": 1 + i % 2} for i in (1, 2, 3)]
    captions = [{"id": 20 + i, "image_id": i, "caption": f"a photo {i}"} for i in (1, 2, 3)]
    return images, annotations, captions


def test_coco_json_checks(tmp_path):
    from egath_lite.data.mscoco import load_mscoco

    images, annotations, captions = _coco_ok()
    ds = load_mscoco(_coco(tmp_path / "ok", images, annotations, captions), check_images=False)
    assert len(ds) == 3 and ds.texts[1] == "a photo 2"  # the control: a clean file loads, one item per id
    twice = [*images, images[0]]  # an image entry listed twice: was 4 items from 3 images
    with pytest.raises(DatasetError, match=r"image id\(s\) listed more than once \(id 1: train: 1\.jpg, train: 1\.jpg"):
        load_mscoco(_coco(tmp_path / "twice", twice, annotations, captions), check_images=False)
    shared = [*images, {"id": 2, "file_name": "other.jpg"}]  # two files sharing one id: was a silent label mix
    with pytest.raises(DatasetError, match=r"id 2: train: 2\.jpg, train: other\.jpg"):
        load_mscoco(_coco(tmp_path / "shared", shared, annotations, captions), check_images=False)
    unknown = [*annotations, {"id": 99, "image_id": 1, "category_id": 999}]
    with pytest.raises(DatasetError, match=r"instances_train2014\.json: annotation 99 .*category_id 999"):
        load_mscoco(_coco(tmp_path / "cat", images, unknown, captions), check_images=False)
    textless = [*captions, {"id": 77, "image_id": 1}]
    with pytest.raises(DatasetError, match=r"captions_train2014\.json: caption annotation 77 .* no 'caption' text"):
        load_mscoco(_coco(tmp_path / "cap", images, annotations, textless), check_images=False)


def test_one_label_or_too_few_items_are_refused_naming_the_minimum(tmp_path):
    from egath_lite.data.manifest import load_manifest
    from egath_lite.data.registry import split_from_config

    rows = [(_png(tmp_path / f"{i}.png").name, f"w{i}", "cat") for i in range(10)]
    with pytest.raises(DatasetError, match="needs at least 2"):  # was: mAP 1.0000, no warning
        load_manifest(_manifest(tmp_path, rows))
    rows = [(r[0], r[1], "cat;dog" if i % 2 else "cat") for i, r in enumerate(rows)]  # "cat" on every item
    ds = load_manifest(_manifest(tmp_path, rows))
    cfg = get_config("tiny", dataset=str(tmp_path / "m.csv"), clip_model="egath-tiny-clip", clip_pretrained="none")
    with pytest.raises(DatasetError, match=r"every one of its 10 items carries label\(s\) \['cat'\]"):
        split_from_config(ds, cfg)
    rows = [(r[0], r[1], "cat" if i % 2 else "dog") for i, r in enumerate(rows[:2])]
    with pytest.raises(DatasetError, match="2 item.*needs at least 3"):
        split_from_config(load_manifest(_manifest(tmp_path, rows)), cfg)
    rows = [(_png(tmp_path / f"{i}.png").name, f"w{i}", "cat" if i % 2 else "dog") for i in range(10)]
    query, train, val, retrieval = split_from_config(load_manifest(_manifest(tmp_path, rows)), cfg)  # the control
    assert len(query) + len(train) + len(val) == 10 and len(val) >= 1


# --------------------------------------------------------------------------- images: scaled, not clipped
def test_16_bit_greyscale_png_is_scaled_not_clipped(tmp_path):
    from egath_lite.clip.images import decode_bytes

    values = np.array([[0, 257, 1000, 32768, 65535, 12850]], np.uint16)
    buf = io.BytesIO()
    Image.fromarray(values).save(buf, format="PNG")
    pixels = decode_bytes(buf.getvalue())  # uint8 (3, 1, 6)
    expected = np.rint(values[0] / 257).astype(np.uint8)  # [0, 1, 4, 128, 255, 50]
    assert pixels.shape == (3, 1, 6) and (pixels.numpy() == expected).all()


def test_float_and_int32_tiffs_are_scaled_to_8_bits(tmp_path):
    from egath_lite.clip.images import decode_bytes

    def tiff(arr):
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="TIFF")
        return buf.getvalue()

    unit = np.array([[0.0, 0.25, 0.5, 1.0]], np.float32)  # a float image in [0, 1]: × 255
    assert decode_bytes(tiff(unit))[0, 0].tolist() == [0, 64, 128, 255]
    wide = np.array([[-10.0, 0.0, 10.0, 90.0]], np.float32)  # no known range: its own min..max
    assert decode_bytes(tiff(wide))[0, 0].tolist() == [0, 26, 51, 255]
    ints = np.array([[0, 250_000, 500_000, 1_000_000]], np.int32)  # beyond 16 bits: min..max, was all white
    assert decode_bytes(tiff(ints))[1, 0].tolist() == [0, 64, 128, 255]
    sixteen = np.array([[0, 257, 65535, 32896]], np.int32)  # 16-bit values in an int32 image: / 257
    assert decode_bytes(tiff(sixteen))[2, 0].tolist() == [0, 1, 255, 128]
    bad = np.array([[0.0, np.nan]], np.float32)
    with pytest.raises(ValueError, match="NaN or Inf"):
        decode_bytes(tiff(bad))


def test_the_manifest_route_decodes_16_bit_the_same_way(tmp_path):
    from egath_lite.data.manifest import load_manifest

    Image.fromarray(np.full((4, 4), 51400, np.uint16)).save(tmp_path / "deep.png")  # 51400 / 257 = 200
    rows = [
        ("deep.png", "w", "a"),
        (_png(tmp_path / "b.png").name, "v", "b"),
        (_png(tmp_path / "c.png").name, "u", "a"),
    ]
    ds = load_manifest(_manifest(tmp_path, rows))
    assert np.asarray(ds.get_image(0)).reshape(-1, 3)[0].tolist() == [200, 200, 200]


# --------------------------------------------------------------------------- results per invocation
def _printed(out: str, label: str) -> Path:
    return Path(out.split(f"\n{label}")[1].split(":", 1)[1].split()[0])


def test_three_drivers_on_one_runs_root_keep_their_own_results(runs, capsys, monkeypatch):
    calls = []
    fake_notebooks(monkeypatch, calls)
    argv = [*TINY, "--runs-root", str(runs)]
    outs = []
    for extra in ([], [], ["--variants", "no_gat"]):  # two twins, then another variant
        assert driver.main(argv + extra) == 0
        outs.append(capsys.readouterr().out)
    paths = [_printed(o, "results (this invocation)") for o in outs]
    assert paths[0] == paths[1] != paths[2]  # the twins share a name and a table; no_gat has its own
    no_gat = paths[2].with_suffix(".md").read_text()
    assert "| toy_nuswide | no_gat |" in no_gat and "| egath |" not in no_gat
    egath = paths[0].with_suffix(".md").read_text()
    assert "| toy_nuswide | egath |" in egath and "no_gat" not in egath
    timings = [json.loads(_printed(o, "timings").read_text())["invocations"] for o in outs]
    assert [e["cells_run"] for e in timings[1]] == [1, 0]  # the twins' file holds both, each truthful
    assert len(timings[2]) == 1 and timings[2][0]["cells_run"] == 1 and timings[2][0]["argv"][-1] == "no_gat"
    assert sum(1 for c in calls if c[1] == "no_gat") == 5


class ReadOnly:
    """Every write under ``root`` fails as on a read-only file system (EROFS): the test runs as root, for which
    ``chmod`` does not stop writes."""

    WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def __init__(self, monkeypatch, root: Path):
        self.root = str(root.resolve())
        real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir

        def under(path) -> bool:
            try:
                return os.path.abspath(os.fspath(path)).startswith(self.root)
            except TypeError:
                return False

        def refuse(path):
            raise OSError(errno.EROFS, "Read-only file system", os.fspath(path))

        def open_(file, mode="r", *a, **k):
            if under(file) and any(c in mode for c in "wax+"):
                refuse(file)
            return real_open(file, mode, *a, **k)

        def os_open(path, flags, *a, **k):
            if under(path) and flags & self.WRITE:
                refuse(path)
            return real_os_open(path, flags, *a, **k)

        def mkdir(path, *a, **k):
            if under(path):
                if os.path.isdir(path):
                    raise FileExistsError(errno.EEXIST, "File exists", os.fspath(path))
                refuse(path)
            return real_mkdir(path, *a, **k)

        for target, name, fn in ((builtins, "open", open_), (io, "open", open_), (os, "open", os_open)):
            monkeypatch.setattr(target, name, fn)
        monkeypatch.setattr(os, "mkdir", mkdir)
        for name in ("replace", "rename", "unlink", "remove"):
            real = getattr(os, name)
            monkeypatch.setattr(os, name, lambda p, *a, _real=real, **k: refuse(p) if under(p) else _real(p, *a, **k))


def test_a_read_only_runs_root_with_every_cell_done_prints_its_table(runs, capsys, monkeypatch):
    fake_notebooks(monkeypatch, [])
    argv = [*TINY, "--runs-root", str(runs)]
    assert driver.main(argv) == 0
    table = capsys.readouterr().out.split("mAP@all")[1].split("\n\n")[1]
    png = runs / "tiny-toy_nuswide-s0" / "data_examples.png"
    before = png.stat().st_mtime_ns
    with monkeypatch.context() as m:
        ReadOnly(m, runs)
        assert driver.main(argv) == 0
    out, err = capsys.readouterr()
    assert table in out and "done before" in out  # the whole table, from the finished cells
    assert "not saved" in err and "read-only" in err and "Traceback" not in err
    assert png.stat().st_mtime_ns == before  # the example grid is current: not rewritten
    with monkeypatch.context() as m:  # the control: a cell that must run fails with one line
        ReadOnly(m, runs)
        assert driver.main([*argv, "--variants", "no_gat"]) == 2
    assert "read-only file system" in one_line_error(capsys)


# --------------------------------------------------------------------------- the run index
def test_a_deleted_or_damaged_index_is_rebuilt_from_the_artifacts(tmp_path):
    from egath_lite.pipeline.codes import CODES_STAGE, codes_in_run
    from egath_lite.pipeline.stages import INDEX_NAME, Stage, read_index

    stage = Stage(CODES_STAGE.name, fields=("seed",), params=("variant", "bits"))  # what codes_in_run lists
    cfg = get_config("tiny", runs_root=str(tmp_path), run_name="r")
    for bits in (16, 32):
        stage.save(cfg, {"codes": torch.ones(4, bits)}, {"note": bits}, variant="egath", bits=bits)
    folder = tmp_path / "r"
    index = folder / INDEX_NAME
    made = read_index(folder)
    assert [(e["variant"], e["bits"]) for e in codes_in_run(folder)] == [("egath", 16), ("egath", 32)]
    index.unlink()  # "delete it and rerun": the codes are still found, and the index is back
    assert [(e["variant"], e["bits"]) for e in codes_in_run(folder)] == [("egath", 16), ("egath", 32)]
    assert index.is_file() and read_index(folder) == made
    index.write_text("{ damaged")
    assert len(codes_in_run(folder)) == 2 and read_index(folder) == made


def test_the_notebook_setup_raises_one_line(tmp_path):
    from egath_lite.pipeline.notebook import SetupError, setup_from

    (tmp_path / "runs").write_text("a file where the runs root should be")
    namespace = {"PRESET": "tiny", "RUN_NAME": "r", "RUNS_ROOT": str(tmp_path / "runs")}
    with pytest.raises(SetupError) as info:
        setup_from("01_feature_extraction", namespace)
    msg = str(info.value)
    assert len(msg.splitlines()) == 1 and f"{tmp_path / 'runs'} is a file, not a folder" in msg
    assert isinstance(info.value, OSError) and info.value.__suppress_context__  # one line, not a chain


@pytest.mark.slow
def test_three_drivers_at_once_keep_their_own_results(runs, tmp_path, monkeypatch):
    """The same three drivers as above, concurrently (forked processes): each prints the files it wrote, and they
    hold its own table and timings (the twins wait for each other's cell instead of running it twice)."""
    import multiprocessing
    import sys

    calls = []
    fake_notebooks(monkeypatch, calls)
    argv = [*TINY, "--runs-root", str(runs)]

    def child(extra, log):
        with open(log, "w") as f:
            sys.stdout = sys.stderr = f
            code = driver.main(argv + extra)
            f.flush()
        os._exit(code)

    ctx = multiprocessing.get_context("fork")
    logs = [tmp_path / f"driver{i}.log" for i in range(3)]
    procs = [
        ctx.Process(target=child, args=(extra, log)) for extra, log in zip(([], [], ["--variants", "no_gat"]), logs)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0, 0, 0], [log.read_text()[-2000:] for log in logs]
    outs = [log.read_text() for log in logs]
    paths = [_printed(o, "results (this invocation)") for o in outs]
    assert paths[0] == paths[1] != paths[2]
    assert "| egath |" not in paths[2].with_suffix(".md").read_text()
    assert "no_gat" not in paths[0].with_suffix(".md").read_text()
    twins = json.loads(_printed(outs[0], "timings").read_text())["invocations"]
    assert sorted(e["cells_run"] for e in twins) == [0, 1]  # one ran the cell, the other waited and reused it
    (other,) = json.loads(_printed(outs[2], "timings").read_text())["invocations"]
    assert other["cells_run"] == 1
