#!/usr/bin/env bash
# Command 2 of the README: set up the environment and run the whole test suite
# (unit tests and every notebook through papermill with the tiny preset).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export HF_HUB_OFFLINE=1 MPLBACKEND=Agg PYTHONHASHSEED=0
exec .venv/bin/python -m pytest "$@"
