#!/usr/bin/env bash
# Build the documentation site: the README, the six notebooks WITH their outputs, the design
# pages, the benchmark results and an API reference, as static HTML that works offline.
#
#   bash scripts/docs.sh                    # preset "default" (the main job, ~7 min the first time)
#   bash scripts/docs.sh --preset tiny      # minutes; what CI builds
#   bash scripts/docs.sh --runs-root runs   # reuse the executed notebooks of `bash scripts/run.sh`
#
# 1. The driver executes the notebooks into <runs-root> (default runs/docs-<preset>); it resumes,
#    so a second call reuses every finished grid cell and executes nothing.
# 2. docs/assemble.py copies the executed copies and the pages into build/docs-<preset>/src.
# 3. Sphinx + myst-nb (execution off) writes build/docs-<preset>/html; any warning (a broken
#    link, a missing image, a docstring Sphinx cannot parse) fails the build.
# Development override: EGATH_PYTHON=/path/to/python skips scripts/setup_env.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
preset=default
runs_root=
while [ $# -gt 0 ]; do
  case "$1" in
    --preset) preset=${2:?--preset needs a value: tiny, default or paper}; shift 2 ;;
    --runs-root) runs_root=${2:?--runs-root needs a folder}; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "scripts/docs.sh: unknown argument '$1' (use --preset NAME, --runs-root DIR)" >&2; exit 2 ;;
  esac
done
runs_root=${runs_root:-runs/docs-$preset}
out=build/docs-$preset
if [ -z "${EGATH_PYTHON:-}" ]; then
  bash scripts/setup_env.sh
  EGATH_PYTHON=.venv/bin/python
fi
export HF_HUB_OFFLINE=1 PYTHONHASHSEED=0
# The kernels must draw inline figures: a non-interactive MPLBACKEND (scripts/test.sh exports
# Agg) would leave every notebook page of the site without its plots.
unset MPLBACKEND
start=$(date +%s)
echo "[docs] 1/3 executed notebooks: python -m egath_lite.reproduce --preset $preset --runs-root $runs_root"
"$EGATH_PYTHON" -m egath_lite.reproduce --preset "$preset" --runs-root "$runs_root"
# Notebook 06 is not a grid cell: papermill runs it once on the first seed's run (one seed on the tiny preset).
run06=$("$EGATH_PYTHON" -c "import sys; from egath_lite import get_config; print(get_config(sys.argv[1]).dataset)" "$preset")
seeds06=$([ "$preset" = tiny ] && echo "[0]" || echo "[0, 1, 2]")
mkdir -p "$runs_root/$preset-$run06-s0/executed/comparison"
"$EGATH_PYTHON" -m papermill notebooks/06_comparison.ipynb "$runs_root/$preset-$run06-s0/executed/comparison/06_comparison.ipynb" \
  --cwd notebooks -p RUN_NAME "$preset-$run06-s0" -p RUNS_ROOT "$(cd "$runs_root" && pwd)" -y "SEEDS: $seeds06" \
  --no-progress-bar
echo "[docs] 2/3 sources: $out/src"
"$EGATH_PYTHON" docs/assemble.py --runs-root "$runs_root" --out "$out/src"
echo "[docs] 3/3 html: $out/html"
# A fresh build each time (~20 s): Sphinx's incremental mode keeps stale viewcode pages and pages
# of removed sources.
rm -rf "$out/html" "$out/doctrees"
"$EGATH_PYTHON" -m sphinx -b html -c docs -W --keep-going -q -d "$out/doctrees" "$out/src" "$out/html"
echo "[docs] site built in $(( $(date +%s) - start )) s: open $out/html/index.html"
