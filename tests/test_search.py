"""One query against a finished run (egath_lite.serve.search): on the tiny driver run, the single-query API ranks
exactly as the evaluation does, encodes the stored query items to their stored codes, and refuses bad input."""

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from egath_lite import metrics
from egath_lite.pipeline.codes import CODES_STAGE, codes_in_run, describe_codes
from egath_lite.serve import search
from egath_lite.serve.search import Searcher, SearchError, hamming_ranking

RUN = "tiny-toy_nuswide-s0"  # the run folder of the tiny driver run (tests/conftest.py: tiny_runs)
slow = pytest.mark.slow  # these need the tiny driver run (minutes, shared with the notebook tests)


@pytest.fixture(scope="module")
def searcher(tiny_runs):
    return Searcher.from_run(RUN, runs_root=tiny_runs)  # bits=None: the longest trained (64)


@pytest.fixture(scope="module")
def stored(searcher):
    """The codes artifact the searcher serves, read on its own."""
    return CODES_STAGE.load(searcher.cfg, variant=searcher.variant, bits=searcher.bits)["tensors"]


@pytest.fixture(scope="module")
def query_hits(searcher):
    """Top-10 of every query item's own image (I→T) and own text (T→I), through the public API."""
    images = [searcher.search_image(searcher.image(i), k=10) for i in searcher.query_idx]
    texts = [searcher.search_text(searcher.dataset.texts[i], k=10) for i in searcher.query_idx]
    return {"i2t": images, "t2i": texts}


def _plain_distances(q: np.ndarray, R: np.ndarray) -> list[int]:
    """Hamming distance of one ±1 code to every row, one bit at a time."""
    return [sum(1 for b in range(len(q)) if q[b] != r[b]) for r in R]


def _shares_label(searcher, query_item: int, hit) -> bool:
    return bool(set(searcher.labels_of(query_item)) & set(hit.labels))


# --------------------------------------------------------------------------- the ranking itself
@pytest.mark.parametrize("numpy_popcount", [True, False], ids=["bitwise_count", "lookup_table"])
def test_hamming_ranking_hand_computed_with_ties(numpy_popcount, monkeypatch):
    if not numpy_popcount:  # the numpy < 2.0 route
        monkeypatch.delattr(np, "bitwise_count", raising=False)
    q = np.array([1, 1, -1, -1])
    R = np.array([[-1, -1, 1, 1], [1, 1, -1, 1], [1, 1, -1, -1], [1, -1, -1, 1], [-1, 1, -1, -1]])
    packed = metrics.pack_codes(R, pad=True)
    # distances 4, 1, 0, 2, 1: position 1 and 4 tie at 1 and keep their order
    positions, distances = hamming_ranking(q, packed, k=4)
    assert positions.tolist() == [2, 1, 4, 3] and distances.tolist() == [0, 1, 1, 2]
    positions, distances = hamming_ranking(q, packed, k=2)  # the cut falls inside the tie: the smaller position
    assert positions.tolist() == [2, 1] and distances.tolist() == [0, 1]
    positions, _ = hamming_ranking(q, packed, k=99)  # k beyond the set: all of it
    assert positions.tolist() == [2, 1, 4, 3, 0]
    # 20 bits (padded to 3 bytes), many ties: the plain loop's stable order
    rng = np.random.default_rng(0)
    R = np.where(rng.random((300, 20)) < 0.5, -1, 1)
    q = R[7] * np.where(rng.random(20) < 0.2, -1, 1)
    d = _plain_distances(q, R)
    positions, distances = hamming_ranking(q, metrics.pack_codes(R, pad=True), k=40)
    assert positions.tolist() == sorted(range(300), key=lambda p: (d[p], p))[:40]
    assert distances.tolist() == sorted(d)[:40]


def test_describe_codes_lists_variants_and_bits():
    entries = [{"variant": "egath", "bits": b} for b in (16, 32, 32, 64)] + [{"variant": "no_gat", "bits": 32}]
    assert describe_codes(entries) == "egath: 16, 32, 64 bits; no_gat: 32 bits"
    assert describe_codes([]) == "none"


# --------------------------------------------------------------------------- the must-show
@slow
@pytest.mark.parametrize("direction", ["i2t", "t2i"])
def test_first_hit_shares_a_label_as_often_as_the_evaluation_ranking_says(searcher, stored, query_hits, direction):
    """The top hit of each query item's own image (text) shares its labels at exactly the rate of the
    evaluation's Hamming ranking of the stored codes (egath_lite.metrics: P@1, P@10), above chance."""
    q_key, r_key = (
        ("query_image_codes", "retrieval_text_codes")
        if direction == "i2t"
        else ("query_text_codes", "retrieval_image_codes")
    )
    qL, rL = stored["query_labels"], stored["retrieval_labels"]
    hits = query_hits[direction]
    first = np.mean([_shares_label(searcher, i, h[0]) for i, h in zip(searcher.query_idx, hits)])
    top10 = np.mean([np.mean([_shares_label(searcher, i, x) for x in h]) for i, h in zip(searcher.query_idx, hits)])
    p1, p10 = metrics.precision_at_k(stored[q_key], stored[r_key], qL, rL, ks=[1, 10])
    chance = ((qL.double() @ rL.double().T) > 0).double().mean().item()  # a random retrieval item
    print(
        f"{direction}: first hit shares a label {first:.3f} (evaluation P@1 {p1:.3f}), P@10 {top10:.3f}, chance {chance:.3f}"
    )
    assert (qL.double() @ rL.double().T > 0).any(1).all()  # no query without a relevant item: P@K averages all
    assert first == pytest.approx(p1, abs=1e-12) and top10 == pytest.approx(p10, abs=1e-12)
    assert first > chance + 0.05


@slow
def test_distances_and_order_equal_a_plain_popcount_loop(searcher, stored):
    R_text = stored["retrieval_text_codes"].numpy()
    R_image = stored["retrieval_image_codes"].numpy()
    for j in range(3):
        item = int(searcher.query_idx[j])
        for hits, q, R in (
            (searcher.search_image(searcher.image(item), k=25), stored["query_image_codes"][j].numpy(), R_text),
            (searcher.search_text(searcher.dataset.texts[item], k=25), stored["query_text_codes"][j].numpy(), R_image),
        ):
            d = _plain_distances(q, R)
            expected = sorted(range(len(R)), key=lambda p: (d[p], p))[:25]  # ties by retrieval position
            assert [h.position for h in hits] == expected
            assert [h.distance for h in hits] == [d[p] for p in expected]
            assert [h.rank for h in hits] == list(range(1, 26))


@slow
def test_hits_describe_the_retrieval_items(searcher, stored, query_hits):
    names = searcher.label_names
    for h in query_hits["i2t"][0] + query_hits["t2i"][0]:
        assert h.index == int(searcher.retrieval_idx[h.position])
        row = stored["retrieval_labels"][h.position].tolist()
        assert h.labels == tuple(n for n, v in zip(names, row) if v) and h.labels == searcher.labels_of(h.index)
        assert h.text == searcher.dataset.texts[h.index]
        assert h.image_path is None  # toy images live in memory


# --------------------------------------------------------------------------- codes of a query = stored codes
@slow
def test_query_items_encode_to_their_stored_codes(searcher, stored):
    images = torch.stack([searcher.encode_image(searcher.image(i)) for i in searcher.query_idx])
    texts = torch.stack([searcher.encode_text(searcher.dataset.texts[i]) for i in searcher.query_idx])
    assert images.dtype == torch.int8 and images.shape == (len(searcher.query_idx), 64)
    assert torch.equal(images, stored["query_image_codes"])
    assert torch.equal(texts, stored["query_text_codes"])


@slow
def test_a_path_a_pil_image_and_an_array_give_one_code(searcher, stored, tmp_path):
    array = searcher.image(searcher.query_idx[4])
    path = tmp_path / "query.png"
    Image.fromarray(array).save(path)  # lossless
    codes = [searcher.encode_image(x) for x in (array, Image.fromarray(array), path, str(path))]
    for code in codes:
        assert torch.equal(code, stored["query_image_codes"][4])
    # an image of another size goes through the extraction's resize (shortest side, centre crop)
    big = np.asarray(Image.fromarray(array).resize((96, 80)))
    assert searcher.encode_image(big).shape == (64,)


# --------------------------------------------------------------------------- the command
@slow
def test_cli_prints_the_table(tiny_runs, searcher, capsys):
    rc = search.main(["--run", RUN, "--runs-root", str(tiny_runs), "--text", "sky clouds zzzq", "-k", "7"])
    out = capsys.readouterr().out
    assert rc == 0
    lines = out.strip().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("rank"))
    rows = lines[header + 1 :]
    expected = searcher.search_text("sky clouds zzzq", k=7)
    assert len(rows) == 7 and "ignored: zzzq" in lines[header - 1]
    for row, hit in zip(rows, expected):
        rank, dist, item = row.split()[:3]
        assert (int(rank), int(dist), int(item)) == (hit.rank, hit.distance, hit.index)
        assert "in memory" in row


@slow
def test_cli_image_query_as_a_command(tiny_runs, searcher, tmp_path):
    path = tmp_path / "q.png"
    Image.fromarray(searcher.image(searcher.query_idx[0])).save(path)
    out = subprocess.run(
        [sys.executable, "-m", "egath_lite.search", "--run", RUN, "--runs-root", str(tiny_runs), "--bits", "16"]
        + ["--image", str(path), "-k", "3"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "16 bits" in out.stdout and "I→T" in out.stdout
    assert len(out.stdout.strip().splitlines()[-3:]) == 3 and out.stdout.strip().splitlines()[-1].startswith("3 ")


@slow
def test_the_readme_commands_run(tiny_runs, searcher, tmp_path, repo_root, capsys, monkeypatch):
    """The README's search section, pointed at the tiny run: its Python block and both commands."""
    readme = (repo_root / "README.md").read_text()
    section = readme.split("## Search with one query", 1)[1].split("\n## ", 1)[0]
    python_block = section.split("```python\n", 1)[1].split("```", 1)[0]
    commands = [line for line in section.split("```bash\n", 1)[1].split("```", 1)[0].splitlines() if line]
    assert len(commands) == 2 and all(c.startswith("python -m egath_lite.search --run ") for c in commands)
    Image.fromarray(searcher.image(searcher.query_idx[0])).save(tmp_path / "photo.jpg")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").symlink_to(tiny_runs)  # the README's runs root: runs/ beside the command
    exec(python_block.replace("default-toy_nuswide-s0", RUN), {})
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in printed if re.match(r"\d+ \d+ \d+ \(", line)] == ["1", "2", "3", "4", "5"]
    for command in commands:
        assert search.main(shlex.split(command.replace("default-toy_nuswide-s0", RUN))[3:]) == 0
        printed = capsys.readouterr().out.splitlines()
        rows = printed[next(i for i, line in enumerate(printed) if line.startswith("rank")) + 1 :]
        assert [int(row.split()[0]) for row in rows] == list(range(1, 11))


# --------------------------------------------------------------------------- bad input
def test_missing_run_is_named(tmp_path):
    with pytest.raises(SearchError, match=r"no run 'nope' in .*runs there: none"):
        Searcher.from_run("nope", runs_root=tmp_path)
    assert not (tmp_path / "nope").exists()  # looking for a run creates no folder


def test_cli_missing_run_exits_2_with_one_line(tmp_path, capsys):
    assert search.main(["--run", "nope", "--runs-root", str(tmp_path), "--text", "sky"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("python -m egath_lite.search: error: no run 'nope'") and len(err.splitlines()) == 1


@slow
def test_unknown_variant_or_bits_lists_what_the_run_has(tiny_runs, capsys):
    with pytest.raises(SearchError, match=r"no trained 'no_gat' codes; it has: egath: 16, 32, 64 bits"):
        Searcher.from_run(RUN, variant="no_gat", runs_root=tiny_runs)
    with pytest.raises(SearchError, match=r"unknown variant 'fancy'; variants: egath, no_gat"):
        Searcher.from_run(RUN, variant="fancy", runs_root=tiny_runs)
    with pytest.raises(SearchError, match=r"no egath codes at bits=48; it has: egath: 16, 32, 64 bits"):
        Searcher.from_run(RUN, bits=48, runs_root=tiny_runs)
    assert search.main(["--run", RUN, "--runs-root", str(tiny_runs), "--bits", "48", "--text", "sky"]) == 2
    assert "no egath codes at bits=48" in capsys.readouterr().err
    assert [(e["variant"], e["bits"]) for e in codes_in_run(tiny_runs / RUN)] == [("egath", b) for b in (16, 32, 64)]


@slow
@pytest.mark.parametrize(
    "image, message",
    [
        (np.zeros((64, 64), np.uint8), r"uint8 \(H, W, 3\) RGB, got uint8 \(64, 64\)"),
        (np.zeros((64, 64, 4), np.uint8), r"got uint8 \(64, 64, 4\)"),
        (np.zeros((64, 64, 3), np.float32), r"got float32"),
        (np.zeros((0, 64, 3), np.uint8), r"got uint8 \(0, 64, 3\)"),
        ([[1, 2, 3]], r"a file path, a PIL image or a uint8 array"),
        ("/no/such/image.jpg", r"image file '/no/such/image.jpg' not found"),
    ],
)
def test_bad_image_queries(searcher, image, message):
    with pytest.raises(SearchError, match=message):
        searcher.search_image(image)


@slow
def test_a_file_that_is_no_image(searcher, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    with pytest.raises(SearchError, match=r"cannot read image .*notes.jpg"):
        searcher.search_image(bad)


@slow
@pytest.mark.parametrize(
    "text, message",
    [
        ("", r"the text query is empty"),
        ("   ", r"the text query is empty"),
        (42, r"must be a string, got int"),
    ],
)
def test_bad_text_queries(searcher, text, message):
    with pytest.raises(SearchError, match=message):
        searcher.search_text(text)


@slow
def test_a_text_without_a_vocabulary_word_is_refused(searcher):
    """A bag-of-words model gives every such text one code (that of the empty bag): an error, not a ranking."""
    words = f"{len(searcher.vocab)} tags (e.g. {', '.join(searcher.vocab[:8])})"
    with pytest.raises(
        SearchError, match=re.escape(f"no word of 'qqqz xxyzz' is in run '{RUN}''s vocabulary of {words}")
    ):
        searcher.search_text("qqqz xxyzz")
    assert searcher.vocabulary_words("Sky qqqz sky clouds") == (["sky", "clouds"], ["qqqz"])
    # one known word is enough, the others are ignored: the same code as the known word alone
    assert torch.equal(searcher.encode_text("qqqz sky xxyzz"), searcher.encode_text("sky"))


@slow
def test_bad_k_and_direction(searcher):
    with pytest.raises(SearchError, match=r"k must be a positive integer, got 0"):
        searcher.search_text("sky", k=0)
    with pytest.raises(SearchError, match=r"against must be one of"):
        searcher.search_text("sky", against="audio")
    assert len(searcher.search_text("sky", k=10_000)) == len(searcher.retrieval_idx)  # k beyond the set: all


def _copy_run(tiny_runs: Path, tmp_path: Path) -> Path:
    """The tiny run and its shared toy-data cache in a fresh runs root (the shared fixture stays intact)."""
    root = tmp_path / "runs"
    shutil.copytree(tiny_runs / "shared-cache", root / "shared-cache")
    shutil.copytree(tiny_runs / RUN, root / RUN, ignore=shutil.ignore_patterns("executed", "image_shards", ".locks"))
    return root


@slow
def test_deleted_clip_weights_are_named(tiny_runs, tmp_path):
    root = _copy_run(tiny_runs, tmp_path)
    (tiny_clip,) = (root / RUN).glob("tiny_clip-*.pt")
    tiny_clip.unlink()
    with pytest.raises(
        SearchError, match=rf"tiny CLIP weights {re.escape(str(tiny_clip))} are gone.*Rerun notebook 01"
    ):
        Searcher.from_run(root / RUN)  # a run folder given as a path
    # a run made with a checkpoint file that is gone since
    path = root / RUN / "run_config.json"
    record = json.loads(path.read_text())
    record["config"]["clip_pretrained"] = str(tmp_path / "vit_b_32.bin")
    path.write_text(json.dumps(record))
    with pytest.raises(
        SearchError, match=rf"CLIP weights file '{re.escape(str(tmp_path / 'vit_b_32.bin'))}' .* is gone"
    ):
        Searcher.from_run(RUN, runs_root=root)


@slow
def test_a_clip_text_model_encodes_free_text_with_the_runs_clip(tiny_runs, tmp_path):
    """The clip_text ablation reads CLIP text vectors: its query codes come from the run's CLIP, any words work."""
    from egath_lite.pipeline.codes import ensure_codes
    from egath_lite.pipeline.runs import load_run_config

    root = _copy_run(tiny_runs, tmp_path)
    cfg = load_run_config(str(root), RUN).replace(variant="clip_text")
    t = ensure_codes(cfg, 16, progress=False)["tensors"]
    assert describe_codes(codes_in_run(root / RUN)) == "clip_text: 16 bits; egath: 16, 32, 64 bits"
    s = Searcher.from_run(RUN, variant="clip_text", runs_root=root)
    assert s.bits == 16 and s.text_input == "clip"
    texts = torch.stack([s.encode_text(s.dataset.texts[i]) for i in s.query_idx[:50]])
    assert torch.equal(texts, t["query_text_codes"][:50])
    assert len(s.search_text("qqqz xxyzz", k=3)) == 3  # no vocabulary: any text has a CLIP vector
    with pytest.raises(SearchError, match="the text query is empty"):
        s.search_text(" ")
