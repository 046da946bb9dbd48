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
# Every tracked .py/.ipynb file must be one ruff checks: an exclude pattern that matches too much
# (a bare "data" once hid all of egath_lite/data/) fails here, naming the files it hides.
# tests/test_project.py::test_ruff_checks_every_tracked_python_file holds the same rule.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  root=$(pwd -P)
  checked=$("$EGATH_PYTHON" -m ruff check --show-files . | sed "s|^$root/||" | grep -E '\.(py|ipynb)$' | sort || true)
  tracked=$(git ls-files '*.py' '*.ipynb' | while read -r f; do [ -e "$f" ] && echo "$f"; done | sort || true)
  missing=$(comm -13 <(printf '%s\n' "$checked") <(printf '%s\n' "$tracked") | grep -v '^$' || true)
  echo "ruff checks $(printf '%s' "$checked" | grep -c . || true) .py/.ipynb files; git tracks $(printf '%s' "$tracked" | grep -c . || true)"
  if [ -n "$missing" ]; then
    echo "ruff does not check these tracked files (an exclude pattern in pyproject.toml matches them?):"
    printf '  %s\n' $missing
    status=1
  fi
else
  echo "not a git checkout: skipped the ruff-vs-git file count"
fi
exit $status
