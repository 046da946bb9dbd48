"""The documentation site: its assembly (fast, hand-made cases) and the built site in headless Chromium (slow).

The slow test builds the site with ``scripts/docs.sh --preset tiny``, serves it on 127.0.0.1 and opens
every page in Debian's Chromium (Selenium + the system chromedriver; nothing is downloaded): no
console errors, every image of a notebook page loaded, every internal link and anchor resolves,
every formula typeset by MathJax. It saves a full-page screenshot of each notebook page under
``runs/docs-tiny/screenshots/``. Chromium comes from ``bash scripts/setup_browser.sh``.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urldefrag, urlsplit

import pytest

REPO = Path(__file__).resolve().parents[1]
RUNS_ROOT = REPO / "runs" / "docs-tiny"
SITE = REPO / "build" / "docs-tiny" / "html"
NOTEBOOK_PAGES = (
    "01_feature_extraction",
    "02_label_graph",
    "03_gat_classification",
    "04_hash_learning",
    "05_pr_curve_evaluation",
    "06_comparison",
)


def _load_assemble():
    spec = importlib.util.spec_from_file_location("docs_assemble", REPO / "docs" / "assemble.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


assemble = _load_assemble()


# ---------------------------------------------------------------- assembly (fast)


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    return path


def test_pick_executed_takes_one_per_number_sorted_and_the_egath_variant(tmp_path):
    a, b = tmp_path / "tiny-toy_nuswide-s0" / "executed", tmp_path / "tiny-toy_nuswide-s1" / "executed"
    for ex in (a, b):
        for name in ("01_feature_extraction", "02_label_graph", "03_gat_classification"):
            _touch(ex / f"{name}.ipynb")
    # 04/05 per variant, with and without a configuration key in the name; "no_gat" must not match "egath".
    _touch(a / "04_hash_learning.no_gat.ipynb")
    _touch(a / "04_hash_learning.egath-3f2a9c.ipynb")
    _touch(a / "05_pr_curve_evaluation.clip_text.ipynb")
    _touch(b / "05_pr_curve_evaluation.egath.ipynb")
    _touch(tmp_path / "elsewhere" / "01_feature_extraction.ipynb")  # not under executed/: ignored

    chosen = assemble.pick_executed(tmp_path)

    assert list(chosen) == ["01", "02", "03", "04", "05"]
    assert chosen["01"] == a / "01_feature_extraction.ipynb"  # the first run folder in sorted order
    assert chosen["04"] == a / "04_hash_learning.egath-3f2a9c.ipynb"
    assert chosen["05"] == b / "05_pr_curve_evaluation.egath.ipynb"  # egath beats an earlier folder


def test_pick_executed_reads_the_drivers_cell_folders(tmp_path):
    ex = tmp_path / "tiny-toy_nuswide-s0" / "executed"
    for cell in ("gcn-0a1b", "egath-9f8e"):  # the driver: executed/<variant>-<cell key>/<notebook>.ipynb
        for name in (
            "01_feature_extraction",
            "02_label_graph",
            "03_gat_classification",
            "04_hash_learning",
            "05_pr_curve_evaluation",
        ):
            _touch(ex / cell / f"{name}.ipynb")
    chosen = assemble.pick_executed(tmp_path)
    assert {p.parent.name for p in chosen.values()} == {"egath-9f8e"}  # one cell's five, the egath variant


def test_pick_executed_falls_back_to_the_first_variant_without_egath(tmp_path):
    ex = tmp_path / "r" / "executed"
    for name in ("01_a", "02_b", "03_c", "04_hash_learning.no_gat", "04_hash_learning.gcn", "05_e.gcn"):
        _touch(ex / f"{name}.ipynb")
    assert assemble.pick_executed(tmp_path)["04"].name == "04_hash_learning.gcn.ipynb"


def test_pick_executed_names_the_missing_notebooks_and_the_command(tmp_path):
    _touch(tmp_path / "r" / "executed" / "01_feature_extraction.ipynb")
    with pytest.raises(FileNotFoundError, match=r"notebook\(s\) 02, 03, 04, 05 .*egath_lite.reproduce --preset tiny"):
        assemble.pick_executed(tmp_path)


def test_site_name_is_the_repository_file_name():
    assert assemble.site_name("04") == "04_hash_learning.ipynb"
    with pytest.raises(FileNotFoundError, match="notebooks/07_"):
        assemble.site_name("07")


def test_localise_badges_points_at_the_sites_copy_from_any_depth():
    md = "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.x/nb)"
    assert assemble.localise_badges(md, 0) == "[![Open In Colab](_static/colab-badge.svg)](https://colab.x/nb)"
    assert "](../_static/colab-badge.svg)" in assemble.localise_badges(md, 1)
    assert (REPO / "docs" / assemble.LOCAL_BADGE).is_file()


def _progress_state(left: str, value: float, total: float, right: str) -> dict:
    kids = {
        "l": ("HTMLModel", {"value": left}),
        "p": ("FloatProgressModel", {"value": value, "max": total}),
        "r": ("HTMLModel", {"value": right}),
    }
    state = {k: {"model_name": name, "state": s} for k, (name, s) in kids.items()}
    state["box"] = {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_l", "IPY_MODEL_p", "IPY_MODEL_r"]}}
    return state


def test_progress_line_renders_the_last_state_of_a_tqdm_bar():
    state = _progress_state("train:\u2007100%", 36.0, 36.0, "\u200736/36\u2007[00:04&lt;00:00]")
    assert assemble.progress_line(state, "box") == "train: 100%|██████████| 36/36 [00:04<00:00]"
    half = _progress_state("x", 3.0, 12.0, "")  # 3/12 of 10 cells = 2.5 -> 2 (round half to even)
    assert assemble.progress_line(half, "box") == "x|██        |"
    assert assemble.progress_line({"s": {"model_name": "IntSliderModel", "state": {}}}, "s") is None


def test_freeze_widgets_replaces_views_keeps_unknown_fallbacks_and_drops_the_state():
    state = _progress_state("a", 1.0, 1.0, "b")
    state["s"] = {"model_name": "IntSliderModel", "state": {}}
    view = "application/vnd.jupyter.widget-view+json"
    nb = {
        "metadata": {"widgets": {"application/vnd.jupyter.widget-state+json": {"state": state}}},
        "cells": [
            {
                "cell_type": "code",
                "outputs": [
                    {"output_type": "display_data", "data": {view: {"model_id": "box"}, "text/plain": "a 0%"}},
                    {"output_type": "display_data", "data": {view: {"model_id": "s"}, "text/plain": "IntSlider()"}},
                    {"output_type": "stream", "name": "stdout", "text": "ok"},
                ],
            },
            {"cell_type": "markdown", "source": "# t"},
        ],
    }
    out = assemble.freeze_widgets(nb)
    data = [o.get("data") for o in out["cells"][0]["outputs"]]
    assert data == [{"text/plain": "a|██████████|b"}, {"text/plain": "IntSlider()"}, None]
    assert "widgets" not in out["metadata"]


def test_assemble_mirrors_the_repository_layout(tmp_path):
    runs = tmp_path / "runs" / "r" / "executed"
    for number, name in zip(assemble.NOTEBOOK_NUMBERS, NOTEBOOK_PAGES, strict=True):
        badge = {"cell_type": "markdown", "metadata": {}, "source": [f"# {number}\n", assemble.COLAB_BADGE_URL]}
        (runs / f"{name}.egath.ipynb").parent.mkdir(parents=True, exist_ok=True)
        (runs / f"{name}.egath.ipynb").write_text(json.dumps({"cells": [badge], "metadata": {}}))
    out = tmp_path / "src"
    _touch(out / "notebooks" / "99_stale.ipynb")

    pages = assemble.assemble(tmp_path / "runs", out)

    assert sorted(p.name for p in pages) == [f"{n}.ipynb" for n in NOTEBOOK_PAGES]
    assert not (out / "notebooks" / "99_stale.ipynb").exists()
    for rel in (*assemble.PAGES, *assemble.DOWNLOADS, "index.md", "api.md", "_static/colab-badge.svg"):
        assert (out / rel).is_file(), rel
    nb = json.loads((out / "notebooks" / "04_hash_learning.ipynb").read_text())
    assert nb["cells"][0]["source"] == ["# 04\n", "../_static/colab-badge.svg"]
    assert assemble.COLAB_BADGE_URL not in (out / "README.md").read_text()


# ---------------------------------------------------------------- the built site in Chromium (slow)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # the test reports failures itself
        pass


class _Anchors(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("id", "name") and value:
                self.ids.add(value)


@pytest.fixture(scope="module")
def site(tiny_runs):
    """Build the tiny site over the session's tiny driver run (the driver reuses its cell) and serve it."""
    env = {**os.environ, "EGATH_PYTHON": sys.executable}
    proc = subprocess.run(
        ["bash", "scripts/docs.sh", "--preset", "tiny", "--runs-root", str(tiny_runs)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, f"scripts/docs.sh failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(SITE)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium through the system chromedriver; every non-local host unresolvable."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and chromedriver):
        pytest.fail("chromium/chromedriver not found: run `bash scripts/setup_browser.sh` (Debian packages, as root)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--hide-scrollbars",
        "--disable-background-networking",
        # A page that needs the network fails here on a connected machine too.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


WAIT_FOR_IMAGES_AND_MATH = """
const done = arguments[arguments.length - 1];
document.querySelectorAll('img').forEach(img => { img.loading = 'eager'; });
const images = Array.from(document.images).map(img => img.decode().catch(() => null));
const math = (window.MathJax && MathJax.startup) ? MathJax.startup.promise : Promise.resolve();
Promise.all([...images, math]).then(() => done(true), () => done(false));
"""

PAGE_FACTS = """
const sameOrigin = h => h.startsWith(location.origin);
return {
  images: Array.from(document.images).map(i => ({src: i.src, width: i.naturalWidth, ok: i.complete})),
  outputImages: document.querySelectorAll('.cell_output img').length,
  links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href).filter(sameOrigin),
  math: document.querySelectorAll('.math').length,
  typeset: Array.from(document.querySelectorAll('.math')).filter(m => m.querySelector('mjx-container')).length,
  texErrors: document.querySelectorAll('mjx-merror').length,
  mathjax: !!(window.MathJax && MathJax.version),
};
"""


def _fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def _save_full_page(driver, path: Path, width: int = 1280, max_height: int = 16000) -> None:
    """A screenshot of the whole page: the window grows to the page's height, then shrinks back."""
    height = min(driver.execute_script("return document.documentElement.scrollHeight"), max_height)
    driver.set_window_size(width, height)
    try:
        path.write_bytes(driver.get_screenshot_as_png())
    finally:
        driver.set_window_size(width, 900)


@pytest.mark.slow
def test_every_page_renders_offline_in_chromium(site, browser):
    pages = sorted(p.relative_to(SITE).as_posix() for p in SITE.rglob("*.html") if "_static" not in p.parts)
    assert {f"notebooks/{n}.html" for n in NOTEBOOK_PAGES} <= set(pages)
    shots = RUNS_ROOT / "screenshots"  # under the repository's runs/ (ignored), where a person looks for them
    shots.mkdir(parents=True, exist_ok=True)
    browser.set_script_timeout(60)
    problems: list[str] = []
    links: dict[str, str] = {}  # internal link -> the first page that has it
    anchors: dict[str, set[str]] = {}
    math_pages = 0
    for page in pages:
        browser.get(site + page)
        if not browser.execute_async_script(WAIT_FOR_IMAGES_AND_MATH):
            problems.append(f"{page}: MathJax did not finish typesetting")
        facts = browser.execute_script(PAGE_FACTS)
        for entry in browser.get_log("browser"):
            if entry["level"] == "SEVERE":
                problems.append(f"{page}: console error: {entry['message']}")
        if facts["math"]:
            math_pages += 1
            if not facts["mathjax"] or facts["typeset"] != facts["math"] or facts["texErrors"]:
                problems.append(
                    f"{page}: {facts['typeset']} of {facts['math']} formulas typeset, "
                    f"{facts['texErrors']} TeX errors (MathJax loaded: {facts['mathjax']})"
                )
        for link in facts["links"]:
            links.setdefault(link, page)
        if page.startswith("notebooks/"):
            name = Path(page).stem
            broken = [i["src"] for i in facts["images"] if not (i["ok"] and i["width"] > 0)]
            if broken:
                problems.append(f"{page}: images not loaded: {broken}")
            if facts["outputImages"] == 0:
                problems.append(f"{page}: no figure among the cell outputs (executed outputs missing?)")
            _save_full_page(browser, shots / f"{name}.png")

    for link, page in sorted(links.items()):
        target, fragment = urldefrag(link)
        path = urlsplit(target).path
        if path not in anchors:
            status, body = _fetch(target)
            if status != 200:
                problems.append(f"{page}: link {link} -> HTTP {status}")
                anchors[path] = set()
                continue
            parser = _Anchors()
            if path.endswith(".html") or path.endswith("/"):
                parser.feed(body.decode("utf-8", errors="replace"))
            anchors[path] = parser.ids
        if fragment and fragment not in anchors[path]:
            problems.append(f"{page}: link {link}: no element with id '{fragment}' in {path}")

    assert not problems, f"{len(problems)} problems on the site:\n" + "\n".join(problems[:60])
    assert math_pages >= 3, f"only {math_pages} pages with math: is dollarmath still enabled in docs/conf.py?"
    assert len(links) > 50, f"only {len(links)} internal links found: did the pages load?"
    for name in NOTEBOOK_PAGES:
        assert (shots / f"{name}.png").stat().st_size > 10_000, f"screenshot of {name} is empty"
