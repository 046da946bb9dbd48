#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment .venv with the pinned versions.
# Idempotent: reinstalls only when constraints.txt or pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
stamp=.venv/.egath_lite-installed
want=$(cat constraints.txt pyproject.toml | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "[setup] creating .venv (torch + open_clip + torch_geometric + Jupyter; 2-12 minutes the first time, ~7 GB with CUDA torch)"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# EGATH_TORCH_INDEX=https://download.pytorch.org/whl/cpu: the CPU-only torch (about 3 GB smaller than PyPI's
# CUDA build on Linux), installed first at the pinned versions so that nothing below pulls the CUDA one.
if [ -n "${EGATH_TORCH_INDEX:-}" ]; then
  .venv/bin/python -m pip install -q -c constraints.txt torch torchvision --index-url "$EGATH_TORCH_INDEX"
fi
.venv/bin/python -m pip install -q -c constraints.txt -e ".[test,docs,notebooks,driver]"
.venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
echo "$want" > "$stamp"
echo "[setup] done: $(.venv/bin/python -c 'import torch, open_clip, torch_geometric as g; print("torch", torch.__version__, "| open_clip", open_clip.__version__, "| torch_geometric", g.__version__)')"
