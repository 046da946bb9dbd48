#!/usr/bin/env bash
# Command 1 of the README: set up the environment and run the main job on the embedded data.
# Extra arguments go to `python -m egath_lite.reproduce` (e.g. --preset tiny).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m egath_lite.reproduce "$@"
