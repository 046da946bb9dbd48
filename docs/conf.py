"""Sphinx configuration of the documentation site (built by scripts/docs.sh, never by hand).

scripts/docs.sh assembles the source tree (docs/assemble.py) in build/docs-<preset>/src and runs
``sphinx-build -c docs``: this file is read from here, the pages from there.
"""

import egath_lite

project = "egath_lite"
author = "egath_lite contributors"
copyright = "2026, egath_lite contributors"
release = version = egath_lite.__version__

extensions = [
    "myst_nb",  # Markdown pages and notebooks (myst-parser comes with it)
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx-mathjax-offline",  # MathJax 3 copied into _static: math renders with no network
]

# The notebooks are the driver's executed copies: show their outputs, never run them again.
nb_execution_mode = "off"
nb_merge_streams = True  # one block per cell instead of one per write (tqdm, prints)
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3  # README/notebook links like (#two-commands) resolve
# Widgets are frozen to text by docs/assemble.py; never pull their JS from a CDN.
nb_ipywidgets_js = {}
suppress_warnings = [
    # docs/architecture.md shows call signatures with "N×C" shapes in python blocks; Pygments
    # cannot lex "×" and falls back to plain text, which is the right rendering for them.
    "misc.highlighting_failure",
    # Every comparison method (egath_lite.core.methods.<name>) has its own ``Config`` dataclass beside the run's
    # ``egath_lite.pipeline.config.Config``; an annotation ``Config`` in another module's signature is then
    # "more than one target" for Sphinx's python domain. Autodoc's signatures say which module each comes from.
    "ref.python",
]

autosummary_generate = True
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
    # Packages re-export their modules' names in __all__; document each object once, where it lives.
    "ignore-module-all": True,
}
autodoc_member_order = "bysource"
autodoc_typehints = "description"

# README.md is included into index.md; it is not a page of its own (data/README.md is).
exclude_patterns = ["README.md", "_build", "**.ipynb_checkpoints"]
html_theme = "sphinx_book_theme"
html_title = f"egath_lite {version}"
html_static_path = ["_static"]
html_theme_options = {
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "use_download_button": True,
}
# Without a default the theme logs "Got invalid theme mode" to the console on a first visit.
html_context = {"default_mode": "light"}
# A page without an icon makes the browser request /favicon.ico, a 404 in the console.
html_favicon = "_static/favicon.svg"


def _literal_blocks(app, what, name, obj, options, lines):
    """Docstrings here are plain text: an indented block after a paragraph is a formula or a
    listing (e.g. ``C_ij = Σ_k Y_ki Y_kj``, a command line), so show it verbatim, not reflowed
    as a block quote. RST's ``::`` after the paragraph does that (a lone ``:`` stays visible)."""
    for i, line in enumerate(lines[:-2]):
        text, follower = line.rstrip(), lines[i + 2]
        indent = len(line) - len(line.lstrip())
        if not text or text.endswith("::") or text.lstrip().startswith(("..", ":")) or lines[i + 1].strip():
            continue
        if follower.strip() and len(follower) - len(follower.lstrip()) > indent:
            lines[i] = text + (":" if text.endswith(":") else " ::")


def setup(app):
    app.connect("autodoc-process-docstring", _literal_blocks)
