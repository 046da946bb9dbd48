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
echo "[setup] creating .venv (torch + open_clip + torch_geometric; about 2 minutes the first time)"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c constraints.txt -e ".[test,docs,notebooks,driver]"
.venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
echo "$want" > "$stamp"
echo "[setup] done: $(.venv/bin/python -c 'import torch, open_clip, torch_geometric as g; print("torch", torch.__version__, "| open_clip", open_clip.__version__, "| torch_geometric", g.__version__)')"
