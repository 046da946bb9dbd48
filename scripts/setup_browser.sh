#!/usr/bin/env bash
# Install headless Chromium and its WebDriver from Debian's packages when missing (for
# tests/test_docs_site.py). Idempotent: does nothing when both are on PATH. Needs root (CI is).
# No browser is downloaded at run time: Selenium drives this system chromedriver.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "[setup_browser] chromium/chromedriver missing; run as root: apt-get install -y chromium chromium-driver" >&2
  exit 1
fi
echo "[setup_browser] installing chromium + chromium-driver from Debian (about a minute)"
start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
echo "[setup_browser] done in $(( $(date +%s) - start )) s: $(chromium --version 2>/dev/null | head -1)"
