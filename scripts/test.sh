#!/usr/bin/env bash
# Command 2 of the README: set up the environment and run the whole test suite (unit tests, every
# notebook via papermill on the toy data and on real-layout fixtures, the docs site in Chromium).
# Fast tier for development: bash scripts/test.sh -m "not slow"
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
bash scripts/setup_browser.sh   # Debian chromium + chromium-driver for tests/test_docs_site.py (idempotent)
export HF_HUB_OFFLINE=1 MPLBACKEND=Agg PYTHONHASHSEED=0
# two worker processes (pytest-xdist; the machine has 2 cores), a test file at a time each (--dist loadfile), so a
# module-scoped fixture is built once. EGATH_TEST_WORKERS=0: one process.
exec .venv/bin/python -m pytest -n "${EGATH_TEST_WORKERS:-2}" --dist loadfile --durations=15 "$@"
