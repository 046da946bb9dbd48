#!/usr/bin/env bash
# Lint and format check, as CI runs them: ruff (configured in pyproject.toml) over the package,
# tests, benchmarks, scripts, docs and the notebooks. Changes nothing; to fix locally:
#   .venv/bin/ruff check --fix . && .venv/bin/ruff format .
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${EGATH_PYTHON:-}" ]; then
  bash scripts/setup_env.sh
  EGATH_PYTHON=.venv/bin/python
fi
status=0
"$EGATH_PYTHON" -m ruff --version
"$EGATH_PYTHON" -m ruff check --output-format concise . || status=1
"$EGATH_PYTHON" -m ruff format --check --output-format concise . || status=1
exit $status
