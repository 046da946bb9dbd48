"""The real benchmarks, each in the release layout(s) users have (one module per set; this one gathers them).

- ``mirflickr25k`` (``mirflickr.py``): the raw release, with the annotation files in their
  folder or flat in the root, or the DCHMT-style ``.mat`` layout.
- ``nuswide_tc10`` (``nuswide.py``): GCDH's ``.mat`` files, or NUS-WIDE's official release
  files with the TC-10 selection rule.
- ``mscoco`` (``mscoco.py``): the ``.mat`` layout, or the official 2014 / 2017 JSON annotations.

Every loader takes ``layout="auto"`` (the first layout whose files are all there) or a
layout's name, and ``drop_unlabeled``. A root that matches no layout raises an error that
lists what the folder holds, the layout it most resembles and the fix (``layouts.py``).
Nothing here falls back to other data.
"""

from __future__ import annotations

from egath_lite.data import mirflickr, mscoco, nuswide
from egath_lite.data.layouts import HOW_TO, Layout
from egath_lite.data.mirflickr import MIR_ANNOTATIONS, load_mirflickr25k
from egath_lite.data.mscoco import load_mscoco
from egath_lite.data.nuswide import GCDH_LAYOUT, load_nuswide_tc10
from egath_lite.data.release import MAT_LAYOUT, SPLITS

LAYOUTS: dict[str, tuple[Layout, ...]] = {
    "mirflickr25k": mirflickr.LAYOUTS,
    "nuswide_tc10": nuswide.LAYOUTS,
    "mscoco": mscoco.LAYOUTS,
}

__all__ = [
    "HOW_TO",
    "LAYOUTS",
    "MIR_ANNOTATIONS",
    "GCDH_LAYOUT",
    "MAT_LAYOUT",
    "SPLITS",
    "load_mirflickr25k",
    "load_mscoco",
    "load_nuswide_tc10",
]
