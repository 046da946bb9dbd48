#!/usr/bin/env bash
# Command 2 of the README: set up the environment and run the whole test suite (unit tests, every
# notebook via papermill on the toy data and on real-layout fixtures, the docs site in Chromium).
# Fast tier for development: bash scripts/test.sh -m "not slow"
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
bash scripts/setup_browser.sh   # Debian chromium + chromium-driver for tests/test_docs_site.py (idempotent)
export HF_HUB_OFFLINE=1 MPLBACKEND=Agg PYTHONHASHSEED=0
exec .venv/bin/python -m pytest "$@"
